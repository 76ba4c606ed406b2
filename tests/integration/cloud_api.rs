//! A small, faithful emulator of the endpoints the example workflows call, served on
//! 127.0.0.1 (port 0) so the examples run end to end without the internet.
//!
//! - the cloud API (`secrets.cloud_api`): quota checks, instances, services (replicas,
//!   rollouts, health), scale-outs and host CPU metrics, with state: a created instance can be
//!   deleted once, a scale-out lowers the CPU of the service's hosts, a rollout reports
//!   unhealthy to its first health probe;
//! - Slack-compatible incoming webhooks (`secrets.notify_<channel>`): `POST /hooks/{channel}`;
//! - the PagerDuty Events API v2 (`secrets.pagerduty_url`): `POST /v2/enqueue`, which checks
//!   the routing key and the event's required fields.
//!
//! Requests it cannot serve get the status a real service would give (400, 403, 404, 409),
//! so a workflow that calls it wrongly fails as it would in production.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

/// The routing key the PagerDuty emulator accepts (32 characters, like a real one).
pub(crate) const ROUTING_KEY: &str = "R0UT1NGKEY0123456789ABCDEFGHIJKL";

/// A service the cloud runs for a tenant.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    /// Replicas running.
    pub(crate) replicas: u64,
    /// Health probes still to fail before the latest rollout is done.
    pub(crate) rolling_out: u32,
}

/// A host and the CPU load it reports.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    /// The service whose replicas run on it.
    pub(crate) service: String,
    /// CPU use in percent.
    pub(crate) cpu: f64,
}

/// A virtual machine.
#[derive(Debug, Clone)]
pub(crate) struct Instance {
    /// small | medium | large.
    pub(crate) size: String,
    /// The project it belongs to.
    pub(crate) project: String,
}

/// Everything the emulated services hold.
#[derive(Debug, Default)]
pub(crate) struct Cloud {
    /// Instances per tenant allowed by the quota check.
    pub(crate) quota: u64,
    /// How many more instances of each size the region can place.
    pub(crate) capacity: BTreeMap<String, u64>,
    /// Live instances by id.
    pub(crate) instances: BTreeMap<String, Instance>,
    /// Instances ever created (ids are never reused).
    pub(crate) created: u64,
    /// Instances deleted.
    pub(crate) deleted: Vec<String>,
    /// Services by name.
    pub(crate) services: BTreeMap<String, Service>,
    /// Hosts by name.
    pub(crate) hosts: BTreeMap<String, Host>,
    /// Messages posted to Slack-compatible webhooks: (channel path, text).
    pub(crate) messages: Vec<(String, String)>,
    /// PagerDuty events accepted.
    pub(crate) pages: Vec<Value>,
}

/// A running emulator.
#[derive(Debug, Clone)]
pub(crate) struct CloudApi {
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    /// Its state, for tests to seed and inspect.
    state: Arc<Mutex<Cloud>>,
}

impl CloudApi {
    /// Starts the emulator on a free port of 127.0.0.1 with `cloud` as its state.
    pub(crate) async fn start(cloud: Cloud) -> Self {
        let state = Arc::new(Mutex::new(cloud));
        let app = Router::new()
            .route("/quota/check", post(quota_check))
            .route("/instances", post(create_instance))
            .route("/instances/{id}", axum::routing::delete(delete_instance))
            .route("/services/{name}", get(get_service).patch(patch_service))
            .route("/services/{name}/health", get(service_health))
            .route("/services/{name}/scale-out", post(scale_out))
            .route("/hosts/{host}/metrics/cpu", get(host_cpu))
            .route("/hooks/{channel}", post(webhook))
            .route("/v2/enqueue", post(pagerduty))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base: format!("http://{addr}"),
            state,
        }
    }

    /// The state, to inspect after a run.
    pub(crate) fn state(&self) -> MutexGuard<'_, Cloud> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The secrets that point the example workflows at this emulator.
    pub(crate) fn secrets(&self) -> BTreeMap<String, String> {
        let mut s = BTreeMap::from([
            ("cloud_api".to_string(), self.base.clone()),
            ("notify_manager".to_string(), ROUTING_KEY.to_string()),
            (
                "pagerduty_url".to_string(),
                format!("{}/v2/enqueue", self.base),
            ),
        ]);
        for channel in ["ops", "oncall", "l1", "l2"] {
            s.insert(
                format!("notify_{channel}"),
                format!("{}/hooks/{channel}", self.base),
            );
        }
        s
    }
}

type Shared = State<Arc<Mutex<Cloud>>>;

fn lock(state: &Shared) -> MutexGuard<'_, Cloud> {
    state.0.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An error answer: a status and `{"error": message}`.
#[derive(Debug)]
struct Problem(StatusCode, String);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type Answer = Result<Response, Problem>;

fn bad(message: impl Into<String>) -> Problem {
    Problem(StatusCode::BAD_REQUEST, message.into())
}

fn not_found(what: impl Into<String>) -> Problem {
    Problem(StatusCode::NOT_FOUND, what.into())
}

fn field<'a>(body: &'a Value, name: &str) -> Result<&'a Value, Problem> {
    body.get(name)
        .ok_or_else(|| bad(format!("missing field `{name}`")))
}

fn count(body: &Value, name: &str) -> Result<u64, Problem> {
    field(body, name)?
        .as_u64()
        .ok_or_else(|| bad(format!("`{name}` must be a non-negative integer")))
}

fn text<'a>(body: &'a Value, name: &str) -> Result<&'a str, Problem> {
    field(body, name)?
        .as_str()
        .ok_or_else(|| bad(format!("`{name}` must be a string")))
}

fn size(body: &Value) -> Result<&str, Problem> {
    let size = text(body, "size")?;
    if SIZES.contains(&size) {
        Ok(size)
    } else {
        Err(bad(format!("unknown size `{size}`")))
    }
}

const SIZES: &[&str] = &["small", "medium", "large"];

/// `POST /quota/check {tenant, requested, size}` → 200 with what is left, or 403.
async fn quota_check(state: Shared, Json(body): Json<Value>) -> Answer {
    let tenant = text(&body, "tenant")?;
    let requested = count(&body, "requested")?;
    size(&body)?;
    let cloud = lock(&state);
    let used = cloud.instances.len() as u64;
    if used + requested > cloud.quota {
        return Err(Problem(
            StatusCode::FORBIDDEN,
            format!(
                "tenant {tenant} may run {} instances and has {used}",
                cloud.quota
            ),
        ));
    }
    Ok(Json(json!({
        "tenant": tenant,
        "allowed": true,
        "remaining": cloud.quota - used - requested,
    }))
    .into_response())
}

/// `POST /instances {size, project, ordinal}` → 201 with the instance, or 409 without capacity.
async fn create_instance(state: Shared, Json(body): Json<Value>) -> Answer {
    let size = size(&body)?;
    let project = text(&body, "project")?;
    count(&body, "ordinal")?;
    let mut cloud = lock(&state);
    let left = cloud.capacity.get(size).copied().unwrap_or(0);
    if left == 0 {
        return Err(Problem(
            StatusCode::CONFLICT,
            format!("no capacity left for {size} instances"),
        ));
    }
    cloud.capacity.insert(size.to_string(), left - 1);
    cloud.created += 1;
    let id = format!("i-{:04}", cloud.created);
    cloud.instances.insert(
        id.clone(),
        Instance {
            size: size.into(),
            project: project.into(),
        },
    );
    let instance = json!({ "id": id, "size": size, "project": project, "status": "building" });
    Ok((StatusCode::CREATED, Json(instance)).into_response())
}

/// `DELETE /instances/{id}` → 204, or 404 when there is no such instance (any more).
async fn delete_instance(state: Shared, Path(id): Path<String>) -> Answer {
    let mut cloud = lock(&state);
    let instance = cloud
        .instances
        .remove(&id)
        .ok_or_else(|| not_found(format!("no instance {id}")))?;
    *cloud.capacity.entry(instance.size).or_default() += 1;
    cloud.deleted.push(id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /services/{name}` → 200 `{name, replicas}`, or 404.
async fn get_service(state: Shared, Path(name): Path<String>) -> Answer {
    let cloud = lock(&state);
    let service = cloud
        .services
        .get(&name)
        .ok_or_else(|| not_found(format!("no service {name}")))?;
    Ok(Json(json!({ "name": name, "replicas": service.replicas })).into_response())
}

/// `PATCH /services/{name} {replicas}` → 200 with the previous count; starts a rollout.
async fn patch_service(state: Shared, Path(name): Path<String>, Json(body): Json<Value>) -> Answer {
    let replicas = count(&body, "replicas")?;
    let mut cloud = lock(&state);
    let service = cloud
        .services
        .get_mut(&name)
        .ok_or_else(|| not_found(format!("no service {name}")))?;
    let previous = service.replicas;
    service.replicas = replicas;
    service.rolling_out = 1;
    let answer = json!({ "name": name, "replicas": replicas, "previous_replicas": previous });
    Ok(Json(answer).into_response())
}

/// `GET /services/{name}/health` → 503 while a rollout is in progress, then 200.
async fn service_health(state: Shared, Path(name): Path<String>) -> Answer {
    let mut cloud = lock(&state);
    let service = cloud
        .services
        .get_mut(&name)
        .ok_or_else(|| not_found(format!("no service {name}")))?;
    if service.rolling_out > 0 {
        service.rolling_out -= 1;
        let answer = json!({ "name": name, "healthy": false, "reason": "rollout in progress" });
        return Ok((StatusCode::SERVICE_UNAVAILABLE, Json(answer)).into_response());
    }
    let answer = json!({ "name": name, "healthy": true, "replicas": service.replicas });
    Ok(Json(answer).into_response())
}

/// `POST /services/{name}/scale-out {add, reason}` → 200; the service's hosts share the load.
async fn scale_out(state: Shared, Path(name): Path<String>, Json(body): Json<Value>) -> Answer {
    let add = count(&body, "add")?;
    text(&body, "reason")?;
    if add == 0 {
        return Err(bad("`add` must be at least 1"));
    }
    let mut cloud = lock(&state);
    let service = cloud
        .services
        .get_mut(&name)
        .ok_or_else(|| not_found(format!("no service {name}")))?;
    let previous = service.replicas;
    service.replicas += add;
    let replicas = service.replicas;
    for host in cloud.hosts.values_mut().filter(|h| h.service == name) {
        host.cpu = host.cpu * previous as f64 / replicas as f64;
    }
    let answer = json!({ "name": name, "replicas": replicas, "previous_replicas": previous });
    Ok(Json(answer).into_response())
}

/// `GET /hosts/{host}/metrics/cpu` → 200 `{host, service, cpu}`, or 404.
async fn host_cpu(state: Shared, Path(host): Path<String>) -> Answer {
    let cloud = lock(&state);
    let h = cloud
        .hosts
        .get(&host)
        .ok_or_else(|| not_found(format!("no host {host}")))?;
    Ok(Json(json!({ "host": host, "service": h.service, "cpu": h.cpu })).into_response())
}

/// A Slack-compatible incoming webhook: `{text}` → 200 `ok`, else 400 `invalid_payload`.
async fn webhook(state: Shared, Path(channel): Path<String>, Json(body): Json<Value>) -> Response {
    match body.get("text").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => {
            lock(&state).messages.push((channel, t.to_string()));
            (StatusCode::OK, "ok").into_response()
        }
        _ => (StatusCode::BAD_REQUEST, "invalid_payload").into_response(),
    }
}

/// PagerDuty Events API v2: 202 for a well-formed event with the right routing key, else 400.
async fn pagerduty(state: Shared, Json(body): Json<Value>) -> Response {
    let mut errors = Vec::new();
    if body.get("routing_key").and_then(Value::as_str) != Some(ROUTING_KEY) {
        errors.push("'routing_key' is invalid");
    }
    let action = body.get("event_action").and_then(Value::as_str);
    if !matches!(action, Some("trigger" | "acknowledge" | "resolve")) {
        errors.push("'event_action' is invalid");
    }
    if action == Some("trigger") {
        let payload = body.get("payload");
        for (key, message) in [
            ("summary", "'payload.summary' is missing"),
            ("source", "'payload.source' is missing"),
            ("severity", "'payload.severity' is missing"),
        ] {
            if payload
                .and_then(|p| p.get(key))
                .and_then(Value::as_str)
                .is_none()
            {
                errors.push(message);
            }
        }
    }
    if !errors.is_empty() {
        let answer = json!({ "status": "invalid event", "message": "Event object is invalid", "errors": errors });
        return (StatusCode::BAD_REQUEST, Json(answer)).into_response();
    }
    let dedup_key = body
        .get("dedup_key")
        .and_then(Value::as_str)
        .unwrap_or("generated")
        .to_string();
    lock(&state).pages.push(body);
    let answer =
        json!({ "status": "success", "message": "Event processed", "dedup_key": dedup_key });
    (StatusCode::ACCEPTED, Json(answer)).into_response()
}
