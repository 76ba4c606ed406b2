//! `GET /v1/cluster`: the processes sharing the database, what each does, and which
//! partitions each holds — where a run is executed, and whether the work is shared evenly.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::{Principal, Role};
use super::problem::Problem;
use super::views::time;
use axum::Extension;

/// The processes and partitions of the database.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ClusterView {
    /// The process that answered (its lease name).
    pub this: String,
    /// How many shared partitions runs are hashed into.
    pub partitions: usize,
    /// Every process that said it is alive, by name (those gone for longer than a lease
    /// marked so, until they are forgotten).
    pub members: Vec<MemberView>,
    /// Shared partitions no live process holds (their runs wait for a takeover).
    pub unheld: Vec<i64>,
}

/// One process.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct MemberView {
    /// Its lease name (`--owner`).
    pub owner: String,
    /// `all`, `executor`, `api` or `run`.
    pub role: String,
    /// Whether it was heard from within a lease.
    pub alive: bool,
    /// When it joined.
    pub started_at: String,
    /// When it last said it is alive.
    pub heartbeat_at: String,
    /// The partitions it holds.
    pub partitions: Vec<i64>,
}

/// The processes sharing the database and the partitions each holds.
#[utoipa::path(get, path = "/v1/cluster", tag = "admin",
    responses(
        (status = 200, description = "The processes and their partitions", body = ClusterView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Operators and admins only", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn get(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<(StatusCode, Json<ClusterView>), Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    let now = state.now_ms();
    let lease = state.engine.lease_ms();
    let partitions = state.store.partitions().await?;
    let members = state.store.members().await?;
    let live = |heartbeat: i64| heartbeat >= now - lease;
    let holds = |owner: &str| -> Vec<i64> {
        partitions
            .iter()
            .filter(|p| {
                p.owner.as_deref() == Some(owner) && p.lease_until.is_some_and(|u| u >= now)
            })
            .map(|p| p.id)
            .collect()
    };
    let alive: Vec<&str> = members
        .iter()
        .filter(|m| live(m.heartbeat_at))
        .map(|m| m.owner.as_str())
        .collect();
    Ok((
        StatusCode::OK,
        Json(ClusterView {
            this: state.engine.owner().to_string(),
            partitions: partitions.iter().filter(|p| !p.private).count(),
            members: members
                .iter()
                .map(|m| MemberView {
                    owner: m.owner.clone(),
                    role: m.role.clone(),
                    alive: live(m.heartbeat_at),
                    started_at: time(m.started_at),
                    heartbeat_at: time(m.heartbeat_at),
                    partitions: holds(&m.owner),
                })
                .collect(),
            unheld: partitions
                .iter()
                .filter(|p| !p.private)
                .filter(|p| {
                    !p.owner.as_deref().is_some_and(|o| {
                        alive.contains(&o) && p.lease_until.is_some_and(|u| u >= now)
                    })
                })
                .map(|p| p.id)
                .collect(),
        }),
    ))
}
