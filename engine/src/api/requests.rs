//! Requests: a client orders a catalog entry; an optional approval gate; the run that
//! fulfils it; the SLA.
//!
//! A request is stored (status `submitted` or `awaiting_approval`) before its run exists; the
//! commit that creates the run marks it `started`. A crash in between leaves it `submitted`,
//! and [`start_pending`] starts it on the next start-up, or, with several processes, in the
//! sweep of the one holding the cron partition once it is a minute old.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::{Map, Value as Json_};
use utoipa::ToSchema;

use super::audit::Audit;
use super::auth::{Principal, Role, random_id};
use super::problem::{Body, Problem, Violation};
use super::views::{RequestBody, RequestList};
use super::{AppState, Page, PathParams, Query};
use crate::diag::plural;
use crate::runtime::NewRun;
use crate::store::{AuditRow, Cursor, NewRequest, RequestRow, RequestView, hex_sha256};

/// An order.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Order {
    /// The catalog entry to order.
    pub catalog_id: String,
    /// Inputs, checked against the entry's schema after its defaults are applied.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub inputs: Map<String, Json_>,
    /// The tenant ordered for: a client's own (may be left out); required from operators.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// An approver's decision.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Decision {
    /// `true` starts the run, `false` rejects the request.
    pub approved: bool,
    /// Why; kept with the request.
    #[serde(default)]
    pub comment: Option<String>,
}

pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .ok()
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            Problem::bad_request(
                "invalid-idempotency-key",
                "Idempotency-Key must be 1–255 visible ASCII characters",
            )
        })?;
    Ok(Some(key))
}

/// Order a catalog entry.
///
/// Answers 202 with the request; its run starts at once, or after approval when the entry has
/// an approval gate. With an `Idempotency-Key` header, repeating the call returns the
/// original request instead of ordering again.
#[utoipa::path(post, path = "/v1/requests", tag = "requests",
    request_body = Order,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key returns the original request")),
    responses(
        (status = 202, description = "Accepted (stored)", body = RequestBody),
        (status = 400, description = "Malformed body or header", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not order", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Every schema violation, with its JSON pointer", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn create(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    headers: HeaderMap,
    Body(order): Body<Order>,
) -> Result<Response, Problem> {
    who.require(&[Role::Client, Role::Operator, Role::Admin])?;
    let key = idempotency_key(&headers)?;
    let tenant = match (who.scope(), &order.tenant) {
        (Some(own), None) => own.to_string(),
        (Some(own), Some(t)) if t == own => own.to_string(),
        (Some(_), Some(_)) => {
            return Err(Problem::invalid_at(
                "/tenant",
                "a client orders for its own tenant only; leave `tenant` out",
            ));
        }
        (None, None) => {
            return Err(Problem::invalid_at(
                "/tenant",
                "an operator must say which tenant the order is for",
            ));
        }
        (None, Some(t)) => {
            if state.store.tenant(t).await?.is_none() {
                return Err(Problem::invalid_at(
                    "/tenant",
                    format!("tenant `{t}` does not exist"),
                ));
            }
            t.clone()
        }
    };
    let entry = state
        .catalog()
        .get(&order.catalog_id)
        .filter(|e| e.allows_tenant(&tenant))
        .ok_or_else(|| {
            Problem::invalid_at(
                "/catalog_id",
                format!("catalog entry `{}` does not exist", order.catalog_id),
            )
        })?
        .clone();
    let body_hash = hex_sha256(
        serde_json::json!({
            "catalog_id": order.catalog_id,
            "inputs": order.inputs,
            "tenant": tenant,
        })
        .to_string()
        .as_bytes(),
    );

    // Defaults where the client gave none: the entry's, then the schema's own `default`s.
    let mut inputs = order.inputs.clone();
    if let Json_::Object(defaults) = &entry.defaults {
        for (k, v) in defaults {
            inputs.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if let Some(schema) = &entry.inputs {
        schema.fill_defaults(&mut inputs);
    }
    let inputs = Json_::Object(inputs);
    if let Some(schema) = &entry.inputs {
        let errors = input_violations(schema, &inputs);
        if !errors.is_empty() {
            return Err(Problem::invalid(
                format!(
                    "the inputs do not match the schema of `{}` ({} problem{})",
                    entry.id,
                    errors.len(),
                    plural(errors.len())
                ),
                errors,
            ));
        }
    }
    let plan = state
        .plan(&entry.workflow, entry.workflow_version)
        .ok_or_else(|| {
            Problem::unavailable(format!(
                "the workflow `{}` behind `{}` is not loaded; an operator must upload it",
                entry.workflow, entry.id
            ))
        })?;
    if let Some(schema) = plan.inputs() {
        let errors = input_violations(schema, &inputs);
        if !errors.is_empty() {
            return Err(Problem::invalid(
                format!(
                    "the inputs do not match workflow `{}`@{} ({} problem{})",
                    plan.name(),
                    plan.version(),
                    errors.len(),
                    plural(errors.len())
                ),
                errors,
            ));
        }
    }

    let now = state.now_ms();
    let gated = !entry.approval_roles.is_empty();
    let row = RequestRow {
        id: random_id("req"),
        catalog_id: entry.id.clone(),
        workflow: entry.workflow.clone(),
        workflow_version: entry.workflow_version,
        tenant,
        requester: who.token_id.clone(),
        inputs,
        status: if gated {
            "awaiting_approval"
        } else {
            "submitted"
        }
        .into(),
        run_id: None,
        approval_roles: entry.approval_roles.clone(),
        decided_by: None,
        decided_at: None,
        decision_note: None,
        sla_deadline: entry
            .fulfil_within
            .map(|d| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
        idempotency_key: key,
        body_hash: body_hash.clone(),
        created_at: now,
        updated_at: now,
    };
    let status = StatusCode::ACCEPTED;
    // Two calls with one key at once: the second is told to retry, so one order is placed.
    let _holding = match &row.idempotency_key {
        None => None,
        Some(k) => Some(
            state
                .starting
                .hold(&format!("order {}", who.token_id), k)
                .ok_or_else(|| {
                    Problem::conflict(
                        "a call with this Idempotency-Key is placing its order now; retry in a moment to get that order",
                    )
                })?,
        ),
    };
    if let Some(earlier) = state
        .store
        .request_by_key(&row.requester, row.idempotency_key.as_deref())
        .await?
    {
        return replay(&earlier, &body_hash, state.now_ms());
    }
    if gated {
        if let NewRequest::Existing(earlier) = state
            .store
            .insert_request(&row, Some(&audit.at(status)))
            .await?
        {
            return replay(&earlier, &body_hash, state.now_ms());
        }
    } else {
        // One commit, one fsync: the order (stored `started`), its run and this call's entry.
        let run = NewRun {
            workflow: row.workflow.clone(),
            version: row.workflow_version,
            inputs: row.inputs.clone(),
            tenant: row.tenant.clone(),
            requester: Some(row.requester.clone()),
            partition: None,
        };
        let run_id = state
            .engine
            .submit_order(run, row.clone(), Some(audit.entry(status)))
            .await?;
        // As committed: no need to read it back.
        let view = RequestView {
            request: RequestRow {
                status: "started".into(),
                run_id: Some(run_id),
                ..row
            },
            run_status: Some(crate::store::RunStatus::Running),
            run_finished_at: None,
        };
        return Ok(accepted(&view, state.now_ms()));
    }
    let view = state
        .store
        .request(&row.id, None)
        .await?
        .ok_or_else(|| Problem::unavailable("the request vanished; retry with the same key"))?;
    Ok(accepted(&view, state.now_ms()))
}

/// Every violation of `inputs` against `schema`, located under `/inputs` of the body.
pub(super) fn input_violations(
    schema: &crate::plan::CompiledSchema,
    inputs: &Json_,
) -> Vec<Violation> {
    schema
        .violations(inputs)
        .into_iter()
        .map(|v| Violation {
            pointer: format!("/inputs{}", v.pointer),
            message: v.message,
        })
        .collect()
}

/// The answer to an order repeating an Idempotency-Key: the earlier order, if it asked the same.
fn replay(earlier: &RequestView, body_hash: &str, now: i64) -> Result<Response, Problem> {
    if earlier.request.body_hash != body_hash {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "this Idempotency-Key was already used for a different order; use a new key",
        ));
    }
    let mut response = accepted(earlier, now);
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(response)
}

fn accepted(view: &RequestView, now: i64) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(RequestBody::of(view, now))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/requests/{}", view.request.id)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// Starts the run of a stored request. A failure leaves the request `submitted`; it is
/// started again at the next start-up.
async fn start(state: &AppState, r: &RequestRow, audit: Option<AuditRow>) {
    let run = NewRun {
        workflow: r.workflow.clone(),
        version: r.workflow_version,
        inputs: r.inputs.clone(),
        tenant: r.tenant.clone(),
        requester: Some(r.requester.clone()),
        partition: None,
    };
    if let Err(e) = state.engine.submit_for_request(run, &r.id, audit).await {
        tracing::error!(request = %r.id, "cannot start the run of a request: {e}");
    }
}

/// Starts the runs of requests accepted (or approved) before a crash that came before their
/// run was created, and last changed at `changed_by` (ms) or before: a request another
/// process is starting right now is left to it.
pub async fn start_pending(
    state: &AppState,
    changed_by: i64,
) -> Result<usize, crate::store::StoreError> {
    let pending = state.store.unstarted_requests(changed_by).await?;
    let now = state.now_ms();
    let mut started = 0;
    for r in &pending {
        // Claimed first, so that two sweeps (a start-up's and a new holder's of the cron
        // partition) never both start it.
        if state.store.claim_unstarted(&r.id, changed_by, now).await? {
            start(state, r, None).await;
            started += 1;
        }
    }
    Ok(started)
}

/// Requests, newest first: a client's tenant's, or everyone's for operators.
#[utoipa::path(get, path = "/v1/requests", tag = "requests",
    params(Page),
    responses(
        (status = 200, description = "A page of requests", body = RequestList),
        (status = 400, description = "An unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not read requests", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(page): Query<Page>,
) -> Result<Json<RequestList>, Problem> {
    who.require(&[Role::Client, Role::Operator, Role::Admin])?;
    let (limit, cursor) = page.read()?;
    let rows = state
        .store
        .requests(who.scope(), cursor.as_ref(), limit)
        .await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last())
        .flatten()
        .map(|v| {
            Cursor {
                created_at: v.request.created_at,
                id: v.request.id.clone(),
            }
            .encode()
        });
    let now = state.now_ms();
    Ok(Json(RequestList {
        items: rows.iter().map(|v| RequestBody::of(v, now)).collect(),
        next_cursor,
    }))
}

/// One request: status, run link, approval and SLA.
#[utoipa::path(get, path = "/v1/requests/{id}", tag = "requests",
    params(("id" = String, Path, description = "Request id")),
    responses(
        (status = 200, description = "The request", body = RequestBody),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not read requests", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such request (for this tenant)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn get_one(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams(id): PathParams<String>,
) -> Result<Json<RequestBody>, Problem> {
    who.require(&[Role::Client, Role::Operator, Role::Admin])?;
    let view = state
        .store
        .request(&id, who.scope())
        .await?
        .ok_or_else(|| Problem::not_found("request", &id))?;
    Ok(Json(RequestBody::of(&view, state.now_ms())))
}

/// Approve or reject a request waiting at its entry's approval gate (the roles the entry
/// names, or an admin). Approval starts the run.
#[utoipa::path(post, path = "/v1/requests/{id}/approval", tag = "requests",
    params(("id" = String, Path, description = "Request id")),
    request_body = Decision,
    responses(
        (status = 200, description = "Decided", body = RequestBody),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not approve this request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such request (for this tenant)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not awaiting approval", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong shape", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn decide(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(id): PathParams<String>,
    Body(decision): Body<Decision>,
) -> Result<Json<RequestBody>, Problem> {
    who.require(&[Role::Client, Role::Operator, Role::Admin])?;
    let view = state
        .store
        .request(&id, who.scope())
        .await?
        .ok_or_else(|| Problem::not_found("request", &id))?;
    let roles = &view.request.approval_roles;
    if who.role != Role::Admin && !roles.iter().any(|r| r == who.role.as_str()) {
        return Err(Problem::forbidden(if roles.is_empty() {
            "this request has no approval gate".to_string()
        } else {
            format!("approving this request needs one of: {}", roles.join(", "))
        }));
    }
    let decided = state
        .store
        .decide_request(
            &id,
            decision.approved,
            &who.token_id,
            decision.comment.as_deref(),
            state.now_ms(),
            Some(&audit.at(StatusCode::OK)),
        )
        .await?;
    if !decided {
        return Err(Problem::conflict(format!(
            "request `{id}` is {}, not awaiting approval",
            view.status()
        )));
    }
    if decision.approved {
        start(&state, &view.request, None).await;
    }
    let view = state
        .store
        .request(&id, None)
        .await?
        .ok_or_else(|| Problem::not_found("request", &id))?;
    Ok(Json(RequestBody::of(&view, state.now_ms())))
}
