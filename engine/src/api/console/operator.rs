//! The operator's views: the overview, approvals, incidents, alerts and silences, workflows and
//! the catalog (runs are `runs.rs`). Each reads through the API as the signed-in user; a client
//! reaching one sees what the API lets it see.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::layout::{self, answer, badge, button, csrf, items, json, more, opt, page, s, when};
use super::runs::{Fragment, fragment, run_table};
use super::{Console, Signed, enc, operates, portal};

const DAY_MS: i64 = 24 * 3600 * 1000;

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
    // The breaches as `/metrics` has them (read in the background every 15 s); read now only
    // before the first background read.
    let (breaches, breaches_at) = match state.requests.breaches() {
        Some(b) => b,
        None => (
            state
                .store
                .request_census(now)
                .await
                .map_err(|e| layout::unavailable(&e.to_string()))?
                .sla_breaches,
            now,
        ),
    };
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
                p class="big" { (breaches) }
                p class="muted" { "as of " (when(Some(&layout::iso(breaches_at)))) }
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
    let i = match c
        .one(
            &who,
            &format!("/v1/incidents/{}", enc(&id)),
            "incident",
            &id,
        )
        .await
    {
        Ok(i) => i,
        Err(page) => return page,
    };
    let i = &i;
    let timeline = i
        .get("timeline")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let status = s(i, "status");
    let ticket = i.get("ticket").filter(|t| t.is_object());
    let base = format!("/incidents/{}/do", enc(&id));
    let body = html! {
        h1 { (s(i, "title")) }
        p { (badge(status)) " " span class={ "sev " (s(i, "severity")) } { (s(i, "severity")) } " · " code { (id) } " · opened " (when(opt(i, "created_at"))) }
        dl class="facts" {
            @for key in ["service", "tenant", "impact"] {
                @if let Some(v) = opt(i, key) { dt { (key) } dd { (v) } }
            }
            @for key in ["type", "assignee", "root_cause"] {
                @if let Some(v) = ticket.and_then(|t| opt(t, key)) { dt { (key.replace('_', " ")) } dd { (v) } }
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
            @if let Some(list) = i.get("links").and_then(|l| l.get(key)).and_then(Value::as_array).filter(|l| !l.is_empty()) {
                h2 { (label) }
                ul { @for l in list {
                    @let lid = l.as_str().map(str::to_string).or_else(|| opt(l, "id").map(str::to_string)).unwrap_or_default();
                    li { @if key == "runs" { a href={ "/runs/" (enc(&lid)) } { code { (lid) } } } @else { code { (lid) } } }
                } }
            }
        }
        @for (label, list) in [
            ("Affected services", i.get("services")),
            ("Affected tenants", ticket.and_then(|t| t.get("tenants"))),
            ("Contributing factors", ticket.and_then(|t| t.get("contributing_factors"))),
            ("Action items", ticket.and_then(|t| t.get("action_items"))),
        ] {
            @if let Some(list) = list.and_then(Value::as_array).filter(|l| !l.is_empty()) {
                h2 { (label) }
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
        .raw(
            &who,
            Method::GET,
            &uri,
            None,
            &[("accept", "text/markdown")],
        )
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
    let body = match c
        .one(
            &who,
            &format!("/v1/workflows/{}", enc(&name)),
            "workflow",
            &name,
        )
        .await
    {
        Ok(b) => b,
        Err(page) => return page,
    };
    let mut versions: Vec<&Value> = body
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
            details open[version == body.get("versions").and_then(Value::as_array).map_or(0, |l| l.len() as u64) || reason.is_some()] {
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
