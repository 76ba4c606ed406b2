//! The REST API (v1): catalog, requests, runs, workflows, plugins, events, incidents, admin.
//!
//! Handlers are thin: they check who is calling and what was sent, then call the store (reads,
//! requests, tokens) or the engine (anything that changes a run or an incident). Every error is
//! an RFC 9457 problem. The OpenAPI document is generated from the handlers' annotations
//! (`openapi.rs`), so it cannot drift from the code.

mod admin;
mod alerts;
mod approvals;
pub mod audit;
pub mod auth;
mod catalog;
mod check_watch;
mod cluster;
mod console;
mod control;
mod events;
mod grants;
mod health;
mod incident_views;
mod incidents;
pub mod limits;
mod oncall;
mod oncall_files;
mod openapi;
mod plugins;
mod principals;
pub mod problem;
mod reach;
mod reports;
mod requests;
mod rules;
mod run_list;
mod runs;
mod secrets;
mod silences;
mod slo_watch;
mod sns;
mod start;
mod status;
mod steps;
pub mod sync;
pub mod trace;
mod views;
mod workflows;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tokio_util::sync::CancellationToken;

pub use admin::check_token_request;
pub use catalog::overlay_catalog;
pub use grants::{ReloadedBy, reload_grants};
pub use oncall_files::load_oncall;
pub use openapi::document as openapi_document;
use problem::Problem;
pub use requests::start_pending;
pub use rules::load_rules;

/// A request accepted but not started for this long (ms) is started by the sweep of the
/// process that holds the cron partition (its process must have died before starting it).
pub const PENDING_AFTER_MS: i64 = 60_000;

use crate::plan::{CatalogPlan, Plan, WorkflowNames};
use crate::plugin::PluginHost;
use crate::runtime::{Clock, Definitions, Engine};
use crate::store::Store;

/// Largest JSON or YAML body accepted.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Largest plugin binary accepted.
pub const PLUGIN_LIMIT: usize = 64 * 1024 * 1024;

/// How the API behaves.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Longest time a call may take before it is answered 503 (event streams excepted).
    pub request_timeout: Duration,
    /// How often `/metrics`' request and SLA gauges are read from the database.
    pub request_gauges_every: Duration,
    /// How often the check runner looks for checks that are due.
    pub check_tick: Duration,
    /// How often the burn rates of the catalog's service-level objectives are checked.
    pub slo_every: Duration,
    /// The operator's grants file, read again by `POST /v1/grants/reload` (and SIGHUP).
    pub grants_file: Option<std::path::PathBuf>,
    /// Seals secrets set over `PUT /v1/secrets/{name}`; without it that answers 503.
    pub master_key: Option<crate::vault::MasterKey>,
    /// Most run event streams open at once; a new one past it is answered 503.
    pub max_event_streams: usize,
    /// Most client connections open at once; a new one past it is answered 503 and closed.
    pub max_connections: usize,
    /// Calls per second each token may make (bursts of twice that); past it 429. `None`: no
    /// limit.
    pub rate_limit: Option<std::num::NonZeroU32>,
    /// Which SNS topics and certificate sources `POST /v1/events/cloudwatch` accepts.
    pub sns: crate::alerts::sns::SnsPolicy,
    /// Serve only `/healthz`, `/readyz` and `/metrics` (a process that only executes runs).
    pub health_only: bool,
    /// The directories definitions were read from, read again when another process changes
    /// definitions.
    pub sources: sync::Sources,
}

/// Default of `--rate-limit`: calls per second per token.
pub const DEFAULT_RATE_LIMIT: u32 = 200;
/// Default of `--max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            request_gauges_every: Duration::from_secs(15),
            slo_every: Duration::from_secs(60),
            check_tick: Duration::from_secs(1),
            grants_file: None,
            master_key: None,
            max_event_streams: 1024,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            rate_limit: std::num::NonZeroU32::new(DEFAULT_RATE_LIMIT),
            sns: crate::alerts::sns::SnsPolicy::default(),
            health_only: false,
            sources: sync::Sources::default(),
        }
    }
}

/// Everything a handler may use. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The executor.
    pub engine: Engine,
    /// The database.
    pub store: Store,
    /// The plugin host (uploads are loaded here).
    pub host: PluginHost,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Orderable entries by id; replaced whole when an entry is set or deleted over the API.
    catalog: Arc<RwLock<Arc<BTreeMap<String, CatalogPlan>>>>,
    /// Runnable workflow versions, as the engine has them.
    pub defs: Arc<RwLock<Definitions>>,
    /// Serialises definition uploads (check-then-store must not interleave).
    pub uploads: Arc<tokio::sync::Mutex<()>>,
    /// Per-route call counts and latencies, for `/metrics`.
    pub http: Arc<health::HttpMetrics>,
    /// Request and SLA gauges, refreshed in the background, for `/metrics`.
    requests: Arc<health::RequestGauges>,
    /// Cancelled at shutdown, so event streams end and the server can drain.
    pub shutdown: CancellationToken,
    /// Run event streams open now.
    pub(crate) streams: Arc<std::sync::atomic::AtomicUsize>,
    /// Writes the audit entries of calls that changed nothing, in batches.
    pub audit: audit::AuditQueue,
    /// Calls per second per token, when limited.
    pub rate_limit: Option<Arc<limits::RateLimit>>,
    /// The listener's connection counts, for `/metrics`.
    pub connections: Arc<limits::ConnectionCounters>,
    /// Callers authenticated a moment ago (token hash → principal and allowlist).
    pub(crate) principals: Arc<principals::Principals>,
    /// Idempotency-Keys of `POST /v1/runs` calls starting their run now.
    pub(crate) starting: Arc<start::Starting>,
    /// Alerts in: the rules in force and the groups' one writer.
    pub alerts: crate::alerts::dispatch::Dispatcher,
    /// Checks SNS messages (CloudWatch alarms) and caches signing certificates.
    pub sns: Arc<crate::alerts::sns::Verifier>,
    /// The synthetic checks in force.
    checks: Arc<RwLock<Arc<Vec<crate::checks::CheckPlan>>>>,
    /// The on-call files in force (name → YAML), for `/v1/oncall/files`.
    oncall_files: Arc<RwLock<Arc<BTreeMap<String, String>>>>,
    /// What this process took of other processes' definition changes.
    pub(crate) seen: Arc<sync::Seen>,
    /// Behaviour.
    pub config: ApiConfig,
}

impl AppState {
    /// A state over a started engine. Call inside a Tokio runtime: it starts the audit
    /// queue's writer.
    pub fn new(
        engine: Engine,
        host: PluginHost,
        clock: Arc<dyn Clock>,
        catalog: BTreeMap<String, CatalogPlan>,
        defs: Definitions,
        config: ApiConfig,
    ) -> Self {
        let store = engine.store().clone();
        let shutdown = CancellationToken::new();
        Self {
            alerts: crate::alerts::dispatch::Dispatcher::start(
                engine.clone(),
                crate::alerts::dispatch::Rules::default(),
                Arc::clone(&clock),
                shutdown.clone(),
            ),
            sns: Arc::new(crate::alerts::sns::Verifier::new(config.sns.clone())),
            audit: audit::AuditQueue::start(store.clone()),
            store,
            engine,
            host,
            clock,
            catalog: Arc::new(RwLock::new(Arc::new(catalog))),
            defs: Arc::new(RwLock::new(defs)),
            uploads: Arc::new(tokio::sync::Mutex::new(())),
            http: Arc::new(health::HttpMetrics::default()),
            requests: Arc::new(health::RequestGauges::default()),
            shutdown,
            streams: Arc::default(),
            rate_limit: config
                .rate_limit
                .map(|n| Arc::new(limits::RateLimit::per_token(n))),
            connections: Arc::default(),
            starting: Arc::default(),
            principals: Arc::default(),
            oncall_files: Arc::default(),
            seen: Arc::default(),
            checks: Arc::default(),
            config,
        }
    }

    /// The orderable entries now.
    pub fn catalog(&self) -> Arc<BTreeMap<String, CatalogPlan>> {
        Arc::clone(&self.catalog.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts `entries` in force (callers hold `uploads`, so changes do not interleave).
    pub(crate) fn set_catalog(&self, entries: BTreeMap<String, CatalogPlan>) {
        *self.catalog.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(entries);
    }

    /// People, teams and schedules now.
    pub fn oncall(&self) -> Arc<crate::oncall::OnCall> {
        self.engine.oncall()
    }

    /// Puts people, teams and schedules in force.
    pub fn set_oncall(&self, set: crate::oncall::OnCall) {
        self.engine.set_oncall(set);
    }

    /// Puts an on-call set in force with the files it was planned from.
    pub fn set_oncall_files(&self, set: crate::oncall::OnCall, sources: BTreeMap<String, String>) {
        *self
            .oncall_files
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(sources);
        self.engine.set_oncall(set);
    }

    /// Puts synthetic checks in force (probed from the runner's next tick).
    pub fn set_checks(&self, checks: Vec<crate::checks::CheckPlan>) {
        *self.checks.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(checks);
    }

    /// The synthetic checks in force.
    pub fn checks(&self) -> Arc<Vec<crate::checks::CheckPlan>> {
        Arc::clone(&self.checks.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The on-call files in force, by name.
    pub fn oncall_sources(&self) -> Arc<BTreeMap<String, String>> {
        Arc::clone(
            &self
                .oncall_files
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Now, in ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// A workflow plan by name and version (the newest when `None`).
    pub fn plan(&self, name: &str, version: Option<u32>) -> Option<Arc<Plan>> {
        self.defs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name, version)
            .cloned()
    }

    /// Plans again every stored workflow version that did not plan (after a plugin upload or
    /// a grant change) and makes those that do now runnable, so their blocked runs go on.
    /// Returns how many became runnable.
    pub async fn replan_unplanned(&self) -> usize {
        let pending: Vec<(String, u32, Arc<str>)> = self
            .defs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .every_unplanned()
            .map(|(n, v, u)| (n.to_string(), v, Arc::clone(&u.source)))
            .collect();
        let index = self.host.index();
        let mut planned = 0;
        for (name, version, source) in pending {
            let env = crate::plan::Env {
                plugins: &index,
                workflows: None,
            };
            let Ok(plan) = crate::plan::validate_workflow(source.as_bytes(), env) else {
                continue;
            };
            if let Err(e) = self.engine.define(plan.clone()).await {
                tracing::warn!("cannot make {name}@{version} runnable again: {e}");
                continue;
            }
            tracing::info!(workflow = %name, version, "a stored workflow version plans again; its runs go on");
            self.defs
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(plan);
            planned += 1;
        }
        planned
    }

    /// Every runnable workflow name with its versions.
    pub fn workflow_names(&self) -> WorkflowNames {
        let defs = self.defs.read().unwrap_or_else(PoisonError::into_inner);
        let mut names = WorkflowNames::new();
        for p in defs.plans() {
            names
                .entry(p.name().to_string())
                .or_default()
                .push(p.version());
        }
        for versions in names.values_mut() {
            versions.sort_unstable();
        }
        names
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    if state.config.health_only {
        return Router::new()
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz))
            .route("/metrics", get(health::metrics))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(middleware::from_fn_with_state(state.clone(), observe))
            .layer(middleware::from_fn(trace::middleware))
            .with_state(state);
    }
    let timed = Router::new()
        .route("/v1/catalog", get(catalog::list))
        .route(
            "/v1/catalog/{id}",
            get(catalog::get_one)
                .put(catalog::put)
                .delete(catalog::delete),
        )
        .route("/v1/requests", post(requests::create).get(requests::list))
        .route("/v1/requests/{id}", get(requests::get_one))
        .route("/v1/requests/{id}/approval", post(requests::decide))
        .route("/v1/runs", post(start::create).get(run_list::list))
        .route("/v1/approvals", get(approvals::list))
        .route("/v1/runs/{id}", get(runs::get_one))
        .route("/v1/runs/{id}/steps/{key}", get(steps::get_one))
        .route("/v1/runs/{id}/cancel", post(runs::cancel))
        .route("/v1/runs/{id}/pause", post(control::pause))
        .route("/v1/runs/{id}/retry", post(control::retry))
        .route("/v1/runs/{id}/rerun", post(control::rerun))
        .route("/v1/runs/{id}/resume", post(control::resume))
        .route("/v1/runs/{id}/approvals/{step}", post(runs::approve))
        .route("/v1/runs/{id}/signals/{name}", post(runs::signal))
        .route("/v1/workflows", get(workflows::list))
        .route(
            "/v1/workflows/{name}",
            put(workflows::upload)
                .get(workflows::versions)
                .delete(workflows::delete),
        )
        .route(
            "/v1/workflows/{name}/{version}",
            get(workflows::get_version),
        )
        .route("/v1/plugins", get(plugins::list))
        .route(
            "/v1/plugins/{name}/{version}",
            put(plugins::upload)
                .layer(DefaultBodyLimit::max(PLUGIN_LIMIT))
                .get(plugins::get_one),
        )
        .route("/v1/grants", get(grants::get))
        .route("/v1/grants/reload", post(grants::reload))
        .route("/v1/events", get(events::list))
        .route("/v1/events/{source}", post(events::receive))
        .route("/v1/alerts", get(alerts::list))
        .route("/v1/rules", get(rules::list))
        .route("/v1/rules/test", post(rules::test))
        .route(
            "/v1/rules/{name}",
            put(rules::put).get(rules::get_one).delete(rules::delete),
        )
        .route("/v1/silences", post(silences::create).get(silences::list))
        .route("/v1/silences/{id}", axum::routing::delete(silences::delete))
        .route("/v1/oncall", get(oncall::list))
        .route("/v1/oncall/files", get(oncall_files::list))
        .route(
            "/v1/oncall/files/{name}",
            put(oncall_files::put).delete(oncall_files::delete),
        )
        .route("/v1/oncall/{schedule}", get(oncall::who))
        .route("/v1/incidents", get(incidents::list))
        .route(
            "/v1/incidents/{id}",
            get(incidents::get_one).patch(incidents::edit),
        )
        .route("/v1/incidents/{id}/review", get(incidents::review))
        .route("/v1/reports/incidents", get(reports::incidents))
        .route("/v1/reports/sla", get(reports::sla))
        .route("/v1/reports/slo", get(reports::slo))
        .route("/v1/incidents/{id}/reopen", post(incidents::reopen))
        .route("/v1/incidents/{id}/timeline", get(incidents::timeline_of))
        .route(
            "/v1/incidents/{id}/acknowledge",
            post(incidents::acknowledge),
        )
        .route("/v1/incidents/{id}/resolve", post(incidents::resolve))
        .route("/v1/incidents/{id}/notes", post(incidents::note))
        .route(
            "/v1/tokens",
            post(admin::create_token).get(admin::list_tokens),
        )
        .route(
            "/v1/tokens/{id}",
            axum::routing::delete(admin::revoke_token),
        )
        .route("/v1/tenants", get(admin::list_tenants))
        .route(
            "/v1/tenants/{id}",
            put(admin::put_tenant).get(admin::get_tenant),
        )
        .route("/v1/audit", get(admin::audit))
        .route("/v1/cluster", get(cluster::get))
        .route("/v1/secrets", get(secrets::list))
        .route("/v1/secrets/{name}", put(secrets::put))
        .layer(middleware::from_fn_with_state(state.clone(), time_limit));
    let streaming = Router::new().route("/v1/runs/{id}/events", get(runs::events));
    let v1 = timed
        .merge(streaming)
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::guard));
    // The console calls the same routes, guard included, for its signed-in user.
    let console = console::routes(state.clone(), v1.clone().with_state(state.clone()));
    // PagerDuty's own path, for tools that page PagerDuty: the routing key is the token.
    let pagerduty = Router::new()
        .route("/v2/enqueue", post(events::enqueue))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::guard))
        .route_layer(middleware::from_fn(events::routing_key_as_bearer));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::serve))
        .route("/status", get(status::html))
        .route("/status.json", get(status::json))
        .merge(v1)
        .merge(console)
        .merge(pagerduty)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(middleware::from_fn(trace::middleware))
        .with_state(state)
}

/// A refusal answered before the handler read the body. The connection stays usable only if
/// the body is read off it first: left unread, the server closes the connection under the
/// client's next request on it. A small body sent at once is read and dropped; a larger or
/// slower one is left, and the answer says `Connection: close`.
pub(super) async fn refused(req: Request, mut response: Response) -> Response {
    const DRAIN_LIMIT: usize = 64 * 1024;
    const DRAIN_WAIT: Duration = Duration::from_secs(2);
    let has_body = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req
            .headers()
            .contains_key(axum::http::header::TRANSFER_ENCODING);
    if has_body {
        let read = axum::body::to_bytes(req.into_body(), DRAIN_LIMIT);
        if !matches!(tokio::time::timeout(DRAIN_WAIT, read).await, Ok(Ok(_))) {
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
    }
    response
}

async fn not_found(req: Request) -> Response {
    let browser = req
        .headers()
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if browser && !req.uri().path().starts_with("/v1/") {
        let page = console::no_such_page(req.uri().path());
        return refused(req, page).await;
    }
    let problem = Problem::new(
        StatusCode::NOT_FOUND,
        "no-such-route",
        format!(
            "there is no route {} {}; the API is described at /openapi.json",
            req.method(),
            req.uri().path()
        ),
    );
    refused(req, problem.into_response()).await
}

async fn method_not_allowed(req: Request) -> Response {
    let problem = Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!(
            "{} is not allowed on {}; the API is described at /openapi.json",
            req.method(),
            req.uri().path()
        ),
    );
    refused(req, problem.into_response()).await
}

/// Answers 503 when a call takes longer than the configured limit.
async fn time_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.config.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the call took longer than {:?}; it may still complete, check before retrying",
                state.config.request_timeout
            ),
        )
        .into_response(),
    }
}

/// Counts calls and their latency per route, for `/metrics`.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    state.http.record(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Serves until `shutdown` resolves, then drains calls in flight and ends event streams.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let token = state.shutdown.clone();
    // The request gauges of /metrics, read in the background until shutdown.
    let gauges = state.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(gauges.config.request_gauges_every);
        loop {
            tokio::select! {
                _ = every.tick() => gauges.requests.refresh(&gauges.store, gauges.now_ms()).await,
                () = gauges.shutdown.cancelled() => return,
            }
        }
    });
    // The burn rates of the service-level objectives, checked in the background.
    let levels = state.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(levels.config.slo_every);
        loop {
            tokio::select! {
                // One process at a time watches: the one holding the cron partition.
                _ = every.tick() => {
                    if levels.engine.leads() {
                        slo_watch::check(&levels).await;
                    }
                }
                () = levels.shutdown.cancelled() => return,
            }
        }
    });
    // Definitions other processes change, taken here too. A SQLite file has one `serve`, and
    // its directories are read at start-up only.
    if state.store.backend() == "postgres" {
        sync::start(state.clone());
    }
    // Requests a crashed process accepted and never started, swept by the process that holds
    // the cron partition.
    let sweeping = state.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(30));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {
                    if sweeping.engine.leads() {
                        let by = sweeping.now_ms() - PENDING_AFTER_MS;
                        match start_pending(&sweeping, by).await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!("started the runs of {n} requests accepted and never started"),
                            Err(e) => tracing::warn!("cannot look for requests never started: {e}"),
                        }
                    }
                }
                () = sweeping.shutdown.cancelled() => return,
            }
        }
    });
    // The synthetic checks, probed in the background.
    let checking = state.clone();
    tokio::spawn(async move {
        let mut runner = check_watch::Runner::default();
        let mut every = tokio::time::interval(checking.config.check_tick);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // One process at a time probes: the one holding the cron partition.
                _ = every.tick() => {
                    if checking.engine.leads() {
                        runner.tick(&checking).await;
                    }
                }
                () = checking.shutdown.cancelled() => return,
            }
        }
    });
    let audit = state.audit.clone();
    let listener = limits::Limited::new(
        listener,
        state.config.max_connections,
        Arc::clone(&state.connections),
    );
    let app = router(state);
    // `tap_io` only so `ConnectInfo<SocketAddr>` works with a listener of our own.
    let served = axum::serve(
        axum::serve::ListenerExt::tap_io(listener, |_| {}),
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        token.cancel();
    })
    .await;
    // The entries of the last refused calls.
    audit.flush().await;
    served
}

/// Pagination query: `?limit=N&cursor=C`.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Items per page, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl Page {
    /// The limit to use, and the decoded cursor; 422 when either is out of bounds.
    pub fn read(&self) -> Result<(u32, Option<crate::store::Cursor>), Problem> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(Problem::invalid_at("/limit", "must be between 1 and 200"));
        }
        let cursor = match &self.cursor {
            None => None,
            Some(c) => Some(crate::store::Cursor::decode(c).ok_or_else(|| {
                Problem::invalid_at("/cursor", "is not a cursor this API handed out")
            })?),
        };
        Ok((limit, cursor))
    }
}

/// Reads a query string into `T`; a malformed one answers 422.
pub struct Query<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => {
                let text = problem::source_text(&e);
                // serde names an unknown field, and what it expected, in one sentence.
                if let Some(rest) = text.split("unknown field `").nth(1) {
                    let name = rest.split('`').next().unwrap_or_default();
                    let expected = rest.split(", expected ").nth(1).unwrap_or("none");
                    return Err(Problem::bad_request(
                        "unknown-parameter",
                        format!("unknown query parameter `{name}`; this endpoint takes {expected}"),
                    ));
                }
                Err(Problem::invalid_at(
                    "",
                    format!("the query string is not valid: {text}"),
                ))
            }
        }
    }
}

impl<T> std::fmt::Debug for Query<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Query")
    }
}

/// Path parameters; a malformed one answers 404 (it names nothing that exists).
pub struct PathParams<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for PathParams<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(PathParams(v)),
            Err(e) => Err(Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("nothing is at {}: {}", parts.uri.path(), e.body_text()),
            )),
        }
    }
}

impl<T> std::fmt::Debug for PathParams<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PathParams")
    }
}
