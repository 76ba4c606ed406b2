//! `GET /v1/approvals`: what waits on the caller — `approval:` steps and request gates its role
//! may decide (a client: its own tenant's), oldest first, each with how to decide it.

use axum::Extension;
use axum::extract::State;
use axum::response::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json_;
use utoipa::ToSchema;

use super::auth::{Principal, Role};
use super::problem::Problem;
use super::views::opt_time;
use super::{AppState, Query};
use crate::plan::PlanKind;

/// `?limit=N`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ApprovalQuery {
    /// Most of each kind (steps, requests), 1–200 (default 200).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// One decision waiting on the caller.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct Waiting {
    /// `step` (an `approval:` step of a run) or `request` (a catalog order at its gate).
    pub kind: &'static str,
    /// The run, for a step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The step's key, for a step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The run's workflow, for a step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// The request, for a request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The catalog entry ordered, for a request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
    /// What was ordered with, for a request.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub inputs: Option<Json_>,
    /// The tenant it is for.
    pub tenant: String,
    /// The step's rendered `message`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The roles that may decide it (and admins).
    pub roles: Vec<String>,
    /// Since when it waits.
    pub waiting_since: Option<String>,
    /// When a step's `timeout` fails it undecided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// The call that decides it.
    pub decide: String,
}

/// What waits on the caller.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct WaitingList {
    /// Oldest first.
    pub items: Vec<Waiting>,
}

fn may_decide(who: &Principal, roles: &[String]) -> bool {
    who.role == Role::Admin || roles.iter().any(|r| r == who.role.as_str())
}

/// Approval steps and request gates the caller may decide, oldest first.
#[utoipa::path(get, path = "/v1/approvals", tag = "runs",
    params(ApprovalQuery),
    responses(
        (status = 200, description = "What waits on the caller", body = WaitingList),
        (status = 400, description = "An unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role decides nothing", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(query): Query<ApprovalQuery>,
) -> Result<Json<WaitingList>, Problem> {
    who.require(&[Role::Client, Role::Operator, Role::Admin])?;
    let limit = query.limit.unwrap_or(200);
    if !(1..=200).contains(&limit) {
        return Err(Problem::invalid_at("/limit", "must be between 1 and 200"));
    }
    let mut items: Vec<(Option<i64>, Waiting)> = Vec::new();
    for w in state.store.waiting_approvals(who.scope(), limit).await? {
        // A step whose plan is not loaded is blocked with its run: nothing to decide now.
        let Some(roles) =
            state
                .plan(&w.workflow, Some(w.version))
                .and_then(|p| match &p.step_of(&w.key)?.kind {
                    PlanKind::Approval { roles, .. } => Some(roles.clone()),
                    _ => None,
                })
        else {
            continue;
        };
        if !may_decide(&who, &roles) {
            continue;
        }
        let key = w.key.to_string();
        items.push((
            w.since,
            Waiting {
                kind: "step",
                decide: format!("POST /v1/runs/{}/approvals/{key}", w.run_id),
                run_id: Some(w.run_id),
                step: Some(key),
                workflow: Some(w.workflow),
                request_id: None,
                catalog_id: None,
                inputs: None,
                tenant: w.tenant,
                message: w.message,
                roles,
                waiting_since: opt_time(w.since),
                expires_at: opt_time(w.until),
            },
        ));
    }
    for r in state.store.awaiting_requests(who.scope(), limit).await? {
        let r = r.request;
        if !may_decide(&who, &r.approval_roles) {
            continue;
        }
        items.push((
            Some(r.created_at),
            Waiting {
                kind: "request",
                decide: format!("POST /v1/requests/{}/approval", r.id),
                run_id: None,
                step: None,
                workflow: None,
                request_id: Some(r.id),
                catalog_id: Some(r.catalog_id),
                inputs: Some(r.inputs),
                tenant: r.tenant,
                message: None,
                roles: r.approval_roles,
                waiting_since: opt_time(Some(r.created_at)),
                expires_at: None,
            },
        ));
    }
    items.sort_by_key(|(since, _)| *since);
    Ok(Json(WaitingList {
        items: items.into_iter().map(|(_, w)| w).collect(),
    }))
}
