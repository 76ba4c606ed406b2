//! Incidents as tickets: list, get, timeline (a client sees its tenant's, public part only);
//! acknowledge, resolve, reopen, annotate and edit, and the post-incident review (operators).

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::audit::Audit;
use super::auth::{Principal, Role};
use super::incident_views::{IncidentList, IncidentView, Timeline, timeline};
use super::problem::{Body, Problem, RawBody, optional_object};
use super::{AppState, Page, PathParams, Query};
use crate::runtime::IncidentSteer;
use crate::store::{Cursor, IncidentRow};

/// A note for an incident's timeline.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Note {
    /// The text (optional for acknowledge, resolve and reopen).
    #[serde(default)]
    pub note: Option<String>,
    /// Whether the incident's tenant sees the note: a public status update (notes only;
    /// internal by default).
    #[serde(default)]
    pub public: bool,
}

/// Whether `who` sees the whole ticket rather than its public part.
fn operator(who: &Principal) -> bool {
    who.role != Role::Client
}

/// The incident, if `who` may see it: its tenant's clients, and those of the tenants it
/// names as affected, see it; another tenant's id answers like one that does not exist.
async fn visible(state: &AppState, who: &Principal, id: &str) -> Result<IncidentRow, Problem> {
    who.require(&[Role::Client, Role::Operator, Role::Admin])?;
    state
        .store
        .incident(id)
        .await?
        .filter(|i| {
            who.sees(&i.tenant)
                || crate::incidents::Details::of(i)
                    .tenants
                    .iter()
                    .any(|t| who.sees(t))
        })
        .ok_or_else(|| Problem::not_found("incident", id))
}

/// Incidents, newest first: a client's tenant's, or all for operators.
#[utoipa::path(get, path = "/v1/incidents", tag = "incidents",
    params(Page),
    responses(
        (status = 200, description = "A page of incidents", body = IncidentList),
        (status = 400, description = "An unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not read incidents", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(page): Query<Page>,
) -> Result<Json<IncidentList>, Problem> {
    who.require(&[Role::Client, Role::Operator, Role::Admin])?;
    let (limit, cursor) = page.read()?;
    let rows = state
        .store
        .incidents_page(who.scope(), cursor.as_ref(), limit)
        .await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last())
        .flatten()
        .map(|i| {
            Cursor {
                created_at: i.created_at,
                id: i.id.clone(),
            }
            .encode()
        });
    Ok(Json(IncidentList {
        items: rows
            .iter()
            .map(|r| IncidentView::of(r, operator(&who)))
            .collect(),
        next_cursor,
    }))
}

/// One incident with its timeline.
#[utoipa::path(get, path = "/v1/incidents/{id}", tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    responses(
        (status = 200, description = "The incident", body = IncidentView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not read incidents", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such incident (for this tenant)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn get_one(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams(id): PathParams<String>,
) -> Result<Json<IncidentView>, Problem> {
    let row = visible(&state, &who, &id).await?;
    let mut view = IncidentView::of(&row, operator(&who));
    if operator(&who) {
        let alerts = state.store.incident_alerts(&id).await?;
        view.links = Some(super::incident_views::Links::of(&row, alerts));
    }
    Ok(Json(view))
}

/// An incident's timeline, oldest first.
#[utoipa::path(get, path = "/v1/incidents/{id}/timeline", tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    responses(
        (status = 200, description = "The timeline", body = Timeline),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not read incidents", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such incident (for this tenant)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn timeline_of(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Timeline>, Problem> {
    let row = visible(&state, &who, &id).await?;
    Ok(Json(Timeline {
        items: timeline(&row.timeline, operator(&who)),
    }))
}

async fn steer(
    state: &AppState,
    who: &Principal,
    audit: &Audit,
    id: &str,
    action: IncidentSteer,
    note: Option<String>,
) -> Result<Json<IncidentView>, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    visible(state, who, id).await?;
    let row = state
        .engine
        .steer_incident(
            id,
            action,
            &who.token_id,
            note,
            Some(audit.entry(StatusCode::OK)),
        )
        .await?;
    Ok(Json(IncidentView::of(&row, true)))
}

/// Acknowledge an open incident; the run that opened it (escalating, for example) receives
/// the signal `ack`.
#[utoipa::path(post, path = "/v1/incidents/{id}/acknowledge", tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    request_body(content = Option<Note>, description = "Optional note", content_type = "application/json"),
    responses(
        (status = 200, description = "Acknowledged", body = IncidentView),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators steer incidents", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such incident", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already acknowledged or resolved", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong shape", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn acknowledge(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<IncidentView>, Problem> {
    let note = optional_object::<Note>(&headers, &body)?.and_then(|n| n.note);
    steer(&state, &who, &audit, &id, IncidentSteer::Acknowledge, note).await
}

/// Resolve an incident.
#[utoipa::path(post, path = "/v1/incidents/{id}/resolve", tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    request_body(content = Option<Note>, description = "Optional note", content_type = "application/json"),
    responses(
        (status = 200, description = "Resolved", body = IncidentView),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators steer incidents", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such incident", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already resolved", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong shape", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn resolve(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<IncidentView>, Problem> {
    let note = optional_object::<Note>(&headers, &body)?.and_then(|n| n.note);
    steer(&state, &who, &audit, &id, IncidentSteer::Resolve, note).await
}

/// Add a note to an incident's timeline: internal, or (`public: true`) a status update its
/// tenant sees.
#[utoipa::path(post, path = "/v1/incidents/{id}/notes", tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    request_body = Note,
    responses(
        (status = 200, description = "Noted", body = IncidentView),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators steer incidents", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such incident", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No note, or wrong shape", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn note(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(id): PathParams<String>,
    Body(body): Body<Note>,
) -> Result<Json<IncidentView>, Problem> {
    let Some(text) = body.note.filter(|n| !n.trim().is_empty()) else {
        return Err(Problem::invalid_at(
            "/note",
            "is required and must not be empty",
        ));
    };
    let action = IncidentSteer::Note {
        public: body.public,
    };
    steer(&state, &who, &audit, &id, action, Some(text)).await
}

/// Reopen a resolved incident: it is triggered again.
#[utoipa::path(post, path = "/v1/incidents/{id}/reopen", tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    request_body(content = Option<Note>, description = "Optional note", content_type = "application/json"),
    responses(
        (status = 200, description = "Reopened", body = IncidentView),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators steer incidents", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such incident", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not resolved", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong shape", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn reopen(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<IncidentView>, Problem> {
    let note = optional_object::<Note>(&headers, &body)?.and_then(|n| n.note);
    steer(&state, &who, &audit, &id, IncidentSteer::Reopen, note).await
}

/// Change a ticket's fields: title, severity (a raise pages the escalation's current level
/// again), impact, type, affected services and tenants, assignee, root cause, contributing
/// factors, action items. Each present field replaces the current value; every change is
/// written to the timeline.
#[utoipa::path(patch, path = "/v1/incidents/{id}", tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    request_body = crate::incidents::Edit,
    responses(
        (status = 200, description = "Changed (or already so)", body = IncidentView),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators edit incidents", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such incident", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is wrong: its pointer says which", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn edit(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(id): PathParams<String>,
    Body(edit): Body<crate::incidents::Edit>,
) -> Result<Json<IncidentView>, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    let oncall = state.oncall();
    let people: Vec<&str> = oncall.people.keys().map(String::as_str).collect();
    let tenants = state.store.tenants().await?;
    let tenants: Vec<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
    crate::incidents::check(&edit, &people, &tenants)
        .map_err(|r| Problem::invalid_at(&r.pointer, r.message))?;
    steer(
        &state,
        &who,
        &audit,
        &id,
        IncidentSteer::Edit {
            edit: Box::new(edit),
        },
        None,
    )
    .await
}

/// The post-incident review: overview, what happened, impact (time at each severity, tenants
/// affected), timeline, responders, root cause, contributing factors, action items — JSON, or
/// Markdown with `Accept: text/markdown`.
#[utoipa::path(get, path = "/v1/incidents/{id}/review", tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    responses(
        (status = 200, description = "The review", body = crate::incidents::review::Review,
            content(
                (crate::incidents::review::Review = "application/json"),
                (String = "text/markdown"),
            )),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators read reviews", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such incident", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn review(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
) -> Result<axum::response::Response, Problem> {
    use axum::response::IntoResponse as _;
    who.require(&[Role::Operator, Role::Admin])?;
    let row = visible(&state, &who, &id).await?;
    let review = crate::incidents::review::review(&row, state.now_ms());
    let markdown = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/markdown"));
    Ok(if markdown {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/markdown; charset=utf-8",
            )],
            crate::incidents::review::markdown(&review),
        )
            .into_response()
    } else {
        Json(review).into_response()
    })
}
