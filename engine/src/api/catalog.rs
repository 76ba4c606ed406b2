//! `GET /v1/catalog`, `GET /v1/catalog/{id}`: what the caller's tenant may order; and
//! `PUT`/`DELETE /v1/catalog/{id}`: operators change entries without a restart. A change is
//! stored (with its audit entry) and laid over the catalog directory at every start-up, so
//! it outlives a restart: a stored entry replaces a file's of the same id, a deletion hides it.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};

use super::audit::Audit;
use super::auth::{Principal, Role};
use super::problem::{Problem, RawBody};
use super::views::{CatalogEntryView, CatalogList};
use super::workflows::{invalid_definition, yaml_body};
use super::{AppState, PathParams};
use crate::plan::{CatalogPlan, WorkflowNames, validate_catalog};
use crate::store::{CatalogRow, Store, StoreError};

/// Lays the entries set or deleted over the API on `entries` (read from the catalog
/// directory). A stored entry that no longer validates against `workflows` is left out and
/// logged: the service starts, and an operator fixes or deletes it.
pub async fn overlay_catalog(
    store: &Store,
    entries: &mut BTreeMap<String, CatalogPlan>,
    workflows: &WorkflowNames,
) -> Result<(), StoreError> {
    for row in store.catalog_entries().await? {
        match &row.source {
            None => {
                if entries.remove(&row.id).is_some() {
                    tracing::info!(entry = %row.id, "catalog entry `{}` of the catalog directory stays deleted (deleted over the API by {})", row.id, row.updated_by);
                }
            }
            Some(source) => match validate_catalog(source.as_bytes(), Some(workflows)) {
                Ok(entry) => {
                    if entries.insert(entry.id.clone(), entry).is_some() {
                        tracing::info!(entry = %row.id, "catalog entry `{}` is the one set over the API, not the catalog directory's", row.id);
                    }
                }
                Err(d) => tracing::error!(
                    entry = %row.id,
                    "catalog entry `{}` set over the API no longer validates ({}); it is left out until an operator puts it again or deletes it",
                    row.id,
                    crate::plan::summarize(&d)
                ),
            },
        }
    }
    Ok(())
}

/// Set a catalog entry (operators): the YAML of one entry, validated like a file of the
/// catalog directory against the loaded workflows, in force at once and kept across restarts.
#[utoipa::path(put, path = "/v1/catalog/{id}", tag = "catalog",
    params(("id" = String, Path, description = "Catalog entry id (the `id` in the YAML)")),
    request_body(content = String, description = "The entry's YAML", content_type = "application/yaml"),
    responses(
        (status = 200, description = "Replaced", body = CatalogEntryView),
        (status = 201, description = "Created", body = CatalogEntryView),
        (status = 400, description = "Not a valid entry: every problem with its line and column", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins change the catalog", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not YAML", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The YAML's id is not the one in the path", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn put(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    yaml_body(&headers, "catalog entry")?;
    let _one_at_a_time = state.uploads.lock().await;
    let entry = validate_catalog(&body, Some(&state.workflow_names()))
        .map_err(|d| invalid_definition("catalog entry", &d))?;
    if entry.id != id {
        return Err(Problem::invalid_at(
            "/id",
            format!(
                "the YAML names catalog entry `{}` but was sent to /v1/catalog/{id}",
                entry.id
            ),
        ));
    }
    let mut entries = (*state.catalog()).clone();
    let status = if entries.contains_key(&id) {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    state
        .store
        .put_catalog_entry(
            &CatalogRow {
                id: id.clone(),
                source: Some(String::from_utf8_lossy(&body).into_owned()),
                updated_at: state.now_ms(),
                updated_by: who.token_id.clone(),
            },
            Some(&audit.at(status)),
        )
        .await?;
    let view = CatalogEntryView::of(&entry);
    entries.insert(id, entry);
    state.set_catalog(entries);
    super::sync::announce(&state);
    Ok((status, Json(view)).into_response())
}

/// Delete a catalog entry (operators): it can no longer be ordered; requests already placed
/// go on. The deletion is kept across restarts (an entry of the catalog directory stays
/// hidden).
#[utoipa::path(delete, path = "/v1/catalog/{id}", tag = "catalog",
    params(("id" = String, Path, description = "Catalog entry id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins change the catalog", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such entry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn delete(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    let _one_at_a_time = state.uploads.lock().await;
    let mut entries = (*state.catalog()).clone();
    if entries.remove(&id).is_none() {
        return Err(Problem::not_found("catalog entry", &id));
    }
    state
        .store
        .put_catalog_entry(
            &CatalogRow {
                id: id.clone(),
                source: None,
                updated_at: state.now_ms(),
                updated_by: who.token_id.clone(),
            },
            Some(&audit.at(StatusCode::NO_CONTENT)),
        )
        .await?;
    state.set_catalog(entries);
    super::sync::announce(&state);
    Ok(StatusCode::NO_CONTENT)
}

/// Every entry the caller may order (clients: their tenant's; others: all).
#[utoipa::path(get, path = "/v1/catalog", tag = "catalog",
    responses(
        (status = 200, description = "Orderable entries", body = CatalogList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not read the catalog, or address not allowed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<CatalogList>, Problem> {
    who.require(&[Role::Client, Role::Operator, Role::Admin])?;
    Ok(Json(CatalogList {
        items: state
            .catalog()
            .values()
            .filter(|e| who.scope().is_none_or(|t| e.allows_tenant(t)))
            .map(CatalogEntryView::of)
            .collect(),
    }))
}

/// One entry, with its input schema.
#[utoipa::path(get, path = "/v1/catalog/{id}", tag = "catalog",
    params(("id" = String, Path, description = "Catalog entry id")),
    responses(
        (status = 200, description = "The entry", body = CatalogEntryView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not read the catalog, or address not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such entry for this tenant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn get_one(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams(id): PathParams<String>,
) -> Result<Json<CatalogEntryView>, Problem> {
    who.require(&[Role::Client, Role::Operator, Role::Admin])?;
    state
        .catalog()
        .get(&id)
        .filter(|e| who.scope().is_none_or(|t| e.allows_tenant(t)))
        .map(|e| Json(CatalogEntryView::of(e)))
        .ok_or_else(|| Problem::not_found("catalog entry", &id))
}
