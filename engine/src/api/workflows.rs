//! Workflows: upload YAML (validated like `csmp validate`), list, versions.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};

use super::audit::Audit;
use super::auth::{Principal, Role};
use super::problem::{Located, Problem, RawBody};
use super::reach::Reach;
use super::views::{
    WorkflowList, WorkflowSummary, WorkflowUploaded, WorkflowVersion, WorkflowVersions,
};
use super::{AppState, PathParams};
use crate::plan::{Env, validate_workflow};
use crate::store::{PutWorkflow, hex_sha256};

const YAML_TYPES: &[&str] = &[
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
    "text/plain",
];

/// Every runnable workflow with its versions (for a client, those its tenant's catalog entries
/// start, and the child workflows they start).
#[utoipa::path(get, path = "/v1/workflows", tag = "workflows",
    responses(
        (status = 200, description = "Every workflow", body = WorkflowList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not read this, or address not allowed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<WorkflowList>, Problem> {
    who.require(&[Role::Client, Role::Operator, Role::Admin])?;
    let reach = Reach::of(&state, &who);
    let names = state.workflow_names();
    Ok(Json(WorkflowList {
        items: names
            .into_iter()
            .filter(|(name, _)| reach.workflow(name))
            .filter_map(|(name, versions)| {
                let latest = *versions.last()?;
                let description = state
                    .plan(&name, Some(latest))
                    .and_then(|p| p.description().map(str::to_string));
                Some(WorkflowSummary {
                    name,
                    latest_version: latest,
                    versions,
                    description,
                })
            })
            .collect(),
    }))
}

/// Every stored version of one workflow, with its source.
#[utoipa::path(get, path = "/v1/workflows/{name}", tag = "workflows",
    params(("name" = String, Path, description = "Workflow name")),
    responses(
        (status = 200, description = "Its versions", body = WorkflowVersions),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not read this, or address not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workflow", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn versions(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams(name): PathParams<String>,
) -> Result<Json<WorkflowVersions>, Problem> {
    who.require(&[Role::Client, Role::Operator, Role::Admin])?;
    if !Reach::of(&state, &who).workflow(&name) {
        return Err(Problem::not_found("workflow", &name));
    }
    let versions: Vec<WorkflowVersion> = state
        .store
        .workflows()
        .await?
        .into_iter()
        .filter(|w| w.name == name)
        .map(|w| WorkflowVersion {
            name: w.name,
            version: w.version,
            sha256: w.hash,
            source: w.source,
        })
        .collect();
    if versions.is_empty() {
        return Err(Problem::not_found("workflow", &name));
    }
    Ok(Json(WorkflowVersions { name, versions }))
}

/// One stored version of a workflow.
#[utoipa::path(get, path = "/v1/workflows/{name}/{version}", tag = "workflows",
    params(("name" = String, Path, description = "Workflow name"), ("version" = u32, Path, description = "Version")),
    responses(
        (status = 200, description = "The version", body = WorkflowVersion),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not read this, or address not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workflow version", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn get_version(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams((name, version)): PathParams<(String, u32)>,
) -> Result<Json<WorkflowVersion>, Problem> {
    who.require(&[Role::Client, Role::Operator, Role::Admin])?;
    let reach = Reach::of(&state, &who);
    state
        .store
        .workflows()
        .await?
        .into_iter()
        .find(|w| w.name == name && w.version == version && reach.workflow(&w.name))
        .map(|w| {
            Json(WorkflowVersion {
                name: w.name,
                version: w.version,
                sha256: w.hash,
                source: w.source,
            })
        })
        .ok_or_else(|| Problem::not_found("workflow version", &format!("{name}@{version}")))
}

/// Upload a workflow version as YAML. It is validated like `csmp validate` does (400 lists
/// every problem with line and column); a stored version is immutable, so changed content
/// must bump `version`. New runs use the newest version; running ones keep theirs.
#[utoipa::path(put, path = "/v1/workflows/{name}", tag = "workflows",
    params(("name" = String, Path, description = "Workflow name; must equal `name:` in the YAML")),
    request_body(content = String, description = "The workflow YAML", content_type = "application/yaml"),
    responses(
        (status = 200, description = "The same content was already stored", body = WorkflowUploaded),
        (status = 201, description = "Stored and runnable", body = WorkflowUploaded),
        (status = 400, description = "Invalid definition: every problem, located", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators upload workflows", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "This version is stored with other content", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not YAML", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The YAML's name differs from the path", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn upload(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(name): PathParams<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    yaml_body(&headers, "workflow")?;
    let _one_at_a_time = state.uploads.lock().await;
    let names = state.workflow_names();
    let plan = validate_workflow(
        &body,
        Env {
            plugins: &state.host.index(),
            workflows: Some(&names),
        },
    )
    .map_err(|diagnostics| invalid_definition("workflow", &diagnostics))?;
    if plan.name() != name {
        return Err(Problem::invalid_at(
            "/name",
            format!(
                "the YAML names workflow `{}` but was sent to /v1/workflows/{name}",
                plan.name()
            ),
        ));
    }
    let source = String::from_utf8_lossy(&body).into_owned();
    let outcome = state
        .store
        .put_workflow(
            plan.name(),
            plan.version(),
            &source,
            state.now_ms(),
            Some(&|put: &PutWorkflow| audit.entry(super::plugins::put_status(put))),
        )
        .await?;
    let uploaded = WorkflowUploaded {
        name: plan.name().to_string(),
        version: plan.version(),
        sha256: hex_sha256(source.as_bytes()),
        created: outcome == PutWorkflow::Inserted,
    };
    let known = state.plan(plan.name(), Some(plan.version())).is_some();
    if !known {
        state.engine.define(plan.clone()).await?;
        state
            .defs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(plan);
    }
    super::sync::announce(&state);
    Ok((super::plugins::put_status(&outcome), Json(uploaded)).into_response())
}

/// Delete a workflow, every version of it (operators): refused while an unfinished run uses
/// it, while a catalog entry orders it, or while another workflow starts it as a child; its
/// cron triggers stop. Finished runs of it are kept.
#[utoipa::path(delete, path = "/v1/workflows/{name}", tag = "workflows",
    params(("name" = String, Path, description = "Workflow name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins delete workflows", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workflow", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Unfinished runs, catalog entries or other workflows use it", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn delete(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(name): PathParams<String>,
) -> Result<StatusCode, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    let _one_at_a_time = state.uploads.lock().await;
    let (known, parents) = {
        let defs = state
            .defs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let parents: std::collections::BTreeSet<String> = defs
            .plans()
            .filter(|p| p.name() != name)
            .filter(|p| {
                p.steps().iter().chain(p.on_failure()).any(|s| {
                    matches!(&s.kind, crate::plan::PlanKind::Workflow { name: child, .. } if *child == name)
                })
            })
            .map(|p| p.name().to_string())
            .collect();
        (defs.knows(&name), parents)
    };
    if !known {
        return Err(Problem::not_found("workflow", &name));
    }
    let entries: Vec<String> = state
        .catalog()
        .values()
        .filter(|e| e.workflow == name)
        .map(|e| format!("`{}`", e.id))
        .collect();
    if !entries.is_empty() {
        return Err(Problem::conflict(format!(
            "catalog entries {} order workflow `{name}`; delete or change them first (DELETE /v1/catalog/{{id}})",
            entries.join(", ")
        )));
    }
    if !parents.is_empty() {
        return Err(Problem::conflict(format!(
            "workflows {} start `{name}` as a child; change them first",
            parents
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    state.engine.undefine(&name).await?;
    state
        .store
        .delete_workflow(&name, Some(&audit.at(StatusCode::NO_CONTENT)))
        .await?;
    state
        .defs
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&name);
    super::sync::announce(&state);
    Ok(StatusCode::NO_CONTENT)
}

/// 415 unless the body is sent as YAML (`what` names it in the answer).
pub(super) fn yaml_body(headers: &HeaderMap, what: &str) -> Result<(), Problem> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if media.is_some_and(|m| YAML_TYPES.contains(&m.as_str())) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!("send the {what} with `Content-Type: application/yaml`"),
        ))
    }
}

/// 400 with every located problem of an uploaded definition (`what`: workflow, catalog entry).
pub(super) fn invalid_definition(what: &str, diagnostics: &[crate::diag::Diagnostic]) -> Problem {
    let problems: Vec<Located> = diagnostics
        .iter()
        .map(|d| Located {
            line: d.span.line,
            column: d.span.column,
            code: d.code.to_string(),
            message: d.message.clone(),
            help: d.help.clone(),
        })
        .collect();
    let first = problems
        .first()
        .map(|p| format!("{}:{}: {}", p.line, p.column, p.message))
        .unwrap_or_default();
    let summary = match problems.len() {
        1 => format!("the {what} is not valid: {first}"),
        n => format!("the {what} is not valid: {n} problems (first: {first})"),
    };
    Problem {
        problems: Some(problems),
        ..Problem::bad_request("invalid-definition", summary)
    }
}
