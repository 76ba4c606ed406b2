//! Runs in the console: the list with the API's filters, and a run's page — its DAG, units
//! with their attempts and logs, inputs, outputs, retries, and the actions the role allows —
//! with the live part the script refreshes on the run's event stream.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::layout::{answer, badge, button, csrf, items, json, more, opt, page, s, when};
use super::{Console, Signed, dag, enc, operates};

/// `?fragment=1`: only the part a live page refreshes.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Fragment {
    pub(super) fragment: Option<String>,
    pub(super) unit: Option<String>,
    /// The units' page: the API's cursor.
    pub(super) units: Option<String>,
}

/// `GET /v1/runs/{id}`, at the page of units `cursor` names.
fn run_uri(id: &str, cursor: Option<&str>) -> String {
    match cursor {
        Some(c) => format!("/v1/runs/{}?cursor={}", enc(id), enc(c)),
        None => format!("/v1/runs/{}", enc(id)),
    }
}

/// An HTML fragment (what the live script swaps in).
pub(super) fn fragment(markup: Markup) -> Response {
    answer(StatusCode::OK, markup)
}

/// A table of runs.
pub(super) fn run_table(runs: &[Value]) -> Markup {
    if runs.is_empty() {
        return html! { p class="muted" { "None." } };
    }
    html! {
        table {
            thead { tr { th scope="col" { "Run" } th scope="col" { "Workflow" } th scope="col" { "Tenant" } th scope="col" { "Status" } th scope="col" { "Created" } th scope="col" { "Ended" } } }
            tbody {
                @for r in runs {
                    tr {
                        td { a href={ "/runs/" (enc(s(r, "id"))) } { code { (s(r, "id")) } } }
                        td { (s(r, "workflow")) "@" (r.get("version").and_then(Value::as_u64).unwrap_or(0)) }
                        td { (s(r, "tenant")) }
                        td { (run_status(r)) }
                        td { (when(opt(r, "created_at"))) }
                        td { (when(opt(r, "finished_at"))) }
                    }
                }
            }
        }
    }
}

fn run_status(r: &Value) -> Markup {
    html! {
        (badge(s(r, "status")))
        @if opt(r, "paused_at").is_some() { " " (badge("paused")) }
        @if let Some(b) = opt(r, "blocked") { " " span class="badge st-blocked" title=(b) { "blocked" } }
    }
}

/// The run list's filters, as the API takes them.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RunFilters {
    status: Option<String>,
    workflow: Option<String>,
    tenant: Option<String>,
    label: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    cursor: Option<String>,
}

/// `GET /runs`: runs with the API's filters.
pub(super) async fn runs(
    State(c): State<Console>,
    who: Signed,
    Query(f): Query<RunFilters>,
) -> Response {
    let query: Vec<(&str, String)> = vec![
        ("status", f.status.clone().unwrap_or_default()),
        ("workflow", f.workflow.clone().unwrap_or_default()),
        ("tenant", f.tenant.clone().unwrap_or_default()),
        ("label", f.label.clone().unwrap_or_default()),
        ("created_after", f.created_after.clone().unwrap_or_default()),
        (
            "created_before",
            f.created_before.clone().unwrap_or_default(),
        ),
        ("cursor", f.cursor.clone().unwrap_or_default()),
    ];
    let qs: Vec<String> = query
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    let a = c
        .call(
            &who,
            Method::GET,
            &format!("/v1/runs?{}", qs.join("&")),
            None,
        )
        .await;
    let statuses = [
        "",
        "running",
        "paused",
        "blocked",
        "succeeded",
        "failed",
        "cancelled",
    ];
    let current = f.status.as_deref().unwrap_or("");
    let value = |k: &str| {
        query
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let body = html! {
        h1 { "Runs" }
        form method="get" action="/runs" class="filters" role="search" aria-label="Filter runs" {
            div class="field" { label for="f-status" { "Status" }
                select id="f-status" name="status" {
                    @for st in statuses { option value=(st) selected[st == current] { @if st.is_empty() { "any" } @else { (st) } } }
                }
            }
            div class="field" { label for="f-workflow" { "Workflow" } input id="f-workflow" name="workflow" value=(value("workflow")); }
            div class="field" { label for="f-tenant" { "Tenant" } input id="f-tenant" name="tenant" value=(value("tenant")); }
            div class="field" { label for="f-label" { "Label (key=value)" } input id="f-label" name="label" value=(value("label")); }
            div class="field" { label for="f-after" { "Created after (RFC 3339)" } input id="f-after" name="created_after" value=(value("created_after")); }
            div class="field" { label for="f-before" { "Created before" } input id="f-before" name="created_before" value=(value("created_before")); }
            button type="submit" { "Filter" }
        }
        @if a.ok() {
            (run_table(items(&a.body)))
            (more("/runs", &query, &a.body))
        } @else {
            p role="alert" class="error" { (a.detail()) }
        }
    };
    answer(a.status, page(&who, "Runs", "/runs", body))
}

/// `GET /runs/{id}`: a run with its DAG, units and the actions the role allows.
pub(super) async fn run(
    State(c): State<Console>,
    who: Signed,
    Path(id): Path<String>,
    Query(q): Query<Fragment>,
) -> Response {
    let r = match c
        .one(&who, &run_uri(&id, q.units.as_deref()), "run", &id)
        .await
    {
        Ok(r) => r,
        Err(page) => return page,
    };
    let r = &r;
    let unit = match &q.unit {
        Some(key) => {
            let u = c
                .call(
                    &who,
                    Method::GET,
                    &format!("/v1/runs/{}/steps/{}", enc(&id), enc(key)),
                    None,
                )
                .await;
            Some(if u.ok() {
                unit_panel(&u.body)
            } else {
                html! { p role="alert" class="error" { (u.detail()) } }
            })
        }
        None => None,
    };
    let live = live(&c, &who, r, q.units.as_deref());
    let refresh = match &q.units {
        Some(cur) => format!("/runs/{}/live?units={}", enc(&id), enc(cur)),
        None => format!("/runs/{}/live", enc(&id)),
    };
    let body = html! {
        h1 { "Run " code { (id) } }
        dl class="facts" {
            dt { "Workflow" } dd { a href={ "/workflows/" (enc(s(r, "workflow"))) } { (s(r, "workflow")) } "@" (r.get("version").and_then(Value::as_u64).unwrap_or(0)) }
            dt { "Tenant" } dd { (s(r, "tenant")) }
            dt { "Created" } dd { (when(opt(r, "created_at"))) }
            @if let Some(p) = opt(r, "parent_run") { dt { "Parent run" } dd { a href={ "/runs/" (enc(p)) } { code { (p) } } } }
            @if let Some(labels) = r.get("labels").and_then(Value::as_object).filter(|l| !l.is_empty()) {
                dt { "Labels" } dd { @for (k, v) in labels { span class="label" { (k) "=" (v.as_str().unwrap_or("")) } " " } }
            }
        }
        @if operates(&who.who) { (run_actions(&who, &c, r)) }
        div id="live" data-refresh=(refresh) data-events={ "/runs/" (enc(&id)) "/events" } aria-live="polite" {
            (live)
        }
        @if let Some(u) = unit { section id="unit" aria-label="Unit" { (u) } }
        h2 { "Inputs" }
        (json(r.get("inputs").unwrap_or(&Value::Null)))
        @if let Some(retries) = r.get("retries").and_then(Value::as_array) {
            h2 { "Retries" }
            ol class="retries" {
                @for t in retries {
                    li { "Retry " (t.get("n").and_then(Value::as_i64).unwrap_or(0)) " at " (when(opt(t, "at"))) " by " code { (s(t, "by")) } ": " (t.get("units").and_then(Value::as_array).map(|u| u.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                }
            }
        }
    };
    if q.fragment.is_some() {
        return fragment(body);
    }
    answer(
        StatusCode::OK,
        page(&who, &format!("Run {id}"), "/runs", body),
    )
}

/// The part of a run's page that follows the run: its status, DAG, units and outputs.
fn live(c: &Console, who: &Signed, r: &Value, units_cursor: Option<&str>) -> Markup {
    let id = s(r, "id");
    let mut counts: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    for n in r
        .get("counts")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
    {
        counts.entry(s(n, "step").to_string()).or_default().push((
            s(n, "status").to_string(),
            n.get("count").and_then(Value::as_i64).unwrap_or(0),
        ));
    }
    let plan = c.state.plan(
        s(r, "workflow"),
        r.get("version")
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok()),
    );
    let units = r
        .get("steps")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    // A fan-out's counts include its own unit (keyed by the step's id) beside its items: take
    // it out, so the node counts items.
    if let Some(p) = &plan {
        for st in p.steps().iter().filter(|st| st.for_each.is_some()) {
            let own = units
                .iter()
                .find(|u| s(u, "key") == st.id)
                .map(|u| s(u, "status"));
            // (A fan-out over nothing keeps its own unit, so it shows as done, not pending.)
            if let (Some(own), Some(c)) = (own, counts.get_mut(&st.id))
                && c.iter().map(|(_, n)| n).sum::<i64>() > 1
                && let Some(entry) = c.iter_mut().find(|(status, n)| status == own && *n > 0)
            {
                entry.1 -= 1;
            }
        }
    }
    let waiting_approvals: Vec<&str> = plan.as_ref().map_or_else(Vec::new, |p| {
        units
            .iter()
            .filter(|u| s(u, "status") == "waiting")
            .filter(|u| {
                p.steps().iter().any(|st| {
                    st.id == s(u, "step")
                        && matches!(st.kind, crate::plan::PlanKind::Approval { .. })
                })
            })
            .map(|u| s(u, "key"))
            .collect()
    });
    let waiting_signals: Vec<String> = plan.as_ref().map_or_else(Vec::new, |p| {
        units
            .iter()
            .filter(|u| s(u, "status") == "waiting")
            .filter_map(|u| {
                p.steps().iter().find_map(|st| match &st.kind {
                    crate::plan::PlanKind::Signal { name, .. } if st.id == s(u, "step") => {
                        Some(name.clone())
                    }
                    _ => None,
                })
            })
            .collect()
    });
    html! {
        p class="run-status" { "Status: " span id="run-status" data-status=(s(r, "status")) { (run_status(r)) }
            @if let Some(e) = opt(r, "error") { " " span class="error" { (e) } } }
        @for key in &waiting_approvals {
            div class="card" role="group" aria-label={ "Approval " (key) } {
                p { "Step " code { (key) } " waits for an approval." }
                (button(who, &format!("/runs/{}/do/approve?step={}", enc(id), enc(key)), "Approve", "primary"))
                (button(who, &format!("/runs/{}/do/reject?step={}", enc(id), enc(key)), "Reject", "danger"))
            }
        }
        @for name in &waiting_signals {
            form method="post" action={ "/runs/" (enc(id)) "/do/signal?name=" (enc(name)) } class="card" {
                (csrf(who))
                div class="field" {
                    label for={ "sig-" (name) } { "Signal " code { (name) } " payload (JSON, optional)" }
                    textarea id={ "sig-" (name) } name="payload" rows="2" {}
                }
                button type="submit" { "Send signal" }
            }
        }
        @match &plan {
            Some(p) => { figure class="dag-wrap" { (dag::draw(&dag::nodes(p), &counts)) figcaption class="muted" { "Each box is a step; a stacked box is a fan-out with its items counted." } } }
            None => { p class="muted" { "The workflow version of this run does not plan now, so its graph cannot be drawn." } }
        }
        h2 { "Units" }
        table class="units" {
            thead { tr { th scope="col" { "Unit" } th scope="col" { "Status" } th scope="col" { "Attempts" } th scope="col" { "Started" } th scope="col" { "Ended" } th scope="col" { "Error" } } }
            tbody {
                @for u in units {
                    tr id={ "unit-" (s(u, "key")) } {
                        td { a href={ "/runs/" (enc(id)) "?unit=" (enc(s(u, "key"))) "#unit" } { code { (s(u, "key")) } } }
                        td { (badge(s(u, "status"))) }
                        td { (u.get("attempts").and_then(Value::as_u64).unwrap_or(0)) }
                        td { (when(opt(u, "started_at"))) }
                        td { (when(opt(u, "finished_at"))) }
                        td { @if let Some(e) = opt(u, "error") { span class="error" { (e) } } }
                    }
                }
            }
        }
        @if units_cursor.is_some() || r.get("next_cursor").and_then(Value::as_str).is_some() {
            p class="pages" {
                @if units_cursor.is_some() { a href={ "/runs/" (enc(id)) } { "← First units" } " " }
                @if let Some(next) = opt(r, "next_cursor") { a href={ "/runs/" (enc(id)) "?units=" (enc(next)) } rel="next" { "Next units →" } }
            }
        }
        @if !r.get("outputs").is_none_or(Value::is_null) {
            h2 { "Outputs" }
            (json(r.get("outputs").unwrap_or(&Value::Null)))
        }
    }
}

fn run_actions(who: &Signed, c: &Console, r: &Value) -> Markup {
    let id = s(r, "id");
    let status = s(r, "status");
    let over = matches!(status, "succeeded" | "failed" | "cancelled");
    let paused = opt(r, "paused_at").is_some();
    let steps: Vec<String> = c
        .state
        .plan(
            s(r, "workflow"),
            r.get("version")
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok()),
        )
        .map(|p| p.steps().iter().map(|st| st.id.clone()).collect())
        .unwrap_or_default();
    html! {
        div class="actions" role="group" aria-label="Run actions" {
            @if !over {
                @if paused { (button(who, &format!("/runs/{}/do/resume", enc(id)), "Resume", "primary")) }
                @else { (button(who, &format!("/runs/{}/do/pause", enc(id)), "Pause", "")) }
                (button(who, &format!("/runs/{}/do/cancel", enc(id)), "Cancel", "danger"))
            }
            @if status == "failed" { (button(who, &format!("/runs/{}/do/retry", enc(id)), "Retry", "primary")) }
            @if over && !steps.is_empty() {
                form method="post" action={ "/runs/" (enc(id)) "/do/rerun" } class="inline" {
                    (csrf(who))
                    label for="rerun-from" { "Rerun from " }
                    select id="rerun-from" name="from" { @for st in &steps { option value=(st) { (st) } } }
                    " " button type="submit" { "Rerun" }
                }
            }
        }
    }
}

/// One unit's attempts and logs.
fn unit_panel(u: &Value) -> Markup {
    let unit = u.get("unit").unwrap_or(&Value::Null);
    let history = u
        .get("history")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    html! {
        h2 { "Unit " code { (s(unit, "key")) } " " (badge(s(unit, "status"))) }
        @if !unit.get("output").is_none_or(Value::is_null) { h3 { "Output" } (json(unit.get("output").unwrap_or(&Value::Null))) }
        h3 { "Attempts" }
        @if history.is_empty() { p class="muted" { "No attempt yet." } }
        @for a in history {
            details open[history.len() == 1] {
                summary { "Attempt " (a.get("attempt").and_then(Value::as_u64).unwrap_or(0)) ": " (badge(s(a, "outcome"))) " " (when(opt(a, "started_at"))) " → " (when(opt(a, "finished_at"))) }
                @if let Some(e) = opt(a, "error") { p class="error" { (e) } }
                @if !s(a, "log").is_empty() { pre class="log" { (s(a, "log")) } } @else { p class="muted" { "No log." } }
            }
        }
    }
}

/// `GET /runs/{id}/live`: the live part of a run's page.
pub(super) async fn run_live(
    State(c): State<Console>,
    who: Signed,
    Path(id): Path<String>,
    Query(q): Query<Fragment>,
) -> Response {
    let a = c
        .call(&who, Method::GET, &run_uri(&id, q.units.as_deref()), None)
        .await;
    if !a.ok() {
        return (a.status, a.detail()).into_response();
    }
    fragment(live(&c, &who, &a.body, q.units.as_deref()))
}

/// `GET /runs/{id}/events`: the run's event stream, for the live script.
pub(super) async fn run_events(
    State(c): State<Console>,
    who: Signed,
    Path(id): Path<String>,
) -> Response {
    c.raw(
        &who,
        Method::GET,
        &format!("/v1/runs/{}/events", enc(&id)),
        None,
        &[],
    )
    .await
}
