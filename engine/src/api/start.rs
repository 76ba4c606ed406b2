//! `POST /v1/runs`: an operator starts a run of any loaded workflow directly, without a catalog
//! entry. The run, its labels, its Idempotency-Key and the call's audit entry are written in
//! the commit that creates the run; the answer (202) comes once that commit is on disk.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, PoisonError};

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::{Map, Value as Json_};
use utoipa::ToSchema;

use super::AppState;
use super::audit::Audit;
use super::auth::{Principal, Role};
use super::problem::{Body, Problem, Violation};
use super::requests::{idempotency_key, input_violations};
use super::views::RunSummary;
use crate::diag::{nearest, plural};
use crate::runtime::{NewRun, PROVIDER, Submission};
use crate::store::{RunKey, hex_sha256};

/// Most labels on one run.
const MAX_LABELS: usize = 32;
/// Longest label value.
const MAX_LABEL_VALUE: usize = 255;

/// A run to start.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StartRun {
    /// The workflow to run.
    pub workflow: String,
    /// Its version (default: the newest loaded).
    #[serde(default)]
    pub version: Option<u32>,
    /// Inputs, checked against the workflow's schema after its defaults are applied.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub inputs: Map<String, Json_>,
    /// The tenant it runs for (default `provider`, the provider's own operations).
    #[serde(default)]
    pub tenant: Option<String>,
    /// Key/value labels kept with the run; `GET /v1/runs?label=key=value` finds it.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Idempotency-Keys whose run is being started now, so two calls with one key start one run.
#[derive(Debug, Default)]
pub(crate) struct Starting(Mutex<HashSet<(String, String)>>);

/// Holds a key as being started until dropped.
pub(super) struct Holding<'a> {
    starting: &'a Starting,
    entry: (String, String),
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.starting
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.entry);
    }
}

impl Starting {
    pub(super) fn hold(&self, requester: &str, key: &str) -> Option<Holding<'_>> {
        let entry = (requester.to_string(), key.to_string());
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(entry.clone())
            .then_some(Holding {
                starting: self,
                entry,
            })
    }
}

/// Whether `key` may name a label: 1–63 of lower-case letters, digits, `-`, `_`, `.` and `/`,
/// starting with a letter or digit.
fn valid_label_key(key: &str) -> bool {
    (1..=63).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_./".contains(&b))
        && key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn label_errors(labels: &BTreeMap<String, String>) -> Vec<Violation> {
    let mut errors = Vec::new();
    if labels.len() > MAX_LABELS {
        errors.push(Violation {
            pointer: "/labels".into(),
            message: format!(
                "a run carries at most {MAX_LABELS} labels, not {}",
                labels.len()
            ),
        });
    }
    for (k, v) in labels {
        let pointer = format!("/labels/{}", k.replace('~', "~0").replace('/', "~1"));
        if !valid_label_key(k) {
            errors.push(Violation {
                pointer: pointer.clone(),
                message: "a label key is 1–63 lower-case letters, digits, `-`, `_`, `.` or `/`, starting with a letter or digit".into(),
            });
        }
        if v.len() > MAX_LABEL_VALUE || v.chars().any(char::is_control) || v.contains(',') {
            errors.push(Violation {
                pointer,
                message: format!(
                    "a label value is at most {MAX_LABEL_VALUE} bytes, without control characters or `,`"
                ),
            });
        }
    }
    errors
}

/// Start a run of a loaded workflow directly (operators and admins).
///
/// Answers 202 with the run once it is on disk. With an `Idempotency-Key` header, repeating
/// the call returns the run the first call started instead of starting another.
#[utoipa::path(post, path = "/v1/runs", tag = "runs",
    request_body = StartRun,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key returns the run it started")),
    responses(
        (status = 202, description = "Started (on disk)", body = RunSummary),
        (status = 400, description = "Malformed body or header", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins start runs directly", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A call with this Idempotency-Key is starting its run now", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Every problem with the workflow, version, tenant, inputs or labels, with its JSON pointer", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage unavailable or the executor is full", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn create(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    headers: HeaderMap,
    Body(body): Body<StartRun>,
) -> Result<Response, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    let key = idempotency_key(&headers)?;
    let mut errors = label_errors(&body.labels);
    let tenant = body.tenant.clone().unwrap_or_else(|| PROVIDER.to_string());
    if let Some(t) = &body.tenant
        && t != PROVIDER
        && state.store.tenant(t).await?.is_none()
    {
        errors.push(Violation {
            pointer: "/tenant".into(),
            message: format!(
                "tenant `{t}` does not exist; an admin creates it with PUT /v1/tenants/{t}"
            ),
        });
    }
    let Some(plan) = state.plan(&body.workflow, body.version) else {
        let names = state.workflow_names();
        errors.push(match (names.get(&body.workflow), body.version) {
            (Some(versions), Some(v)) => Violation {
                pointer: "/version".into(),
                message: format!(
                    "workflow `{}` has no version {v} loaded; it has: {}",
                    body.workflow,
                    versions
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            _ => Violation {
                pointer: "/workflow".into(),
                message: match nearest(&body.workflow, names.keys().map(String::as_str)) {
                    Some(n) => format!(
                        "no workflow `{}` is loaded; did you mean `{n}`?",
                        body.workflow
                    ),
                    None => format!("no workflow `{}` is loaded", body.workflow),
                },
            },
        });
        return Err(invalid(errors));
    };
    let mut inputs = body.inputs.clone();
    if let Some(schema) = plan.inputs() {
        schema.fill_defaults(&mut inputs);
    }
    let inputs = Json_::Object(inputs);
    if let Some(schema) = plan.inputs() {
        errors.extend(input_violations(schema, &inputs));
    }
    if !errors.is_empty() {
        return Err(invalid(errors));
    }

    let body_hash = hex_sha256(
        serde_json::json!({
            "workflow": body.workflow,
            "version": plan.version(),
            "inputs": body.inputs,
            "tenant": tenant,
            "labels": body.labels,
        })
        .to_string()
        .as_bytes(),
    );
    let _holding = match &key {
        None => None,
        Some(k) => {
            let Some(holding) = state.starting.hold(&who.token_id, k) else {
                return Err(Problem::conflict(
                    "a call with this Idempotency-Key is starting its run now; retry in a moment to get that run",
                ));
            };
            if let Some((run_id, hash)) = state.store.run_by_key(&who.token_id, k).await? {
                if hash != body_hash {
                    return Err(Problem::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "idempotency-key-reused",
                        "this Idempotency-Key already started a different run; use a new key",
                    ));
                }
                let mut response = started(&state, &run_id).await?;
                response
                    .headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                return Ok(response);
            }
            Some(holding)
        }
    };
    let run_id = state
        .engine
        .submit_with(
            NewRun {
                workflow: body.workflow.clone(),
                version: Some(plan.version()),
                inputs,
                tenant,
                requester: Some(who.token_id.clone()),
                partition: None,
            },
            Submission {
                labels: body.labels.clone(),
                key: key.map(|key| RunKey {
                    requester: who.token_id.clone(),
                    key,
                    body_hash,
                }),
                audit: Some(audit.entry(StatusCode::ACCEPTED)),
            },
        )
        .await?;
    started(&state, &run_id).await
}

fn invalid(errors: Vec<Violation>) -> Problem {
    Problem::invalid(
        format!(
            "the run cannot start ({} problem{})",
            errors.len(),
            plural(errors.len())
        ),
        errors,
    )
}

/// 202 with the run as stored, and its address.
async fn started(state: &AppState, run_id: &str) -> Result<Response, Problem> {
    let run = state
        .store
        .run(run_id)
        .await?
        .ok_or_else(|| Problem::unavailable("the run vanished; retry with the same key"))?;
    let labels = state.store.labels_of(&[run_id]).await?;
    let mut response = (
        StatusCode::ACCEPTED,
        Json(RunSummary::labelled(&run, labels.get(run_id))),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/runs/{run_id}")) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}
