//! Test doubles for native unit tests of a plugin: a [`MockHost`] that records logs and HTTP
//! requests, answers HTTP from a closure and serves secrets from a map.
//!
//! Runs anywhere (no WebAssembly needed); knows nothing of the real host.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::context::{Backend, Context, Level};
use crate::http::{HttpError, Request, Response};

type Responder = dyn Fn(&Request) -> Result<Response, HttpError> + Send + Sync;

/// A fake host for unit tests.
///
/// ```
/// use csmp_sdk::testing::MockHost;
/// use csmp_sdk::{Level, Request, Response};
///
/// let host = MockHost::new()
///     .with_secret("token", "s3cr3t")
///     .with_http(|req| Ok(Response::new(if req.url.ends_with("/ok") { 200 } else { 404 })));
/// let ctx = host.context();
/// ctx.info("hello");
/// assert_eq!(ctx.secret("token").as_deref(), Some("s3cr3t"));
/// assert_eq!(ctx.http(Request::get("https://example.invalid/ok")).unwrap().status, 200);
/// assert_eq!(host.logs(), vec![(Level::Info, "hello".to_string())]);
/// assert_eq!(host.requests().len(), 1);
/// ```
#[derive(Clone)]
pub struct MockHost {
    /// Served by `Context::secret`.
    secrets: BTreeMap<String, String>,
    /// Answers `Context::http`; without one every request fails with a transport error.
    responder: Option<Arc<Responder>>,
    /// Shared with every context this host hands out, so the test can read them afterwards.
    logs: Arc<Mutex<Vec<(Level, String)>>>,
    /// Shared like `logs`.
    requests: Arc<Mutex<Vec<Request>>>,
    /// Passed to contexts as their idempotency key.
    idempotency_key: String,
    /// Passed to contexts as their time budget.
    timeout: Duration,
    /// What `Context::now` answers; the real clock when unset.
    now: Option<SystemTime>,
}

impl fmt::Debug for MockHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockHost")
            .field("idempotency_key", &self.idempotency_key)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Default for MockHost {
    fn default() -> Self {
        Self::new()
    }
}

impl MockHost {
    /// A host with no secrets, whose HTTP answers every request with a transport error.
    pub fn new() -> Self {
        Self {
            secrets: BTreeMap::new(),
            responder: None,
            logs: Arc::default(),
            requests: Arc::default(),
            idempotency_key: "test-idempotency-key".into(),
            timeout: Duration::from_secs(30),
            now: None,
        }
    }

    /// Serves `value` for secret `name`.
    pub fn with_secret(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.secrets.insert(name.into(), value.into());
        self
    }

    /// Answers every HTTP request with `responder`.
    pub fn with_http(
        mut self,
        responder: impl Fn(&Request) -> Result<Response, HttpError> + Send + Sync + 'static,
    ) -> Self {
        self.responder = Some(Arc::new(responder));
        self
    }

    /// Sets the idempotency key contexts report.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = key.into();
        self
    }

    /// Sets the time budget contexts report.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Stops the clock contexts read at `now` (for signatures and time windows in tests).
    pub fn with_now(mut self, now: SystemTime) -> Self {
        self.now = Some(now);
        self
    }

    /// A context backed by this host.
    pub fn context(&self) -> Context {
        Context::new(
            self.idempotency_key.clone(),
            self.timeout,
            Arc::new(Recorder {
                secrets: self.secrets.clone(),
                responder: self.responder.clone(),
                logs: Arc::clone(&self.logs),
                requests: Arc::clone(&self.requests),
                now: self.now,
            }),
        )
    }

    /// Every line logged so far, in order.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every HTTP request sent so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

struct Recorder {
    secrets: BTreeMap<String, String>,
    responder: Option<Arc<Responder>>,
    logs: Arc<Mutex<Vec<(Level, String)>>>,
    requests: Arc<Mutex<Vec<Request>>>,
    now: Option<SystemTime>,
}

impl Backend for Recorder {
    fn log(&self, level: Level, message: &str) {
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((level, message.to_owned()));
    }

    fn http(&self, request: Request) -> Result<Response, HttpError> {
        let answer = match &self.responder {
            Some(responder) => responder(&request),
            None => Err(HttpError::Transport(format!(
                "MockHost has no http responder; add one with with_http to answer {} {}",
                request.method, request.url
            ))),
        };
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
        answer
    }

    fn secret(&self, name: &str) -> Option<String> {
        self.secrets.get(name).cloned()
    }

    fn now(&self) -> SystemTime {
        self.now.unwrap_or_else(SystemTime::now)
    }
}
