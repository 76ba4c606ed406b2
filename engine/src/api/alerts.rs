//! `GET /v1/alerts`: alerts received, newest first, each linked to the group, run, incident
//! or silence it led to.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use axum::response::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Principal, Role};
use super::problem::Problem;
use super::{AppState, Query};
use crate::store::{AlertFilter, Cursor, LinkRow};

/// Which alerts to list, a page at a time.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AlertQuery {
    /// `firing` or `resolved`.
    pub status: Option<String>,
    /// `alertmanager`, `grafana`, `cloudwatch`, `pagerduty` or `webhook`.
    pub source: Option<String>,
    /// Alerts that went to this rule's groups.
    pub rule: Option<String>,
    /// Alerts of this group.
    pub group: Option<String>,
    /// Only this tenant's (operators).
    pub tenant: Option<String>,
    /// Page size (1–500, default 50).
    pub limit: Option<u32>,
    /// Where the previous page ended.
    pub cursor: Option<String>,
}

/// Where an alert went in one rule's group.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct AlertLinkView {
    /// The rule.
    pub rule: String,
    /// The group.
    pub group: String,
    /// The group's state: `waiting`, `active`, `resolved`, `ended` or `failed`.
    pub group_state: String,
    /// What the alert did there: `waiting`, `started`, `pending`, `signalled`, `counted`,
    /// `dropped`.
    pub outcome: String,
    /// The group's run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The group's incident.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
}

/// An alert as listed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct AlertView {
    /// Its id.
    pub id: String,
    /// Where it came from.
    pub source: String,
    /// Its dedup key.
    pub fingerprint: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// Its severity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// When the condition began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<String>,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    /// Its tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// When it arrived.
    pub received_at: String,
    /// `duplicate`, `silenced`, `unmatched`, `matched` or `ignored`.
    pub outcome: String,
    /// The silence that held it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silence_id: Option<String>,
    /// The notification that carried it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The groups it went to, with their runs and incidents.
    pub links: Vec<AlertLinkView>,
}

/// A page of alerts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct AlertList {
    /// Newest first.
    pub items: Vec<AlertView>,
    /// Pass as `cursor` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Alerts received, newest first (operators; a client sees its tenant's), each with the group,
/// run, incident or silence it led to.
#[utoipa::path(get, path = "/v1/alerts", tag = "alerts",
    params(AlertQuery),
    responses(
        (status = 200, description = "A page of alerts", body = AlertList),
        (status = 400, description = "An unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not read alerts", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit, cursor or status", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<AlertQuery>,
) -> Result<Json<AlertList>, Problem> {
    who.require(&[Role::Client, Role::Operator, Role::Admin])?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Problem::invalid_at("/limit", "must be between 1 and 500"));
    }
    if let Some(s) = &q.status
        && crate::alerts::Status::parse(s).is_none()
    {
        return Err(Problem::invalid_at(
            "/status",
            "must be `firing` or `resolved`",
        ));
    }
    let cursor = q
        .cursor
        .as_deref()
        .map(|c| {
            Cursor::decode(c)
                .ok_or_else(|| Problem::invalid_at("/cursor", "is not a cursor this API gave out"))
        })
        .transpose()?;
    let filter = AlertFilter {
        status: q.status,
        source: q.source,
        rule: q.rule,
        group: q.group,
        tenant: match who.scope() {
            Some(t) => Some(t.to_string()),
            None => q.tenant,
        },
    };
    let rows = state
        .store
        .alerts_page(&filter, cursor.as_ref(), limit)
        .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut links: BTreeMap<String, Vec<LinkRow>> = BTreeMap::new();
    for l in state.store.alert_links(&ids).await? {
        links.entry(l.alert_id.clone()).or_default().push(l);
    }
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last())
        .flatten()
        .map(|a| {
            Cursor {
                created_at: a.received_at,
                id: a.id.clone(),
            }
            .encode()
        });
    let items = rows
        .into_iter()
        .map(|r| AlertView {
            links: links
                .remove(&r.id)
                .unwrap_or_default()
                .into_iter()
                .map(|l| AlertLinkView {
                    rule: l.rule,
                    group: l.group_id,
                    group_state: l.group_state,
                    outcome: l.outcome,
                    run_id: l.run_id,
                    incident_id: l.incident_id,
                })
                .collect(),
            id: r.id,
            source: r.alert.source,
            fingerprint: r.alert.fingerprint,
            status: r.alert.status.as_str().into(),
            severity: r.alert.severity,
            labels: r.alert.labels,
            annotations: r.alert.annotations,
            starts_at: r.alert.starts_at.map(crate::alerts::iso),
            ends_at: r.alert.ends_at.map(crate::alerts::iso),
            tenant: r.alert.tenant,
            received_at: crate::alerts::iso(r.received_at),
            outcome: r.outcome,
            silence_id: r.silence_id,
            event_id: r.event_id,
        })
        .collect();
    Ok(Json(AlertList { items, next_cursor }))
}
