//! `PUT /v1/secrets/{name}` and `GET /v1/secrets`: the operator's secrets, set encrypted and
//! listed by name. No call ever returns a value.

use axum::Extension;
use axum::extract::State;
use axum::response::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Principal, Role};
use super::problem::{Body, Problem};
use super::views::time;
use super::{AppState, PathParams};
use crate::vault;

/// A secret's value, to set.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SecretBody {
    /// The value. It is stored encrypted and never shown again.
    pub value: String,
}

/// A stored secret, without its value.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct SecretView {
    /// Its name (`secrets.NAME` in templates).
    pub name: String,
    /// Who set it: `cli`, or the admin token's id.
    pub set_by: String,
    /// When.
    pub set_at: String,
    /// The master key that sealed it (first 16 hex digits of its sha256).
    pub key_id: String,
}

/// The stored secrets.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct SecretList {
    /// By name.
    pub items: Vec<SecretView>,
}

/// Every stored secret: name, who set it and when. Never a value.
#[utoipa::path(get, path = "/v1/secrets", tag = "admin",
    responses(
        (status = 200, description = "The stored secrets", body = SecretList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<SecretList>, Problem> {
    who.require(&[Role::Admin])?;
    let items = state
        .store
        .sealed_secrets()
        .await?
        .into_iter()
        .map(|s| SecretView {
            name: s.name,
            set_by: s.set_by,
            set_at: time(s.set_at),
            key_id: s.key_id,
        })
        .collect();
    Ok(Json(SecretList { items }))
}

/// Set a secret: stored encrypted under the master key, handed to the attempts dispatched
/// from now on (to plugins whose grant names it), and masked wherever a plugin lets it out.
/// The answer says who set it and when, never the value.
#[utoipa::path(put, path = "/v1/secrets/{name}", tag = "admin",
    params(("name" = String, Path, description = "Secret name: lower-case letters, digits, `_`")),
    request_body = SecretBody,
    responses(
        (status = 200, description = "Stored", body = SecretView),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name or empty value", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "This process has no master key to seal it with", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn put(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<super::audit::Audit>,
    PathParams(name): PathParams<String>,
    Body(body): Body<SecretBody>,
) -> Result<Json<SecretView>, Problem> {
    who.require(&[Role::Admin])?;
    if !vault::valid_name(&name) {
        return Err(Problem::invalid_at(
            "/name",
            "secret names are lower-case letters, digits and `_` (it is `secrets.NAME` in templates)",
        ));
    }
    if body.value.is_empty() {
        return Err(Problem::invalid_at("/value", "must not be empty"));
    }
    let Some(key) = &state.config.master_key else {
        return Err(Problem::unavailable(
            "this process has no master key; set secrets with `csmp secret set` or start `csmp serve` (which creates one)",
        ));
    };
    let now = state.clock.now_ms();
    let audit = audit.at(axum::http::StatusCode::OK);
    vault::set(
        &state.store,
        key,
        &name,
        &body.value,
        &who.token_id,
        now,
        Some(&audit),
    )
    .await
    .map_err(|e| match e {
        vault::VaultError::Store(s) => Problem::from(s),
        other => Problem::unavailable(other.to_string()),
    })?;
    // The engine hands it to attempts from now on, and masks it, in the service log too.
    state.engine.set_secret(&name, &body.value).await?;
    super::sync::announce(&state);
    Ok(Json(SecretView {
        name,
        set_by: who.token_id.clone(),
        set_at: time(now),
        key_id: key.id().to_string(),
    }))
}
