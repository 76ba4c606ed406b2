//! Signing in and out of the console, and the session every page and form needs.
//!
//! Signing in takes a token (the API's, from `csmp token create`); the browser gets a random
//! session id in an HttpOnly, SameSite=Strict cookie, and the database keeps only the id's
//! sha256 with the token's hash. Each session has an anti-forgery value its forms carry in a
//! hidden field; a form posted without it changes nothing. The sign-in form itself is guarded
//! by a double-submit cookie.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use super::{Console, Peer, layout};
use crate::api::auth::{Principal, Role, authenticate_hash};
use crate::store::{SessionRow, hex_sha256};

/// The session cookie.
const COOKIE: &str = "csmp_session";
/// The sign-in form's double-submit cookie.
const LOGIN_COOKIE: &str = "csmp_login";
/// How long a session lasts.
const LIFETIME_MS: i64 = 12 * 3600 * 1000;

/// A signed-in user, as every console handler sees it.
#[derive(Debug, Clone)]
pub(in crate::api) struct Signed {
    /// Who (the token's role and tenant).
    pub who: Principal,
    /// sha256 of the token, for the calls made as this user.
    pub token_hash: String,
    /// What this session's forms carry.
    pub csrf: String,
    /// sha256 of the cookie, to end the session.
    id_hash: String,
    /// The browser's address, for the audit log and tenant allowlists.
    pub peer: std::net::SocketAddr,
}

impl Signed {
    /// `Err` (403, with a page saying what to do) unless `sent` is this session's value.
    pub(crate) fn check(&self, sent: Option<&str>) -> Result<(), Response> {
        let good = sent.is_some_and(|s| bool::from(s.as_bytes().ct_eq(self.csrf.as_bytes())));
        if good { Ok(()) } else { Err(forged()) }
    }
}

/// The answer to a form without its anti-forgery value.
fn forged() -> Response {
    let body = html! {
        h1 { "Form refused" }
        p role="alert" { "This form did not carry the anti-forgery token of your session, so nothing was changed. Go back, reload the page and send the form again." }
        p { a href="/" { "Back to the console" } }
    };
    layout::answer(StatusCode::FORBIDDEN, layout::bare("Form refused", body))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub(super) fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Where to go after signing in: a path of this site only.
fn local(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

impl FromRequestParts<Console> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        let peer = parts
            .extensions
            .get::<Peer>()
            .map_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)), |c| c.0);
        let next = parts
            .uri
            .path_and_query()
            .map_or("/", axum::http::uri::PathAndQuery::as_str);
        let to_login =
            || Redirect::to(&format!("/login?next={}", super::enc(next))).into_response();
        let Some(id) = cookie(&parts.headers, COOKIE) else {
            return Err(to_login());
        };
        let id_hash = hex_sha256(id.as_bytes());
        let state = &console.state;
        let row = match state.store.session(&id_hash, state.now_ms()).await {
            Ok(Some(row)) => row,
            Ok(None) => return Err(to_login()),
            Err(e) => return Err(layout::unavailable(&e.to_string())),
        };
        match authenticate_hash(
            &state.store,
            &state.principals,
            row.token_hash.clone(),
            peer.ip(),
        )
        .await
        {
            Ok(who) => Ok(Signed {
                who,
                token_hash: row.token_hash,
                csrf: row.csrf,
                id_hash,
                peer,
            }),
            // A revoked token, or a tenant that no longer allows this address: sign in again.
            Err((problem, _)) if problem.status == 401 || problem.status == 403 => Err(to_login()),
            Err((problem, _)) => Err(layout::unavailable(&problem.detail)),
        }
    }
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
pub(super) struct Login {
    token: String,
    csrf: Option<String>,
    next: Option<String>,
}

/// `?next=` of the sign-in page.
#[derive(Debug, Deserialize)]
pub(super) struct Next {
    next: Option<String>,
}

fn login_page(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let csrf = match random_hex() {
        Ok(c) => c,
        Err(e) => return layout::unavailable(&format!("no randomness for a sign-in form: {e}")),
    };
    let body = html! {
        h1 { "Sign in to csmp" }
        form method="post" action="/login" class="card narrow" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="next" value=(next);
            div class="field" {
                label for="token" { "Token" }
                input id="token" name="token" type="password" required autocomplete="current-password"
                    aria-describedby="token-help"
                    aria-invalid=[error.map(|_| "true")];
                p id="token-help" class="help" { "A token of yours, as " code { "csmp token create" } " printed it." }
                @if let Some(e) = error { p class="error" id="token-error" role="alert" { (e) } }
            }
            button type="submit" { "Sign in" }
        }
    };
    let mut response = layout::answer(status, layout::bare("Sign in", body));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{LOGIN_COOKIE}={csrf}; HttpOnly; SameSite=Strict; Path=/login; Max-Age=3600"
    )) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// `GET /login`.
pub(super) async fn form(axum::extract::Query(q): axum::extract::Query<Next>) -> Response {
    login_page(StatusCode::OK, local(q.next.as_deref()), None)
}

/// `POST /login`: a session for a valid token.
pub(super) async fn login(
    State(console): State<Console>,
    axum::extract::ConnectInfo(peer): Peer,
    headers: HeaderMap,
    axum::Form(f): axum::Form<Login>,
) -> Response {
    let next = local(f.next.as_deref()).to_string();
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    let sent = f.csrf.as_deref().unwrap_or("");
    if expected.is_empty() || !bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) {
        return forged();
    }
    let token_hash = hex_sha256(f.token.trim().as_bytes());
    let state = &console.state;
    let who = match authenticate_hash(
        &state.store,
        &state.principals,
        token_hash.clone(),
        peer.ip(),
    )
    .await
    {
        Ok(who) => who,
        Err((problem, _)) => {
            tracing::info!(peer = %peer, "a console sign-in was refused: {}", problem.detail);
            let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::UNAUTHORIZED);
            return login_page(status, &next, Some(&problem.detail));
        }
    };
    if who.role == Role::Integration {
        return login_page(
            StatusCode::FORBIDDEN,
            &next,
            Some(
                "an integration token only sends alerts; sign in with a client, operator or admin token",
            ),
        );
    }
    let (id, csrf) = match (random_hex(), random_hex()) {
        (Ok(id), Ok(csrf)) => (id, csrf),
        (Err(e), _) | (_, Err(e)) => {
            return layout::unavailable(&format!("no randomness for a session: {e}"));
        }
    };
    let now = state.now_ms();
    let row = SessionRow {
        id_hash: hex_sha256(id.as_bytes()),
        token_hash,
        csrf,
        created_at: now,
        expires_at: now + LIFETIME_MS,
    };
    if let Err(e) = state.store.put_session(&row, now).await {
        return layout::unavailable(&e.to_string());
    }
    tracing::info!(token = %who.token_id, role = who.role.as_str(), "signed in to the console");
    // Behind a TLS proxy the cookie is for HTTPS only; the service itself speaks plain HTTP.
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
    let mut response = Redirect::to(&next).into_response();
    for cookie in [
        format!(
            "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
            LIFETIME_MS / 1000,
            if secure { "; Secure" } else { "" }
        ),
        format!("{LOGIN_COOKIE}=; HttpOnly; SameSite=Strict; Path=/login; Max-Age=0"),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// The sign-out form's field.
#[derive(Debug, Deserialize)]
pub(super) struct Csrf {
    csrf: Option<String>,
}

/// `POST /logout`.
pub(super) async fn logout(
    State(console): State<Console>,
    signed: Signed,
    axum::Form(f): axum::Form<Csrf>,
) -> Response {
    if let Err(r) = signed.check(f.csrf.as_deref()) {
        return r;
    }
    if let Err(e) = console.state.store.delete_session(&signed.id_hash).await {
        return layout::unavailable(&e.to_string());
    }
    let mut response = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
    )) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}
