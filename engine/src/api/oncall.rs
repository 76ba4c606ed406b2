//! People, teams and schedules (`GET /v1/oncall`) and who is on call at an instant
//! (`GET /v1/oncall/{schedule}?at=`), from the files of the on-call directory.

use axum::Extension;
use axum::extract::State;
use axum::response::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Principal, Role};
use super::problem::Problem;
use super::{AppState, PathParams, Query};

/// A person, as listed (the secrets holding their addresses are named, never read).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct PersonView {
    /// Their id.
    pub id: String,
    /// Their name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How they are reached: `slack`, `pagerduty` or `webhook`, each with its secret's name.
    pub contacts: Vec<ContactView>,
}

/// One way to reach a person.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct ContactView {
    /// `slack`, `pagerduty` or `webhook`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The secret holding the address.
    pub secret: String,
}

/// Everything on call.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct OnCallList {
    /// People.
    pub people: Vec<PersonView>,
    /// Teams: id → members.
    pub teams: std::collections::BTreeMap<String, Vec<String>>,
    /// Schedules: id → time zone.
    pub schedules: std::collections::BTreeMap<String, String>,
}

/// When to ask about.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AtQuery {
    /// An RFC 3339 instant (default: now).
    pub at: Option<String>,
}

/// Who is on call.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct OnCallNow {
    /// The schedule.
    pub schedule: String,
    /// The instant asked about.
    pub at: String,
    /// The person on call; absent when nobody is (a gap between layers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<PersonView>,
    /// The layer naming them; absent for an override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// Whether an override names them.
    pub by_override: bool,
}

fn person(p: &crate::oncall::Person) -> PersonView {
    PersonView {
        id: p.id.clone(),
        name: p.name.clone(),
        contacts: p
            .contacts
            .iter()
            .map(|(kind, secret)| ContactView {
                kind: kind.clone(),
                secret: secret.clone(),
            })
            .collect(),
    }
}

/// People, teams and schedules (operators).
#[utoipa::path(get, path = "/v1/oncall", tag = "oncall",
    responses(
        (status = 200, description = "Everything on call", body = OnCallList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins read on-call", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<OnCallList>, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    let set = state.oncall();
    Ok(Json(OnCallList {
        people: set.people.values().map(person).collect(),
        teams: set.teams.clone(),
        schedules: set
            .schedules
            .iter()
            .map(|(k, s)| (k.clone(), s.time_zone.name().to_string()))
            .collect(),
    }))
}

/// Who is on call on a schedule at an instant (default now): an override's person, else the
/// highest layer's that covers it.
#[utoipa::path(get, path = "/v1/oncall/{schedule}", tag = "oncall",
    params(("schedule" = String, Path, description = "Schedule id"), AtQuery),
    responses(
        (status = 200, description = "Who is on call", body = OnCallNow),
        (status = 400, description = "An unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins read on-call", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such schedule", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`at` is not an RFC 3339 instant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn who(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams(schedule): PathParams<String>,
    Query(q): Query<AtQuery>,
) -> Result<Json<OnCallNow>, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    let at = match &q.at {
        None => chrono::DateTime::from_timestamp_millis(state.now_ms())
            .ok_or_else(|| Problem::internal("the clock is out of range"))?,
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| {
                Problem::invalid_at("/at", format!("`{t}` is not an RFC 3339 instant: {e}"))
            })?,
    };
    let set = state.oncall();
    let duty = set
        .on_call(&schedule, at)
        .ok_or_else(|| Problem::not_found("schedule", &schedule))?;
    Ok(Json(OnCallNow {
        schedule,
        at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        by_override: duty.as_ref().is_some_and(|d| d.layer.is_none()),
        layer: duty.as_ref().and_then(|d| d.layer.clone()),
        user: duty.as_ref().map(|d| {
            set.people.get(&d.user).map_or_else(
                || PersonView {
                    id: d.user.clone(),
                    name: None,
                    contacts: Vec::new(),
                },
                person,
            )
        }),
    }))
}
