//! What a running plugin can ask of its host: log, HTTP, secrets, the idempotency key.
//!
//! `Context` forwards every request to a backend: the real host when running as WebAssembly
//! (see `export`), or a [`MockHost`](crate::testing::MockHost) in native unit tests. It does not
//! know which one it has.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::PluginError;
use crate::http::{HttpError, Request, Response};

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Detail for whoever debugs the plugin.
    Debug,
    /// Normal progress.
    Info,
    /// Something odd that did not stop the step.
    Warn,
    /// Something failed.
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        })
    }
}

/// Where a [`Context`]'s requests go.
pub(crate) trait Backend: Send + Sync {
    fn log(&self, level: Level, message: &str);
    fn http(&self, request: Request) -> Result<Response, HttpError>;
    fn secret(&self, name: &str) -> Option<String>;
    fn now(&self) -> SystemTime;
}

/// The step attempt a plugin is running, and the door to everything outside it.
#[derive(Clone)]
pub struct Context {
    /// Stable across retries of the same step; see [`Context::idempotency_key`].
    idempotency_key: String,
    /// The attempt's wall-clock budget.
    timeout: Duration,
    /// The real host or a test double.
    backend: Arc<dyn Backend>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("idempotency_key", &self.idempotency_key)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub(crate) fn new(
        idempotency_key: String,
        timeout: Duration,
        backend: Arc<dyn Backend>,
    ) -> Self {
        Self {
            idempotency_key,
            timeout,
            backend,
        }
    }

    /// A key that is the same for every attempt of this step. Send it upstream (for example as
    /// an `Idempotency-Key` header) so a retried attempt does not repeat a side effect.
    pub fn idempotency_key(&self) -> &str {
        &self.idempotency_key
    }

    /// How long this attempt may run in total before the host stops it.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The current time by the host's clock (the only clock a plugin has): for signatures,
    /// timestamps and time windows.
    pub fn now(&self) -> SystemTime {
        self.backend.now()
    }

    /// Appends a line to the step's log.
    pub fn log(&self, level: Level, message: impl AsRef<str>) {
        self.backend.log(level, message.as_ref());
    }

    /// Appends a debug line to the step's log.
    pub fn debug(&self, message: impl AsRef<str>) {
        self.log(Level::Debug, message);
    }

    /// Appends an info line to the step's log.
    pub fn info(&self, message: impl AsRef<str>) {
        self.log(Level::Info, message);
    }

    /// Appends a warning to the step's log.
    pub fn warn(&self, message: impl AsRef<str>) {
        self.log(Level::Warn, message);
    }

    /// Appends an error line to the step's log.
    pub fn error(&self, message: impl AsRef<str>) {
        self.log(Level::Error, message);
    }

    /// Sends an HTTP request through the host. Only hosts the operator granted this plugin are
    /// reachable; any other host fails the step attempt (it is not returned as an error).
    pub fn http(&self, request: Request) -> Result<Response, HttpError> {
        self.backend.http(request)
    }

    /// A secret the operator granted this plugin, or `None` if it is granted but not set.
    /// Asking for a secret that is not granted fails the step attempt.
    pub fn secret(&self, name: &str) -> Option<String> {
        self.backend.secret(name)
    }

    /// Like [`Context::secret`], but a missing secret is a permanent error naming it.
    pub fn require_secret(&self, name: &str) -> Result<String, PluginError> {
        self.secret(name).ok_or_else(|| {
            PluginError::permanent(format!(
                "secret `{name}` is not set; set it for this run or grant it to the plugin"
            ))
        })
    }
}
