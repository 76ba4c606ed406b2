//! `GET /v1/runs`: runs newest first, narrowed by status, workflow, tenant, labels and time,
//! cursor-paged. A client sees its own tenant's runs only: naming another tenant finds nothing,
//! as for a tenant without runs.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use axum::response::Json;
use serde::Deserialize;

use super::auth::{Principal, Role};
use super::problem::{Problem, Violation};
use super::views::{RunList, RunSummary};
use super::{AppState, Query};
use crate::diag::plural;
use crate::store::{Cursor, RunFilter, RunStatus, StatusFilter};

/// The statuses a list can be narrowed to, as runs show them.
const STATUSES: &str =
    "running, paused, failing, cancelling, blocked, succeeded, failed, cancelled";

/// `?status=&workflow=&tenant=&label=&created_after=&created_before=&limit=&cursor=`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct RunQuery {
    /// Only runs in this status: running, paused, failing, cancelling, blocked, succeeded,
    /// failed, cancelled.
    pub status: Option<String>,
    /// Only runs of this workflow.
    pub workflow: Option<String>,
    /// Only this tenant's runs (a client sees its own only).
    pub tenant: Option<String>,
    /// Only runs carrying these labels: `key=value`, several separated by `,`.
    pub label: Option<String>,
    /// Only runs created at or after this time (RFC 3339).
    pub created_after: Option<String>,
    /// Only runs created before this time (RFC 3339).
    pub created_before: Option<String>,
    /// Items per page, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl RunQuery {
    /// The filter, or every problem with the query at once (pointers name the parameters).
    fn filter(&self, who: &Principal) -> Result<RunFilter, Problem> {
        let mut errors = Vec::new();
        let mut at = |pointer: &str, message: String| {
            errors.push(Violation {
                pointer: pointer.into(),
                message,
            });
        };
        let status = match self.status.as_deref() {
            None => None,
            Some("blocked") => Some(StatusFilter::Blocked),
            Some("paused") => Some(StatusFilter::Paused),
            Some(s) => match RunStatus::named(s) {
                Some(s) => Some(StatusFilter::Is(s)),
                None => {
                    at(
                        "/status",
                        format!("`{s}` is not a run status; use one of: {STATUSES}"),
                    );
                    None
                }
            },
        };
        let mut labels = BTreeMap::new();
        for pair in self.label.iter().flat_map(|l| l.split(',')) {
            match pair.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    labels.insert(k.trim().to_string(), v.trim().to_string());
                }
                _ => at(
                    "/label",
                    format!("`{pair}` is not `key=value` (several are separated by `,`)"),
                ),
            }
        }
        let mut time = |pointer: &str, value: &Option<String>| {
            value
                .as_deref()
                .and_then(|t| match chrono::DateTime::parse_from_rfc3339(t) {
                    Ok(d) => Some(d.timestamp_millis()),
                    Err(e) => {
                        at(
                            pointer,
                            format!(
                                "`{t}` is not an RFC 3339 time ({e}); e.g. 2026-12-01T09:00:00Z"
                            ),
                        );
                        None
                    }
                })
        };
        let created_after = time("/created_after", &self.created_after);
        let created_before = time("/created_before", &self.created_before);
        if !errors.is_empty() {
            return Err(Problem::invalid(
                format!(
                    "the run filter is not valid ({} problem{})",
                    errors.len(),
                    plural(errors.len())
                ),
                errors,
            ));
        }
        let tenant = match who.scope() {
            Some(own) => Some(own.to_string()),
            None => self.tenant.clone(),
        };
        Ok(RunFilter {
            tenant,
            status,
            workflow: self.workflow.clone(),
            labels,
            created_after,
            created_before,
        })
    }
}

/// Runs, newest first: a client's tenant's, or every run for operators; narrowed by the query.
#[utoipa::path(get, path = "/v1/runs", tag = "runs",
    params(RunQuery),
    responses(
        (status = 200, description = "A page of runs", body = RunList),
        (status = 400, description = "An unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not read runs", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad filter, limit or cursor, each with its parameter", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(query): Query<RunQuery>,
) -> Result<Json<RunList>, Problem> {
    who.require(&[Role::Client, Role::Operator, Role::Admin])?;
    let page = super::Page {
        limit: query.limit,
        cursor: query.cursor.clone(),
    };
    let (limit, cursor) = page.read()?;
    let filter = query.filter(&who)?;
    if let (Some(own), Some(asked)) = (who.scope(), &query.tenant)
        && own != asked
    {
        // Another tenant's runs are not there for a client, as for a tenant without runs.
        return Ok(Json(RunList {
            items: Vec::new(),
            next_cursor: None,
        }));
    }
    let rows = state
        .store
        .runs_filtered(&filter, cursor.as_ref(), limit)
        .await?;
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let labels = state.store.labels_of(&ids).await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last())
        .flatten()
        .map(|r| {
            Cursor {
                created_at: r.created_at,
                id: r.id.clone(),
            }
            .encode()
        });
    Ok(Json(RunList {
        items: rows
            .iter()
            .map(|r| RunSummary::labelled(r, labels.get(&r.id)))
            .collect(),
        next_cursor,
    }))
}
