//! The client's portal: the entries its tenant may order, an order form generated from each
//! entry's JSON Schema (the API's validation errors shown on their fields), its requests with
//! their SLA and live progress, its status page and its usage. Operators reach the same pages
//! and see what the API shows them.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Datelike as _, TimeZone as _};
use maud::{Markup, html};
use serde_json::{Map, Value, json};

use super::layout::{
    self, answer, badge, csrf, items, json as json_block, more, opt, page, s, when,
};
use super::{Console, Signed, enc, form};

/// The portal's home: what the tenant may order.
pub(super) async fn home(c: &Console, who: &Signed) -> Response {
    let a = c.call(who, Method::GET, "/v1/catalog", None).await;
    if !a.ok() {
        return layout::failed(who, "The catalog cannot be shown", &a);
    }
    let body = html! {
        h1 { "Order a service" }
        @if items(&a.body).is_empty() { p class="muted" { "Nothing is offered to your tenant yet." } }
        div class="cards" {
            @for e in items(&a.body) {
                article class="card entry" {
                    h2 { (s(e, "title")) }
                    p { (s(e, "description")) }
                    p class="muted" {
                        @if e.get("approval_roles").and_then(Value::as_array).is_some_and(|r| !r.is_empty()) { "Needs an approval · " }
                        @if let Some(secs) = e.get("fulfil_within_seconds").and_then(Value::as_u64) { "fulfilled within " (secs / 60) " min" } @else { "no SLA" }
                    }
                    a class="button primary" href={ "/catalog/" (enc(s(e, "id"))) } { "Order " (s(e, "title")) }
                }
            }
        }
    };
    answer(StatusCode::OK, page(who, "Catalog", "/", body))
}

fn order_page(
    who: &Signed,
    entry: &Value,
    values: Option<&Map<String, Value>>,
    errors: &[(String, String)],
    problem: Option<&str>,
) -> Markup {
    let id = s(entry, "id");
    let fields = form::fields(
        entry.get("inputs").unwrap_or(&Value::Null),
        entry.get("defaults").unwrap_or(&Value::Null),
    );
    let body = html! {
        h1 { "Order: " (s(entry, "title")) }
        p { (s(entry, "description")) }
        @if let Some(p) = problem { p class="error" role="alert" id="order-error" { (p) } }
        form method="post" action={ "/catalog/" (enc(id)) } class="card order" aria-describedby=[problem.map(|_| "order-error")] {
            (csrf(who))
            // Sent as the order's Idempotency-Key: a form sent twice places one order.
            @if let Ok(key) = super::session::random_hex() { input type="hidden" name="key" value=(key); }
            @if fields.is_empty() { p class="muted" { "This entry takes no inputs." } }
            (form::render(&fields, values, errors))
            button type="submit" class="primary" { "Place the order" }
        }
    };
    page(who, &format!("Order {}", s(entry, "title")), "/", body)
}

/// `GET /catalog/{id}`: the entry's order form.
pub(super) async fn order_form(
    State(c): State<Console>,
    who: Signed,
    Path(id): Path<String>,
) -> Response {
    match c
        .one(
            &who,
            &format!("/v1/catalog/{}", enc(&id)),
            "catalog entry",
            &id,
        )
        .await
    {
        Ok(entry) => answer(StatusCode::OK, order_page(&who, &entry, None, &[], None)),
        Err(page) => page,
    }
}

/// `POST /catalog/{id}`: places the order; a refusal shows the form again with each error on
/// its field.
pub(super) async fn order(
    State(c): State<Console>,
    who: Signed,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let sent = pairs
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str());
    if let Err(r) = who.check(sent) {
        return r;
    }
    let entry = match c
        .one(
            &who,
            &format!("/v1/catalog/{}", enc(&id)),
            "catalog entry",
            &id,
        )
        .await
    {
        Ok(e) => e,
        Err(page) => return page,
    };
    let fields = form::fields(entry.get("inputs").unwrap_or(&Value::Null), &Value::Null);
    let inputs = form::read(&fields, &pairs);
    let body = json!({"catalog_id": id, "inputs": inputs});
    let key: Vec<(&str, &str)> = pairs
        .iter()
        .find(|(k, _)| k == "key")
        .map(|(_, v)| ("idempotency-key", v.as_str()))
        .into_iter()
        .collect();
    let a = c
        .call_with(&who, Method::POST, "/v1/requests", Some(&body), &key)
        .await;
    if a.ok() {
        let req = s(&a.body, "id");
        return Redirect::to(&format!("/requests/{}", enc(req))).into_response();
    }
    let errors = a.violations();
    let status = a.status;
    let detail = if errors.is_empty() {
        a.detail()
    } else {
        "The order was not placed: fix the fields marked below and send it again.".to_string()
    };
    answer(
        status,
        order_page(&who, &entry, Some(&inputs), &errors, Some(&detail)),
    )
}

fn request_table(list: &[Value]) -> Markup {
    html! {
        table {
            thead { tr { th scope="col" { "Request" } th scope="col" { "Entry" } th scope="col" { "Status" } th scope="col" { "SLA deadline" } th scope="col" { "Run" } th scope="col" { "Placed" } } }
            tbody { @for r in list {
                tr {
                    td { a href={ "/requests/" (enc(s(r, "id"))) } { code { (s(r, "id")) } } }
                    td { (s(r, "catalog_id")) }
                    td { (badge(s(r, "status"))) }
                    td { (sla(r)) }
                    td { @if let Some(run) = opt(r, "run_id") { a href={ "/runs/" (enc(run)) } { code { (run) } } } @else { span class="muted" { "—" } } }
                    td { (when(opt(r, "created_at"))) }
                }
            } }
        }
    }
}

fn sla(r: &Value) -> Markup {
    match r.get("sla") {
        Some(sla) if !sla.is_null() => html! {
            (when(opt(sla, "deadline")))
            @if sla.get("breached").and_then(Value::as_bool) == Some(true) { " " (badge("breached")) }
        },
        _ => html! { span class="muted" { "none" } },
    }
}

/// `?fragment=1&cursor=`.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct ListQuery {
    fragment: Option<String>,
    cursor: Option<String>,
}

/// `GET /requests`: the tenant's requests, refreshed while the page is open.
pub(super) async fn requests(
    State(c): State<Console>,
    who: Signed,
    Query(q): Query<ListQuery>,
) -> Response {
    let uri = match &q.cursor {
        Some(cur) => format!("/v1/requests?cursor={}", enc(cur)),
        None => "/v1/requests".to_string(),
    };
    let a = c.call(&who, Method::GET, &uri, None).await;
    if !a.ok() {
        return layout::failed(&who, "Requests cannot be shown", &a);
    }
    let list = html! {
        @if items(&a.body).is_empty() { p class="muted" { "No request yet: " a href="/" { "order something" } "." } }
        @else { (request_table(items(&a.body))) }
        (more("/requests", &[], &a.body))
    };
    if q.fragment.is_some() {
        return answer(StatusCode::OK, list);
    }
    let refresh = match &q.cursor {
        Some(cur) => format!("/requests?fragment=1&cursor={}", enc(cur)),
        None => "/requests?fragment=1".to_string(),
    };
    let body = html! {
        h1 { "Requests" }
        div id="requests" data-refresh=(refresh) aria-live="polite" { (list) }
    };
    answer(StatusCode::OK, page(&who, "Requests", "/requests", body))
}

/// `GET /requests/{id}`: one request, with its run's progress.
pub(super) async fn request(
    State(c): State<Console>,
    who: Signed,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let r = match c
        .one(&who, &format!("/v1/requests/{}", enc(&id)), "request", &id)
        .await
    {
        Ok(r) => r,
        Err(page) => return page,
    };
    let r = &r;
    let facts = html! {
        p { "Status: " span id="request-status" data-status=(s(r, "status")) { (badge(s(r, "status"))) } }
        dl class="facts" {
            dt { "Entry" } dd { (s(r, "catalog_id")) }
            dt { "Tenant" } dd { (s(r, "tenant")) }
            dt { "Placed" } dd { (when(opt(r, "created_at"))) }
            dt { "SLA deadline" } dd { (sla(r)) }
            @if let Some(ap) = r.get("approval").filter(|a| !a.is_null()) {
                dt { "Approval" } dd {
                    "by " (ap.get("roles").and_then(Value::as_array).map(|r| r.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" or ")).unwrap_or_default())
                    @if let Some(by) = opt(ap, "decided_by") { " · decided by " code { (by) } " " (when(opt(ap, "decided_at"))) }
                    @if let Some(cm) = opt(ap, "comment") { ": " (cm) }
                }
            }
            @if let Some(run) = opt(r, "run_id") { dt { "Run" } dd { a href={ "/runs/" (enc(run)) } id="request-run" { code { (run) } } " (its progress, live)" } }
            @if let Some(f) = opt(r, "finished_at") { dt { "Finished" } dd { (when(Some(f))) } }
        }
    };
    if q.fragment.is_some() {
        return answer(StatusCode::OK, facts);
    }
    let body = html! {
        h1 { "Request " code { (id) } }
        div id="request" data-refresh={ "/requests/" (enc(&id)) "?fragment=1" } aria-live="polite" { (facts) }
        h2 { "Inputs" }
        (json_block(r.get("inputs").unwrap_or(&Value::Null)))
    };
    answer(
        StatusCode::OK,
        page(&who, &format!("Request {id}"), "/requests", body),
    )
}

/// `GET /usage`: requests per entry per month, fulfilment times and the SLA met, for the last
/// three calendar months.
pub(super) async fn usage(State(c): State<Console>, who: Signed) -> Response {
    let now = chrono::Utc
        .timestamp_millis_opt(c.state.now_ms())
        .single()
        .unwrap_or_else(chrono::Utc::now);
    let mut months = Vec::new();
    let (mut y, mut m) = (now.year(), now.month());
    for _ in 0..3 {
        let from = chrono::Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single();
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        let to = chrono::Utc.with_ymd_and_hms(ny, nm, 1, 0, 0, 0).single();
        if let (Some(from), Some(to)) = (from, to) {
            months.push((format!("{y}-{m:02}"), from, to.min(now)));
        }
        (y, m) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    }
    let mut sections = Vec::new();
    for (label, from, to) in &months {
        if to <= from {
            continue;
        }
        let uri = format!(
            "/v1/reports/sla?from={}&to={}",
            enc(&from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            enc(&to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        );
        let a = c.call(&who, Method::GET, &uri, None).await;
        if !a.ok() {
            return layout::failed(&who, "Usage cannot be shown", &a);
        }
        sections.push((label.clone(), a.body));
    }
    let secs = |v: Option<f64>| v.map_or_else(|| "—".to_string(), |s| format!("{s:.0} s"));
    let body = html! {
        h1 { "Usage" }
        @for (label, report) in &sections {
            section aria-labelledby={ "m-" (label) } {
                h2 id={ "m-" (label) } { (label) }
                @if items(report).is_empty() { p class="muted" { "No request this month." } } @else {
                    table {
                        thead { tr { th scope="col" { "Entry" } th scope="col" { "Tenant" } th scope="col" { "Requests" } th scope="col" { "Fulfilled" } th scope="col" { "Within SLA" } th scope="col" { "Breached" } th scope="col" { "Fulfilment p50" } th scope="col" { "p90" } th scope="col" { "SLA met" } } }
                        tbody { @for row in items(report) {
                            tr {
                                td { (s(row, "catalog_id")) }
                                td { (s(row, "tenant")) }
                                @for k in ["requests", "fulfilled", "within_sla", "breached"] { td { (row.get(k).and_then(Value::as_u64).unwrap_or(0)) } }
                                td { (secs(row.get("fulfilment_p50_s").and_then(Value::as_f64))) }
                                td { (secs(row.get("fulfilment_p90_s").and_then(Value::as_f64))) }
                                td { @match row.get("met").and_then(Value::as_bool) { Some(true) => { (badge("met")) }, Some(false) => { (badge("breached")) }, None => { span class="muted" { "no objective" } } } }
                            }
                        } }
                    }
                }
            }
        }
    };
    answer(StatusCode::OK, page(&who, "Usage", "/usage", body))
}

/// `GET /portal/status`: the tenant's status page (the provider's, for operators).
pub(super) async fn status(State(c): State<Console>, who: Signed) -> Response {
    let tenant = who.who.scope().map(str::to_string);
    let p = match crate::api::status::page(&c.state, tenant.as_deref()).await {
        Ok(p) => p,
        Err(e) => return layout::unavailable(&e.detail),
    };
    let title = match &p.tenant {
        Some(t) => format!("Status for {t}"),
        None => "Service status".to_string(),
    };
    answer(
        StatusCode::OK,
        page(
            &who,
            &title,
            "/portal/status",
            crate::api::status::body(&p, &title),
        ),
    )
}
