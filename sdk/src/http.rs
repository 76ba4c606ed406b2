//! HTTP requests and responses as a plugin sees them: builders and accessors.
//!
//! Plain data. The request is performed by the host (see `Context::http`); this module knows
//! neither the ABI nor the test doubles.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::PluginError;

/// One outbound HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ... (upper case by convention; the host sends it as given).
    pub method: String,
    /// Absolute `http://` or `https://` URL; its host must be granted to the plugin.
    pub url: String,
    /// Header names and values, in order; repeated names are sent repeatedly.
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
    /// Per-request timeout; the host clamps it to its maximum and to the step's remaining time.
    pub timeout: Option<Duration>,
}

impl Request {
    /// A request with the given method and URL, no headers and no body.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout: None,
        }
    }

    /// `GET url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// `POST url`.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets a raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sets a JSON body and `Content-Type: application/json`.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, PluginError> {
        let body = serde_json::to_vec(value)?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Sets the per-request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body parsed as JSON.
    pub fn json_body<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        Ok(serde_json::from_slice(
            self.body.as_deref().unwrap_or(b"null"),
        )?)
    }
}

/// A response the host received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body, at most the host's response size cap.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a status and no headers or body (handy in tests).
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A JSON response (handy in tests).
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Result<Self, PluginError> {
        Ok(Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(value)?,
        })
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `Ok(self)` for a 2xx; otherwise the usual retry classification: 5xx, 429 (too many
    /// requests) and 408 (request timeout) are retryable, every other status is permanent.
    pub fn error_for_status(self) -> Result<Self, PluginError> {
        if self.is_success() {
            return Ok(self);
        }
        Err(self.status_error())
    }

    /// The error [`Response::error_for_status`] would return for this status, with the start
    /// of the body for context.
    pub fn status_error(&self) -> PluginError {
        let mut body = self.text();
        if body.len() > 200 {
            let mut cut = 200;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            body.truncate(cut);
            body.push_str("...");
        }
        let message = format!("upstream answered {}: {}", self.status, body.trim());
        if self.status >= 500 || self.status == 429 || self.status == 408 {
            PluginError::Retryable(message)
        } else {
            PluginError::Permanent(message)
        }
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as text (invalid UTF-8 is replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json_body<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Why a request produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The URL could not be parsed or its scheme is not http or https.
    InvalidRequest(String),
    /// The request did not complete in time.
    Timeout(String),
    /// The response body exceeded the host's cap.
    TooLarge(String),
    /// Connection refused, DNS or TLS failure.
    Transport(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidRequest(m) => write!(f, "invalid http request: {m}"),
            Self::Timeout(m) => write!(f, "http request timed out: {m}"),
            Self::TooLarge(m) => write!(f, "http response too large: {m}"),
            Self::Transport(m) => write!(f, "http transport error: {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for PluginError {
    /// Timeouts and transport failures may pass; a bad request or an oversized answer will not.
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Timeout(_) | HttpError::Transport(_) => Self::Retryable(e.to_string()),
            HttpError::InvalidRequest(_) | HttpError::TooLarge(_) => Self::Permanent(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_request_sets_body_and_content_type() -> Result<(), PluginError> {
        let req = Request::post("https://example.invalid/x")
            .header("X-Trace", "1")
            .json(&serde_json::json!({"a": 1}))?;
        assert_eq!(req.method, "POST");
        assert_eq!(req.header_value("content-type"), Some("application/json"));
        assert_eq!(req.header_value("x-trace"), Some("1"));
        let body: serde_json::Value = req.json_body()?;
        assert_eq!(body, serde_json::json!({"a": 1}));
        Ok(())
    }

    #[test]
    fn response_helpers() -> Result<(), PluginError> {
        let resp = Response::json(201, &serde_json::json!({"id": "i-1"}))?;
        assert!(resp.is_success());
        assert_eq!(resp.header("Content-Type"), Some("application/json"));
        let v: serde_json::Value = resp.json_body()?;
        assert_eq!(v["id"], "i-1");
        assert!(!Response::new(503).is_success());
        Ok(())
    }

    #[test]
    fn status_classification() {
        assert!(Response::new(204).error_for_status().is_ok());
        for (status, retryable) in [(500, true), (503, true), (429, true), (408, true)] {
            let err = Response::new(status).error_for_status().err();
            assert_eq!(err.map(|e| e.is_retryable()), Some(retryable), "{status}");
        }
        for status in [301, 400, 401, 404, 422] {
            let err = Response::new(status).error_for_status().err();
            assert_eq!(err.map(|e| e.is_retryable()), Some(false), "{status}");
        }
        let long = Response {
            status: 400,
            headers: vec![],
            body: "é".repeat(300).into_bytes(),
        };
        assert!(long.status_error().message().ends_with("..."));
    }

    #[test]
    fn http_errors_map_to_retryability() {
        assert!(PluginError::from(HttpError::Timeout("t".into())).is_retryable());
        assert!(PluginError::from(HttpError::Transport("t".into())).is_retryable());
        assert!(!PluginError::from(HttpError::TooLarge("t".into())).is_retryable());
        assert!(!PluginError::from(HttpError::InvalidRequest("t".into())).is_retryable());
    }
}
