//! Bearer tokens, roles, tenant allowlists and the audit log.
//!
//! A token is `csmp_<id>_<secret>`: the id is public (it names the caller in the audit log),
//! the database keeps only the sha256 of the whole token. Every `/v1` call is authenticated
//! here before any handler runs; every state-changing call is written to the audit log with
//! its outcome, whoever made it (`audit.rs`); each token has a rate limit (`limits.rs`).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::audit::Audit;
use super::principals::{Known, Principals};
use super::problem::Problem;
use crate::store::{AuditRow, Store, StoreError, TokenRow, hex_sha256};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including tokens, tenants, plugins and the audit log.
    Admin,
    /// Runs, approvals, signals, workflows, incidents; every tenant.
    Operator,
    /// One tenant's catalog, requests, runs and incidents.
    Client,
    /// Sends alerts to `/v1/events/{source}`; nothing else.
    Integration,
}

impl Role {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Client => "client",
            Role::Integration => "integration",
        }
    }

    /// Reads a stored or typed role.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "admin" => Role::Admin,
            "operator" => Role::Operator,
            "client" => Role::Client,
            "integration" => Role::Integration,
            _ => return None,
        })
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's public id.
    pub token_id: String,
    /// Its role.
    pub role: Role,
    /// The tenant a client is bound to.
    pub tenant: Option<String>,
}

impl Principal {
    /// `Some(tenant)` when the caller sees only one tenant's data.
    pub fn scope(&self) -> Option<&str> {
        match self.role {
            Role::Client => Some(self.tenant.as_deref().unwrap_or("")),
            _ => None,
        }
    }

    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), Problem> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "a {} token may not do this; it needs one of: {}",
                self.role.as_str(),
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    /// Whether the caller may see data of `tenant`.
    pub fn sees(&self, tenant: &str) -> bool {
        self.scope().is_none_or(|t| t == tenant)
    }
}

/// A freshly minted token: the secret is shown once, the row is what gets stored.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The whole bearer token, to hand to its user.
    pub secret: String,
    /// What the database keeps.
    pub row: TokenRow,
}

/// Mints a token. Fails only when the OS has no randomness to give.
pub fn mint(
    role: Role,
    tenant: Option<String>,
    name: Option<String>,
    now_ms: i64,
) -> Result<NewToken, getrandom::Error> {
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id)?;
    getrandom::fill(&mut secret)?;
    let id = hex(&id);
    let token = format!("csmp_{id}_{}", hex(&secret));
    Ok(NewToken {
        row: TokenRow {
            id,
            hash: hex_sha256(token.as_bytes()),
            role: role.as_str().into(),
            tenant,
            name,
            created_at: now_ms,
            revoked_at: None,
        },
        secret: token,
    })
}

/// A random id `<prefix>-<16 hex>` for requests, events and the like.
pub fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // Without OS randomness, fall back to the hasher's per-process random keys.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        bytes = h.finish().to_be_bytes();
    }
    format!("{prefix}-{}", hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `ip` is inside one of `cidrs` (an empty list allows every address).
pub fn allowed(ip: IpAddr, cidrs: &[String]) -> bool {
    if cidrs.is_empty() {
        return true;
    }
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    cidrs.iter().any(|c| {
        c.parse::<ipnet::IpNet>()
            .map(|net| net.contains(&ip))
            .or_else(|_| c.parse::<IpAddr>().map(|one| one == ip))
            .unwrap_or(false)
    })
}

/// Looks up the caller of a request; `Err` is the 401/403 to answer.
pub(super) async fn authenticate(
    store: &Store,
    known: &Principals,
    authorization: Option<String>,
    peer: IpAddr,
) -> Result<Principal, (Problem, Option<Principal>)> {
    let hash = bearer(authorization.as_deref()).map_err(|p| (p, None))?;
    authenticate_hash(store, known, hash, peer).await
}

/// Looks up the caller whose token has the sha256 `hash`; `Err` is the 401/403 to answer.
pub(super) async fn authenticate_hash(
    store: &Store,
    known: &Principals,
    hash: String,
    peer: IpAddr,
) -> Result<Principal, (Problem, Option<Principal>)> {
    let Known {
        principal,
        allowlist,
    } = match known.get(&hash) {
        Some(k) => k,
        None => {
            let principal = identify(store, &hash).await.map_err(|p| (p, None))?;
            let allowlist = if principal.role == Role::Client {
                let tenant = principal.tenant.as_deref().unwrap_or("");
                match store.tenant(tenant).await {
                    Ok(t) => t.map(|t| t.allowlist).unwrap_or_default(),
                    Err(e) => return Err((e.into(), Some(principal))),
                }
            } else {
                Vec::new()
            };
            let k = Known {
                principal,
                allowlist,
            };
            known.put(hash, k.clone());
            k
        }
    };
    if principal.role == Role::Client {
        let tenant = principal.tenant.as_deref().unwrap_or("");
        if !allowed(peer, &allowlist) {
            let problem = Problem::forbidden(format!(
                "tenant `{tenant}` does not allow calls from {peer}; an admin can change its allowlist"
            ));
            return Err((problem, Some(principal)));
        }
    }
    Ok(principal)
}

/// The sha256 of the bearer token in an `Authorization` header; `Err` is the 401 to answer.
fn bearer(authorization: Option<&str>) -> Result<String, Problem> {
    let Some(value) = authorization else {
        return Err(Problem::unauthorized(
            "send `Authorization: Bearer <token>`; an admin creates tokens with `csmp token create`",
        ));
    };
    let basic = || {
        // HTTP Basic with the token as the password: what an SNS subscription sends when its
        // endpoint URL carries credentials (`https://csmp:TOKEN@host/v1/events/cloudwatch`).
        use base64::Engine as _;
        let encoded = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        text.split_once(':')
            .map(|(_, password)| password.to_string())
    };
    let token = Some(value)
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .map(str::to_string)
        })
        .or_else(basic)
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Problem::unauthorized(
                "the Authorization header must be `Bearer <token>` (or Basic with the token as the password)",
            )
        })?;
    Ok(hex_sha256(token.as_bytes()))
}

/// The caller the token with this hash names; `Err` is the 401 to answer.
async fn identify(store: &Store, hash: &str) -> Result<Principal, Problem> {
    let row = store
        .token_by_hash(hash)
        .await?
        .ok_or_else(|| Problem::unauthorized("the token is unknown or revoked"))?;
    let role = Role::parse(&row.role)
        .ok_or_else(|| Problem::from(StoreError::Corrupt(format!("token role `{}`", row.role))))?;
    Ok(Principal {
        token_id: row.id,
        role,
        tenant: row.tenant,
    })
}

/// Middleware on `/v1`: authenticates, applies the token's rate limit, and drafts the audit
/// entry of a state-changing call. The handler writes that entry with its change (see
/// [`Audit`]); the entry of a call that changed nothing goes to the batched audit queue.
pub async fn guard(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    // A call the console makes for its signed-in user comes vouched for: the console checked
    // the session, whose token is read again here (so a revoked token ends its sessions).
    let principal = match req.extensions_mut().remove::<super::console::Vouched>() {
        Some(vouched) => {
            authenticate_hash(
                &state.store,
                &state.principals,
                vouched.token_hash,
                peer.ip(),
            )
            .await
        }
        None => authenticate(&state.store, &state.principals, authorization, peer.ip()).await,
    };
    let who = match &principal {
        Ok(p) => Some(p.clone()),
        Err((_, who)) => who.clone(),
    };
    let audit = changes_state.then(|| {
        Audit::new(AuditRow {
            id: 0,
            at: state.now_ms(),
            seq: super::audit::next_seq(),
            actor: who.as_ref().map(|p| p.token_id.clone()),
            role: who.as_ref().map(|p| p.role.as_str().to_string()),
            tenant: who.as_ref().and_then(|p| p.tenant.clone()),
            method,
            path,
            status: 0,
            remote: peer.to_string(),
        })
    });
    let response = match principal {
        Ok(p) => match state.rate_limit.as_ref().map(|l| l.check(&p.token_id)) {
            Some(Err(wait)) => {
                super::refused(req, rate_limited(wait, state.rate_limit.as_deref())).await
            }
            _ => {
                req.extensions_mut().insert(p);
                if let Some(a) = &audit {
                    req.extensions_mut().insert(a.clone());
                }
                next.run(req).await
            }
        },
        Err((problem, _)) => super::refused(req, problem.into_response()).await,
    };
    if let Some(entry) = audit.and_then(|a| a.unwritten(response.status())) {
        state.audit.push(entry);
    }
    response
}

/// 429 with the seconds to wait in `Retry-After`.
fn rate_limited(wait: std::time::Duration, limit: Option<&super::limits::RateLimit>) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = Problem::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        format!(
            "this token made more than {} calls a second; retry in {secs} s (an admin sets the limit with --rate-limit)",
            limit.map_or(0, super::limits::RateLimit::per_second)
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
    response
}
