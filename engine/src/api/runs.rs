//! Runs: inspect, follow (server-sent events), cancel, approve steps, send signals (lists
//! are `run_list.rs`, starting one is `start.rs`).

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::Value as Json_;
use tokio::sync::broadcast;
use utoipa::ToSchema;

use super::audit::Audit;
use super::auth::{Principal, Role};
use super::problem::{Body, Problem, RawBody, optional_json};
use super::views::{RunDetail, RunStreamEvent, RunSummary, StepCount, StepView};
use super::{AppState, PathParams, Query};
use crate::plan::PlanKind;
use crate::runtime::{RunEvent, Watch};
use crate::store::{RunRow, StepCursor};

/// The run `id` if the caller may see it; otherwise 404, as for a run that does not exist.
pub(super) async fn visible_run(
    state: &AppState,
    who: &Principal,
    id: &str,
) -> Result<RunRow, Problem> {
    who.require(&[Role::Client, Role::Operator, Role::Admin])?;
    state
        .store
        .run(id)
        .await?
        .filter(|r| who.sees(&r.tenant))
        .ok_or_else(|| Problem::not_found("run", id))
}

/// Units per page of a run, when the caller does not say.
const STEPS_PAGE: u32 = 500;
/// Most units per page.
const MAX_STEPS_PAGE: u32 = 1000;

/// A run with one page of its units (after `cursor`) and its counts.
async fn detail(
    state: &AppState,
    run: &RunRow,
    cursor: Option<&StepCursor>,
    limit: u32,
) -> Result<RunDetail, Problem> {
    let steps = state.store.steps_page(&run.id, cursor, limit).await?;
    let next_cursor = (steps.len() == limit as usize)
        .then(|| steps.last())
        .flatten()
        .map(|s| StepCursor::after(s).encode());
    let counts = state
        .store
        .step_counts(&run.id)
        .await?
        .into_iter()
        .map(|(step, status, count)| StepCount {
            step,
            status,
            count,
        })
        .collect();
    let labels = state.store.labels_of(&[run.id.as_str()]).await?;
    Ok(RunDetail {
        run: RunSummary::labelled(run, labels.get(&run.id)),
        inputs: run.inputs.clone(),
        outputs: run.outputs.clone().unwrap_or(Json_::Null),
        steps: steps.iter().map(StepView::of).collect(),
        next_cursor,
        counts,
        retries: state
            .store
            .retries(&run.id)
            .await?
            .iter()
            .map(super::views::RetryView::of)
            .collect(),
    })
}

/// Paging of a run's units: `?limit=N&cursor=C`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct StepPage {
    /// Units per page, 1–1000 (default 500).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl StepPage {
    fn read(&self) -> Result<(u32, Option<StepCursor>), Problem> {
        let limit = self.limit.unwrap_or(STEPS_PAGE);
        if !(1..=MAX_STEPS_PAGE).contains(&limit) {
            return Err(Problem::invalid_at("/limit", "must be between 1 and 1000"));
        }
        let cursor = match &self.cursor {
            None => None,
            Some(c) => Some(StepCursor::decode(c).ok_or_else(|| {
                Problem::invalid_at("/cursor", "is not a cursor this API handed out")
            })?),
        };
        Ok((limit, cursor))
    }
}

/// One run with a page of its units (status, attempts, output, error, timings) in plan
/// order, and how many units of each step are in each status.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "Run id"), StepPage),
    responses(
        (status = 200, description = "The run", body = RunDetail),
        (status = 400, description = "An unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not read runs", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run (for this tenant)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn get_one(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams(id): PathParams<String>,
    Query(page): Query<StepPage>,
) -> Result<Json<RunDetail>, Problem> {
    let (limit, cursor) = page.read()?;
    let run = visible_run(&state, &who, &id).await?;
    Ok(Json(detail(&state, &run, cursor.as_ref(), limit).await?))
}

/// How to cancel a run.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CancelOptions {
    /// Whether the compensations of completed steps (newest first) and the `on_failure` steps
    /// run before the run ends (default `true`); `false` only stops it.
    #[serde(default = "yes")]
    pub compensate: bool,
}

fn yes() -> bool {
    true
}

/// Cancel a run: running steps are interrupted, nothing new starts; then the compensations of
/// completed steps run, newest first, then the `on_failure` steps — unless the body says
/// `{"compensate": false}`. The body is optional.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    request_body(content = Option<CancelOptions>, description = "Optional; `{\"compensate\": false}` to skip compensations and `on_failure`", content_type = "application/json"),
    responses(
        (status = 202, description = "Cancellation recorded", body = RunSummary),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators cancel runs", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The run is already over", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A body of the wrong shape", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn cancel(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    let options = super::problem::optional_object::<CancelOptions>(&headers, &body)?;
    visible_run(&state, &who, &id).await?;
    let compensate = options.is_none_or(|o| o.compensate);
    state
        .engine
        .cancel_with(&id, compensate, Some(audit.entry(StatusCode::ACCEPTED)))
        .await?;
    let run = visible_run(&state, &who, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(RunSummary::of(&run))).into_response())
}

/// A decision on a waiting `approval:` step.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StepDecision {
    /// `true` lets the run go on; `false` fails the step.
    pub approved: bool,
}

/// Approve or reject a waiting `approval:` step (the roles the step names, or an admin).
#[utoipa::path(post, path = "/v1/runs/{id}/approvals/{step}", tag = "runs",
    params(("id" = String, Path, description = "Run id"), ("step" = String, Path, description = "Step key")),
    request_body = StepDecision,
    responses(
        (status = 200, description = "Decided", body = RunSummary),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role not named by the step", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run or step", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The step is not waiting for an approval", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong shape", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn approve(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams((id, step)): PathParams<(String, String)>,
    Body(decision): Body<StepDecision>,
) -> Result<Json<RunSummary>, Problem> {
    let run = visible_run(&state, &who, &id).await?;
    if let Some(why) = run.blocked.as_deref().filter(|_| !run.status.is_final()) {
        return Err(Problem::conflict(format!("run `{id}` is blocked: {why}")));
    }
    let plan = state
        .plan(&run.workflow, Some(run.version))
        .ok_or_else(|| Problem::unavailable("the run's workflow version is not loaded"))?;
    let roles = crate::plan::UnitKey::parse(&step)
        .and_then(|key| plan.step_of(&key))
        .and_then(|s| match &s.kind {
            PlanKind::Approval { roles, .. } => Some(roles.clone()),
            _ => None,
        })
        .ok_or_else(|| Problem::not_found("approval step", &step))?;
    if who.role != Role::Admin && !roles.iter().any(|r| r == who.role.as_str()) {
        return Err(Problem::forbidden(format!(
            "approving `{step}` needs one of: {}",
            roles.join(", ")
        )));
    }
    state
        .engine
        .approve(
            &id,
            &step,
            decision.approved,
            &who.token_id,
            Some(audit.entry(StatusCode::OK)),
        )
        .await?;
    let run = visible_run(&state, &who, &id).await?;
    Ok(Json(RunSummary::of(&run)))
}

/// Send a named signal to a run; a `signal:` step waiting for it (now or later) takes it. The
/// body (any JSON, or empty) becomes the step's output.
#[utoipa::path(post, path = "/v1/runs/{id}/signals/{name}", tag = "runs",
    params(("id" = String, Path, description = "Run id"), ("name" = String, Path, description = "Signal name")),
    request_body(content = Object, description = "Payload (optional)", content_type = "application/json"),
    responses(
        (status = 202, description = "Signal stored", body = RunSummary),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators send signals", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The run is over", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn signal(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams((id, name)): PathParams<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    let payload = optional_json::<Json_>(&headers, &body)?.unwrap_or(Json_::Null);
    if name.is_empty() || name.len() > 128 {
        return Err(Problem::not_found("signal", &name));
    }
    visible_run(&state, &who, &id).await?;
    state
        .engine
        .signal(&id, &name, payload, Some(audit.entry(StatusCode::ACCEPTED)))
        .await?;
    let run = visible_run(&state, &who, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(RunSummary::of(&run))).into_response())
}

/// Follow a run as server-sent events: first `snapshot` (the run with its steps), then `step`
/// and `run` events as transitions are committed; the stream ends when the run does.
#[utoipa::path(get, path = "/v1/runs/{id}/events", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = RunStreamEvent),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not read runs", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run (for this tenant)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "As many event streams are open as the service keeps; retry after Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn events(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams(id): PathParams<String>,
) -> Result<Response, Problem> {
    // Follow before reading the run, so nothing committed after the read is missed: a run
    // that ended before `follow` has its end in the read, and one that ends after it has its
    // end on the channel. (Read first, a run ending in between would leave the stream waiting
    // on a channel that never gets its last event.)
    let rx = state.engine.follow(&id);
    let run = visible_run(&state, &who, &id).await?;
    let Some(slot) = StreamSlot::take(&state) else {
        tracing::warn!(
            run = %id,
            "refused an event stream: {} are open, the most this service keeps",
            state.config.max_event_streams
        );
        return Err(Problem::unavailable(format!(
            "{} event streams are open, the most this service keeps (--max-event-streams); retry later, or poll GET /v1/runs/{id}",
            state.config.max_event_streams
        )));
    };
    // A run another process executes is followed through the database.
    let watch = if !run.status.is_final() && !state.engine.held().holds(run.partition) {
        Some(Watch::start(state.store.clone(), &id).await?)
    } else {
        None
    };
    let snapshot = detail(&state, &run, None, STEPS_PAGE).await?;
    let mut pending = VecDeque::new();
    pending.push_back(snapshot_event(&snapshot));
    let follow = Follow {
        rx,
        watch,
        state,
        id,
        pending,
        done: run.status.is_final(),
        _slot: slot,
    };
    let stream = futures_util::stream::unfold(follow, next_event);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

struct Follow {
    rx: broadcast::Receiver<RunEvent>,
    /// Set while another process executes the run.
    watch: Option<Watch>,
    state: AppState,
    id: String,
    pending: VecDeque<Event>,
    done: bool,
    /// Given back when the stream ends or its client goes away.
    _slot: StreamSlot,
}

/// One of the `max_event_streams` places, held while a stream is open.
struct StreamSlot(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl StreamSlot {
    fn take(state: &AppState) -> Option<Self> {
        use std::sync::atomic::Ordering;
        let cap = state.config.max_event_streams;
        state
            .streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(std::sync::Arc::clone(&state.streams)))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

fn snapshot_event(run: &RunDetail) -> Event {
    Event::default()
        .event("snapshot")
        .json_data(run)
        .unwrap_or_else(|_| Event::default().event("snapshot"))
}

async fn next_event(mut f: Follow) -> Option<(Result<Event, Infallible>, Follow)> {
    loop {
        if let Some(e) = f.pending.pop_front() {
            return Some((Ok(e), f));
        }
        if f.done {
            return None;
        }
        if let Some(watch) = &mut f.watch {
            tokio::select! {
                () = f.state.shutdown.cancelled() => return None,
                seen = watch.next() => match seen {
                    Ok(events) if events.is_empty() => f.done = true,
                    Ok(events) => {
                        for e in events {
                            push_event(&mut f, &e);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(run = %f.id, "cannot read a run another process executes: {e}");
                        f.done = true;
                    }
                },
            }
            continue;
        }
        tokio::select! {
            () = f.state.shutdown.cancelled() => return None,
            received = f.rx.recv() => match received {
                Ok(e) => push_event(&mut f, &e),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too far behind: send a fresh snapshot (one page and the counts) instead
                    // of the missed events.
                    match f.state.store.run(&f.id).await {
                        Ok(Some(run)) => {
                            if let Ok(d) = detail(&f.state, &run, None, STEPS_PAGE).await {
                                f.pending.push_back(snapshot_event(&d));
                            }
                            f.done = run.status.is_final();
                        }
                        _ => f.done = true,
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {
                    // The run left this process (its partition moved): follow it through the
                    // database from here.
                    match Watch::start(f.state.store.clone(), &f.id).await {
                        Ok(w) => f.watch = Some(w),
                        Err(_) => f.done = true,
                    }
                }
            }
        }
    }
}

/// Queues a committed transition as a `run` or `step` event; the run's end ends the stream.
fn push_event(f: &mut Follow, e: &RunEvent) {
    let is_run = e.step.is_none();
    if is_run && matches!(e.status.as_str(), "succeeded" | "failed" | "cancelled") {
        f.done = true;
    }
    let event = Event::default()
        .event(if is_run { "run" } else { "step" })
        .json_data(e)
        .unwrap_or_else(|_| Event::default());
    f.pending.push_back(event);
}
