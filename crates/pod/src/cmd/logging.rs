//! Structured logs on stderr: JSON for log collectors, text for people.

use std::io::IsTerminal;

use clap::{Args, ValueEnum};

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

/// Installs the global subscriber; the level comes from `RUST_LOG` (default `info`).
pub fn init(args: &LoggingArgs) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match args.log_format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).with_current_span(false).init();
    } else {
        builder.init();
    }
}
