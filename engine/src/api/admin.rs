//! Admin: tokens, tenants (with IP allowlists) and the audit log.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use utoipa::ToSchema;

use super::audit::Audit;
use super::auth::{Principal, Role, mint};
use super::problem::{Body, Problem, Violation};
use super::views::{
    AuditList, AuditView, CreatedToken, TenantList, TenantView, TokenList, TokenView,
};
use super::{AppState, PathParams, Query};

/// A token to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewTokenBody {
    /// Its role.
    pub role: Role,
    /// The tenant (required for, and only for, `client`); created when new.
    #[serde(default)]
    pub tenant: Option<String>,
    /// A label for people.
    #[serde(default)]
    pub name: Option<String>,
}

/// A tenant's settings.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TenantBody {
    /// CIDRs (or single addresses) its clients may call from; empty = anywhere.
    #[serde(default)]
    pub allowlist: Vec<String>,
}

/// Audit log page: `?before=ID&limit=N`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditPage {
    /// Entries older than this id (the `next_cursor` of the previous page).
    pub before: Option<i64>,
    /// Entries per page, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// Checks a token's role and tenant fit together; the tenant id is a valid name.
pub fn check_token_request(role: Role, tenant: Option<&str>) -> Result<(), String> {
    match (role, tenant) {
        (Role::Client, None) => Err("a client token needs a tenant".into()),
        (Role::Client | Role::Integration, Some(t)) if !crate::dsl::is_valid_name(t) => Err(
            format!("tenant `{t}` is not a valid id: use lowercase letters, digits and `-`"),
        ),
        // An integration token bound to a tenant gives its alerts that tenant.
        (Role::Client | Role::Integration, Some(_)) => Ok(()),
        (_, Some(_)) => Err("only client and integration tokens are bound to a tenant".into()),
        (_, None) => Ok(()),
    }
}

/// Create a token. The secret is in this answer only; the database keeps its hash.
#[utoipa::path(post, path = "/v1/tokens", tag = "admin",
    request_body = NewTokenBody,
    responses(
        (status = 201, description = "Created", body = CreatedToken),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Role and tenant do not fit", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn create_token(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    Body(body): Body<NewTokenBody>,
) -> Result<Response, Problem> {
    who.require(&[Role::Admin])?;
    check_token_request(body.role, body.tenant.as_deref())
        .map_err(|m| Problem::invalid_at("/tenant", m))?;
    let now = state.now_ms();
    let token = mint(body.role, body.tenant, body.name, now)
        .map_err(|e| Problem::unavailable(format!("no randomness available: {e}")))?;
    state
        .store
        .insert_token(&token.row, Some(&audit.at(StatusCode::CREATED)))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: token.secret,
            info: TokenView::of(&token.row),
        }),
    )
        .into_response())
}

/// Every token (without secrets).
#[utoipa::path(get, path = "/v1/tokens", tag = "admin",
    responses(
        (status = 200, description = "Every token", body = TokenList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn list_tokens(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<TokenList>, Problem> {
    who.require(&[Role::Admin])?;
    Ok(Json(TokenList {
        items: state
            .store
            .tokens()
            .await?
            .iter()
            .map(TokenView::of)
            .collect(),
    }))
}

/// Revoke a token; it stops working at once.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "admin",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such live token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn revoke_token(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, Problem> {
    who.require(&[Role::Admin])?;
    if state
        .store
        .revoke_token(&id, state.now_ms(), Some(&audit.at(StatusCode::NO_CONTENT)))
        .await?
    {
        // It stops working at once here (other processes sharing the database: within
        // seconds).
        state.principals.forget_token(&id);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found("token", &id))
    }
}

/// Every tenant.
#[utoipa::path(get, path = "/v1/tenants", tag = "admin",
    responses(
        (status = 200, description = "Every tenant", body = TenantList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn list_tenants(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<TenantList>, Problem> {
    who.require(&[Role::Admin])?;
    Ok(Json(TenantList {
        items: state
            .store
            .tenants()
            .await?
            .iter()
            .map(TenantView::of)
            .collect(),
    }))
}

/// One tenant.
#[utoipa::path(get, path = "/v1/tenants/{id}", tag = "admin",
    params(("id" = String, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "The tenant", body = TenantView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn get_tenant(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams(id): PathParams<String>,
) -> Result<Json<TenantView>, Problem> {
    who.require(&[Role::Admin])?;
    state
        .store
        .tenant(&id)
        .await?
        .map(|t| Json(TenantView::of(&t)))
        .ok_or_else(|| Problem::not_found("tenant", &id))
}

/// Create a tenant or replace its IP allowlist.
#[utoipa::path(put, path = "/v1/tenants/{id}", tag = "admin",
    params(("id" = String, Path, description = "Tenant id")),
    request_body = TenantBody,
    responses(
        (status = 200, description = "Stored", body = TenantView),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid id or CIDR", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn put_tenant(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(id): PathParams<String>,
    Body(body): Body<TenantBody>,
) -> Result<Json<TenantView>, Problem> {
    who.require(&[Role::Admin])?;
    if !crate::dsl::is_valid_name(&id) {
        return Err(Problem::invalid_at(
            "/id",
            "tenant ids are lowercase letters, digits and `-`",
        ));
    }
    let errors: Vec<Violation> = body
        .allowlist
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.parse::<ipnet::IpNet>().is_err() && c.parse::<std::net::IpAddr>().is_err()
        })
        .map(|(i, c)| Violation {
            pointer: format!("/allowlist/{i}"),
            message: format!("`{c}` is not a CIDR (e.g. 10.0.0.0/8) or an IP address"),
        })
        .collect();
    if !errors.is_empty() {
        return Err(Problem::invalid(
            "the allowlist has invalid entries",
            errors,
        ));
    }
    let row = state
        .store
        .put_tenant(
            &id,
            &body.allowlist,
            state.now_ms(),
            Some(&audit.at(StatusCode::OK)),
        )
        .await?;
    state.principals.forget_tenant(&id);
    Ok(Json(TenantView::of(&row)))
}

/// The audit log, newest first: every state-changing call, who made it, from where, and how
/// it was answered.
#[utoipa::path(get, path = "/v1/audit", tag = "admin",
    params(AuditPage),
    responses(
        (status = 200, description = "A page of the audit log", body = AuditList),
        (status = 400, description = "An unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn audit(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(page): Query<AuditPage>,
) -> Result<Json<AuditList>, Problem> {
    who.require(&[Role::Admin])?;
    let limit = page.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Problem::invalid_at("/limit", "must be between 1 and 200"));
    }
    // Entries of refused calls wait in the queue for their batch: written first, so the log
    // shows every call answered before this one.
    state.audit.flush().await;
    let rows = state.store.audit_page(page.before, limit).await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last())
        .flatten()
        .map(|a| a.id.to_string());
    Ok(Json(AuditList {
        items: rows.iter().map(AuditView::of).collect(),
        next_cursor,
    }))
}
