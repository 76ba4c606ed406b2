//! Request ids and the service log of each API call.
//!
//! Every call gets an id: the caller's `x-request-id` when it is a sane token, a fresh one
//! otherwise. The id is sent back in the `x-request-id` header, written on every log line of
//! the call (its span), and put into every problem document the call answers with, so a user
//! quoting an error gives the operator the exact lines to look for.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header carrying the id both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    /// The id of the call being answered on this task.
    static CURRENT: Arc<str>;
}

/// The id of the API call this task is answering, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(|id| id.to_string()).ok()
}

/// Whether a caller's id can be kept: 1–128 characters of `[A-Za-z0-9._:-]`, so it is safe
/// in a header, a log line and a JSON string alike.
fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A fresh id: 64 random bits in hex.
fn fresh() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness: ids must still differ between calls, and nothing depends on them
        // being unguessable.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos as u64).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Gives the call its id and its span, answers with the id, and logs how the call ended:
/// server errors at `error` (503 at `warn`: the service is busy or a dependency is down),
/// everything else at `debug`.
pub async fn middleware(req: Request, next: Next) -> Response {
    let id: Arc<str> = match req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()) {
        Some(given) if acceptable(given) => given.into(),
        _ => fresh().into(),
    };
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    let started = Instant::now();
    let mut response = CURRENT
        .scope(Arc::clone(&id), next.run(req).instrument(span.clone()))
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| match status {
        503 => tracing::warn!(status, ms, "answered 503"),
        500.. => tracing::error!(status, ms, "answered with a server error"),
        _ => tracing::debug!(status, ms, "answered"),
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_ids_are_kept_only_when_safe() {
        assert!(acceptable("7f3a-b.c_d:e"));
        assert!(!acceptable(""));
        assert!(!acceptable("has space"));
        assert!(!acceptable("new\nline"));
        assert!(!acceptable(&"x".repeat(129)));
        assert_eq!(fresh().len(), 16);
        assert_ne!(fresh(), fresh());
    }
}
