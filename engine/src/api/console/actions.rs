//! What the console's forms do: each checks the session's anti-forgery value, then makes the
//! one API call the form stands for, as the signed-in user, and goes back to the page it came
//! from, or shows the API's refusal and what to do about it.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Console, Signed, enc, layout};

/// A posted form, as its pairs.
type Pairs = Form<Vec<(String, String)>>;

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `?step=` or `?name=` of a run action.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Target {
    step: Option<String>,
    name: Option<String>,
}

/// `POST /runs/{id}/do/{action}`: cancel, pause, resume, retry, rerun, approve, reject, signal.
pub(super) async fn run(
    State(c): State<Console>,
    who: Signed,
    Path((id, action)): Path<(String, String)>,
    Query(t): Query<Target>,
    Form(pairs): Pairs,
) -> Response {
    if let Err(r) = who.check(field(&pairs, "csrf")) {
        return r;
    }
    let run = format!("/v1/runs/{}", enc(&id));
    let (uri, body) = match action.as_str() {
        "cancel" | "pause" | "resume" | "retry" => (format!("{run}/{action}"), None),
        "rerun" => (
            format!("{run}/rerun"),
            Some(json!({"from": field(&pairs, "from").unwrap_or("")})),
        ),
        "approve" | "reject" => (
            format!("{run}/approvals/{}", enc(t.step.as_deref().unwrap_or(""))),
            Some(json!({"approved": action == "approve"})),
        ),
        "signal" => {
            let text = field(&pairs, "payload").unwrap_or("").trim();
            let payload = if text.is_empty() {
                json!({})
            } else {
                match serde_json::from_str::<Value>(text) {
                    Ok(v) => v,
                    Err(e) => {
                        let a = super::Answer {
                            status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                            body: json!({"detail": format!("the signal's payload is not JSON: {e}; fix it and send it again")}),
                        };
                        return layout::failed(&who, "The signal was not sent", &a);
                    }
                }
            };
            (
                format!("{run}/signals/{}", enc(t.name.as_deref().unwrap_or(""))),
                Some(payload),
            )
        }
        _ => return layout::not_found(&who, "action", &action),
    };
    let a = c.call(&who, Method::POST, &uri, body.as_ref()).await;
    if !a.ok() {
        return layout::failed(&who, &format!("The run could not {action}"), &a);
    }
    let to = match action.as_str() {
        "rerun" => a
            .body
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or(&id)
            .to_string(),
        _ => id,
    };
    Redirect::to(&format!("/runs/{}", enc(&to))).into_response()
}

/// `POST /approvals/decide`: approve or reject what `/v1/approvals` listed.
pub(super) async fn decide(State(c): State<Console>, who: Signed, Form(pairs): Pairs) -> Response {
    if let Err(r) = who.check(field(&pairs, "csrf")) {
        return r;
    }
    // `/v1/approvals` says how to decide as `POST <path>`.
    let decide = field(&pairs, "decide").unwrap_or("");
    let url = decide.strip_prefix("POST ").unwrap_or(decide);
    let approved = field(&pairs, "approved") == Some("true");
    let body = if url.starts_with("/v1/requests/") && url.ends_with("/approval") {
        let comment = field(&pairs, "comment")
            .map(str::trim)
            .filter(|c| !c.is_empty());
        match comment {
            Some(text) => json!({"approved": approved, "comment": text}),
            None => json!({"approved": approved}),
        }
    } else if url.starts_with("/v1/runs/") && url.contains("/approvals/") {
        json!({"approved": approved})
    } else {
        return layout::not_found(&who, "approval", url);
    };
    let a = c.call(&who, Method::POST, url, Some(&body)).await;
    if !a.ok() {
        return layout::failed(&who, "The decision was not taken", &a);
    }
    Redirect::to("/approvals").into_response()
}

/// `POST /incidents/{id}/do/{action}`: acknowledge, resolve, reopen, note.
pub(super) async fn incident(
    State(c): State<Console>,
    who: Signed,
    Path((id, action)): Path<(String, String)>,
    Form(pairs): Pairs,
) -> Response {
    if let Err(r) = who.check(field(&pairs, "csrf")) {
        return r;
    }
    let path = match action.as_str() {
        "acknowledge" | "resolve" | "reopen" => action.clone(),
        "note" => "notes".to_string(),
        _ => return layout::not_found(&who, "action", &action),
    };
    // Only a note says whether it is public and what it says; the other actions take none.
    let body = match field(&pairs, "note")
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        Some(note) if action == "note" => {
            json!({"note": note, "public": field(&pairs, "public") == Some("on")})
        }
        _ if action == "note" => json!({"public": field(&pairs, "public") == Some("on")}),
        _ => json!({}),
    };
    let uri = format!("/v1/incidents/{}/{path}", enc(&id));
    let a = c.call(&who, Method::POST, &uri, Some(&body)).await;
    if !a.ok() {
        return layout::failed(&who, &format!("The incident could not {action}"), &a);
    }
    Redirect::to(&format!("/incidents/{}", enc(&id))).into_response()
}

/// `POST /silences`: a silence from the alerts page's form.
pub(super) async fn silence(State(c): State<Console>, who: Signed, Form(pairs): Pairs) -> Response {
    if let Err(r) = who.check(field(&pairs, "csrf")) {
        return r;
    }
    let mut matchers = BTreeMap::new();
    for line in field(&pairs, "matchers").unwrap_or("").lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        // `label=value`, `label!=value`, `label=~re`, `label!~re`: the label ends at the first
        // `=` or `!`; the rest is the matcher as the API takes it.
        let cut = line.find(['=', '!']).unwrap_or(line.len());
        let (label, rest) = line.split_at(cut);
        let matcher = rest
            .strip_prefix('=')
            .filter(|r| !r.starts_with('~'))
            .unwrap_or(rest);
        matchers.insert(label.trim().to_string(), matcher.trim().to_string());
    }
    let body = json!({
        "matchers": matchers,
        "duration": field(&pairs, "duration").unwrap_or("").trim(),
        "comment": field(&pairs, "comment").unwrap_or("").trim(),
    });
    let a = c
        .call(&who, Method::POST, "/v1/silences", Some(&body))
        .await;
    if !a.ok() {
        return layout::failed(&who, "The silence was not made", &a);
    }
    Redirect::to("/alerts").into_response()
}

/// `POST /silences/{id}/delete`: ends a silence.
pub(super) async fn unsilence(
    State(c): State<Console>,
    who: Signed,
    Path(id): Path<String>,
    Form(pairs): Pairs,
) -> Response {
    if let Err(r) = who.check(field(&pairs, "csrf")) {
        return r;
    }
    let a = c
        .call(
            &who,
            Method::DELETE,
            &format!("/v1/silences/{}", enc(&id)),
            None,
        )
        .await;
    if !a.ok() {
        return layout::failed(&who, "The silence was not ended", &a);
    }
    Redirect::to("/alerts").into_response()
}
