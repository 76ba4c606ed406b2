//! The status page: `/status` (HTML) and `/status.json` — per service, its state from its
//! checks, uptime over 24 h, 7 d and 30 d, open incidents and maintenance windows. Without a
//! token it is the provider's public page (the checks and incidents of no tenant); with a
//! client's token it is that tenant's page (the provider's checks and its own, its incidents).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Json, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::problem::Problem;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// Uptime in percent over three windows; absent where there was no probe.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct Uptime {
    /// The last 24 hours.
    #[serde(rename = "24h")]
    pub day: Option<f64>,
    /// The last 7 days.
    #[serde(rename = "7d")]
    pub week: Option<f64>,
    /// The last 30 days.
    #[serde(rename = "30d")]
    pub month: Option<f64>,
}

/// One check on the page.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct CheckStatus {
    /// Its name.
    pub name: String,
    /// `up`, `down` or `unknown`.
    pub state: String,
    /// Its uptime.
    pub uptime: Uptime,
}

/// An open incident on the page: its public part.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct IncidentStatus {
    /// Its id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// `sev1` (worst) to `sev4`.
    pub severity: String,
    /// `triggered` or `acknowledged`.
    pub status: String,
    /// Opened.
    pub created_at: String,
}

/// One service on the page.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct ServiceStatus {
    /// Its name.
    pub service: String,
    /// `down` when a check of it is, `up` when all are, `unknown` before any probe.
    pub state: String,
    /// Uptime of all its checks' probes together.
    pub uptime: Uptime,
    /// Its checks.
    pub checks: Vec<CheckStatus>,
    /// Its incidents not resolved.
    pub incidents: Vec<IncidentStatus>,
}

impl ServiceStatus {
    /// A service with nothing known of it yet.
    fn empty(service: &str) -> Self {
        Self {
            service: service.to_string(),
            state: String::new(),
            uptime: Uptime {
                day: None,
                week: None,
                month: None,
            },
            checks: Vec::new(),
            incidents: Vec::new(),
        }
    }
}

/// A maintenance window: a silence active now or later.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct Maintenance {
    /// What it says.
    pub comment: String,
    /// The service it names, when it names one.
    pub service: Option<String>,
    /// From.
    pub starts_at: String,
    /// Until.
    pub ends_at: String,
}

/// The whole page.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct StatusPage {
    /// The tenant whose page this is; absent on the provider's public page.
    pub tenant: Option<String>,
    /// When it was made.
    pub generated_at: String,
    /// Every service with a check or an open incident, by name.
    pub services: Vec<ServiceStatus>,
    /// Maintenance windows not yet over.
    pub maintenance: Vec<Maintenance>,
}

/// The tenant asking: `None` without a token (the public page), a client's tenant, or `None`
/// for operators (they see the provider's page).
async fn tenant_of(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Option<String>, Problem> {
    let Some(auth) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let auth = String::from_utf8_lossy(auth.as_bytes()).into_owned();
    match super::auth::authenticate(&state.store, &state.principals, Some(auth), peer.ip()).await {
        Ok(p) => Ok(p.scope().map(String::from)),
        Err((problem, _)) => Err(problem),
    }
}

pub(super) async fn page(state: &AppState, tenant: Option<&str>) -> Result<StatusPage, Problem> {
    let now = state.now_ms();
    let mine = |t: &Option<String>| t.is_none() || t.as_deref() == tenant;
    let mut services: BTreeMap<String, ServiceStatus> = BTreeMap::new();
    let standings: BTreeMap<String, Option<bool>> = state
        .store
        .check_states()
        .await?
        .into_iter()
        .map(|s| (s.check, s.up))
        .collect();
    let mut probes: BTreeMap<String, Vec<(i64, bool)>> = BTreeMap::new();
    for c in state.checks().iter().filter(|c| mine(&c.tenant)) {
        let results = state
            .store
            .check_results(&c.name, now - 30 * DAY_MS)
            .await?;
        let up = |since: i64| crate::checks::uptime(&results, since);
        let check = CheckStatus {
            name: c.name.clone(),
            state: match standings.get(&c.name).copied().flatten() {
                Some(true) => "up",
                Some(false) => "down",
                None => "unknown",
            }
            .into(),
            uptime: Uptime {
                day: up(now - DAY_MS),
                week: up(now - 7 * DAY_MS),
                month: up(now - 30 * DAY_MS),
            },
        };
        probes
            .entry(c.service.clone())
            .or_default()
            .extend(results.iter().copied());
        services
            .entry(c.service.clone())
            .or_insert_with(|| ServiceStatus::empty(&c.service))
            .checks
            .push(check);
    }
    let owner = tenant.unwrap_or(crate::runtime::PROVIDER);
    for i in state
        .store
        .incidents_between(Some(owner), now - 90 * DAY_MS, now + 1)
        .await?
    {
        if i.status == crate::incidents::RESOLVED {
            continue;
        }
        let Some(service) = i.service.clone() else {
            continue;
        };
        services
            .entry(service.clone())
            .or_insert_with(|| ServiceStatus::empty(&service))
            .incidents
            .push(IncidentStatus {
                id: i.id,
                title: i.title,
                severity: i.severity,
                status: i.status,
                created_at: crate::alerts::iso(i.created_at),
            });
    }
    for s in services.values_mut() {
        s.state = if s.checks.iter().any(|c| c.state == "down") {
            "down"
        } else if !s.checks.is_empty() && s.checks.iter().all(|c| c.state == "up") {
            "up"
        } else {
            "unknown"
        }
        .into();
        if let Some(results) = probes.get(&s.service) {
            let up = |since: i64| crate::checks::uptime(results, since);
            s.uptime = Uptime {
                day: up(now - DAY_MS),
                week: up(now - 7 * DAY_MS),
                month: up(now - 30 * DAY_MS),
            };
        }
    }
    let maintenance = state
        .store
        .silences(now, false, tenant)
        .await?
        .into_iter()
        .filter(|m| tenant.is_some() || m.tenant.is_none())
        .map(|m| Maintenance {
            service: m
                .matchers
                .get("service")
                .filter(|v| crate::dsl::is_valid_name(v))
                .cloned(),
            comment: m.comment,
            starts_at: crate::alerts::iso(m.starts_at),
            ends_at: crate::alerts::iso(m.ends_at),
        })
        .collect();
    Ok(StatusPage {
        tenant: tenant.map(String::from),
        generated_at: crate::alerts::iso(now),
        services: services.into_values().collect(),
        maintenance,
    })
}

/// The status page as JSON.
#[utoipa::path(get, path = "/status.json", tag = "status",
    responses(
        (status = 200, description = "The status page", body = StatusPage),
        (status = 401, description = "A token was sent and is not valid", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn json(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<StatusPage>, Problem> {
    let tenant = tenant_of(&state, &headers, peer).await?;
    Ok(Json(page(&state, tenant.as_deref()).await?))
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v:.2}%"))
}

/// The status page as HTML.
#[utoipa::path(get, path = "/status", tag = "status",
    responses(
        (status = 200, description = "The status page", body = String, content_type = "text/html"),
        (status = 401, description = "A token was sent and is not valid", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn html(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let tenant = tenant_of(&state, &headers, peer).await?;
    let p = page(&state, tenant.as_deref()).await?;
    let title = match &p.tenant {
        Some(t) => format!("Status for {t}"),
        None => "Service status".to_string(),
    };
    let doc = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
            }
            body { (body(&p, &title)) }
        }
    };
    Ok((
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        doc.into_string(),
    )
        .into_response())
}

/// The page's content under its title (the console shows it in its own frame).
pub(super) fn body(p: &StatusPage, title: &str) -> maud::Markup {
    maud::html! {
        h1 { (title) }
        p { "As of " time datetime=(p.generated_at) { (p.generated_at) } }
        @if p.services.is_empty() {
            p { "No service is watched yet." }
        }
        @for s in &p.services {
            section aria-labelledby=(format!("svc-{}", s.service)) {
                h2 id=(format!("svc-{}", s.service)) { (s.service) ": " strong { (s.state) } }
                table {
                    caption { "Uptime" }
                    thead { tr { th scope="col" { "Check" } th scope="col" { "State" } th scope="col" { "24 h" } th scope="col" { "7 d" } th scope="col" { "30 d" } } }
                    tbody {
                        @for c in &s.checks {
                            tr { th scope="row" { (c.name) } td { (c.state) } td { (percent(c.uptime.day)) } td { (percent(c.uptime.week)) } td { (percent(c.uptime.month)) } }
                        }
                    }
                }
                @if !s.incidents.is_empty() {
                    h3 { "Open incidents" }
                    ul {
                        @for i in &s.incidents {
                            li { (i.severity) " · " (i.status) " · " (i.title) " (since " (i.created_at) ")" }
                        }
                    }
                }
            }
        }
        @if !p.maintenance.is_empty() {
            h2 { "Maintenance" }
            ul {
                @for m in &p.maintenance {
                    li { (m.service.as_deref().unwrap_or("—")) ": " (m.comment) " (" (m.starts_at) " – " (m.ends_at) ")" }
                }
            }
        }
    }
}
