//! On-call files over the API: `GET /v1/oncall/files` lists them with their YAML, `PUT
//! /v1/oncall/files/{name}` sets one and `DELETE` removes one. The whole set is planned again
//! on every change — a change that would leave any file invalid (a policy paging a person
//! another change removed) is refused with every problem, located in its file — and put in
//! force at once: escalations under way page from their next level with it. Changes are kept
//! in the database and laid over the on-call directory's files at start.

use std::collections::BTreeMap;
use std::path::Path;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::audit::Audit;
use super::auth::{Principal, Role};
use super::problem::{Problem, RawBody};
use super::workflows::{invalid_definition, yaml_body};
use super::{AppState, PathParams};
use crate::store::{OnCallFileRow, Store};

/// One on-call file.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct OnCallFileView {
    /// Its name (`platform` for `oncall/platform.yaml`).
    pub name: String,
    /// Its YAML.
    pub source: String,
}

/// Every on-call file in force.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct OnCallFileList {
    /// By name.
    pub items: Vec<OnCallFileView>,
}

/// The on-call directory's files (by name: the file name without `.yaml`) with the files set
/// over the API laid over them, planned as one set. A file of the directory that does not
/// validate stops the start; a stored one that no longer does is logged and left out.
pub async fn load_oncall(
    store: &Store,
    dir: Option<&Path>,
) -> anyhow::Result<(crate::oncall::OnCall, BTreeMap<String, String>)> {
    let mut sources = BTreeMap::new();
    if let Some(dir) = dir.filter(|d| d.is_dir()) {
        let files = crate::cli::validate::collect_files(&[dir.to_path_buf()])
            .map_err(anyhow::Error::msg)?;
        for file in files {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            let name = file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            sources.insert(name, text);
        }
        if let Err(problems) = crate::oncall::files::plan(&sources) {
            for (name, diagnostics) in &problems {
                let report = crate::diag::FileReport {
                    file: dir.join(format!("{name}.yaml")).display().to_string(),
                    diagnostics: diagnostics.clone(),
                };
                tracing::error!(
                    "{}",
                    report
                        .render(sources.get(name).map(String::as_str))
                        .trim_end()
                );
            }
            anyhow::bail!(
                "fix the on-call files in {} (or run `csmp validate {}`)",
                dir.display(),
                dir.display()
            );
        }
    }
    let from_dir = sources.clone();
    for row in store.oncall_file_rows().await? {
        match row.source {
            Some(source) => sources.insert(row.name, source),
            None => sources.remove(&row.name),
        };
    }
    match crate::oncall::files::plan(&sources) {
        Ok(set) => Ok((set, sources)),
        Err(problems) => {
            let names: Vec<&str> = problems.iter().map(|(n, _)| n.as_str()).collect();
            tracing::error!(
                files = ?names,
                "the on-call files set over the API no longer plan with the directory's ({}); the directory's files alone are in force until an operator fixes them",
                names.join(", ")
            );
            // The directory's files planned above (or there are none).
            let set = crate::oncall::files::plan(&from_dir).unwrap_or_default();
            Ok((set, from_dir))
        }
    }
}

/// 400 with every problem of the set, each in its file.
fn refused(problems: &[(String, Vec<crate::diag::Diagnostic>)], sent: &str) -> Problem {
    let own = problems
        .iter()
        .find(|(n, _)| n == sent)
        .map(|(_, d)| d.clone());
    let others: Vec<&str> = problems
        .iter()
        .filter(|(n, _)| n != sent)
        .map(|(n, _)| n.as_str())
        .collect();
    match own {
        Some(d) if others.is_empty() => invalid_definition("on-call file", &d),
        _ => {
            let all: Vec<crate::diag::Diagnostic> = problems
                .iter()
                .flat_map(|(name, ds)| {
                    ds.iter().cloned().map(move |mut d| {
                        d.message = format!("{name}: {}", d.message);
                        d
                    })
                })
                .collect();
            let mut p = invalid_definition("set of on-call files", &all);
            p.detail = format!(
                "the change leaves on-call files invalid ({}): {}",
                others.join(", "),
                p.detail
            );
            p
        }
    }
}

/// Every on-call file in force, with its YAML (operators).
#[utoipa::path(get, path = "/v1/oncall/files", tag = "oncall",
    responses(
        (status = 200, description = "The files", body = OnCallFileList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins read on-call files", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<OnCallFileList>, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    let sources = state.oncall_sources();
    Ok(Json(OnCallFileList {
        items: sources
            .iter()
            .map(|(name, source)| OnCallFileView {
                name: name.clone(),
                source: source.clone(),
            })
            .collect(),
    }))
}

/// Set an on-call file (operators): its YAML, planned with every other file as one set, in
/// force at once and kept across restarts.
#[utoipa::path(put, path = "/v1/oncall/files/{name}", tag = "oncall",
    params(("name" = String, Path, description = "File name, [a-z0-9-]+")),
    request_body(content = String, description = "The file's YAML", content_type = "application/yaml"),
    responses(
        (status = 200, description = "Replaced", body = OnCallFileView),
        (status = 201, description = "Created", body = OnCallFileView),
        (status = 400, description = "The set would not be valid: every problem with its file, line and column", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins change on-call files", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not YAML", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a valid file name", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn put(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(name): PathParams<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    if !crate::dsl::is_valid_name(&name) {
        return Err(Problem::invalid_at(
            "/name",
            format!("`{name}` is not a file name: use [a-z0-9-]+"),
        ));
    }
    yaml_body(&headers, "on-call file")?;
    let source = String::from_utf8(body.to_vec())
        .map_err(|_| Problem::bad_request("invalid-definition", "the YAML is not UTF-8"))?;
    let _one_at_a_time = state.uploads.lock().await;
    let mut sources = (*state.oncall_sources()).clone();
    let status = if sources.contains_key(&name) {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    sources.insert(name.clone(), source.clone());
    let set = crate::oncall::files::plan(&sources).map_err(|p| refused(&p, &name))?;
    state
        .store
        .put_oncall_file(
            &OnCallFileRow {
                name: name.clone(),
                source: Some(source.clone()),
                updated_at: state.now_ms(),
                updated_by: who.token_id.clone(),
            },
            Some(&audit.at(status)),
        )
        .await?;
    state.set_oncall_files(set, sources);
    super::sync::announce(&state);
    Ok((status, Json(OnCallFileView { name, source })).into_response())
}

/// Delete an on-call file (operators); refused while another file needs what it defines.
#[utoipa::path(delete, path = "/v1/oncall/files/{name}", tag = "oncall",
    params(("name" = String, Path, description = "File name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Other files need what it defines: every problem with its file", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins change on-call files", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such file", body = Problem, content_type = "application/problem+json"),
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
    let mut sources = (*state.oncall_sources()).clone();
    if sources.remove(&name).is_none() {
        return Err(Problem::not_found("on-call file", &name));
    }
    let set = crate::oncall::files::plan(&sources).map_err(|p| refused(&p, &name))?;
    state
        .store
        .put_oncall_file(
            &OnCallFileRow {
                name,
                source: None,
                updated_at: state.now_ms(),
                updated_by: who.token_id.clone(),
            },
            Some(&audit.at(StatusCode::NO_CONTENT)),
        )
        .await?;
    state.set_oncall_files(set, sources);
    super::sync::announce(&state);
    Ok(StatusCode::NO_CONTENT)
}
