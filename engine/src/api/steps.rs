//! One unit of a run with the history of its attempts: `GET /v1/runs/{id}/steps/{key}`.

use axum::Extension;
use axum::extract::State;
use axum::response::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Principal;
use super::problem::Problem;
use super::runs::visible_run;
use super::views::{StepView, time};
use super::{AppState, PathParams};
use crate::plan::UnitKey;
use crate::store::{AttemptOutcome, AttemptRow, StepStatus};

/// One finished attempt of a plugin unit.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct AttemptView {
    /// Its number, from 1.
    pub attempt: u32,
    /// When it was handed to a worker.
    pub started_at: String,
    /// When it ended.
    pub finished_at: String,
    /// `succeeded`, `failed` or `cancelled`.
    pub outcome: String,
    /// A failure's kind: `retryable`, `permanent`, `timeout`, `memory_limit`, `trap`, `denied`, …
    pub kind: Option<String>,
    /// A failure's message.
    pub error: Option<String>,
    /// What the plugin wrote (stdout, stderr, log lines), capped per attempt by its
    /// `log_bytes`.
    pub log: String,
}

impl AttemptView {
    fn of(a: &AttemptRow) -> Self {
        Self {
            attempt: a.attempt,
            started_at: time(a.started_at),
            finished_at: time(a.finished_at),
            outcome: a.outcome.as_str().to_string(),
            kind: a.kind.clone(),
            error: a.error.clone(),
            log: a.log.clone(),
        }
    }
}

/// A unit with every attempt it finished, oldest first (an attempt in flight is not listed
/// until it ends; `attempts` of the unit counts it).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct StepDetail {
    /// The unit as listed in its run.
    #[serde(flatten)]
    pub unit: StepView,
    /// Its run.
    pub run_id: String,
    /// Its finished attempts. Steps that run no plugin (waits, approvals, signals, child
    /// workflows, incidents) have none.
    pub history: Vec<AttemptView>,
}

/// One unit of a run — a step, a fan-out item (`create#3`), an `on_failure` step (`!page`) or
/// a compensation (`~create#3`); `#` is written `%23` in a URL — with every attempt: number,
/// start, end, outcome, error and captured log.
#[utoipa::path(get, path = "/v1/runs/{id}/steps/{key}", tag = "runs",
    params(
        ("id" = String, Path, description = "Run id"),
        ("key" = String, Path, description = "Unit key, as in the run's `steps[].key`"),
    ),
    responses(
        (status = 200, description = "The unit and its attempts", body = StepDetail),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not read runs", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run (for this tenant), or no such unit in it", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn get_one(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams((id, key)): PathParams<(String, String)>,
) -> Result<Json<StepDetail>, Problem> {
    let run = visible_run(&state, &who, &id).await?;
    let unit_key = UnitKey::parse(&key).ok_or_else(|| Problem::not_found("step", &key))?;
    let unit = state
        .store
        .step(&run.id, &unit_key)
        .await?
        .ok_or_else(|| Problem::not_found("step", &key))?;
    let mut history: Vec<AttemptView> = state
        .store
        .attempts(&run.id, &unit_key)
        .await?
        .iter()
        .map(AttemptView::of)
        .collect();
    // A first attempt that succeeded and logged nothing has no row of its own: the unit's
    // row holds all of it.
    if history.is_empty()
        && unit.attempt == 1
        && unit.status == StepStatus::Succeeded
        && let (Some(start), Some(end)) = (unit.started_at, unit.finished_at)
    {
        history.push(AttemptView {
            attempt: 1,
            started_at: time(start),
            finished_at: time(end),
            outcome: AttemptOutcome::Succeeded.as_str().to_string(),
            kind: None,
            error: None,
            log: String::new(),
        });
    }
    Ok(Json(StepDetail {
        unit: StepView::of(&unit),
        run_id: run.id,
        history,
    }))
}
