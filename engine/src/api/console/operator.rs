//! The operator's views: the overview, runs (with a run's DAG, units, attempts and logs),
//! approvals, incidents, alerts and silences, workflows and the catalog. Each reads through
//! the API as the signed-in user; a client reaching one sees what the API lets it see.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::layout::{self, answer, badge, button, csrf, items, json, more, opt, page, s, when};
use super::{Console, Signed, dag, enc, operates, portal};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// `?fragment=1`: only the part a live page refreshes.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Fragment {
    fragment: Option<String>,
    unit: Option<String>,
}

/// An HTML fragment (what the live script swaps in).
fn fragment(markup: Markup) -> Response {
    answer(StatusCode::OK, markup)
}

/// `GET /`: the overview for operators, the portal's catalog for clients.
pub(super) async fn home(
    State(c): State<Console>,
    who: Signed,
    Query(q): Query<Fragment>,
) -> Response {
    if !operates(&who.who) {
        return portal::home(&c, &who).await;
    }
    let body = match overview(&c, &who).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if q.fragment.is_some() {
        return fragment(body);
    }
    let markup = html! {
        h1 { "Overview" }
        div id="overview" data-refresh="/?fragment=1" aria-live="polite" { (body) }
    };
    answer(StatusCode::OK, page(&who, "Overview", "/", markup))
}

async fn overview(c: &Console, who: &Signed) -> Result<Markup, Response> {
    let state = &c.state;
    let now = state.now_ms();
    let since = layout::iso(now - DAY_MS);
    let counts = state
        .store
        .run_counts_since(now - DAY_MS)
        .await
        .map_err(|e| layout::unavailable(&e.to_string()))?;
    let census = state
        .store
        .request_census(now)
        .await
        .map_err(|e| layout::unavailable(&e.to_string()))?;
    let m = state.engine.metrics().snapshot();
    let failed = c
        .call(
            who,
            Method::GET,
            &format!(
                "/v1/runs?status=failed&created_after={}&limit=10",
                enc(&since)
            ),
            None,
        )
        .await;
    let running = c
        .call(who, Method::GET, "/v1/runs?status=running&limit=10", None)
        .await;
    let incidents = c
        .call(who, Method::GET, "/v1/incidents?limit=200", None)
        .await;
    let alerts = c
        .call(who, Method::GET, "/v1/alerts?status=firing&limit=200", None)
        .await;
    let open: Vec<&Value> = items(&incidents.body)
        .iter()
        .filter(|i| s(i, "status") != "resolved")
        .collect();
    let mut by_severity: BTreeMap<&str, usize> = BTreeMap::new();
    for i in &open {
        *by_severity.entry(s(i, "severity")).or_default() += 1;
    }
    let firing = items(&alerts.body);
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    Ok(html! {
        div class="tiles" {
            section class="tile" aria-labelledby="t-runs" {
                h2 id="t-runs" { "Runs, last 24 h" }
                p class="big" { (total) }
                ul class="plain" {
                    @for (status, n) in &counts { li { (badge(status)) " " (n) } }
                }
            }
            section class="tile" aria-labelledby="t-now" {
                h2 id="t-now" { "Running now" }
                p class="big" { (m.runs_active) }
                p { "Queue depth " strong { (m.attempts_queued) } " · attempts on workers " strong { (m.attempts_running) } }
            }
            section class="tile" aria-labelledby="t-sla" {
                h2 id="t-sla" { "SLA breaches" }
                p class="big" { (census.sla_breaches) }
                p { a href="/v1/reports/sla" { "SLA report (JSON)" } }
            }
            section class="tile" aria-labelledby="t-inc" {
                h2 id="t-inc" { "Open incidents" }
                p class="big" { (open.len()) }
                ul class="plain" {
                    @for (sev, n) in &by_severity { li { span class={ "sev " (sev) } { (sev) } " " (n) } }
                }
            }
            section class="tile" aria-labelledby="t-alerts" {
                h2 id="t-alerts" { "Alerts firing" }
                p class="big" { (firing.len()) }
                p { a href="/alerts" { "See alerts" } }
            }
        }
        h2 { "Failures, last 24 h" }
        (run_table(items(&failed.body)))
        h2 { "Running now" }
        (run_table(items(&running.body)))
        @if !open.is_empty() {
            h2 { "Open incidents" }
            (incident_table(&open))
        }
    })
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
    let a = c
        .call(&who, Method::GET, &format!("/v1/runs/{}", enc(&id)), None)
        .await;
    if a.status == StatusCode::NOT_FOUND {
        return layout::not_found(&who, "run", &id);
    }
    if !a.ok() {
        return layout::failed(&who, "The run cannot be shown", &a);
    }
    let r = &a.body;
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
    let live = live(&c, &who, r);
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
        div id="live" data-refresh={ "/runs/" (enc(&id)) "/live" } data-events={ "/runs/" (enc(&id)) "/events" } aria-live="polite" {
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
fn live(c: &Console, who: &Signed, r: &Value) -> Markup {
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
        @if r.get("next_cursor").and_then(Value::as_str).is_some() {
            p class="muted" { "More units than one page: the API pages them (" a href={ "/v1/runs/" (enc(id)) } { "JSON" } ")." }
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
) -> Response {
    let a = c
        .call(&who, Method::GET, &format!("/v1/runs/{}", enc(&id)), None)
        .await;
    if !a.ok() {
        return (a.status, a.detail()).into_response();
    }
    fragment(live(&c, &who, &a.body))
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
        None,
    )
    .await
}

/// `GET /approvals`: approval steps and request gates the user may decide.
pub(super) async fn approvals(State(c): State<Console>, who: Signed) -> Response {
    let a = c.call(&who, Method::GET, "/v1/approvals", None).await;
    if !a.ok() {
        return layout::failed(&who, "Approvals cannot be shown", &a);
    }
    let waiting = items(&a.body);
    let body = html! {
        h1 { "Approvals" }
        @if waiting.is_empty() { p class="muted" { "Nothing waits on you." } }
        @for w in waiting {
            @let what = match (opt(w, "request_id"), opt(w, "run_id")) {
                (Some(req), _) => html! { "Request " code { (req) } " for " strong { (s(w, "catalog_id")) } },
                (None, Some(run)) => html! { "Step " code { (s(w, "step")) } " of run " a href={ "/runs/" (enc(run)) } { code { (run) } } },
                _ => html! { "An approval" },
            };
            article class="card approval" data-decide=(s(w, "decide")) {
                h2 { (what) }
                p { "Tenant " strong { (s(w, "tenant")) } " · waiting since " (when(opt(w, "waiting_since"))) @if let Some(e) = opt(w, "expires_at") { " · expires " (when(Some(e))) } }
                @if let Some(m) = opt(w, "message") { blockquote { (m) } }
                @if let Some(i) = w.get("inputs").filter(|i| !i.is_null()) { details { summary { "Inputs" } (json(i)) } }
                form method="post" action="/approvals/decide" class="decide" {
                    (csrf(&who))
                    input type="hidden" name="decide" value=(s(w, "decide"));
                    @if opt(w, "request_id").is_some() {
                        div class="field" {
                            label for={ "c-" (s(w, "decide")) } { "Comment (optional)" }
                            input id={ "c-" (s(w, "decide")) } name="comment";
                        }
                    }
                    button type="submit" name="approved" value="true" class="primary" { "Approve" }
                    " "
                    button type="submit" name="approved" value="false" class="danger" { "Reject" }
                }
            }
        }
    };
    answer(StatusCode::OK, page(&who, "Approvals", "/approvals", body))
}

fn incident_table(incidents: &[&Value]) -> Markup {
    html! {
        table {
            thead { tr { th scope="col" { "Incident" } th scope="col" { "Title" } th scope="col" { "Severity" } th scope="col" { "Status" } th scope="col" { "Service" } th scope="col" { "Opened" } } }
            tbody {
                @for i in incidents {
                    tr {
                        td { a href={ "/incidents/" (enc(s(i, "id"))) } { code { (s(i, "id")) } } }
                        td { (s(i, "title")) }
                        td { span class={ "sev " (s(i, "severity")) } { (s(i, "severity")) } }
                        td { (badge(s(i, "status"))) }
                        td { (s(i, "service")) }
                        td { (when(opt(i, "created_at"))) }
                    }
                }
            }
        }
    }
}

/// `GET /incidents`.
pub(super) async fn incidents(
    State(c): State<Console>,
    who: Signed,
    Query(p): Query<Cursor>,
) -> Response {
    let uri = match &p.cursor {
        Some(cur) => format!("/v1/incidents?cursor={}", enc(cur)),
        None => "/v1/incidents".to_string(),
    };
    let a = c.call(&who, Method::GET, &uri, None).await;
    if !a.ok() {
        return layout::failed(&who, "Incidents cannot be shown", &a);
    }
    let list: Vec<&Value> = items(&a.body).iter().collect();
    let body = html! {
        h1 { "Incidents" }
        @if list.is_empty() { p class="muted" { "No incident." } } @else { (incident_table(&list)) }
        (more("/incidents", &[], &a.body))
    };
    answer(StatusCode::OK, page(&who, "Incidents", "/incidents", body))
}

/// `?cursor=`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Cursor {
    cursor: Option<String>,
}

/// `GET /incidents/{id}`: the ticket, its timeline, and what the role may do.
pub(super) async fn incident(
    State(c): State<Console>,
    who: Signed,
    Path(id): Path<String>,
) -> Response {
    let a = c
        .call(
            &who,
            Method::GET,
            &format!("/v1/incidents/{}", enc(&id)),
            None,
        )
        .await;
    if a.status == StatusCode::NOT_FOUND {
        return layout::not_found(&who, "incident", &id);
    }
    if !a.ok() {
        return layout::failed(&who, "The incident cannot be shown", &a);
    }
    let i = &a.body;
    let timeline = i
        .get("timeline")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let status = s(i, "status");
    let base = format!("/incidents/{}/do", enc(&id));
    let body = html! {
        h1 { (s(i, "title")) }
        p { (badge(status)) " " span class={ "sev " (s(i, "severity")) } { (s(i, "severity")) } " · " code { (id) } " · opened " (when(opt(i, "created_at"))) }
        dl class="facts" {
            @for key in ["service", "tenant", "impact", "type", "assignee", "root_cause"] {
                @if let Some(v) = opt(i, key) { dt { (key.replace('_', " ")) } dd { (v) } }
            }
        }
        @if operates(&who.who) {
            div class="actions" role="group" aria-label="Incident actions" {
                @if status == "triggered" { (button(&who, &format!("{base}/acknowledge"), "Acknowledge", "primary")) }
                @if status != "resolved" { (button(&who, &format!("{base}/resolve"), "Resolve", "")) }
                @else { (button(&who, &format!("{base}/reopen"), "Reopen", "")) }
                a class="button" href={ "/incidents/" (enc(&id)) "/review" } download={ "review-" (id) ".md" } { "Export the review (Markdown)" }
            }
            form method="post" action={ (base) "/note" } class="card" {
                (csrf(&who))
                div class="field" { label for="note" { "Note" } textarea id="note" name="note" rows="3" required {} }
                div class="field" { label for="public" { input type="checkbox" id="public" name="public"; " Public (the tenant sees it)" } }
                button type="submit" { "Add the note" }
            }
        }
        h2 { "Timeline" }
        ol class="timeline" {
            @for t in timeline {
                li { (when(opt(t, "at"))) " " strong { (s(t, "kind")) } @if let Some(by) = opt(t, "by") { " by " code { (by) } } @if let Some(n) = opt(t, "note") { ": " (n) } @if t.get("public").and_then(Value::as_bool) == Some(true) { " " span class="badge" { "public" } } }
            }
        }
        @for (key, label) in [("alerts", "Linked alerts"), ("runs", "Linked runs")] {
            @if let Some(list) = i.get(key).and_then(Value::as_array).filter(|l| !l.is_empty()) {
                h2 { (label) }
                ul { @for l in list {
                    @let lid = l.as_str().map(str::to_string).or_else(|| opt(l, "id").map(str::to_string)).unwrap_or_default();
                    li { @if key == "runs" { a href={ "/runs/" (enc(&lid)) } { code { (lid) } } } @else { code { (lid) } } }
                } }
            }
        }
        @for key in ["contributing_factors", "action_items", "affected_services", "affected_tenants"] {
            @if let Some(list) = i.get(key).and_then(Value::as_array).filter(|l| !l.is_empty()) {
                h2 { (key.replace('_', " ")) }
                ul { @for l in list { li { (l.as_str().map_or_else(|| l.to_string(), str::to_string)) } } }
            }
        }
    };
    answer(
        StatusCode::OK,
        page(&who, s(i, "title"), "/incidents", body),
    )
}

/// `GET /incidents/{id}/review`: the post-incident review as Markdown, to save.
pub(super) async fn review(
    State(c): State<Console>,
    who: Signed,
    Path(id): Path<String>,
) -> Response {
    let uri = format!("/v1/incidents/{}/review", enc(&id));
    let response = c
        .raw(&who, Method::GET, &uri, None, Some("text/markdown"))
        .await;
    if !response.status().is_success() {
        let a = c.call(&who, Method::GET, &uri, None).await;
        if a.status == StatusCode::NOT_FOUND {
            return layout::not_found(&who, "incident", &id);
        }
        return layout::failed(&who, "The review cannot be exported", &a);
    }
    let mut response = response;
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!(
        "attachment; filename=\"review-{}.md\"",
        enc(&id)
    )) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// `GET /alerts`: alerts (by status) and silences, with a form for a new silence.
pub(super) async fn alerts(
    State(c): State<Console>,
    who: Signed,
    Query(f): Query<AlertFilter>,
) -> Response {
    let status = f.status.clone().unwrap_or_else(|| "firing".into());
    let a = c
        .call(
            &who,
            Method::GET,
            &format!("/v1/alerts?status={}&limit=200", enc(&status)),
            None,
        )
        .await;
    let sil = c.call(&who, Method::GET, "/v1/silences", None).await;
    if !a.ok() {
        return layout::failed(&who, "Alerts cannot be shown", &a);
    }
    let body = html! {
        h1 { "Alerts" }
        form method="get" action="/alerts" class="filters" {
            div class="field" { label for="a-status" { "Status" }
                select id="a-status" name="status" { @for st in ["firing", "resolved", "silenced"] { option value=(st) selected[st == status] { (st) } } }
            }
            button type="submit" { "Show" }
        }
        @if items(&a.body).is_empty() { p class="muted" { "No alert " (status) "." } } @else {
            table {
                thead { tr { th scope="col" { "Alert" } th scope="col" { "Source" } th scope="col" { "Severity" } th scope="col" { "Status" } th scope="col" { "Summary" } th scope="col" { "Since" } } }
                tbody { @for al in items(&a.body) {
                    tr {
                        td { code { (s(al, "id")) } }
                        td { (s(al, "source")) }
                        td { (s(al, "severity")) }
                        td { (badge(s(al, "status"))) }
                        td { (s(al, "summary")) }
                        td { (when(opt(al, "starts_at").or(opt(al, "received_at")))) }
                    }
                } }
            }
        }
        h2 { "Silences" }
        @if sil.ok() {
            @if items(&sil.body).is_empty() { p class="muted" { "No silence." } }
            ul { @for si in items(&sil.body) {
                li {
                    code { (s(si, "id")) } " "
                    (si.get("matchers").map(Value::to_string).unwrap_or_default()) " until " (when(opt(si, "ends_at"))) ": " (s(si, "comment")) " "
                    (button(&who, &format!("/silences/{}/delete", enc(s(si, "id"))), "End", "danger"))
                }
            } }
        } @else { p class="error" role="alert" { (sil.detail()) } }
        form method="post" action="/silences" class="card" {
            h3 { "New silence" }
            (csrf(&who))
            div class="field" { label for="s-matchers" { "Matchers (one label=value per line; value may start with !=, =~ or !~)" } textarea id="s-matchers" name="matchers" rows="3" required {} }
            div class="field" { label for="s-duration" { "For (30m, 2h)" } input id="s-duration" name="duration" value="1h" required; }
            div class="field" { label for="s-comment" { "Why" } input id="s-comment" name="comment" required; }
            button type="submit" { "Silence" }
        }
    };
    answer(StatusCode::OK, page(&who, "Alerts", "/alerts", body))
}

/// `?status=` of the alert list.
#[derive(Debug, Default, Deserialize)]
pub(super) struct AlertFilter {
    status: Option<String>,
}

/// `GET /workflows`.
pub(super) async fn workflows(State(c): State<Console>, who: Signed) -> Response {
    let a = c.call(&who, Method::GET, "/v1/workflows", None).await;
    if !a.ok() {
        return layout::failed(&who, "Workflows cannot be shown", &a);
    }
    let unplanned: Vec<(String, u32, String)> = c
        .state
        .defs
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .every_unplanned()
        .map(|(n, v, u)| (n.to_string(), v, u.reason.clone()))
        .collect();
    let body = html! {
        h1 { "Workflows" }
        table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Latest" } th scope="col" { "Versions" } th scope="col" { "Description" } } }
            tbody { @for w in items(&a.body) {
                tr {
                    td { a href={ "/workflows/" (enc(s(w, "name"))) } { (s(w, "name")) } }
                    td { (w.get("latest_version").and_then(Value::as_u64).unwrap_or(0)) }
                    td { (w.get("versions").map(Value::to_string).unwrap_or_default()) }
                    td { (s(w, "description")) }
                }
            } }
        }
        @if !unplanned.is_empty() {
            h2 { "Versions that do not plan" }
            ul { @for (n, v, reason) in &unplanned { li { strong { (n) "@" (v) } ": " span class="error" { (reason) } } } }
        }
    };
    answer(StatusCode::OK, page(&who, "Workflows", "/workflows", body))
}

/// `GET /workflows/{name}`: every version with its source.
pub(super) async fn workflow(
    State(c): State<Console>,
    who: Signed,
    Path(name): Path<String>,
) -> Response {
    let a = c
        .call(
            &who,
            Method::GET,
            &format!("/v1/workflows/{}", enc(&name)),
            None,
        )
        .await;
    if a.status == StatusCode::NOT_FOUND {
        return layout::not_found(&who, "workflow", &name);
    }
    if !a.ok() {
        return layout::failed(&who, "The workflow cannot be shown", &a);
    }
    let mut versions: Vec<&Value> = a
        .body
        .get("versions")
        .and_then(Value::as_array)
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    versions.reverse();
    let body = html! {
        h1 { "Workflow " (name) }
        p { a href={ "/runs?workflow=" (enc(&name)) } { "Its runs" } }
        @for v in versions {
            @let version = v.get("version").and_then(Value::as_u64).unwrap_or(0);
            @let reason = c.state.defs.read().unwrap_or_else(std::sync::PoisonError::into_inner)
                .every_unplanned().find(|(n, vv, _)| *n == name && u64::from(*vv) == version).map(|(_, _, u)| u.reason.clone());
            details open[version == a.body.get("versions").and_then(Value::as_array).map_or(0, |l| l.len() as u64) || reason.is_some()] {
                summary { "Version " (version) " · " code { (s(v, "sha256").get(..12).unwrap_or("")) } @if reason.is_some() { " " (badge("failed")) " does not plan" } }
                @if let Some(r) = reason { p class="error" role="alert" { (r) } }
                pre class="source" { (s(v, "source")) }
            }
        }
    };
    answer(
        StatusCode::OK,
        page(&who, &format!("Workflow {name}"), "/workflows", body),
    )
}

/// `GET /catalog`: the entries (operators); the portal's catalog for clients.
pub(super) async fn catalog(State(c): State<Console>, who: Signed) -> Response {
    if !operates(&who.who) {
        return portal::home(&c, &who).await;
    }
    let a = c.call(&who, Method::GET, "/v1/catalog", None).await;
    if !a.ok() {
        return layout::failed(&who, "The catalog cannot be shown", &a);
    }
    let body = html! {
        h1 { "Catalog" }
        table {
            thead { tr { th scope="col" { "Entry" } th scope="col" { "Title" } th scope="col" { "Approval" } th scope="col" { "SLA" } th scope="col" { "Inputs" } } }
            tbody { @for e in items(&a.body) {
                tr {
                    td { a href={ "/catalog/" (enc(s(e, "id"))) } { code { (s(e, "id")) } } }
                    td { (s(e, "title")) br; span class="muted" { (s(e, "description")) } }
                    td { (e.get("approval_roles").and_then(Value::as_array).map(|r| r.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).filter(|r| !r.is_empty()).unwrap_or_else(|| "none".into())) }
                    td { @if let Some(secs) = e.get("fulfil_within_seconds").and_then(Value::as_u64) { (secs / 60) " min" } @else { "—" } }
                    td { details { summary { "Schema" } (json(e.get("inputs").unwrap_or(&Value::Null))) } }
                }
            } }
        }
    };
    answer(StatusCode::OK, page(&who, "Catalog", "/catalog", body))
}
