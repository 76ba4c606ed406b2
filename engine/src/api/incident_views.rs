//! How incidents read over the API: the whole ticket for operators; for a client of its
//! tenant, the public part only — status, severity, title, services, impact and the public
//! entries of the timeline, never internal notes, pages, assignee or review fields.

use serde::Serialize;
use serde_json::Value as Json;
use utoipa::ToSchema;

use super::views::time;
use crate::incidents::{ActionItem, Details, is_public, kind_of};
use crate::store::IncidentRow;

/// One entry of an incident's timeline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct TimelineEntry {
    /// When.
    pub at: String,
    /// Who (a run, a rule, an escalation, or a token id).
    pub by: String,
    /// `opened`, `acknowledged`, `resolved`, `reopened`, `severity`, `note`, `edited`, `page`
    /// or `escalation`.
    pub kind: String,
    /// What happened.
    pub note: String,
    /// Whether the incident's tenant sees it.
    pub public: bool,
}

/// An incident.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct IncidentView {
    /// Its id.
    pub id: String,
    /// The run that opened it (operators only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The tenant it concerns.
    pub tenant: String,
    /// Title.
    pub title: String,
    /// `sev1` (worst) to `sev4`.
    pub severity: String,
    /// The service it was opened on.
    pub service: Option<String>,
    /// `triggered`, `acknowledged` or `resolved`.
    pub status: String,
    /// What it does to users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impact: Option<String>,
    /// Every affected service.
    pub services: Vec<String>,
    /// The ticket's internal fields (operators only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<Ticket>,
    /// What happened, oldest first (a client sees the public entries only).
    pub timeline: Vec<TimelineEntry>,
    /// The alerts and runs it is linked to (operators, one incident at a time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<Links>,
    /// Opened.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// What an incident is linked to.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct Links {
    /// The alerts of the group that opened it, oldest first.
    pub alerts: Vec<String>,
    /// The run that opened it, then the runs that paged its responders.
    pub runs: Vec<String>,
}

impl Links {
    /// The links of `row`, given the alerts that led to it.
    pub(super) fn of(row: &IncidentRow, alerts: Vec<String>) -> Self {
        let mut runs: Vec<String> = row.run_id.iter().cloned().collect();
        for e in row.timeline.as_array().into_iter().flatten() {
            if let Some(r) = e.get("run").and_then(Json::as_str)
                && !runs.iter().any(|x| x == r)
            {
                runs.push(r.to_string());
            }
        }
        Self { alerts, runs }
    }
}

/// The fields of a ticket responders fill in.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct Ticket {
    /// `outage`, `degradation`, `security`, `capacity`, `change` or `other`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Every affected tenant.
    pub tenants: Vec<String>,
    /// The person who owns it.
    pub assignee: Option<String>,
    /// Why it happened.
    pub root_cause: Option<String>,
    /// What made it possible or worse.
    pub contributing_factors: Vec<String>,
    /// What will be done.
    pub action_items: Vec<ActionItem>,
}

impl IncidentView {
    /// The incident as `operator` (the whole ticket) or as a client (the public part).
    pub(super) fn of(i: &IncidentRow, operator: bool) -> Self {
        let d = Details::of(i);
        let mut services = d.services.clone();
        if let Some(s) = &i.service
            && !services.contains(s)
        {
            services.insert(0, s.clone());
        }
        let mut tenants = d.tenants.clone();
        if !tenants.contains(&i.tenant) {
            tenants.insert(0, i.tenant.clone());
        }
        Self {
            id: i.id.clone(),
            run_id: i.run_id.clone().filter(|_| operator),
            tenant: i.tenant.clone(),
            title: i.title.clone(),
            severity: i.severity.clone(),
            service: i.service.clone(),
            status: i.status.clone(),
            impact: d.impact.clone(),
            services,
            ticket: operator.then_some(Ticket {
                kind: d.kind,
                tenants,
                assignee: d.assignee,
                root_cause: d.root_cause,
                contributing_factors: d.contributing_factors,
                action_items: d.action_items,
            }),
            timeline: timeline(&i.timeline, operator),
            links: None,
            created_at: time(i.created_at),
            updated_at: time(i.updated_at),
        }
    }
}

/// The timeline's entries, oldest first: all of them, or only the public ones.
pub(super) fn timeline(v: &Json, all: bool) -> Vec<TimelineEntry> {
    v.as_array()
        .map(|items| {
            items
                .iter()
                .filter(|e| all || is_public(e))
                .map(|e| TimelineEntry {
                    at: time(e.get("at").and_then(Json::as_i64).unwrap_or(0)),
                    by: e.get("by").and_then(Json::as_str).unwrap_or("").into(),
                    kind: kind_of(e).into(),
                    note: e.get("note").and_then(Json::as_str).unwrap_or("").into(),
                    public: is_public(e),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A page of incidents.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct IncidentList {
    /// The incidents, newest first.
    pub items: Vec<IncidentView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// An incident's timeline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct Timeline {
    /// Oldest first.
    pub items: Vec<TimelineEntry>,
}
