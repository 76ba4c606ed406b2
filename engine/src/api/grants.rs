//! The operator's plugin grants: the ones in force (`GET /v1/grants`), read again from the
//! grants file without a restart (`POST /v1/grants/reload`, and SIGHUP through
//! [`reload_grants`]), and each plugin's requested capabilities beside its grant (the views the
//! plugin handlers show).
//!
//! A reload writes what changed to the audit log — one entry per changed scope — and plans
//! again the workflow versions that did not plan, so runs blocked on a grant go on.

use std::path::PathBuf;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::{Principal, Role};
use super::problem::Problem;
use super::views::CapabilitiesView;
use crate::plugin::{GrantChange, Grants, PluginDescriptor, Review};
use crate::store::AuditRow;

/// What the operator grants one plugin.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct GrantView {
    /// Hosts it may reach (`host`, `host:port`, `*.domain`, `*`).
    pub http_hosts: Vec<String>,
    /// Secrets it may read (names, or `prefix*`).
    pub secrets: Vec<String>,
    /// Its memory cap in MiB (the default's when it has none of its own).
    pub memory_mib: u64,
    /// Its output cap in bytes.
    pub output_bytes: usize,
}

/// A plugin version with what it asks for beside what it is granted.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct PluginDetail {
    /// The plugin.
    #[serde(flatten)]
    pub plugin: super::views::PluginView,
    /// What the grants in force give it (shown to operators and admins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted: Option<GrantView>,
    /// What it asks for (`capabilities`) and is not granted: those calls fail as denied
    /// (shown to operators and admins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<CapabilitiesView>,
}

impl PluginDetail {
    /// The plugin; with its grant when `grants` is given (the caller may see the operator's
    /// configuration).
    pub(super) fn of(d: &PluginDescriptor, grants: Option<&Grants>) -> Self {
        let plugin = super::views::PluginView::of(d);
        let Some(grants) = grants else {
            return Self {
                plugin,
                granted: None,
                missing: None,
            };
        };
        let review = Review::of(&d.name, &d.capabilities, grants);
        Self {
            plugin,
            granted: Some(GrantView {
                memory_mib: review
                    .granted
                    .memory_mib
                    .unwrap_or(grants.defaults.memory_mib),
                output_bytes: review
                    .granted
                    .output_bytes
                    .unwrap_or(grants.defaults.output_bytes),
                http_hosts: review.granted.http_hosts,
                secrets: review.granted.secrets,
            }),
            missing: Some(CapabilitiesView {
                http_hosts: review.missing_http_hosts,
                secrets: review.missing_secrets,
            }),
        }
    }
}

/// The grants in force.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct GrantsView {
    /// The file they were read from; absent when the service runs without one (nothing is
    /// granted).
    pub file: Option<String>,
    /// The grants document (`defaults`, `max_concurrent_steps`, `plugins`).
    #[schema(value_type = Object)]
    pub grants: serde_json::Value,
}

/// One changed scope of a reload.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct GrantChangeView {
    /// `plugins.NAME`, `defaults` or `max_concurrent_steps`.
    pub scope: String,
    /// What changed: `http_hosts +a -b; secrets +c; memory_mib 64 → 128`.
    pub change: String,
}

/// The outcome of a reload.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct GrantsReloaded {
    /// The file read.
    pub file: String,
    /// Every changed scope; empty when the file says what was in force.
    pub changes: Vec<GrantChangeView>,
    /// Stored workflow versions that did not plan and now do (their blocked runs go on).
    pub replanned: usize,
}

/// Who asked for a reload, for the audit log.
#[derive(Debug, Clone)]
pub enum ReloadedBy {
    /// An API caller.
    Caller {
        /// The caller's token id.
        token_id: String,
        /// Its peer address.
        remote: String,
    },
    /// The process got SIGHUP.
    Signal,
}

/// Reads the grants file again and puts it in force: every loaded plugin's policy is
/// replaced, each changed scope is written to the audit log, and unplanned workflow versions
/// are planned again. Changes nothing when the file is missing, invalid, or asks for a larger
/// instance pool than the process started with.
pub async fn reload_grants(
    state: &AppState,
    by: ReloadedBy,
) -> Result<(PathBuf, Vec<GrantChange>, usize), Problem> {
    let Some(file) = state.config.grants_file.clone() else {
        return Err(Problem::conflict(
            "csmp serve was started without a grants file, so there is nothing to reload; restart it with --grants FILE",
        ));
    };
    let read = file.clone();
    let parsed = tokio::task::spawn_blocking(move || Grants::load(&read))
        .await
        .map_err(|e| Problem::unavailable(format!("the grants reader stopped: {e}")))?;
    let changes = parsed
        .and_then(|grants| state.host.reload_grants(grants))
        .map_err(|e| {
            Problem::invalid_at(
                "",
                format!(
                    "{e}; the grants in force are unchanged, fix {} and reload again",
                    file.display()
                ),
            )
        })?;
    let (actor, role, remote) = match &by {
        ReloadedBy::Caller { token_id, remote } => (
            Some(token_id.clone()),
            Some("admin".to_owned()),
            remote.clone(),
        ),
        ReloadedBy::Signal => (None, None, "signal SIGHUP".to_owned()),
    };
    for c in &changes {
        let entry = AuditRow {
            id: 0,
            at: state.now_ms(),
            seq: super::audit::next_seq(),
            actor: actor.clone(),
            role: role.clone(),
            tenant: None,
            method: "GRANT".into(),
            path: format!("grants {}: {}", c.scope, c.change),
            status: 200,
            remote: remote.clone(),
        };
        if let Err(e) = state.store.audit(&entry).await {
            tracing::error!("cannot write the grant change to the audit log: {e}");
        }
        tracing::info!(scope = %c.scope, change = %c.change, "grant changed");
    }
    let replanned = state.replan_unplanned().await;
    tracing::info!(
        file = %file.display(),
        changes = changes.len(),
        replanned,
        "grants reloaded from {}",
        file.display()
    );
    Ok((file, changes, replanned))
}

/// The grants in force, as the service reads them.
#[utoipa::path(get, path = "/v1/grants", tag = "admin",
    responses(
        (status = 200, description = "The grants in force", body = GrantsView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn get(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<GrantsView>, Problem> {
    who.require(&[Role::Admin])?;
    let grants = serde_json::to_value(state.host.grants())
        .map_err(|e| Problem::unavailable(format!("cannot show the grants: {e}")))?;
    Ok(Json(GrantsView {
        file: state
            .config
            .grants_file
            .as_ref()
            .map(|f| f.display().to_string()),
        grants,
    }))
}

/// Read the grants file again and put it in force without a restart (as SIGHUP does). Each
/// changed scope is written to the audit log; workflow versions blocked on a grant plan again.
#[utoipa::path(post, path = "/v1/grants/reload", tag = "admin",
    responses(
        (status = 200, description = "Reloaded", body = GrantsReloaded),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The service runs without a grants file", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The file is invalid or needs a restart; nothing changed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn reload(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
) -> Result<(StatusCode, Json<GrantsReloaded>), Problem> {
    who.require(&[Role::Admin])?;
    let by = ReloadedBy::Caller {
        token_id: who.token_id.clone(),
        remote: peer.to_string(),
    };
    let (file, changes, replanned) = reload_grants(&state, by).await?;
    Ok((
        StatusCode::OK,
        Json(GrantsReloaded {
            file: file.display().to_string(),
            changes: changes
                .into_iter()
                .map(|c| GrantChangeView {
                    scope: c.scope,
                    change: c.change,
                })
                .collect(),
            replanned,
        }),
    ))
}
