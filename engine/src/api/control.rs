//! Run control beyond cancel: retry, rerun from a step, pause and resume (operators and
//! admins). Each is a command to
//! the executor, stored with the run and its audit entry in one commit, so it outlives a
//! restart; the answer (202) comes once that commit is on disk.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use utoipa::ToSchema;

use super::audit::Audit;
use super::auth::{Principal, Role};
use super::problem::{Body, Problem};
use super::runs::visible_run;
use super::views::RunSummary;
use super::{AppState, PathParams};

async fn steer(
    state: &AppState,
    who: &Principal,
    audit: &Audit,
    id: &str,
    pause: bool,
) -> Result<Response, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    visible_run(state, who, id).await?;
    state
        .engine
        .pause(id, pause, Some(audit.entry(StatusCode::ACCEPTED)))
        .await?;
    let run = visible_run(state, who, id).await?;
    Ok((StatusCode::ACCEPTED, Json(RunSummary::of(&run))).into_response())
}

/// Retry a failed run in place: its failed and interrupted steps run again (plugin steps
/// continue their attempt history), what they held up starts after them, and completed steps
/// keep their outputs and never run again. The run's `retries` show each retry. A run whose
/// completed steps were compensated when it failed cannot be retried in place.
#[utoipa::path(post, path = "/v1/runs/{id}/retry", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 202, description = "Running again (on disk)", body = RunSummary),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins retry runs", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The run is not failed, or was compensated", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn retry(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(id): PathParams<String>,
) -> Result<Response, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    visible_run(&state, &who, &id).await?;
    state
        .engine
        .retry(&id, &who.token_id, Some(audit.entry(StatusCode::ACCEPTED)))
        .await?;
    let run = visible_run(&state, &who, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(RunSummary::of(&run))).into_response())
}

/// Where a rerun starts.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RerunFrom {
    /// The main step that runs again, with every step downstream of it.
    pub from: String,
}

/// Rerun a finished run from a step, as a new run: `from` and every step that needs it
/// (directly or not) run again; every other step that succeeded or was skipped is copied with
/// its output. The new run has the old one's inputs, tenant and labels, and the labels
/// `rerun-of` (the old run) and `rerun-from` (the step).
#[utoipa::path(post, path = "/v1/runs/{id}/rerun", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    request_body = RerunFrom,
    responses(
        (status = 202, description = "The new run (on disk)", body = RunSummary),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins rerun runs", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The run is not over, or has no such step", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong shape", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn rerun(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(id): PathParams<String>,
    Body(body): Body<RerunFrom>,
) -> Result<Response, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    let old = visible_run(&state, &who, &id).await?;
    if let Some(plan) = state.plan(&old.workflow, Some(old.version))
        && plan.position(&body.from).is_none()
    {
        let steps: Vec<&str> = plan.steps().iter().map(|s| s.id.as_str()).collect();
        return Err(Problem::invalid_at(
            "/from",
            format!(
                "workflow `{}` has no main step `{}`; its steps: {}",
                old.workflow,
                body.from,
                steps.join(", ")
            ),
        ));
    }
    let new = state
        .engine
        .rerun(
            &id,
            &body.from,
            &who.token_id,
            Some(audit.entry(StatusCode::ACCEPTED)),
        )
        .await?;
    let run = visible_run(&state, &who, &new).await?;
    let labels = state.store.labels_of(&[new.as_str()]).await?;
    let mut response = (
        StatusCode::ACCEPTED,
        Json(RunSummary::labelled(&run, labels.get(&new))),
    )
        .into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("/v1/runs/{new}")) {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, v);
    }
    Ok(response)
}

/// Pause a run: nothing new starts — attempts running now finish and are recorded, timers
/// that fall due (waits, retries, approval and signal timeouts) wait — until it is resumed.
/// Pausing a paused run changes nothing.
#[utoipa::path(post, path = "/v1/runs/{id}/pause", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 202, description = "Paused (on disk)", body = RunSummary),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins pause runs", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The run is over or ending", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn pause(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(id): PathParams<String>,
) -> Result<Response, Problem> {
    steer(&state, &who, &audit, &id, true).await
}

/// Resume a paused run: what became ready while it was paused starts, and the timers that
/// fell due fire.
#[utoipa::path(post, path = "/v1/runs/{id}/resume", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 202, description = "Resumed (on disk)", body = RunSummary),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins resume runs", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The run is not paused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn resume(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(id): PathParams<String>,
) -> Result<Response, Problem> {
    steer(&state, &who, &audit, &id, false).await
}
