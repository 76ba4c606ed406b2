//! The page every console view sits in: head, navigation for the user's role, sign-out, and
//! the small pieces views share (status badges, times, JSON, error pages).

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use super::{Answer, Signed, operates};

/// The operator's sections, as (path, label).
const OPERATOR_NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/runs", "Runs"),
    ("/approvals", "Approvals"),
    ("/incidents", "Incidents"),
    ("/alerts", "Alerts"),
    ("/workflows", "Workflows"),
    ("/catalog", "Catalog"),
];

/// The client's sections.
const CLIENT_NAV: &[(&str, &str)] = &[
    ("/", "Catalog"),
    ("/requests", "Requests"),
    ("/incidents", "Incidents"),
    ("/portal/status", "Status"),
    ("/usage", "Usage"),
];

fn head(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        meta name="color-scheme" content="light dark";
        title { (title) " · csmp" }
        link rel="stylesheet" href="/assets/console.css";
        script src="/assets/console.js" defer {}
    }
}

/// A whole page for a signed-in user; `active` is the section's path.
pub(super) fn page(who: &Signed, title: &str, active: &str, body: Markup) -> Markup {
    let nav = if operates(&who.who) {
        OPERATOR_NAV
    } else {
        CLIENT_NAV
    };
    let whom = match (&who.who.tenant, operates(&who.who)) {
        (Some(t), false) => format!("client of {t}"),
        _ => who.who.role.as_str().to_string(),
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    a class="brand" href="/" { "csmp" }
                    nav aria-label="Sections" {
                        ul {
                            @for (path, label) in nav {
                                li {
                                    @if *path == active {
                                        a href=(path) aria-current="page" { (label) }
                                    } @else {
                                        a href=(path) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    form method="post" action="/logout" class="signout" {
                        span class="whom" { "Signed in as " (whom) " (" (who.who.token_id) ")" }
                        input type="hidden" name="csrf" value=(who.csrf);
                        button type="submit" class="link" { "Sign out" }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

/// A page outside a session (sign-in, refusals).
pub(super) fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body { main id="main" { (body) } }
        }
    }
}

/// What a console page may load and who may frame it: its own stylesheet and script only.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// An HTML answer with a status, under the console's content security policy.
pub(super) fn answer(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, Html(markup.into_string())).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("cache-control", "no-store"),
    ] {
        headers.insert(name, axum::http::HeaderValue::from_static(value));
    }
    response
}

/// The page for anything the user may not see or that does not exist: the same for both, as
/// the API's 404 is.
pub(super) fn not_found(who: &Signed, what: &str, id: &str) -> Response {
    let body = html! {
        h1 { "Not found" }
        p role="alert" { "There is no " (what) " " code { (id) } " that you can see." }
        p { a href="/" { "Back to the console" } }
    };
    answer(StatusCode::NOT_FOUND, page(who, "Not found", "", body))
}

/// The page for an API call that failed: its status and what the API said to do.
pub(super) fn failed(who: &Signed, title: &str, answer_: &Answer) -> Response {
    let body = html! {
        h1 { (title) }
        p role="alert" class="error" { (answer_.detail()) }
        p { "Go back to correct it, or " a href="/" { "return to the console" } "." }
    };
    answer(answer_.status, page(who, title, "", body))
}

/// 503 when the database cannot be read, with what to do.
pub(super) fn unavailable(detail: &str) -> Response {
    tracing::warn!("a console page cannot be answered: {detail}");
    let body = html! {
        h1 { "The console cannot answer now" }
        p role="alert" { (detail) }
        p { "Try again in a moment; " a href="/readyz" { "/readyz" } " says what stops the service." }
    };
    answer(StatusCode::SERVICE_UNAVAILABLE, bare("Unavailable", body))
}

/// The symbol shown beside a status, so it is never told by colour alone.
pub(super) fn symbol(status: &str) -> &'static str {
    match status {
        "succeeded" | "fulfilled" | "resolved" | "up" | "approved" | "met" => "✓",
        "failed" | "rejected" | "down" | "firing" | "breached" => "✗",
        "running" | "retrying" | "failing" | "cancelling" | "in_progress" => "▶",
        "waiting" | "awaiting_approval" | "paused" | "triggered" | "acknowledged" => "‖",
        "skipped" | "cancelled" | "silenced" => "–",
        _ => "○",
    }
}

/// A status as a badge: symbol and word, coloured by class.
pub(super) fn badge(status: &str) -> Markup {
    html! { span class={ "badge st-" (status) } { span aria-hidden="true" { (symbol(status)) } " " (status.replace('_', " ")) } }
}

/// A time from the API (RFC 3339), shown short with the full value kept.
pub(super) fn when(t: Option<&str>) -> Markup {
    match t {
        Some(t) => {
            let short = t.get(..19).unwrap_or(t).replace('T', " ");
            html! { time datetime=(t) { (short) } }
        }
        None => html! { span class="muted" { "—" } },
    }
}

/// A string field of a JSON object ("" when absent).
pub(super) fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// An optional string field.
pub(super) fn opt<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The `items` of a list answer.
pub(super) fn items(v: &Value) -> &[Value] {
    v.get("items")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// JSON shown pretty, in a block.
pub(super) fn json(v: &Value) -> Markup {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    html! { pre class="json" { (text) } }
}

/// A link to the next page of a list, keeping its filters.
pub(super) fn more(path: &str, query: &[(&str, String)], body: &Value) -> Markup {
    let Some(cursor) = opt(body, "next_cursor") else {
        return html! {};
    };
    let mut q: Vec<String> = query
        .iter()
        .filter(|(k, v)| *k != "cursor" && !v.is_empty())
        .map(|(k, v)| format!("{k}={}", super::enc(v)))
        .collect();
    q.push(format!("cursor={}", super::enc(cursor)));
    html! { p { a href={ (path) "?" (q.join("&")) } rel="next" { "Next page →" } } }
}

/// The hidden anti-forgery field of a form.
pub(super) fn csrf(who: &Signed) -> Markup {
    html! { input type="hidden" name="csrf" value=(who.csrf); }
}

/// A one-button form posting to `action`.
pub(super) fn button(who: &Signed, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form method="post" action=(action) class="inline" {
            (csrf(who))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// Milliseconds since the epoch as RFC 3339, as the API writes times.
pub(super) fn iso(ms: i64) -> String {
    crate::api::views::time(ms)
}
