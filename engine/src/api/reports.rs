//! Reports: incident response measures (`GET /v1/reports/incidents`) — MTTA and MTTR per
//! service, team and severity over a window — and their Prometheus series on `/metrics`; the
//! SLA report (`GET /v1/reports/sla`) — per tenant and catalog entry, requests fulfilled
//! within their SLA, breaches, usage and availability against the entry's objective.

use std::fmt::Write as _;

use axum::Extension;
use axum::extract::State;
use axum::response::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Principal, Role};
use super::problem::Problem;
use super::{AppState, Query};
use crate::incidents::measures::{self, Report};
use crate::store::IncidentRow;

/// Window of the report when `from` is not given.
const DEFAULT_WINDOW_MS: i64 = 30 * 24 * 3600 * 1000;

/// Which incidents to measure.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct WindowQuery {
    /// Incidents opened at or after this RFC 3339 instant (default: 30 days before `to`).
    pub from: Option<String>,
    /// Incidents opened before this RFC 3339 instant (default: now).
    pub to: Option<String>,
    /// One tenant's incidents (operators; a client always gets its own).
    pub tenant: Option<String>,
}

/// The measures of a window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct IncidentReport {
    /// Start of the window.
    pub from: String,
    /// End of the window (exclusive).
    pub to: String,
    /// The tenant measured, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The measures.
    #[serde(flatten)]
    pub report: Report,
}

fn instant(pointer: &str, t: &str) -> Result<i64, Problem> {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp_millis())
        .map_err(|e| {
            Problem::invalid_at(
                pointer,
                format!("`{t}` is not an RFC 3339 instant ({e}); e.g. 2026-12-01T00:00:00Z"),
            )
        })
}

/// The teams responsible for an incident: those its service's escalation policy names.
fn teams_of(oncall: &crate::oncall::OnCall, i: &IncidentRow) -> Vec<String> {
    let Some(policy) = i.service.as_deref().and_then(|s| oncall.policy_for(s)) else {
        return Vec::new();
    };
    policy
        .levels
        .iter()
        .flat_map(|l| &l.targets)
        .filter(|(kind, _)| *kind == crate::oncall::policy::TargetKind::Team)
        .map(|(_, id)| id.clone())
        .collect()
}

/// Mean time to acknowledge and to resolve (mean, p50, p90 in seconds) of the incidents
/// opened in the window, overall and per service, team and severity.
#[utoipa::path(get, path = "/v1/reports/incidents", tag = "reports",
    params(WindowQuery),
    responses(
        (status = 200, description = "The measures", body = IncidentReport),
        (status = 400, description = "An unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not read reports", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad instant, or `from` not before `to`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn incidents(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<WindowQuery>,
) -> Result<Json<IncidentReport>, Problem> {
    who.require(&[Role::Client, Role::Operator, Role::Admin])?;
    let (from, to, tenant) = window(&state, &who, &q)?;
    let rows = state
        .store
        .incidents_between(tenant.as_deref(), from, to)
        .await?;
    let oncall = state.oncall();
    Ok(Json(IncidentReport {
        from: crate::alerts::iso(from),
        to: crate::alerts::iso(to),
        tenant,
        report: measures::report(&rows, |i| teams_of(&oncall, i)),
    }))
}

/// The incident series of `/metrics`: incidents not resolved, by status and severity, and the
/// times to acknowledge and to resolve of the last 30 days as summaries.
pub(super) async fn render(state: &AppState, out: &mut String) {
    let now = state.now_ms();
    let rows = match state
        .store
        .incidents_between(None, now - DEFAULT_WINDOW_MS, now + 1)
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!("the incident series of /metrics are missing: {e}");
            let _ = writeln!(
                out,
                "# HELP csmp_incident_series_failing 1 while the incident series cannot be read from the database."
            );
            let _ = writeln!(out, "# TYPE csmp_incident_series_failing gauge");
            let _ = writeln!(out, "csmp_incident_series_failing 1");
            return;
        }
    };
    let _ = writeln!(
        out,
        "# HELP csmp_incidents_unresolved Incidents opened in the last 30 days and not resolved, by status and severity."
    );
    let _ = writeln!(out, "# TYPE csmp_incidents_unresolved gauge");
    for status in [crate::incidents::TRIGGERED, crate::incidents::ACKNOWLEDGED] {
        for sev in crate::dsl::workflow::SEVERITIES {
            let n = rows
                .iter()
                .filter(|r| r.status == status && r.severity == *sev)
                .count();
            let _ = writeln!(
                out,
                "csmp_incidents_unresolved{{status=\"{status}\",severity=\"{sev}\"}} {n}"
            );
        }
    }
    let r = measures::report(&rows, |_| Vec::new());
    for (name, help, d) in [
        (
            "csmp_incident_time_to_acknowledge_seconds",
            "Time from opening to the first acknowledgement of the incidents opened in the last 30 days.",
            &r.overall.mtta,
        ),
        (
            "csmp_incident_time_to_resolve_seconds",
            "Time from opening to the resolution of the incidents opened in the last 30 days.",
            &r.overall.mttr,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} summary");
        for (q, v) in [("0.5", d.p50_s), ("0.9", d.p90_s)] {
            let v = v.map_or_else(|| "NaN".to_string(), |v| v.to_string());
            let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {v}");
        }
        let sum = d.mean_s.unwrap_or(0.0) * d.count as f64;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {}", d.count);
    }
}

/// The SLA report of a window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct SlaReport {
    /// Start of the window.
    pub from: String,
    /// End of the window (exclusive).
    pub to: String,
    /// One row per tenant and catalog entry ordered in the window.
    pub items: Vec<crate::slo::report::Row>,
}

/// The window of a report query: `[from, to)` in ms, and the tenant it is about.
fn window(
    state: &AppState,
    who: &Principal,
    q: &WindowQuery,
) -> Result<(i64, i64, Option<String>), Problem> {
    let to = match &q.to {
        Some(t) => instant("/to", t)?,
        None => state.now_ms(),
    };
    let from = match &q.from {
        Some(t) => instant("/from", t)?,
        None => to.saturating_sub(DEFAULT_WINDOW_MS),
    };
    if from >= to {
        return Err(Problem::invalid_at("/from", "must come before `to`"));
    }
    let tenant = match who.scope() {
        Some(own) => Some(own.to_string()),
        None => q.tenant.clone(),
    };
    Ok((from, to, tenant))
}

/// Per tenant and catalog entry, the requests submitted in the window: how many (usage),
/// fulfilled, fulfilled within their SLA, breached (late, or unfinished past the deadline),
/// failed, still in progress, fulfilment times (p50, p90), and availability against the
/// entry's `slo` objective. JSON, or CSV with `Accept: text/csv`.
#[utoipa::path(get, path = "/v1/reports/sla", tag = "reports",
    params(WindowQuery),
    responses(
        (status = 200, description = "The report", body = SlaReport,
            content(
                (SlaReport = "application/json"),
                (String = "text/csv"),
            )),
        (status = 400, description = "An unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not read reports", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad instant, or `from` not before `to`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn sla(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<WindowQuery>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, Problem> {
    use axum::response::IntoResponse as _;
    who.require(&[Role::Client, Role::Operator, Role::Admin])?;
    let (from, to, tenant) = window(&state, &who, &q)?;
    let facts = state
        .store
        .request_facts(tenant.as_deref(), from, to)
        .await?;
    let catalog = state.catalog();
    let items = crate::slo::report::rows(&facts, state.now_ms(), |id| {
        catalog.get(id).and_then(|e| e.slo)
    });
    let wants_csv = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/csv"));
    if wants_csv {
        let text = crate::slo::report::csv(&items)
            .map_err(|e| Problem::internal(format!("writing the CSV failed: {e}")))?;
        return Ok((
            [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            text,
        )
            .into_response());
    }
    Ok(Json(SlaReport {
        from: crate::alerts::iso(from),
        to: crate::alerts::iso(to),
        items,
    })
    .into_response())
}

/// One objective now: its error budget over its window and the burn-rate rules holding.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct ObjectiveReport {
    /// `slo:<entry>` for a catalog entry's, `slo:check:<name>` for a check's.
    pub id: String,
    /// What it is kept over.
    pub name: String,
    /// The objective.
    pub objective: crate::slo::Objective,
    /// The budget over its window, ending now.
    pub budget: crate::slo::Budget,
    /// The multi-window rules holding now, with their long and short burn rates.
    pub burning: Vec<Burning>,
}

/// A burn-rate rule that holds.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct Burning {
    /// The rule.
    pub rule: crate::slo::BurnRule,
    /// The long window's burn rate.
    pub long_rate: f64,
    /// The short window's.
    pub short_rate: f64,
}

/// Every objective.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct ObjectiveList {
    /// By id.
    pub items: Vec<ObjectiveReport>,
}

/// Every service-level objective — of catalog entries (over their requests) and of checks
/// (over their probes) — with the error budget left over its window and the burn-rate rules
/// holding now (operators).
#[utoipa::path(get, path = "/v1/reports/slo", tag = "reports",
    responses(
        (status = 200, description = "The objectives", body = ObjectiveList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins read objectives", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn slo(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<ObjectiveList>, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    let now = state.now_ms();
    let catalog = state.catalog();
    let longest = catalog
        .values()
        .filter_map(|e| e.slo)
        .chain(state.checks().iter().filter_map(|c| c.slo))
        .map(|o| o.window_ms)
        .max()
        .unwrap_or(0);
    // Requests decided in the window may have been submitted a day before it.
    let lookback = longest.saturating_add(24 * 3600 * 1000);
    let subjects = super::slo_watch::subjects(&state, now, lookback).await?;
    Ok(Json(ObjectiveList {
        items: subjects
            .iter()
            .map(|s| ObjectiveReport {
                id: s.key.clone(),
                name: s.name.clone(),
                objective: s.objective,
                budget: crate::slo::budget(&s.outcomes, &s.objective, now),
                burning: crate::slo::burning(&s.outcomes, &s.objective, now)
                    .into_iter()
                    .map(|(rule, long_rate, short_rate)| Burning {
                        rule,
                        long_rate,
                        short_rate,
                    })
                    .collect(),
            })
            .collect(),
    }))
}
