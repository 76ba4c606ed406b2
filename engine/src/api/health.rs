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

/// Prometheus metrics: runs, steps, attempts, queue depth, storage health, requests, SLA
/// breaches, API latencies. Served from memory: the executor counts as it commits, and the
/// request gauges are refreshed in the background (`RequestGauges`).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
    ))]
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let m = state.engine.metrics().snapshot();
    let mut out = String::new();
    let head = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
    };
    let one = |out: &mut String, name: &str, kind: &str, help: &str, v: u64| {
        head(out, name, kind, help);
        let _ = writeln!(out, "{name} {v}");
    };
    let by = |out: &mut String, name: &str, kind: &str, help: &str, rows: &[(&str, u64)]| {
        head(out, name, kind, help);
        for (status, n) in rows {
            let _ = writeln!(out, "{name}{{status=\"{status}\"}} {n}");
        }
    };
    one(
        &mut out,
        "csmp_runs_started_total",
        "counter",
        "Runs created by this process.",
        m.runs_started,
    );
    by(
        &mut out,
        "csmp_runs_finished_total",
        "counter",
        "Runs this process ended, by final status.",
        &m.runs_finished,
    );
    by(
        &mut out,
        "csmp_steps_finished_total",
        "counter",
        "Units (steps, fan-out items, compensations, on_failure steps) this process ended, by final status.",
        &m.steps_finished,
    );
    one(
        &mut out,
        "csmp_attempts_retried_total",
        "counter",
        "Plugin attempts that failed and were scheduled again.",
        m.attempts_retried,
    );
    one(
        &mut out,
        "csmp_runs_active",
        "gauge",
        "Runs this process executes now.",
        m.runs_active,
    );
    one(
        &mut out,
        "csmp_runs_blocked",
        "gauge",
        "Runs waiting because their workflow version does not plan.",
        m.runs_blocked,
    );
    one(
        &mut out,
        "csmp_queue_depth",
        "gauge",
        "Plugin attempts waiting for a worker thread.",
        m.attempts_queued,
    );
    one(
        &mut out,
        "csmp_attempts_running",
        "gauge",
        "Plugin attempts on a worker thread now.",
        m.attempts_running,
    );
    one(
        &mut out,
        "csmp_partitions_held",
        "gauge",
        "Partitions this process holds now (it executes their runs).",
        m.partitions_held,
    );
    one(
        &mut out,
        "csmp_partitions_lost_total",
        "counter",
        "Partitions another process took over from this one (it was not heard from for a lease).",
        m.partitions_lost,
    );
    one(
        &mut out,
        "csmp_commands_forwarded_total",
        "counter",
        "Commands (signals, approvals, cancels, retries, incident actions) sent to the process holding their run's partition.",
        m.commands_forwarded,
    );
    one(
        &mut out,
        "csmp_commands_unanswered_total",
        "counter",
        "Forwarded commands their partition's holder did not answer within 20 s (they stay queued there).",
        m.commands_unanswered,
    );
    let (buckets, sum, count) = &m.run_seconds;
    head(
        &mut out,
        "csmp_run_duration_seconds",
        "histogram",
        "Time from start to end of the runs this process ended.",
    );
    for (b, n) in buckets {
        let _ = writeln!(out, "csmp_run_duration_seconds_bucket{{le=\"{b}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "csmp_run_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
    );
    let _ = writeln!(out, "csmp_run_duration_seconds_sum {sum}");
    let _ = writeln!(out, "csmp_run_duration_seconds_count {count}");
    one(
        &mut out,
        "csmp_store_commits_total",
        "counter",
        "Transactions committed by this process.",
        state.store.commits(),
    );
    let health = state.engine.health();
    one(
        &mut out,
        "csmp_store_commit_retries_total",
        "counter",
        "Executor commits that met a transient database fault and were retried.",
        health.commits_retried(),
    );
    one(
        &mut out,
        "csmp_runs_refused_total",
        "counter",
        "Runs failed because the database refused to store one of their transitions.",
        health.runs_refused(),
    );
    one(
        &mut out,
        "csmp_store_failing",
        "gauge",
        "1 while the executor cannot commit to the database.",
        u64::from(health.storage_fault().is_some()),
    );
    state.requests.render(&mut out);
    render_alerts(&state.alerts.metrics.snapshot(), &mut out);
    state.http.render(&mut out);
    state.connections.render(&mut out);
    if let Some(limit) = &state.rate_limit {
        limit.render(&mut out);
    }
    state.audit.render(&mut out);
    super::reports::render(&state, &mut out).await;
    let mut response = (StatusCode::OK, out).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Requests by status and SLA breaches, read from the database by a background task every
/// `ApiConfig::request_gauges_every` (15 s): they depend on time and on requests other
/// processes take, so no single process can count them as they happen.
#[derive(Debug, Default)]
pub(super) struct RequestGauges {
    inner: Mutex<Option<(crate::store::RequestCensus, i64)>>,
}

impl RequestGauges {
    /// Reads the census now; a failure is logged and the last census kept.
    pub(super) async fn refresh(&self, store: &crate::store::Store, now_ms: i64) {
        match store.request_census(now_ms).await {
            Ok(c) => *self.inner.lock().unwrap_or_else(PoisonError::into_inner) = Some((c, now_ms)),
            Err(e) => tracing::warn!("cannot read the request gauges for /metrics: {e}"),
        }
    }

    /// SLA breaches as last read, and when (ms); `None` before the first read.
    pub(super) fn breaches(&self) -> Option<(i64, i64)> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(c, at)| (c.sla_breaches, *at))
    }

    fn render(&self, out: &mut String) {
        let Some((c, at)) = self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return;
        };
        let _ = writeln!(
            out,
            "# HELP csmp_requests Catalog requests by status (read in the background)."
        );
        let _ = writeln!(out, "# TYPE csmp_requests gauge");
        for (k, n) in &c.by_status {
            let _ = writeln!(out, "csmp_requests{{status=\"{}\"}} {n}", escape(k));
        }
        let _ = writeln!(
            out,
            "# HELP csmp_sla_breaches Requests whose SLA deadline passed before fulfilment."
        );
        let _ = writeln!(out, "# TYPE csmp_sla_breaches gauge");
        let _ = writeln!(out, "csmp_sla_breaches {}", c.sla_breaches);
        let _ = writeln!(
            out,
            "# HELP csmp_request_gauges_read_at_seconds When the request gauges were read (Unix time)."
        );
        let _ = writeln!(out, "# TYPE csmp_request_gauges_read_at_seconds gauge");
        let _ = writeln!(out, "csmp_request_gauges_read_at_seconds {}", at / 1000);
    }
}

/// The alert counters: by source (received, deduplicated, silenced) and by rule (acted, rule
/// errors). Each family is written even before its first count, so a dashboard finds it.
fn render_alerts(counts: &[(&'static str, String, u64)], out: &mut String) {
    for (what, label, help) in [
        ("received", "source", "Alerts received."),
        (
            "deduplicated",
            "source",
            "Alerts that repeated one already received (same fingerprint and state).",
        ),
        (
            "silenced",
            "source",
            "Alerts a silence kept from being acted on.",
        ),
        (
            "acted",
            "rule",
            "Alert groups whose rule acted: started its run, opened its incident, sent its messages.",
        ),
        (
            "rule_errors",
            "rule",
            "Rules that could not act or whose `when` could not be rendered for an alert.",
        ),
        (
            "own_errors",
            "source",
            "Failures of the service's own alert sources (checks, burn rates): a read, a write or a raise that did not happen; the log says which.",
        ),
    ] {
        let name = format!("csmp_alerts_{what}_total");
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for (w, l, n) in counts {
            if *w == what {
                let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {n}", escape(l));
            }
        }
    }
}
