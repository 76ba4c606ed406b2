//! `GET /v1/catalog`, `GET /v1/catalog/{id}`: what the caller's tenant may order.

use axum::Extension;
use axum::extract::State;
use axum::response::Json;

use super::auth::{Principal, Role};
use super::problem::Problem;
use super::views::{CatalogEntryView, CatalogList};
use super::{AppState, PathParams};

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
            .catalog
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
        .catalog
        .get(&id)
        .filter(|e| who.scope().is_none_or(|t| e.allows_tenant(t)))
        .map(|e| Json(CatalogEntryView::of(e)))
        .ok_or_else(|| Problem::not_found("catalog entry", &id))
}
