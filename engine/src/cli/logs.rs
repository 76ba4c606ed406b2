//! The service log: one tracing subscriber per process, installed before any command runs.
//!
//! Text for people by default, JSON lines for log shippers (`--log-format json`,
//! `CSMP_LOG_FORMAT`); the level comes from `RUST_LOG` (default `info`; `warn` for `validate`
//! and `plugin`, whose output is their report). The log goes to standard error, so a
//! command's own output (progress, tables, tokens) stays alone on standard output.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Readable lines: time, level, message, fields.
    #[default]
    Text,
    /// One JSON object per line, with the span fields (request id, run id) beside the event's.
    Json,
}

/// Installs the process's subscriber, at `default` (`info`, or `warn` for commands whose
/// output is their own report) unless `RUST_LOG` says otherwise. A `RUST_LOG` that does not
/// parse falls back to `default` and says so in the log itself.
pub fn install(format: LogFormat, default: &str) {
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(&spec) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new(default), Some(format!("{spec:?}: {e}"))),
        },
        _ => (EnvFilter::new(default), None),
    };
    let installed = match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    if installed.is_ok()
        && let Some(bad) = bad
    {
        tracing::warn!("RUST_LOG {bad}; logging at `{default}` instead");
    }
}
