//! Alerts in: every source's notification mapped by its adapter (`alerts::intake`), then
//! stored and acted on by the dispatcher (`alerts::dispatch`).

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde::Serialize;
use serde_json::Value as Json_;
use utoipa::ToSchema;

use super::audit::Audit;
use super::auth::{Principal, Role, random_id};
use super::problem::{Problem, RawBody, Violation, optional_json};
use super::views::{EventList, EventView};
use super::{AppState, Page, PathParams, Query};
use crate::alerts::intake;
use crate::diag::plural;
use crate::store::{Cursor, EventRow};

/// The event sources accepted at `/v1/events/{source}`, with how messages name them.
const SOURCES: &[(&str, &str)] = &[
    ("alertmanager", "an Alertmanager"),
    ("grafana", "a Grafana"),
    ("pagerduty", "a PagerDuty Events API v2"),
    ("webhook", "a webhook"),
    ("cloudwatch", "an SNS"),
];

/// The stored notification, and what each of its alerts did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct Received {
    /// Its id.
    pub id: String,
    /// The source.
    pub source: String,
    /// Alerts it carried.
    pub alerts: u32,
    /// What each alert did: deduplicated, silenced, grouped, signalled to a run.
    pub decisions: Vec<crate::alerts::dispatch::Decision>,
}

fn not_a_notification(named: &str, errors: Vec<(String, String)>) -> Problem {
    Problem::invalid(
        format!(
            "this is not {named} notification ({} problem{})",
            errors.len(),
            plural(errors.len())
        ),
        errors
            .into_iter()
            .map(|(pointer, message)| Violation { pointer, message })
            .collect(),
    )
}

/// Stores a notification's alerts through the dispatcher (one transaction with the call's
/// audit entry) and answers what each did.
pub(super) async fn take(
    state: &AppState,
    who: &Principal,
    audit: &Audit,
    source: &str,
    payload: Json_,
    mut alerts: Vec<crate::alerts::Alert>,
    once: Option<String>,
) -> Result<Option<Received>, Problem> {
    for a in &mut alerts {
        a.tenant.clone_from(&who.tenant);
    }
    // The notification's own status (Grafana's legacy format says `state`).
    let status = payload
        .get("status")
        .or_else(|| payload.get("state"))
        .and_then(Json_::as_str)
        .map(String::from);
    let count = u32::try_from(alerts.len()).unwrap_or(u32::MAX);
    let row = EventRow {
        id: random_id("evt"),
        source: source.to_string(),
        received_at: state.now_ms(),
        received_by: who.token_id.clone(),
        status,
        alerts: count,
        payload,
    };
    let id = row.id.clone();
    let decisions = state
        .alerts
        .take(crate::alerts::dispatch::Intake {
            event: row,
            alerts,
            audit: Some(audit.entry(StatusCode::ACCEPTED)),
            once,
        })
        .await
        .map_err(|e| match e {
            crate::alerts::dispatch::DispatchError::Store(e) => Problem::from(e),
            crate::alerts::dispatch::DispatchError::Stopped => {
                Problem::unavailable("the service is stopping; send the notification again")
            }
        })?;
    Ok(decisions.map(|decisions| Received {
        id,
        source: source.to_string(),
        alerts: count,
        decisions,
    }))
}

/// Receive alerts: an Alertmanager (v4) or Grafana webhook, a PagerDuty Events API v2 event,
/// a generic JSON webhook read through the mapping in its query string, or CloudWatch alarms
/// through an SNS subscription (`cloudwatch`). Each alert is stored with what it did.
#[utoipa::path(post, path = "/v1/events/{source}", tag = "events",
    params(("source" = String, Path, description = "`alertmanager`, `grafana`, `pagerduty`, `webhook` or `cloudwatch`"), intake::WebhookMapping),
    request_body(content = Object, description = "The webhook payload, as the source sends it", content_type = "application/json"),
    responses(
        (status = 202, description = "Stored", body = Received),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only integration and admin tokens send events", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown source", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a notification of that format", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn receive(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(source): PathParams<String>,
    Query(mapping): Query<intake::WebhookMapping>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    who.require(&[Role::Integration, Role::Admin])?;
    let Some(&(_, named)) = SOURCES.iter().find(|(name, _)| *name == source) else {
        return Err(Problem::not_found("event source", &source));
    };
    if source != "webhook" && mapping != intake::WebhookMapping::default() {
        return Err(Problem::bad_request(
            "unknown-parameter",
            "query parameters map a generic webhook's fields; only `/v1/events/webhook` takes them",
        ));
    }
    if source == "cloudwatch" {
        // SNS posts JSON as `text/plain; charset=UTF-8`: the body is read as JSON whatever
        // its content type says.
        let payload: Json_ = serde_json::from_slice(&body).map_err(|e| {
            Problem::bad_request(
                "malformed-json",
                format!("the body is not an SNS message (JSON): {e}"),
            )
        })?;
        return super::sns::receive(&state, &who, &audit, &headers, payload).await;
    }
    let payload = optional_json::<Json_>(&headers, &body)?.ok_or_else(|| {
        Problem::invalid_at("", "the body is empty; send the notification as JSON")
    })?;
    let alerts = match source.as_str() {
        "pagerduty" => intake::pagerduty(&payload, state.now_ms()).map(|(a, _)| vec![a]),
        "webhook" => intake::webhook(&payload, &mapping),
        other => intake::alertmanager(other, &payload),
    }
    .map_err(|errors| not_a_notification(named, errors))?;
    let mut payload = payload;
    if let Json_::Object(m) = &mut payload {
        // A PagerDuty routing key may be a token: never stored.
        m.remove("routing_key");
    }
    let received = take(&state, &who, &audit, &source, payload, alerts, None)
        .await?
        .ok_or_else(|| Problem::internal("a notification without a key was taken as a repeat"))?;
    Ok((StatusCode::ACCEPTED, Json(received)).into_response())
}

/// Received notifications, newest first (operators and admins).
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(Page),
    responses(
        (status = 200, description = "A page of events", body = EventList),
        (status = 400, description = "An unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators read events", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(page): Query<Page>,
) -> Result<Json<EventList>, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    let (limit, cursor) = page.read()?;
    let rows = state.store.events_page(cursor.as_ref(), limit).await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last())
        .flatten()
        .map(|e| {
            Cursor {
                created_at: e.received_at,
                id: e.id.clone(),
            }
            .encode()
        });
    Ok(Json(EventList {
        items: rows.iter().map(EventView::of).collect(),
        next_cursor,
    }))
}

/// PagerDuty's answer to an event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct Enqueued {
    /// `success`.
    pub status: String,
    /// `Event processed`.
    pub message: String,
    /// The event's dedup key (made when a trigger gave none).
    pub dedup_key: String,
}

/// For `/v2/enqueue`: a call with no `Authorization` header authenticates with its body's
/// `routing_key` as the token, as PagerDuty's Events API v2 does.
pub(super) async fn routing_key_as_bearer(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if req
        .headers()
        .contains_key(axum::http::header::AUTHORIZATION)
    {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, super::BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                format!("the body is over {} bytes", super::BODY_LIMIT),
            )
            .into_response();
        }
    };
    let key = serde_json::from_slice::<Json_>(&bytes).ok().and_then(|v| {
        v.get("routing_key")
            .and_then(Json_::as_str)
            .map(str::to_string)
    });
    if let Some(key) = key
        && let Ok(v) = axum::http::HeaderValue::from_str(&format!("Bearer {key}"))
    {
        parts.headers.insert(axum::http::header::AUTHORIZATION, v);
    }
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

/// Receive a PagerDuty Events API v2 event at PagerDuty's own path: any tool that can page
/// PagerDuty pages csmp. The `routing_key` is an integration token (or send it as a bearer
/// token). `trigger` fires an alert, `resolve` resolves it, `acknowledge` is kept and shown.
#[utoipa::path(post, path = "/v2/enqueue", tag = "events",
    request_body(content = Object, description = "A PagerDuty Events API v2 event", content_type = "application/json"),
    responses(
        (status = 202, description = "Processed", body = Enqueued),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "The routing key is not a valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only integration and admin tokens send events", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a PagerDuty event", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn enqueue(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    who.require(&[Role::Integration, Role::Admin])?;
    let mut payload = optional_json::<Json_>(&headers, &body)?
        .ok_or_else(|| Problem::invalid_at("", "the body is empty; send the event as JSON"))?;
    let (alert, _) = intake::pagerduty(&payload, state.now_ms())
        .map_err(|errors| not_a_notification("a PagerDuty Events API v2", errors))?;
    let dedup_key = alert.fingerprint.clone();
    if let Json_::Object(m) = &mut payload {
        // The routing key is a token: never stored.
        m.remove("routing_key");
    }
    take(
        &state,
        &who,
        &audit,
        "pagerduty",
        payload,
        vec![alert],
        None,
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Enqueued {
            status: "success".into(),
            message: "Event processed".into(),
            dedup_key,
        }),
    )
        .into_response())
}

/// Takes alerts the service raised itself (source `check` or `slo`) like a notification it
/// sent: stored, deduplicated, silenced, matched against the rules. The decisions, or why the
/// dispatcher did not take them.
pub(super) async fn take_own(
    state: &AppState,
    source: &str,
    alerts: Vec<crate::alerts::Alert>,
) -> Result<Option<Vec<crate::alerts::dispatch::Decision>>, crate::alerts::dispatch::DispatchError>
{
    let statuses: std::collections::BTreeSet<&str> =
        alerts.iter().map(|a| a.status.as_str()).collect();
    let event = EventRow {
        id: random_id("evt"),
        source: source.to_string(),
        received_at: state.now_ms(),
        received_by: "csmp".into(),
        status: (statuses.len() == 1).then(|| statuses.iter().map(|s| (*s).to_string()).collect()),
        alerts: u32::try_from(alerts.len()).unwrap_or(u32::MAX),
        payload: serde_json::json!({ "alerts": alerts.iter().map(|a| a.raw.clone()).collect::<Vec<_>>() }),
    };
    state
        .alerts
        .take(crate::alerts::dispatch::Intake {
            event,
            alerts,
            audit: None,
            once: None,
        })
        .await
}
