//! Logging for every subcommand of both binaries, set up in one place:
//! structured lines on stderr, JSON for log collectors (`json`), text for
//! people.
//!
//! Each line is one write(2) to stderr, as it is formatted: nothing waits in
//! a buffer, so a SIGKILL or an OOM kill loses no line that was logged.

mod json;

use std::ffi::OsStr;
use std::io::IsTerminal;

use clap::{Args, ValueEnum};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use json::FlatJson;

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
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    let terminal = std::io::stderr().is_terminal();
    let json = match args.log_format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !terminal,
    };
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    if json {
        let layer = layer.json().event_format(FlatJson::default());
        tracing_subscriber::registry().with(layer.with_filter(filter)).init();
    } else {
        let layer = layer.with_ansi(colour(terminal, std::env::var_os("NO_COLOR").as_deref()));
        tracing_subscriber::registry().with(layer.with_filter(filter)).init();
    }
}

/// Whether text lines carry ANSI colour: only for a person at a terminal,
/// since escape codes in a file or a log collector are noise, and never when
/// `NO_COLOR` is set to anything but the empty string (no-color.org).
fn colour(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
        assert!(!colour(false, Some(OsStr::new("1"))));
    }
}
