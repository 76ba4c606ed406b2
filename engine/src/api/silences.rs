//! Silences and maintenance windows (`/v1/silences`): alerts they select are stored and
//! counted, never acted on.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::audit::Audit;
use super::auth::{Principal, Role, random_id};
use super::problem::{Problem, RawBody, Violation, optional_json};
use super::{AppState, PathParams, Query};
use crate::alerts::silences::compile_matchers;
use crate::store::SilenceRow;

/// Longest silence: a year.
const MAX_SILENCE_MS: i64 = 366 * 24 * 3600 * 1000;

/// A new silence.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewSilence {
    /// Label → matcher: `value`, `!=value`, `=~regex`, `!~regex` (every one must hold).
    pub matchers: BTreeMap<String, String>,
    /// From (RFC 3339; default now).
    pub starts_at: Option<String>,
    /// Until (RFC 3339); or give `duration`.
    pub ends_at: Option<String>,
    /// How long from `starts_at` (`30m`, `2h`); or give `ends_at`.
    pub duration: Option<String>,
    /// Why (shown with every alert it holds).
    pub comment: String,
    /// Only this tenant's alerts.
    pub tenant: Option<String>,
}

/// A silence.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct SilenceView {
    /// Its id.
    pub id: String,
    /// Label → matcher.
    pub matchers: BTreeMap<String, String>,
    /// From (RFC 3339).
    pub starts_at: String,
    /// Until (RFC 3339).
    pub ends_at: String,
    /// `active`, `pending` (not begun) or `expired`.
    pub state: String,
    /// Who made it: a token id, or the run whose step opened it.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// Only this tenant's alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The run whose step opened it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

impl SilenceView {
    pub(super) fn of(s: &SilenceRow, now: i64) -> Self {
        let state = if now < s.starts_at {
            "pending"
        } else if now < s.ends_at {
            "active"
        } else {
            "expired"
        };
        Self {
            id: s.id.clone(),
            matchers: s.matchers.clone(),
            starts_at: crate::alerts::iso(s.starts_at),
            ends_at: crate::alerts::iso(s.ends_at),
            state: state.into(),
            created_by: s.created_by.clone(),
            comment: s.comment.clone(),
            tenant: s.tenant.clone(),
            run_id: s.run_id.clone(),
        }
    }
}

/// Silences.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct SilenceList {
    /// Newest first.
    pub items: Vec<SilenceView>,
}

/// Which silences to list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct SilenceQuery {
    /// Include expired silences.
    #[serde(default)]
    pub expired: bool,
}

fn time(pointer: &str, text: &str, errors: &mut Vec<Violation>) -> Option<i64> {
    match crate::alerts::parse_time(text) {
        Ok(Some(t)) => Some(t),
        Ok(None) => {
            errors.push(Violation {
                pointer: pointer.into(),
                message: "must be a time after 1970".into(),
            });
            None
        }
        Err(e) => {
            errors.push(Violation {
                pointer: pointer.into(),
                message: e,
            });
            None
        }
    }
}

/// Open a silence (operators): alerts its matchers select are kept and counted, never acted
/// on, from `starts_at` until `ends_at`.
#[utoipa::path(post, path = "/v1/silences", tag = "alerts",
    request_body = NewSilence,
    responses(
        (status = 201, description = "Opened", body = SilenceView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins silence alerts", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Every problem with its JSON pointer", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn create(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    let new: NewSilence = optional_json(&headers, &body)?.ok_or_else(|| {
        Problem::invalid_at(
            "",
            "send the silence as JSON: matchers, ends_at or duration, comment",
        )
    })?;
    let now = state.now_ms();
    let mut errors = Vec::new();
    if new.matchers.is_empty() {
        errors.push(Violation {
            pointer: "/matchers".into(),
            message: "give at least one matcher: a silence of everything would hide every alert"
                .into(),
        });
    }
    if let Err(bad) = compile_matchers(&new.matchers) {
        for (label, message) in bad {
            errors.push(Violation {
                pointer: format!("/matchers/{}", crate::diag::pointer_token(&label)),
                message,
            });
        }
    }
    if new.comment.trim().is_empty() {
        errors.push(Violation {
            pointer: "/comment".into(),
            message: "say why: it is shown with every alert it holds".into(),
        });
    }
    let starts_at = new
        .starts_at
        .as_deref()
        .map_or(Some(now), |t| time("/starts_at", t, &mut errors));
    let ends_at = match (&new.ends_at, &new.duration) {
        (Some(t), None) => time("/ends_at", t, &mut errors),
        (None, Some(d)) => match crate::dsl::parse_duration(d) {
            Ok(d) => starts_at
                .map(|s| s.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
            Err(e) => {
                errors.push(Violation {
                    pointer: "/duration".into(),
                    message: e,
                });
                None
            }
        },
        (Some(_), Some(_)) => {
            errors.push(Violation {
                pointer: "/duration".into(),
                message: "give `ends_at` or `duration`, not both".into(),
            });
            None
        }
        (None, None) => {
            errors.push(Violation {
                pointer: "/ends_at".into(),
                message: "is required (or give `duration`)".into(),
            });
            None
        }
    };
    if let (Some(s), Some(e)) = (starts_at, ends_at) {
        if e <= s || e <= now {
            errors.push(Violation {
                pointer: "/ends_at".into(),
                message: "must be after `starts_at` and in the future".into(),
            });
        } else if e - s > MAX_SILENCE_MS {
            errors.push(Violation {
                pointer: "/ends_at".into(),
                message: "a silence lasts at most a year".into(),
            });
        }
    }
    if let Some(t) = &new.tenant
        && state.store.tenant(t).await?.is_none()
    {
        errors.push(Violation {
            pointer: "/tenant".into(),
            message: format!("tenant `{t}` does not exist"),
        });
    }
    let (Some(starts_at), Some(ends_at), true) = (starts_at, ends_at, errors.is_empty()) else {
        return Err(Problem::invalid("the silence is not valid", errors));
    };
    let row = SilenceRow {
        id: random_id("sil"),
        matchers: new.matchers,
        starts_at,
        ends_at,
        created_by: who.token_id.clone(),
        comment: new.comment,
        tenant: new.tenant,
        run_id: None,
        created_at: now,
    };
    state
        .store
        .put_silence(&row, Some(&audit.at(StatusCode::CREATED)))
        .await?;
    Ok((StatusCode::CREATED, Json(SilenceView::of(&row, now))).into_response())
}

/// Silences in force and to come (with `expired=true`, ended ones too).
#[utoipa::path(get, path = "/v1/silences", tag = "alerts",
    params(SilenceQuery),
    responses(
        (status = 200, description = "Silences", body = SilenceList),
        (status = 400, description = "An unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins read silences", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter of the wrong type", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<SilenceQuery>,
) -> Result<Json<SilenceList>, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    let now = state.now_ms();
    let rows = state.store.silences(now, q.expired, None).await?;
    Ok(Json(SilenceList {
        items: rows.iter().map(|s| SilenceView::of(s, now)).collect(),
    }))
}

/// End a silence now (operators); it is kept, expired.
#[utoipa::path(delete, path = "/v1/silences/{id}", tag = "alerts",
    params(("id" = String, Path, description = "Silence id")),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins end silences", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such silence, or it has ended", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn delete(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    if state
        .store
        .expire_silence(&id, state.now_ms(), Some(&audit.at(StatusCode::NO_CONTENT)))
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found("active silence", &id))
    }
}
