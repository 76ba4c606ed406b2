//! `/healthz`, `/readyz` and `/metrics` (Prometheus text format).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::problem::Problem;

/// Upper bounds (s) of the HTTP latency histogram.
const HTTP_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// Calls and latencies per (method, route, status).
#[derive(Debug, Default)]
pub struct HttpMetrics {
    inner: Mutex<BTreeMap<(String, String), Series>>,
    statuses: Mutex<BTreeMap<(String, String, u16), u64>>,
}

#[derive(Debug, Default, Clone)]
struct Series {
    buckets: [u64; HTTP_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl HttpMetrics {
    /// Records one call.
    pub fn record(&self, method: &str, route: &str, status: u16, took: Duration) {
        let secs = took.as_secs_f64();
        {
            let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            let s = map.entry((method.into(), route.into())).or_default();
            for (i, b) in HTTP_BUCKETS.iter().enumerate() {
                if secs <= *b {
                    s.buckets[i] += 1;
                }
            }
            s.count += 1;
            s.sum += secs;
        }
        let mut statuses = self.statuses.lock().unwrap_or_else(PoisonError::into_inner);
        *statuses
            .entry((method.into(), route.into(), status))
            .or_default() += 1;
    }

    fn render(&self, out: &mut String) {
        let map = self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        out.push_str("# HELP csmp_http_request_duration_seconds Time to answer an API call.\n");
        out.push_str("# TYPE csmp_http_request_duration_seconds histogram\n");
        for ((method, route), s) in &map {
            let labels = format!("method=\"{}\",route=\"{}\"", escape(method), escape(route));
            for (i, b) in HTTP_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "csmp_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "csmp_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "csmp_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "csmp_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        let statuses = self
            .statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        out.push_str("# HELP csmp_http_requests_total API calls answered, by status.\n");
        out.push_str("# TYPE csmp_http_requests_total counter\n");
        for ((method, route, status), n) in &statuses {
            let _ = writeln!(
                out,
                "csmp_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(method),
                escape(route)
            );
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = String, content_type = "text/plain")))]
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the database answers and the executor runs.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = String, content_type = "text/plain"),
        (status = 503, description = "Not ready", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn readyz(State(state): State<AppState>) -> Result<&'static str, Problem> {
    if !state.engine.is_running() {
        return Err(Problem::unavailable("the executor has stopped"));
    }
    if let Some(fault) = state.engine.health().storage_fault() {
        return Err(Problem::unavailable(format!(
            "the executor cannot commit to the database since {}: {}; it retries on its own, fix the cause (disk space, permissions, the process holding the lock)",
            super::views::time(fault.since_ms),
            fault.reason
        )));
    }
    state.store.ping().await?;
    Ok("ready\n")
}

/// Prometheus metrics: runs, steps, queue depth, requests, SLA breaches, latencies.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn metrics(State(state): State<AppState>) -> Result<Response, Problem> {
    let c = state.store.counts(state.now_ms()).await?;
    let mut out = String::new();
    let gauge = |out: &mut String, name: &str, help: &str, label: &str, rows: &[(String, i64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (k, n) in rows {
            let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {n}", escape(k));
        }
    };
    gauge(&mut out, "csmp_runs", "Runs by status.", "status", &c.runs);
    gauge(
        &mut out,
        "csmp_steps",
        "Steps (and fan-out items) by status.",
        "status",
        &c.steps,
    );
    gauge(
        &mut out,
        "csmp_requests",
        "Catalog requests by status.",
        "status",
        &c.requests,
    );
    let _ = writeln!(
        out,
        "# HELP csmp_queue_depth Steps of unfinished runs ready or waiting to retry, not running."
    );
    let _ = writeln!(out, "# TYPE csmp_queue_depth gauge");
    let _ = writeln!(out, "csmp_queue_depth {}", c.queue_depth);
    let _ = writeln!(
        out,
        "# HELP csmp_sla_breaches Requests whose SLA deadline passed before fulfilment."
    );
    let _ = writeln!(out, "# TYPE csmp_sla_breaches gauge");
    let _ = writeln!(out, "csmp_sla_breaches {}", c.sla_breaches);
    let (buckets, sum, count) = &c.run_seconds;
    let _ = writeln!(
        out,
        "# HELP csmp_run_duration_seconds Time from start to end of finished runs."
    );
    let _ = writeln!(out, "# TYPE csmp_run_duration_seconds histogram");
    for (b, n) in buckets {
        let _ = writeln!(out, "csmp_run_duration_seconds_bucket{{le=\"{b}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "csmp_run_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
    );
    let _ = writeln!(out, "csmp_run_duration_seconds_sum {sum}");
    let _ = writeln!(out, "csmp_run_duration_seconds_count {count}");
    let _ = writeln!(
        out,
        "# HELP csmp_store_commits_total Transactions committed by this process."
    );
    let _ = writeln!(out, "# TYPE csmp_store_commits_total counter");
    let _ = writeln!(out, "csmp_store_commits_total {}", state.store.commits());
    let health = state.engine.health();
    let _ = writeln!(
        out,
        "# HELP csmp_store_commit_retries_total Executor commits that met a transient database fault and were retried."
    );
    let _ = writeln!(out, "# TYPE csmp_store_commit_retries_total counter");
    let _ = writeln!(
        out,
        "csmp_store_commit_retries_total {}",
        health.commits_retried()
    );
    let _ = writeln!(
        out,
        "# HELP csmp_runs_refused_total Runs failed because the database refused to store one of their transitions."
    );
    let _ = writeln!(out, "# TYPE csmp_runs_refused_total counter");
    let _ = writeln!(out, "csmp_runs_refused_total {}", health.runs_refused());
    let _ = writeln!(
        out,
        "# HELP csmp_store_failing 1 while the executor cannot commit to the database."
    );
    let _ = writeln!(out, "# TYPE csmp_store_failing gauge");
    let _ = writeln!(
        out,
        "csmp_store_failing {}",
        u8::from(health.storage_fault().is_some())
    );
    state.http.render(&mut out);
    let mut response = (StatusCode::OK, out).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
