//! Incidents as tickets: their statuses, the fields a responder fills in (impact, type,
//! affected services and tenants, assignee, root cause, contributing factors, action items),
//! the timeline every change is written to, what a client may see of it, the post-incident
//! review (`review`) and the response measures (`measures`).
//!
//! Pure: rows and edits in, changed rows or a located complaint out. The executor applies the
//! changes (it owns open incidents); the API only asks.

pub mod measures;
pub mod review;

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::store::IncidentRow;

/// Nobody has taken it yet.
pub const TRIGGERED: &str = "triggered";
/// Someone is on it.
pub const ACKNOWLEDGED: &str = "acknowledged";
/// It is over (until reopened).
pub const RESOLVED: &str = "resolved";

/// The kinds of incident.
pub const TYPES: &[&str] = &[
    "outage",
    "degradation",
    "security",
    "capacity",
    "change",
    "other",
];

/// The timeline kinds a client sees (besides entries posted as public).
const PUBLIC_KINDS: &[&str] = &["opened", "acknowledged", "resolved", "reopened", "severity"];

/// A ticket's fields beyond its columns, stored as one JSON object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Details {
    /// What the incident does to users, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<String>,
    /// `outage`, `degradation`, `security`, `capacity`, `change` or `other`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Every service affected (the incident's own `service` first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Every tenant affected (the incident's own tenant is always one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    /// The person (of `oncall/`) who owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// Why it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_cause: Option<String>,
    /// What made it possible or worse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contributing_factors: Vec<String>,
    /// What will be done so it does not happen again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub action_items: Vec<ActionItem>,
}

/// One follow-up of a review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionItem {
    /// What.
    pub title: String,
    /// Who.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Whether it is done.
    #[serde(default)]
    pub done: bool,
}

impl Details {
    /// The details of a row (an unreadable object reads as none: rows are written from this
    /// type only).
    pub fn of(row: &IncidentRow) -> Self {
        serde_json::from_value(row.details.clone()).unwrap_or_default()
    }

    /// As stored.
    pub fn to_json(&self) -> Json {
        serde_json::to_value(self).unwrap_or_else(|_| json!({}))
    }
}

/// A change to a ticket's fields, as an operator asks for it: each present field replaces
/// the current value (an empty string or list clears it).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    /// New title.
    #[serde(default)]
    pub title: Option<String>,
    /// New severity, `sev1` (worst) to `sev4`; a raise pages the escalation's level again.
    #[serde(default)]
    pub severity: Option<String>,
    /// New impact.
    #[serde(default)]
    pub impact: Option<String>,
    /// New type.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Every affected service.
    #[serde(default)]
    pub services: Option<Vec<String>>,
    /// Every affected tenant.
    #[serde(default)]
    pub tenants: Option<Vec<String>>,
    /// The owner (a person of `oncall/`; empty to unassign).
    #[serde(default)]
    pub assignee: Option<String>,
    /// The root cause.
    #[serde(default)]
    pub root_cause: Option<String>,
    /// The contributing factors.
    #[serde(default)]
    pub contributing_factors: Option<Vec<String>>,
    /// The action items.
    #[serde(default)]
    pub action_items: Option<Vec<ActionItem>>,
}

/// A rejected edit: the JSON pointer of the field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// `/severity`, `/assignee`, …
    pub pointer: String,
    /// What is wrong and what to do.
    pub message: String,
}

fn refused(pointer: &str, message: impl Into<String>) -> Refused {
    Refused {
        pointer: pointer.into(),
        message: message.into(),
    }
}

/// Longest text a field takes.
const MAX_TEXT: usize = 10_000;
/// Most entries a list field takes.
const MAX_ITEMS: usize = 100;

/// Checks `edit` against the people known (`people`) and the tenants known (`tenants`).
pub fn check(edit: &Edit, people: &[&str], tenants: &[&str]) -> Result<(), Refused> {
    let texts = [
        ("/title", &edit.title),
        ("/impact", &edit.impact),
        ("/root_cause", &edit.root_cause),
    ];
    for (p, t) in texts {
        if t.as_ref().is_some_and(|t| t.len() > MAX_TEXT) {
            return Err(refused(p, format!("is longer than {MAX_TEXT} bytes")));
        }
    }
    if edit.title.as_ref().is_some_and(|t| t.trim().is_empty()) {
        return Err(refused("/title", "must not be empty"));
    }
    if let Some(s) = &edit.severity
        && !crate::dsl::workflow::SEVERITIES.contains(&s.as_str())
    {
        return Err(refused(
            "/severity",
            format!("`{s}` is not one of sev1, sev2, sev3, sev4"),
        ));
    }
    if let Some(k) = &edit.kind
        && !k.is_empty()
        && !TYPES.contains(&k.as_str())
    {
        return Err(refused(
            "/type",
            format!("`{k}` is not one of {}", TYPES.join(", ")),
        ));
    }
    if let Some(a) = &edit.assignee
        && !a.is_empty()
        && !people.contains(&a.as_str())
    {
        return Err(refused(
            "/assignee",
            format!(
                "`{a}` is not a person of oncall/; known: {}",
                people.join(", ")
            ),
        ));
    }
    if let Some(ts) = &edit.tenants
        && let Some(t) = ts.iter().find(|t| !tenants.contains(&t.as_str()))
    {
        return Err(refused("/tenants", format!("tenant `{t}` does not exist")));
    }
    let lists = [
        ("/services", edit.services.as_ref().map(Vec::len)),
        ("/tenants", edit.tenants.as_ref().map(Vec::len)),
        (
            "/contributing_factors",
            edit.contributing_factors.as_ref().map(Vec::len),
        ),
        ("/action_items", edit.action_items.as_ref().map(Vec::len)),
    ];
    for (p, n) in lists {
        if n.is_some_and(|n| n > MAX_ITEMS) {
            return Err(refused(p, format!("has more than {MAX_ITEMS} entries")));
        }
    }
    if let Some(items) = &edit.action_items
        && let Some(i) = items.iter().position(|a| a.title.trim().is_empty())
    {
        return Err(refused(
            &format!("/action_items/{i}/title"),
            "must not be empty",
        ));
    }
    Ok(())
}

/// Applies a checked edit to `row`; returns what changed, in words, for the timeline (empty
/// when nothing did).
pub fn apply(row: &mut IncidentRow, edit: &Edit) -> Vec<String> {
    let mut changed = Vec::new();
    let mut d = Details::of(row);
    let blank = |s: &String| (!s.trim().is_empty()).then(|| s.clone());
    if let Some(t) = &edit.title
        && *t != row.title
    {
        changed.push(format!("title: {t}"));
        row.title.clone_from(t);
    }
    if let Some(s) = &edit.severity
        && *s != row.severity
    {
        changed.push(format!("severity {} → {s}", row.severity));
        row.severity.clone_from(s);
    }
    let mut text = |name: &str, field: &mut Option<String>, new: &Option<String>| {
        if let Some(v) = new {
            let v = blank(v);
            if v != *field {
                changed.push(match &v {
                    Some(v) => format!("{name}: {v}"),
                    None => format!("{name} cleared"),
                });
                *field = v;
            }
        }
    };
    text("impact", &mut d.impact, &edit.impact);
    text("type", &mut d.kind, &edit.kind);
    text("assignee", &mut d.assignee, &edit.assignee);
    text("root cause", &mut d.root_cause, &edit.root_cause);
    let mut list = |name: &str, field: &mut Vec<String>, new: &Option<Vec<String>>| {
        if let Some(v) = new {
            let v: Vec<String> = v.iter().filter_map(&blank).collect();
            if v != *field {
                changed.push(format!("{name}: {}", v.join(", ")));
                *field = v;
            }
        }
    };
    list("services", &mut d.services, &edit.services);
    list("tenants", &mut d.tenants, &edit.tenants);
    list(
        "contributing factors",
        &mut d.contributing_factors,
        &edit.contributing_factors,
    );
    if let Some(items) = &edit.action_items
        && *items != d.action_items
    {
        let open = items.iter().filter(|a| !a.done).count();
        changed.push(format!("action items: {} ({open} open)", items.len()));
        d.action_items.clone_from(items);
    }
    row.details = d.to_json();
    changed
}

/// A timeline entry: when, who, what kind of change, the words, whether clients see it.
pub fn entry(at: i64, by: &str, kind: &str, note: &str, public: bool) -> Json {
    json!({ "at": at, "by": by, "kind": kind, "note": note, "public": public })
}

/// The first entry of a timeline: opened, by whom, at which severity.
pub fn opened(at: i64, by: &str, note: &str, severity: &str) -> Json {
    let mut e = entry(at, by, "opened", note, true);
    e["severity"] = Json::String(severity.to_string());
    e
}

/// An entry recording a change of severity (to `severity`).
pub fn severity_changed(at: i64, by: &str, note: &str, severity: &str) -> Json {
    let mut e = entry(at, by, "severity", note, true);
    e["severity"] = Json::String(severity.to_string());
    e
}

/// An entry's kind; entries written before kinds were recorded are read from their note.
pub fn kind_of(e: &Json) -> &str {
    if let Some(k) = e.get("kind").and_then(Json::as_str) {
        return k;
    }
    match e.get("note").and_then(Json::as_str) {
        Some(n @ ("opened" | "acknowledged" | "resolved")) => n,
        _ => "note",
    }
}

/// Whether a client of the incident's tenant sees the entry: status changes and severity
/// changes, and notes posted as public updates; never internal notes or pages.
pub fn is_public(e: &Json) -> bool {
    e.get("public")
        .and_then(Json::as_bool)
        .unwrap_or_else(|| PUBLIC_KINDS.contains(&kind_of(e)))
}

/// When the incident was first acknowledged, if it was.
pub fn acknowledged_at(row: &IncidentRow) -> Option<i64> {
    entries(row)
        .find(|e| kind_of(e) == ACKNOWLEDGED)
        .and_then(|e| e.get("at").and_then(Json::as_i64))
}

/// When the incident was last resolved, if it is resolved now.
pub fn resolved_at(row: &IncidentRow) -> Option<i64> {
    if row.status != RESOLVED {
        return None;
    }
    entries(row)
        .filter(|e| kind_of(e) == RESOLVED)
        .filter_map(|e| e.get("at").and_then(Json::as_i64))
        .next_back()
}

fn entries(row: &IncidentRow) -> impl DoubleEndedIterator<Item = &Json> {
    row.timeline.as_array().into_iter().flatten()
}

/// Appends a timeline entry.
pub(crate) fn push(row: &mut IncidentRow, e: Json) {
    if let Json::Array(items) = &mut row.timeline {
        items.push(e);
    } else {
        row.timeline = json!([e]);
    }
}

/// What an `incident:` step (or an escalation's page) changes on an incident, as sent to the
/// process holding it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    /// A new title.
    pub title: Option<String>,
    /// A new severity.
    pub severity: Option<String>,
    /// What the change says on the timeline.
    pub note: Option<String>,
    /// Whether it resolves the incident.
    pub resolve: bool,
    /// Timeline entries to add as they are.
    pub entries: Vec<Json>,
}

/// `row` with `change` applied (a timeline entry for each part of it), and whether its
/// severity was raised.
pub fn apply_change(
    mut row: IncidentRow,
    change: &Change,
    by: &str,
    now: i64,
) -> (IncidentRow, bool) {
    let said = |what: &str| change.note.clone().unwrap_or_else(|| what.to_string());
    let mut raised = false;
    if let Some(t) = &change.title {
        row.title = t.clone();
    }
    if let Some(s) = change.severity.clone()
        && s != row.severity
    {
        let what = format!("severity {} → {s}", row.severity);
        raised = s < row.severity;
        push(&mut row, severity_changed(now, by, &said(&what), &s));
        row.severity = s;
    } else if !change.resolve && change.entries.is_empty() {
        push(&mut row, entry(now, by, "note", &said("updated"), false));
    }
    for e in &change.entries {
        push(&mut row, e.clone());
    }
    if change.resolve {
        row.status = RESOLVED.into();
        push(&mut row, entry(now, by, RESOLVED, &said("resolved"), true));
    }
    row.updated_at = now;
    (row, raised)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> IncidentRow {
        IncidentRow {
            id: "inc-1".into(),
            run_id: None,
            tenant: "acme".into(),
            title: "cart down".into(),
            severity: "sev3".into(),
            service: Some("shop".into()),
            status: TRIGGERED.into(),
            timeline: json!([entry(0, "run r", "opened", "opened", true)]),
            details: json!({}),
            created_at: 0,
            updated_at: 0,
            partition: 0,
        }
    }

    #[test]
    fn an_edit_changes_the_fields_it_names_and_says_what_changed() {
        let mut r = row();
        let edit = Edit {
            severity: Some("sev1".into()),
            impact: Some("no checkout in the EU".into()),
            assignee: Some("ann".into()),
            contributing_factors: Some(vec!["no canary".into(), " ".into()]),
            ..Edit::default()
        };
        assert_eq!(check(&edit, &["ann"], &["acme"]), Ok(()));
        let changed = apply(&mut r, &edit);
        assert_eq!(
            changed,
            [
                "severity sev3 → sev1",
                "impact: no checkout in the EU",
                "assignee: ann",
                "contributing factors: no canary"
            ]
        );
        let d = Details::of(&r);
        assert_eq!(d.assignee.as_deref(), Some("ann"));
        assert_eq!(d.contributing_factors, ["no canary"]);
        assert!(
            apply(&mut r, &edit).is_empty(),
            "the same edit again changes nothing"
        );
        let clear = Edit {
            assignee: Some(String::new()),
            ..Edit::default()
        };
        assert_eq!(apply(&mut r, &clear), ["assignee cleared"]);
    }

    #[test]
    fn a_bad_edit_names_its_field() {
        let bad = |e: Edit| check(&e, &["ann"], &["acme"]).map_err(|r| r.pointer);
        let sev = Edit {
            severity: Some("p1".into()),
            ..Edit::default()
        };
        assert_eq!(bad(sev), Err("/severity".into()));
        let who = Edit {
            assignee: Some("bob".into()),
            ..Edit::default()
        };
        assert_eq!(bad(who), Err("/assignee".into()));
        let kind = Edit {
            kind: Some("oops".into()),
            ..Edit::default()
        };
        assert_eq!(bad(kind), Err("/type".into()));
        let tenant = Edit {
            tenants: Some(vec!["globex".into()]),
            ..Edit::default()
        };
        assert_eq!(bad(tenant), Err("/tenants".into()));
        let item = Edit {
            action_items: Some(vec![ActionItem {
                title: " ".into(),
                owner: None,
                done: false,
            }]),
            ..Edit::default()
        };
        assert_eq!(bad(item), Err("/action_items/0/title".into()));
    }

    #[test]
    fn clients_see_status_changes_and_public_updates_only() {
        let seen = |e: Json| is_public(&e);
        assert!(seen(entry(0, "x", "opened", "opened", true)));
        assert!(
            seen(json!({ "at": 0, "by": "x", "note": "resolved" })),
            "an old entry"
        );
        assert!(!seen(
            json!({ "at": 0, "by": "x", "note": "rolled back the deploy" })
        ));
        assert!(!seen(entry(0, "x", "page", "paged ann", false)));
        assert!(seen(entry(0, "x", "note", "we are on it", true)));
    }

    #[test]
    fn the_acknowledgement_counts_once_and_the_last_resolution_counts() {
        let mut r = row();
        r.timeline = json!([
            entry(0, "r", "opened", "opened", true),
            entry(60_000, "lee", "acknowledged", "on it", true),
            entry(120_000, "lee", "resolved", "resolved", true),
            entry(180_000, "lee", "reopened", "back", true),
            entry(200_000, "lee", "acknowledged", "again", true),
            entry(300_000, "lee", "resolved", "resolved", true),
        ]);
        r.status = RESOLVED.into();
        assert_eq!(acknowledged_at(&r), Some(60_000));
        assert_eq!(resolved_at(&r), Some(300_000));
        r.status = TRIGGERED.into();
        assert_eq!(resolved_at(&r), None);
    }
}
