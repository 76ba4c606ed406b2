//! The service log: one tracing subscriber per process, installed before any command runs.
//!
//! Text for people by default, JSON lines for log shippers (`--log-format json`,
//! `CSMP_LOG_FORMAT`); the level comes from `RUST_LOG` (default `info`; `warn` for `validate`
//! and `plugin`, whose output is their report). The log goes to standard error, so a
//! command's own output (progress, tables, tokens) stays alone on standard output.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::plugin::mask::Masker;

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
    let secrets = super::run::secrets_from_env();
    set_log_secrets(&secrets);
    let masked = MaskedStderr;
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
            .with_writer(masked)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(masked)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    if installed.is_ok()
        && let Some(bad) = bad
    {
        tracing::warn!("RUST_LOG {bad}; logging at `{default}` instead");
    }
    for (name, value) in &secrets {
        if value.len() < crate::plugin::mask::MIN_MASKED_LEN {
            tracing::warn!(
                "secret `{name}` is shorter than {} bytes, too short to be masked where a plugin lets it out; use a longer value",
                crate::plugin::mask::MIN_MASKED_LEN
            );
        }
    }
}

/// Makes the service log mask these secrets (all of them: pass the whole set).
pub fn set_log_secrets(secrets: &BTreeMap<String, String>) {
    crate::plugin::mask::set_service_log_secrets(secrets);
}

/// Standard error with every secret masked: the subscriber formats each event whole and writes
/// it at once, so a line is masked whole — whatever code logged it, and whatever it quoted.
#[derive(Debug, Clone, Copy)]
struct MaskedStderr;

impl<'a> MakeWriter<'a> for MaskedStderr {
    type Writer = MaskedLine;

    fn make_writer(&'a self) -> Self::Writer {
        MaskedLine(crate::plugin::mask::service_log_masker())
    }
}

/// One write to standard error, masked.
#[derive(Debug)]
struct MaskedLine(Arc<Masker>);

impl Write for MaskedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut err = std::io::stderr().lock();
        if self.0.is_empty() {
            err.write_all(buf)?;
        } else {
            err.write_all(self.0.mask(&String::from_utf8_lossy(buf)).as_bytes())?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
