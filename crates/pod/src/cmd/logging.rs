//! Structured logs on stderr: JSON for log collectors, text for people.

use std::io::IsTerminal;

use clap::{Args, ValueEnum};

use super::log_json::FlatJson;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Clone, Args)]
pub struct LoggingArgs {
    /// Log format: json when stderr is not a terminal, text otherwise.
    #[arg(long, global = true, env = "KUBE_ONCE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Auto,
    Json,
    Text,
}

/// Installs the global subscriber, writing to stderr. `RUST_LOG` sets the
/// levels, as `info,kube_once_lock=debug` (a level, then `target=level`
/// pairs); `info` when unset or unreadable.
pub fn init(args: &LoggingArgs) {
    init_with(args, std::io::stderr);
}

/// [`init`], writing each log line to a writer from `writer`, which writes
/// to stderr in its own way (the server batches its lines).
pub fn init_with<W>(args: &LoggingArgs, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    let json = match args.log_format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    if json {
        let layer = layer.json().event_format(FlatJson::default());
        tracing_subscriber::registry().with(layer.with_filter(filter)).init();
    } else {
        tracing_subscriber::registry().with(layer.with_filter(filter)).init();
    }
}
