//! Alerts in: Prometheus Alertmanager and Grafana webhook notifications, checked and stored.
//! (Rules that turn them into remediation runs act on what is stored here.)

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
use crate::diag::plural;
use crate::store::{Cursor, EventRow};

/// Sources whose webhook formats are understood.
/// The event sources accepted at `/v1/events/{source}`, with how messages name them.
const SOURCES: &[(&str, &str)] = &[
    ("alertmanager", "an Alertmanager"),
    ("grafana", "a Grafana"),
];

/// The stored notification.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct Received {
    /// Its id.
    pub id: String,
    /// The source.
    pub source: String,
    /// Alerts it carried.
    pub alerts: u32,
}

/// Checks the shape both formats share: `status` and a list of `alerts`, each with `labels`.
/// Grafana's legacy format (`state`, `ruleName`) is accepted as one alert.
fn check(source: &str, payload: &Json_) -> Result<(Option<String>, u32), Vec<Violation>> {
    let mut errors = Vec::new();
    let at = |p: &str, m: &str| Violation {
        pointer: p.into(),
        message: m.into(),
    };
    let Some(obj) = payload.as_object() else {
        return Err(vec![at("", "the notification must be a JSON object")]);
    };
    if source == "grafana" && obj.get("alerts").is_none() && obj.contains_key("state") {
        // Legacy Grafana alerting: one rule, its state.
        if !obj.get("state").is_some_and(Json_::is_string) {
            errors.push(at("/state", "must be a string"));
        }
        if !obj
            .get("ruleName")
            .or_else(|| obj.get("title"))
            .is_some_and(Json_::is_string)
        {
            errors.push(at("/ruleName", "must be a string naming the rule"));
        }
        return if errors.is_empty() {
            Ok((
                obj.get("state").and_then(Json_::as_str).map(String::from),
                1,
            ))
        } else {
            Err(errors)
        };
    }
    let status = obj.get("status").and_then(Json_::as_str).map(String::from);
    match obj.get("status") {
        Some(Json_::String(s)) if s == "firing" || s == "resolved" => {}
        Some(_) => errors.push(at("/status", "must be `firing` or `resolved`")),
        None => errors.push(at("/status", "is required (`firing` or `resolved`)")),
    }
    let mut count = 0u32;
    match obj.get("alerts") {
        Some(Json_::Array(alerts)) => {
            for (i, a) in alerts.iter().enumerate() {
                count = count.saturating_add(1);
                match a.get("labels") {
                    Some(Json_::Object(labels)) => {
                        if labels.values().any(|v| !v.is_string()) {
                            errors.push(at(
                                &format!("/alerts/{i}/labels"),
                                "label values must be strings",
                            ));
                        }
                    }
                    _ => errors.push(at(
                        &format!("/alerts/{i}/labels"),
                        "is required: an object of string labels",
                    )),
                }
                if let Some(s) = a.get("status")
                    && !s.is_string()
                {
                    errors.push(at(&format!("/alerts/{i}/status"), "must be a string"));
                }
            }
        }
        Some(_) => errors.push(at("/alerts", "must be a list of alerts")),
        None => errors.push(at("/alerts", "is required: the list of alerts")),
    }
    if errors.is_empty() {
        Ok((status, count))
    } else {
        Err(errors)
    }
}

/// Receive an alert notification (`alertmanager` or `grafana` webhook format).
#[utoipa::path(post, path = "/v1/events/{source}", tag = "events",
    params(("source" = String, Path, description = "`alertmanager` or `grafana`")),
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
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    who.require(&[Role::Integration, Role::Admin])?;
    let Some(&(_, named)) = SOURCES.iter().find(|(name, _)| *name == source) else {
        return Err(Problem::not_found("event source", &source));
    };
    let payload = optional_json::<Json_>(&headers, &body)?.ok_or_else(|| {
        Problem::invalid_at("", "the body is empty; send the notification as JSON")
    })?;
    let (status, alerts) = check(&source, &payload).map_err(|errors| {
        Problem::invalid(
            format!(
                "this is not {named} notification ({} problem{})",
                errors.len(),
                plural(errors.len())
            ),
            errors,
        )
    })?;
    let row = EventRow {
        id: random_id("evt"),
        source: source.clone(),
        received_at: state.now_ms(),
        received_by: who.token_id.clone(),
        status,
        alerts,
        payload,
    };
    state
        .store
        .insert_event(&row, Some(&audit.at(StatusCode::ACCEPTED)))
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Received {
            id: row.id,
            source,
            alerts,
        }),
    )
        .into_response())
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
