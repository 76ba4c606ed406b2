//! Errors as RFC 9457 `application/problem+json`, and the JSON body extractor that reports
//! every malformed body as one.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::runtime::EngineError;
use crate::store::StoreError;

fn urn<S: serde::Serializer>(slug: &&'static str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("urn:csmp:problem:{slug}"))
}

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// `Retry-After` of every 503: the service is busy or a dependency is down for now.
const RETRY_AFTER_SECS: &str = "1";

/// One thing wrong with a submitted value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Violation {
    /// JSON pointer of the offending value (`""` = the whole document).
    pub pointer: String,
    /// What is wrong with it.
    pub message: String,
}

/// A located problem in an uploaded definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Located {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Machine-readable code (`unknown-key`, `cycle`, …).
    pub code: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// Machine-readable kind, a URN: `urn:csmp:problem:<slug>`.
    #[serde(rename = "type", serialize_with = "urn")]
    #[schema(value_type = String, example = "urn:csmp:problem:not-found")]
    pub kind: &'static str,
    /// Short summary of the kind.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What happened in this case, and what to do next.
    pub detail: String,
    /// Every violation, for invalid inputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<Violation>>,
    /// Every located problem, for invalid definitions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<Located>>,
    /// The id of the call (also in the `x-request-id` header and on its log lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub request_id: Option<Box<str>>,
}

impl Problem {
    /// A problem of kind `slug` with `status`.
    pub fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Self {
        Self {
            kind: slug,
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            errors: None,
            problems: None,
            request_id: None,
        }
    }

    /// 404: what was asked for does not exist (or belongs to another tenant).
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{what} `{id}` does not exist"),
        )
    }

    /// 403: the caller's role may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 401: no valid token.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 409: the request does not fit the current state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// 400: the request is malformed.
    pub fn bad_request(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, slug, detail)
    }

    /// 422 listing every violation.
    pub fn invalid(detail: impl Into<String>, errors: Vec<Violation>) -> Self {
        Self {
            errors: Some(errors),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", detail)
        }
    }

    /// 422 with one violation at `pointer` (`""` is the whole body).
    pub fn invalid_at(pointer: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let detail = if pointer.is_empty() {
            message.clone()
        } else {
            format!("{pointer}: {message}")
        };
        Self::invalid(
            detail,
            vec![Violation {
                pointer: pointer.into(),
                message,
            }],
        )
    }

    /// 503: a dependency is down or the service is full; retrying later may work (every 503
    /// carries `Retry-After`).
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    /// 500: something the caller cannot fix; the cause is in the service log.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(mut self) -> Response {
        if self.request_id.is_none() {
            self.request_id = super::trace::current().map(String::into_boxed_str);
        }
        // A problem may quote what the caller sent or what the service knows; no secret
        // value the process knows leaves in one.
        let masker = crate::plugin::mask::service_log_masker();
        if !masker.is_empty() {
            masker.mask_in_place(&mut self.detail);
            for v in self.errors.iter_mut().flatten() {
                masker.mask_in_place(&mut v.message);
            }
            for l in self.problems.iter_mut().flatten() {
                masker.mask_in_place(&mut l.message);
                if let Some(h) = &mut l.help {
                    masker.mask_in_place(h);
                }
            }
        }
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            // Basic too: an SNS subscription sends the credentials of its endpoint URL only
            // when challenged for them.
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"csmp\", Basic realm=\"csmp\""),
            );
        }
        response
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Problem::conflict(m),
            StoreError::Unavailable(m) => {
                tracing::error!("the database is unavailable: {m}");
                Problem::unavailable(format!(
                    "the database is unavailable ({m}); nothing was changed, retry shortly"
                ))
            }
            StoreError::Rejected(m) => {
                tracing::error!("the database refuses a write: {m}");
                Problem::internal(
                    "the database refuses to store this change; nothing was changed, and the operator finds the cause in the service log under this call's request id",
                )
            }
            StoreError::Corrupt(m) => {
                tracing::error!("stored data is corrupt: {m}");
                Problem::internal(
                    "stored data could not be read; the operator finds the cause in the service log under this call's request id",
                )
            }
        }
    }
}

impl From<EngineError> for Problem {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::UnknownWorkflow(w) => Problem::invalid_at(
                "/catalog_id",
                format!("the workflow `{w}` behind this entry is not loaded"),
            ),
            EngineError::UnknownRun(id) => Problem::not_found("run", &id),
            EngineError::UnknownIncident(id) => Problem::not_found("incident", &id),
            EngineError::Conflict(m) => Problem::conflict(m),
            EngineError::InvalidInputs(list) => Problem::invalid(
                "the inputs do not match the workflow's schema",
                list.into_iter()
                    .map(|v| match v.split_once(": ") {
                        Some((p, m)) => Violation {
                            pointer: format!("/inputs{}", p.trim_end_matches('/')),
                            message: m.into(),
                        },
                        None => Violation {
                            pointer: "/inputs".into(),
                            message: v,
                        },
                    })
                    .collect(),
            ),
            EngineError::Store(s) => s.into(),
            EngineError::Stopped => Problem::unavailable("the executor is stopping"),
            e @ (EngineError::Unavailable(_) | EngineError::Busy(_)) => {
                Problem::unavailable(e.to_string())
            }
            e @ EngineError::Unanswered(_) => Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "not-applied-yet",
                e.to_string(),
            ),
        }
    }
}

/// A JSON body; every way it can be wrong answers as a problem: 413 too large, 415 not
/// `application/json`, 400 not JSON (with line and column), 422 the wrong shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        require_json(req.headers())?;
        let bytes = RawBody::from_request(req, state).await?.0;
        match axum::Json::<T>::from_bytes(&bytes) {
            // Every body is a JSON object; serde would also take a struct written as an array.
            Ok(_) if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') => {
                Err(Problem::invalid_at("", "the body must be a JSON object"))
            }
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

/// A raw body (YAML, wasm, optional JSON); too large answers 413 as a problem.
#[derive(Debug, Clone, Default)]
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => Ok(RawBody(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(too_large()),
            Err(e) => Err(Problem::bad_request("unreadable-body", e.body_text())),
        }
    }
}

/// Maps axum's JSON rejection to a problem.
pub fn json_rejection(rejection: &JsonRejection) -> Problem {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        JsonRejection::JsonSyntaxError(e) => {
            let text = match path_error(e) {
                Some(e) => e.inner().to_string(),
                None => source_text(e),
            };
            Problem::bad_request(
                "malformed-json",
                format!("the body is not valid JSON: {text}"),
            )
        }
        JsonRejection::JsonDataError(e) => match path_error(e) {
            Some(e) => wrong_shape(e),
            None => Problem::invalid_at(
                "",
                format!("the body has the wrong shape: {}", source_text(e)),
            ),
        },
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        other => Problem::bad_request("unreadable-body", other.body_text()),
    }
}

/// 415 unless the body is sent as JSON (`application/json` or `application/…+json`).
fn require_json(headers: &axum::http::HeaderMap) -> Result<(), Problem> {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        });
    if json_type {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the body as JSON with `Content-Type: application/json`",
        ))
    }
}

/// An optional JSON body: empty means `None`; otherwise it must be JSON of shape `T`.
pub fn optional_json<T: serde::de::DeserializeOwned>(
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<Option<T>, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    require_json(headers)?;
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        Problem::bad_request("malformed-json", format!("the body is not valid JSON: {e}"))
    })?;
    serde_path_to_error::deserialize(value)
        .map(Some)
        .map_err(|e| wrong_shape(&e))
}

/// [`optional_json`] for a body that must be a JSON object: serde would also take a struct
/// written as an array.
pub fn optional_object<T: serde::de::DeserializeOwned>(
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<Option<T>, Problem> {
    let Some(value) = optional_json::<serde_json::Value>(headers, body)? else {
        return Ok(None);
    };
    if !value.is_object() {
        return Err(Problem::invalid_at("", "the body must be a JSON object"));
    }
    serde_path_to_error::deserialize(value)
        .map(Some)
        .map_err(|e| wrong_shape(&e))
}

type PathError = serde_path_to_error::Error<serde_json::Error>;

/// The decoding error with its path, if `e` is or wraps one.
fn path_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a PathError> {
    let mut current = Some(e);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<PathError>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// 422 for a body that is JSON but not of the expected shape, located by a JSON pointer.
fn wrong_shape(e: &PathError) -> Problem {
    let pointer = json_pointer(e.path());
    let message = e.inner().to_string();
    if pointer.is_empty() {
        Problem::invalid_at("", format!("the body has the wrong shape: {message}"))
    } else {
        Problem::invalid_at(&pointer, message)
    }
}

/// RFC 6901 pointer of a decoding path; stops at the first segment serde could not name.
fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                pointer.push('/');
                pointer.push_str(&index.to_string());
            }
            Segment::Map { key } => {
                pointer.push('/');
                pointer.push_str(&crate::diag::pointer_token(key));
            }
            Segment::Enum { .. } => {}
            Segment::Unknown => break,
        }
    }
    pointer
}

/// 413.
pub fn too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
        "the body is larger than this endpoint accepts",
    )
}

pub(super) fn source_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Shape {
        name: String,
        items: Vec<u32>,
        by_key: BTreeMap<String, u32>,
    }

    fn violation(body: &str) -> (String, String) {
        let e = optional_json::<Shape>(&json_headers(), body.as_bytes())
            .expect_err("the body is of the wrong shape");
        let v = e
            .errors
            .as_ref()
            .and_then(|v| v.first())
            .expect("one violation");
        (v.pointer.clone(), e.detail.clone())
    }

    fn json_headers() -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "application/json".parse().expect("a header value"),
        );
        h
    }

    #[test]
    fn wrong_shapes_are_located_by_json_pointer() {
        let (pointer, detail) = violation(r#"{"name": 5, "items": [], "by_key": {}}"#);
        assert_eq!(pointer, "/name");
        assert!(
            detail.starts_with("/name: invalid type: integer `5`"),
            "{detail}"
        );

        let (pointer, _) = violation(r#"{"name": "a", "items": [1, "two"], "by_key": {}}"#);
        assert_eq!(pointer, "/items/1");

        let (pointer, _) = violation(r#"{"name": "a", "items": [], "by_key": {"a/b~c": -1}}"#);
        assert_eq!(pointer, "/by_key/a~1b~0c");

        let (pointer, detail) = violation("42");
        assert_eq!(pointer, "");
        assert!(
            detail.starts_with("the body has the wrong shape: invalid type"),
            "{detail}"
        );

        let (pointer, detail) = violation(r#"{"items": [], "by_key": {}}"#);
        assert_eq!(pointer, "");
        assert!(detail.contains("missing field `name`"), "{detail}");
    }

    #[test]
    fn a_struct_written_as_an_array_is_refused_where_an_object_is_due() {
        let body = br#"["a", [], {}]"#;
        assert!(
            optional_json::<Shape>(&json_headers(), body).is_ok(),
            "serde alone takes it"
        );
        let e = optional_object::<Shape>(&json_headers(), body).expect_err("refused");
        assert_eq!(e.status, 422);
        assert_eq!(e.detail, "the body must be a JSON object");
    }
}
