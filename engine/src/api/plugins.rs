//! Plugins: upload a component (validated by loading it into the sandbox), list, get.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};

use super::audit::Audit;
use super::auth::{Principal, Role};
use super::grants::PluginDetail;
use super::problem::{Problem, RawBody};
use super::reach::Reach;
use super::views::{PluginList, PluginUploaded, PluginView};
use super::{AppState, PathParams};
use crate::plugin::LoadError;
use crate::store::{PluginRow, PutWorkflow, hex_sha256};

/// Every loaded plugin version (built-in and uploaded); for a client, those the workflows it
/// may read use.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins",
    responses(
        (status = 200, description = "Every plugin version", body = PluginList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not read this, or address not allowed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<PluginList>, Problem> {
    who.require(&[Role::Client, Role::Operator, Role::Admin])?;
    let reach = Reach::of(&state, &who);
    Ok(Json(PluginList {
        items: state
            .host
            .index()
            .all()
            .filter(|d| reach.plugin(&d.name, &d.version))
            .map(PluginView::of)
            .collect(),
    }))
}

/// One plugin version: its schemas, the capabilities it asks for, what the grants in force give
/// it, and what it asks for that they do not.
#[utoipa::path(get, path = "/v1/plugins/{name}/{version}", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name"), ("version" = String, Path, description = "Exact semver version")),
    responses(
        (status = 200, description = "The plugin", body = PluginDetail),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not read this, or address not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such plugin version", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn get_one(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams((name, version)): PathParams<(String, String)>,
) -> Result<Json<PluginDetail>, Problem> {
    who.require(&[Role::Client, Role::Operator, Role::Admin])?;
    let index = state.host.index();
    // The operator's configuration is not a tenant's to read.
    let grants = (who.role != Role::Client).then(|| state.host.grants());
    let reach = Reach::of(&state, &who);
    index
        .versions(&name)
        .iter()
        .find(|d| d.version.to_string() == version && reach.plugin(&d.name, &d.version))
        .map(|d| Json(PluginDetail::of(d, grants.as_ref())))
        .ok_or_else(|| Problem::not_found("plugin", &format!("{name}@{version}")))
}

/// Upload a plugin component (`application/wasm`). It is compiled, its imports checked
/// against the sandbox, and asked to describe itself; it must declare the name and version of
/// the path. A stored name and version is immutable.
#[utoipa::path(put, path = "/v1/plugins/{name}/{version}", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name"), ("version" = String, Path, description = "Exact semver version")),
    request_body(content = Vec<u8>, description = "The wasm component (sent as `application/wasm` or `application/octet-stream`)", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "The same binary was already stored", body = PluginUploaded),
        (status = 201, description = "Stored and loaded", body = PluginUploaded),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only admins upload plugins", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "This version exists with another binary", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Binary too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/wasm", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a valid plugin (compile, imports, describe, or name/version mismatch)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn upload(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams((name, version)): PathParams<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    who.require(&[Role::Admin])?;
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if !media.is_some_and(|m| m == "application/wasm" || m == "application/octet-stream") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the component with `Content-Type: application/wasm`",
        ));
    }
    if !crate::dsl::is_valid_name(&name) {
        return Err(Problem::invalid_at(
            "/name",
            "plugin names are lowercase letters, digits and `-`",
        ));
    }
    let semver = semver::Version::parse(&version).map_err(|e| {
        Problem::invalid_at(
            "/version",
            format!("`{version}` is not a semver version: {e}"),
        )
    })?;
    if !body.starts_with(b"\0asm") {
        return Err(Problem::invalid_at(
            "",
            "the body is not WebAssembly; build the plugin with `cargo build --release --target wasm32-wasip2`",
        ));
    }
    let host = state.host.clone();
    let wasm = body.clone();
    let (n, v) = (name.clone(), semver.clone());
    let loaded = tokio::task::spawn_blocking(move || host.load_as(&wasm, &n, &v))
        .await
        .map_err(|e| Problem::unavailable(format!("the plugin loader stopped: {e}")))?;
    let descriptor = loaded.map_err(|e| match e {
        LoadError::Conflict { .. } => {
            Problem::conflict(format!("{e}; a published version is immutable"))
        }
        other => Problem::invalid_at("", other.to_string()),
    })?;
    let sha256 = hex_sha256(&body);
    let outcome = state
        .store
        .put_plugin(
            &PluginRow {
                name: descriptor.name.clone(),
                version: descriptor.version.to_string(),
                hash: sha256.clone(),
                wasm: body.to_vec(),
                uploaded_by: who.token_id.clone(),
                created_at: state.now_ms(),
            },
            Some(&|put: &PutWorkflow| audit.entry(put_status(put))),
        )
        .await?;
    let created = outcome == PutWorkflow::Inserted;
    // A workflow version that needed this plugin may plan again, and its runs go on.
    state.replan_unplanned().await;
    let status = put_status(&outcome);
    super::sync::announce(&state);
    Ok((
        status,
        Json(PluginUploaded {
            plugin: PluginDetail::of(&descriptor, Some(&state.host.grants())),
            sha256,
            created,
        }),
    )
        .into_response())
}

/// The answer to an upload: 201 for a new version, 200 for the same one again.
pub(super) fn put_status(put: &PutWorkflow) -> StatusCode {
    match put {
        PutWorkflow::Inserted => StatusCode::CREATED,
        PutWorkflow::Unchanged => StatusCode::OK,
    }
}
