//! The post-incident review of one incident, in PagerDuty's postmortem sections: overview,
//! what happened, impact (time at each severity, tenants affected), timeline, responders,
//! root cause, contributing factors and action items — as JSON and as Markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value as Json;

use super::{ActionItem, Details, acknowledged_at, kind_of, resolved_at};
use crate::store::IncidentRow;

/// A review.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Review {
    /// Who, what, when.
    pub overview: Overview,
    /// What happened: the impact as written and the notes responders left, in order.
    pub what_happened: Vec<String>,
    /// What it cost.
    pub impact: Impact,
    /// Every entry of the timeline, internal ones included.
    pub timeline: Vec<ReviewEntry>,
    /// Who was paged, and who acted.
    pub responders: Responders,
    /// Why it happened.
    pub root_cause: Option<String>,
    /// What made it possible or worse.
    pub contributing_factors: Vec<String>,
    /// What will be done.
    pub action_items: Vec<ActionItem>,
}

/// A review's overview.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Overview {
    /// The incident.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its severity now.
    pub severity: String,
    /// Its status now.
    pub status: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Every affected service.
    pub services: Vec<String>,
    /// Its owner.
    pub assignee: Option<String>,
    /// Opened (RFC 3339).
    pub opened_at: String,
    /// First acknowledged.
    pub acknowledged_at: Option<String>,
    /// Resolved (last).
    pub resolved_at: Option<String>,
    /// Seconds from opening to the first acknowledgement.
    pub time_to_acknowledge_s: Option<f64>,
    /// Seconds from opening to the resolution.
    pub time_to_resolve_s: Option<f64>,
}

/// What an incident cost.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Impact {
    /// The impact as written.
    pub summary: Option<String>,
    /// Seconds spent at each severity, from opening to resolution (or to now).
    pub seconds_at_severity: BTreeMap<String, f64>,
    /// Every tenant affected.
    pub tenants: Vec<String>,
}

/// One timeline entry of a review.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReviewEntry {
    /// When (RFC 3339).
    pub at: String,
    /// Who.
    pub by: String,
    /// What kind of change.
    pub kind: String,
    /// The words.
    pub note: String,
    /// Whether clients see it.
    pub public: bool,
}

/// Who took part.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Responders {
    /// People paged, in order of their first page.
    pub paged: Vec<String>,
    /// Whoever acknowledged, resolved, reopened, noted or edited it (token ids and runs).
    pub acted: Vec<String>,
}

fn iso(ms: i64) -> String {
    crate::alerts::iso(ms)
}

fn push_once(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

/// The review of `row` as of `now` (ms).
pub fn review(row: &IncidentRow, now: i64) -> Review {
    let d = Details::of(row);
    let entries: Vec<&Json> = row.timeline.as_array().into_iter().flatten().collect();
    let ack = acknowledged_at(row);
    let res = resolved_at(row);
    let secs = |t: i64| (t - row.created_at).max(0) as f64 / 1000.0;
    let mut services = d.services.clone();
    if let Some(s) = &row.service
        && !services.contains(s)
    {
        services.insert(0, s.clone());
    }
    let mut tenants = d.tenants.clone();
    if !tenants.contains(&row.tenant) {
        tenants.insert(0, row.tenant.clone());
    }
    let at_of = |e: &Json| e.get("at").and_then(Json::as_i64).unwrap_or(row.created_at);
    let text = |e: &Json, k: &str| e.get(k).and_then(Json::as_str).unwrap_or("").to_string();
    // Time at each severity: from each recorded severity to the next change, up to the end.
    let end = res.unwrap_or(now).max(row.created_at);
    let mut changes: Vec<(i64, String)> = entries
        .iter()
        .filter_map(|e| {
            let s = e.get("severity").and_then(Json::as_str)?;
            Some((at_of(e), s.to_string()))
        })
        .collect();
    if changes.first().is_none_or(|(t, _)| *t > row.created_at) {
        // Older rows record no severity: the first known one (or today's) held from the start.
        let first = changes
            .first()
            .map_or_else(|| row.severity.clone(), |(_, s)| s.clone());
        changes.insert(0, (row.created_at, first));
    }
    let mut seconds_at_severity: BTreeMap<String, f64> = BTreeMap::new();
    for (i, (t, s)) in changes.iter().enumerate() {
        let until = changes.get(i + 1).map_or(end, |(n, _)| *n).min(end);
        *seconds_at_severity.entry(s.clone()).or_default() += (until - t).max(0) as f64 / 1000.0;
    }
    let mut paged = Vec::new();
    let mut acted = Vec::new();
    let mut what_happened: Vec<String> = d.impact.iter().cloned().collect();
    for e in &entries {
        let by = text(e, "by");
        match kind_of(e) {
            "page" => {
                if let Some(p) = e.get("person").and_then(Json::as_str) {
                    push_once(&mut paged, p);
                }
            }
            "opened" | "escalation" => {}
            kind => {
                if !by.is_empty() && !by.starts_with("escalation ") {
                    push_once(&mut acted, &by);
                }
                if kind == "note" {
                    what_happened.push(text(e, "note"));
                }
            }
        }
    }
    Review {
        overview: Overview {
            id: row.id.clone(),
            title: row.title.clone(),
            severity: row.severity.clone(),
            status: row.status.clone(),
            kind: d.kind.clone(),
            services,
            assignee: d.assignee.clone(),
            opened_at: iso(row.created_at),
            acknowledged_at: ack.map(iso),
            resolved_at: res.map(iso),
            time_to_acknowledge_s: ack.map(secs),
            time_to_resolve_s: res.map(secs),
        },
        what_happened,
        impact: Impact {
            summary: d.impact.clone(),
            seconds_at_severity,
            tenants,
        },
        timeline: entries
            .iter()
            .map(|e| ReviewEntry {
                at: iso(at_of(e)),
                by: text(e, "by"),
                kind: kind_of(e).to_string(),
                note: text(e, "note"),
                public: super::is_public(e),
            })
            .collect(),
        responders: Responders { paged, acted },
        root_cause: d.root_cause.clone(),
        contributing_factors: d.contributing_factors.clone(),
        action_items: d.action_items,
    }
}

/// A duration in words: `4m 30s`, `2h 5m`, `3d 4h`.
fn human(s: f64) -> String {
    let s = s.round() as i64;
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// One line of Markdown table text: pipes and line breaks escaped.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The review as Markdown.
pub fn markdown(r: &Review) -> String {
    let o = &r.overview;
    let mut m = String::new();
    let none = "—".to_string();
    let _ = writeln!(m, "# Post-incident review: {}\n", o.title);
    let _ = writeln!(m, "## Overview\n");
    let _ = writeln!(m, "| | |\n|---|---|");
    let rows = [
        ("Incident", o.id.clone()),
        ("Severity", o.severity.clone()),
        ("Status", o.status.clone()),
        ("Type", o.kind.clone().unwrap_or_else(|| none.clone())),
        (
            "Services",
            if o.services.is_empty() {
                none.clone()
            } else {
                o.services.join(", ")
            },
        ),
        (
            "Assignee",
            o.assignee.clone().unwrap_or_else(|| none.clone()),
        ),
        ("Opened", o.opened_at.clone()),
        (
            "Acknowledged",
            match (&o.acknowledged_at, o.time_to_acknowledge_s) {
                (Some(t), Some(s)) => format!("{t} (after {})", human(s)),
                _ => "not acknowledged".into(),
            },
        ),
        (
            "Resolved",
            match (&o.resolved_at, o.time_to_resolve_s) {
                (Some(t), Some(s)) => format!("{t} (after {})", human(s)),
                _ => "not resolved".into(),
            },
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(m, "| {k} | {} |", cell(&v));
    }
    let _ = writeln!(m, "\n## What happened\n");
    if r.what_happened.is_empty() {
        let _ = writeln!(m, "Nothing was written down.");
    }
    for w in &r.what_happened {
        let _ = writeln!(m, "- {}", cell(w));
    }
    let _ = writeln!(m, "\n## Impact\n");
    if let Some(s) = &r.impact.summary {
        let _ = writeln!(m, "{}\n", cell(s));
    }
    let _ = writeln!(m, "Tenants affected: {}\n", r.impact.tenants.join(", "));
    let _ = writeln!(m, "| Severity | Time |\n|---|---|");
    for (sev, s) in &r.impact.seconds_at_severity {
        let _ = writeln!(m, "| {sev} | {} |", human(*s));
    }
    let _ = writeln!(m, "\n## Timeline\n");
    let _ = writeln!(m, "| When | Who | What | |\n|---|---|---|---|");
    for e in &r.timeline {
        let seen = if e.public { "public" } else { "internal" };
        let _ = writeln!(
            m,
            "| {} | {} | {} | {seen} |",
            e.at,
            cell(&e.by),
            cell(&e.note)
        );
    }
    let _ = writeln!(m, "\n## Responders\n");
    let list = |v: &[String]| {
        if v.is_empty() {
            none.clone()
        } else {
            v.join(", ")
        }
    };
    let _ = writeln!(m, "- Paged: {}", list(&r.responders.paged));
    let _ = writeln!(m, "- Acted: {}", list(&r.responders.acted));
    let _ = writeln!(m, "\n## Root cause\n");
    let _ = writeln!(
        m,
        "{}",
        r.root_cause
            .as_deref()
            .map_or_else(|| "Not yet known.".to_string(), cell)
    );
    let _ = writeln!(m, "\n## Contributing factors\n");
    if r.contributing_factors.is_empty() {
        let _ = writeln!(m, "None recorded.");
    }
    for f in &r.contributing_factors {
        let _ = writeln!(m, "- {}", cell(f));
    }
    let _ = writeln!(m, "\n## Action items\n");
    if r.action_items.is_empty() {
        let _ = writeln!(m, "None recorded.");
    }
    for a in &r.action_items {
        let mark = if a.done { "x" } else { " " };
        let owner = a
            .owner
            .as_deref()
            .map(|o| format!(" ({o})"))
            .unwrap_or_default();
        let _ = writeln!(m, "- [{mark}] {}{owner}", cell(&a.title));
    }
    m
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::incidents::entry;

    #[test]
    fn a_review_counts_time_at_each_severity_and_names_its_responders() {
        let mut sev = entry(
            10 * 60_000,
            "op-1",
            "severity",
            "severity sev3 → sev1",
            true,
        );
        sev["severity"] = json!("sev1");
        let mut opened = entry(0, "run r", "opened", "opened", true);
        opened["severity"] = json!("sev3");
        let mut page = entry(
            0,
            "escalation platform",
            "page",
            "paged ann (slack) at level 1",
            false,
        );
        page["person"] = json!("ann");
        let row = IncidentRow {
            id: "inc-1".into(),
            run_id: Some("r".into()),
            tenant: "acme".into(),
            title: "cart | down".into(),
            severity: "sev1".into(),
            service: Some("shop".into()),
            status: "resolved".into(),
            timeline: json!([
                opened,
                page,
                entry(5 * 60_000, "op-1", "acknowledged", "on it", true),
                sev,
                entry(20 * 60_000, "op-2", "note", "rolled back 1.4.2", false),
                entry(40 * 60_000, "op-1", "resolved", "resolved", true),
            ]),
            details: json!({ "impact": "no checkout", "root_cause": "a bad deploy", "action_items": [{ "title": "add a canary", "owner": "ann" }] }),
            created_at: 0,
            updated_at: 0,
            partition: 0,
        };
        let r = review(&row, 99 * 60_000);
        assert_eq!(r.overview.time_to_acknowledge_s, Some(300.0));
        assert_eq!(r.overview.time_to_resolve_s, Some(2400.0));
        assert_eq!(
            r.impact.seconds_at_severity,
            BTreeMap::from([("sev1".to_string(), 1800.0), ("sev3".to_string(), 600.0)])
        );
        assert_eq!(r.impact.tenants, ["acme"]);
        assert_eq!(r.responders.paged, ["ann"]);
        assert_eq!(r.responders.acted, ["op-1", "op-2"]);
        assert_eq!(r.what_happened, ["no checkout", "rolled back 1.4.2"]);
        let md = markdown(&r);
        assert!(
            md.starts_with("# Post-incident review: cart | down\n"),
            "{md}"
        );
        assert!(
            md.contains("| Acknowledged | 1970-01-01T00:05:00.000Z (after 5m 0s) |"),
            "{md}"
        );
        assert!(md.contains("| sev1 | 30m 0s |"), "{md}");
        assert!(
            md.contains("| op-2 | rolled back 1.4.2 | internal |"),
            "{md}"
        );
        assert!(md.contains("## Root cause\n\na bad deploy\n"), "{md}");
        assert!(md.contains("- [ ] add a canary (ann)"), "{md}");
    }
}
