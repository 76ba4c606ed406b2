//! The web console at `/`: server-rendered pages for operators (overview, runs with their DAG,
//! approvals, incidents, alerts, workflows, the catalog) and a portal for clients (their
//! catalog with order forms, requests, incidents, status and usage).
//!
//! The console owns no rules of its own: every page reads, and every form acts, through the
//! same `/v1` routes a client of the API calls, guard and audit included, as the signed-in
//! user (a [`Vouched`] call). So roles, tenancy, validation and "not found" are the API's,
//! word for word. It knows sessions (`session.rs`), HTML (maud) and one small script for live
//! updates; it knows nothing of SQL or the executor.

mod actions;
mod assets;
mod dag;
mod form;
mod layout;
mod operator;
mod portal;
mod runs;
mod session;

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tower::ServiceExt as _;

use super::AppState;
use super::auth::{Principal, Role};

pub(super) use session::Signed;

/// Marks an in-process call of a `/v1` route made by the console for its signed-in user: the
/// guard authenticates the session's token hash instead of an `Authorization` header. Only
/// this module makes one; a request from the network cannot carry it.
#[derive(Debug, Clone)]
pub(crate) struct Vouched {
    /// sha256 of the token the session signed in with.
    pub token_hash: String,
}

/// What the console's handlers share.
#[derive(Debug, Clone)]
pub(super) struct Console {
    /// The service's state (sessions, the catalog's schemas, plans for the DAG).
    pub state: AppState,
    /// The `/v1` routes, guard included, called in process.
    pub api: Router,
}

/// Largest API answer the console reads (a run's page of units is far smaller).
const ANSWER_LIMIT: usize = 16 * 1024 * 1024;

/// An answer of the API.
#[derive(Debug)]
pub(super) struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its JSON (`Null` when it had none).
    pub body: Value,
}

impl Answer {
    /// Whether it is a 2xx.
    pub(super) fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The problem's detail, for a failed call.
    pub(super) fn detail(&self) -> String {
        self.body.get("detail").and_then(Value::as_str).map_or_else(
            || format!("the call failed with {}", self.status),
            str::to_string,
        )
    }

    /// The problem's located violations: (JSON pointer, message).
    pub(super) fn violations(&self) -> Vec<(String, String)> {
        self.body
            .get("errors")
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        (
                            e.get("pointer")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                            e.get("message")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Console {
    /// Calls a `/v1` route as `who`, with a JSON body when one is given.
    pub(super) async fn call(
        &self,
        who: &Signed,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> Answer {
        self.call_with(who, method, uri, body, &[]).await
    }

    /// [`Console::call`] with request headers (`Idempotency-Key`).
    pub(super) async fn call_with(
        &self,
        who: &Signed,
        method: Method,
        uri: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let response = self.raw(who, method, uri, body, headers).await;
        let status = response.status();
        let body = match axum::body::to_bytes(response.into_body(), ANSWER_LIMIT).await {
            // An answer that is not JSON (a refused body's plain-text reason) keeps its text as
            // the detail shown.
            Ok(bytes) if !bytes.is_empty() => serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| serde_json::json!({"detail": String::from_utf8_lossy(&bytes)})),
            Ok(_) => Value::Null,
            Err(e) => {
                tracing::warn!("the console could not read the answer of {uri}: {e}");
                return Answer {
                    status: StatusCode::BAD_GATEWAY,
                    body: serde_json::json!({"detail": format!("the answer of {uri} could not be read: {e}")}),
                };
            }
        };
        Answer { status, body }
    }

    /// Reads one `what` (`run`, `incident`, …) named `id` at `uri`; `Err` is the page to show
    /// instead: the one "not found" page for a 404, else the API's refusal.
    pub(super) async fn one(
        &self,
        who: &Signed,
        uri: &str,
        what: &str,
        id: &str,
    ) -> Result<Value, Response> {
        let a = self.call(who, Method::GET, uri, None).await;
        if a.status == StatusCode::NOT_FOUND {
            return Err(layout::not_found(who, what, id));
        }
        if !a.ok() {
            return Err(layout::failed(
                who,
                &format!("The {what} cannot be shown"),
                &a,
            ));
        }
        Ok(a.body)
    }

    /// Calls a `/v1` route as `who` and hands back its response as it is (event streams).
    pub(super) async fn raw(
        &self,
        who: &Signed,
        method: Method,
        uri: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let mut req = match req.body(body) {
            Ok(r) => r,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("a console call could not be made: {e}"),
                )
                    .into_response();
            }
        };
        req.extensions_mut().insert(Vouched {
            token_hash: who.token_hash.clone(),
        });
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(who.peer));
        match self.api.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }
}

/// The console's routes.
pub(super) fn routes<S: Clone + Send + Sync + 'static>(state: AppState, api: Router) -> Router<S> {
    let console = Console { state, api };
    Router::new()
        .route("/", get(operator::home))
        .route("/login", get(session::form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/assets/console.css", get(assets::css))
        .route("/assets/console.js", get(assets::js))
        .route("/runs", get(runs::runs))
        .route("/runs/{id}", get(runs::run))
        .route("/runs/{id}/live", get(runs::run_live))
        .route("/runs/{id}/events", get(runs::run_events))
        .route("/runs/{id}/do/{action}", post(actions::run))
        .route("/approvals", get(operator::approvals))
        .route("/approvals/decide", post(actions::decide))
        .route("/incidents", get(operator::incidents))
        .route("/incidents/{id}", get(operator::incident))
        .route("/incidents/{id}/review", get(operator::review))
        .route("/incidents/{id}/do/{action}", post(actions::incident))
        .route("/alerts", get(operator::alerts))
        .route("/silences", post(actions::silence))
        .route("/silences/{id}/delete", post(actions::unsilence))
        .route("/workflows", get(operator::workflows))
        .route("/workflows/{name}", get(operator::workflow))
        .route("/catalog", get(operator::catalog))
        .route("/catalog/{id}", get(portal::order_form).post(portal::order))
        .route("/requests", get(portal::requests))
        .route("/requests/{id}", get(portal::request))
        .route("/usage", get(portal::usage))
        .route("/portal/status", get(portal::status))
        .layer(axum::middleware::from_fn(server_timing))
        .with_state(console)
}

/// Says how long the server took over a console answer (`Server-Timing: app;dur=MS`), so the
/// benchmark and a browser's developer tools see the server's own time apart from the wire's.
async fn server_timing(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let mut response = next.run(req).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("app;dur={ms:.3}")) {
        response.headers_mut().insert("server-timing", v);
    }
    response
}

/// The page for a path the console does not have (a browser asked for HTML).
pub(super) fn no_such_page(path: &str) -> Response {
    let body = maud::html! {
        h1 { "Not found" }
        p role="alert" { "There is no page " code { (path) } "." }
        p { a href="/" { "Go to the console" } " · the API is described at " a href="/openapi.json" { "/openapi.json" } }
    };
    layout::answer(StatusCode::NOT_FOUND, layout::bare("Not found", body))
}

/// Whether `who` works the whole service (operators and admins) rather than one tenant.
pub(super) fn operates(who: &Principal) -> bool {
    matches!(who.role, Role::Operator | Role::Admin)
}

/// What [`enc`] escapes: everything but RFC 3986's unreserved characters.
const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment or query value.
pub(super) fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, ESCAPED).to_string()
}

/// The peer address of a console call, for the audit log.
pub(super) type Peer = axum::extract::ConnectInfo<SocketAddr>;
