//! Local stand-ins for the notification endpoints the example workflows call, served on
//! 127.0.0.1 (port 0) so the examples run end to end without the internet:
//!
//! - Slack-compatible incoming webhooks (`secrets.notify_<channel>`): `POST /hooks/{channel}`;
//! - the PagerDuty Events API v2 (`secrets.notify_pagerduty_url`): `POST /v2/enqueue`, which checks
//!   the routing key and the event's required fields.
//!
//! Requests they cannot serve get the status the real service would give (400), so a
//! workflow that calls them wrongly fails as it would in production. Cloud APIs are not
//! emulated here: the AWS plugins are tested against moto (`moto.rs`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

/// The routing key the PagerDuty stand-in accepts (32 characters, like a real one).
pub(crate) const ROUTING_KEY: &str = "R0UT1NGKEY0123456789ABCDEFGHIJKL";

/// Everything the receivers were sent.
#[derive(Debug, Default)]
pub(crate) struct Received {
    /// Messages posted to Slack-compatible webhooks: (channel path, text).
    pub(crate) messages: Vec<(String, String)>,
    /// PagerDuty events accepted.
    pub(crate) pages: Vec<Value>,
}

/// Running receivers.
#[derive(Debug, Clone)]
pub(crate) struct Receivers {
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    /// What they were sent, for tests to inspect.
    state: Arc<Mutex<Received>>,
}

impl Receivers {
    /// Starts the receivers on a free port of 127.0.0.1.
    pub(crate) async fn start() -> Self {
        let state = Arc::new(Mutex::new(Received::default()));
        let app = Router::new()
            .route("/hooks/{channel}", post(webhook))
            .route("/v2/enqueue", post(pagerduty))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base: format!("http://{addr}"),
            state,
        }
    }

    /// What they were sent.
    pub(crate) fn state(&self) -> MutexGuard<'_, Received> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `host:port`, for a grant.
    pub(crate) fn authority(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// The secrets that point the example workflows' notifications here.
    pub(crate) fn secrets(&self) -> BTreeMap<String, String> {
        let mut s = BTreeMap::from([
            ("notify_manager".to_string(), ROUTING_KEY.to_string()),
            (
                "notify_pagerduty_url".to_string(),
                format!("{}/v2/enqueue", self.base),
            ),
        ]);
        for channel in ["ops", "oncall", "l1", "l2"] {
            s.insert(
                format!("notify_{channel}"),
                format!("{}/hooks/{channel}", self.base),
            );
        }
        s
    }
}

type Shared = State<Arc<Mutex<Received>>>;

fn lock(state: &Shared) -> MutexGuard<'_, Received> {
    state.0.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A Slack-compatible incoming webhook: `{text}` → 200 `ok`, else 400 `invalid_payload`.
async fn webhook(state: Shared, Path(channel): Path<String>, Json(body): Json<Value>) -> Response {
    match body.get("text").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => {
            lock(&state).messages.push((channel, t.to_string()));
            (StatusCode::OK, "ok").into_response()
        }
        _ => (StatusCode::BAD_REQUEST, "invalid_payload").into_response(),
    }
}

/// PagerDuty Events API v2: 202 for a well-formed event with the right routing key, else 400.
async fn pagerduty(state: Shared, Json(body): Json<Value>) -> Response {
    let mut errors = Vec::new();
    if body.get("routing_key").and_then(Value::as_str) != Some(ROUTING_KEY) {
        errors.push("'routing_key' is invalid");
    }
    let action = body.get("event_action").and_then(Value::as_str);
    if !matches!(action, Some("trigger" | "acknowledge" | "resolve")) {
        errors.push("'event_action' is invalid");
    }
    if action == Some("trigger") {
        let payload = body.get("payload");
        for (key, message) in [
            ("summary", "'payload.summary' is missing"),
            ("source", "'payload.source' is missing"),
            ("severity", "'payload.severity' is missing"),
        ] {
            if payload
                .and_then(|p| p.get(key))
                .and_then(Value::as_str)
                .is_none()
            {
                errors.push(message);
            }
        }
    }
    if !errors.is_empty() {
        let answer = json!({ "status": "invalid event", "message": "Event object is invalid", "errors": errors });
        return (StatusCode::BAD_REQUEST, Json(answer)).into_response();
    }
    let dedup_key = body
        .get("dedup_key")
        .and_then(Value::as_str)
        .unwrap_or("generated")
        .to_string();
    lock(&state).pages.push(body);
    let answer =
        json!({ "status": "success", "message": "Event processed", "dedup_key": dedup_key });
    (StatusCode::ACCEPTED, Json(answer)).into_response()
}
