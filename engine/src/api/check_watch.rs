//! The check runner: each synthetic check of `checks/` is probed every `interval` — through the
//! `http` plugin's grants, so a check reaches exactly what that plugin may — and each result is
//! stored with the check's standing. A check that fails `failure_threshold` times in a row goes
//! down: an alert of source `check` (firing) goes into the rules, and when no rule takes it an
//! incident is opened on the check's service (escalated by `escalate` when a policy covers
//! it); `success_threshold` passes bring it up: the alert resolves, and so does the incident
//! it opened. Results older than 31 days are deleted.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde_json::json;

use super::AppState;
use crate::alerts::{Alert, Status};
use crate::checks::{self, Change, CheckPlan, Observation, Standing};
use crate::store::{CheckResultRow, CheckStateRow, IncidentRow};

/// The source of the alerts checks raise.
pub(super) const SOURCE: &str = "check";

/// How long results are kept.
const RETENTION_MS: i64 = 31 * 24 * 3600 * 1000;

/// The runner's memory between ticks: when each check is next due, and the standings read at
/// start.
#[derive(Default)]
pub(super) struct Runner {
    due: HashMap<String, i64>,
    standings: Option<BTreeMap<String, CheckStateRow>>,
    last_prune: i64,
}

impl Runner {
    /// Probes every check that is due; returns when they are all recorded.
    pub(super) async fn tick(&mut self, state: &AppState) {
        let now = state.now_ms();
        if self.standings.is_none() {
            match state.store.check_states().await {
                Ok(rows) => {
                    self.standings = Some(rows.into_iter().map(|r| (r.check.clone(), r)).collect());
                }
                Err(e) => {
                    tracing::warn!("checks wait: reading their standing failed: {e}");
                    failed(state);
                    return;
                }
            }
        }
        let plans = state.checks();
        let due: Vec<CheckPlan> = plans
            .iter()
            .filter(|c| self.due.get(&c.name).is_none_or(|t| *t <= now))
            .cloned()
            .collect();
        for c in &due {
            let every = i64::try_from(c.interval.as_millis()).unwrap_or(i64::MAX);
            self.due.insert(c.name.clone(), now.saturating_add(every));
        }
        let probes = due.into_iter().map(|c| {
            let host = state.host.clone();
            async move {
                let (method, url, timeout) = (c.method.clone(), c.url.clone(), c.timeout);
                let certificate = c.reads_certificate();
                let started = Instant::now();
                let answer = tokio::task::spawn_blocking(move || {
                    host.probe("http", &method, &url, timeout, certificate)
                })
                .await
                .unwrap_or_else(|e| Err(format!("the probe's thread failed: {e}")));
                let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                let seen = match answer {
                    Ok((status, body, expires)) => Observation {
                        status: Some(status),
                        body,
                        latency_ms,
                        error: None,
                        certificate_left_ms: expires.map(|at| at - now),
                    },
                    Err(e) => Observation {
                        status: None,
                        body: Vec::new(),
                        latency_ms,
                        error: Some(e),
                        certificate_left_ms: None,
                    },
                };
                (c, seen)
            }
        });
        for (c, seen) in futures_util::future::join_all(probes).await {
            self.settle(state, &c, &seen).await;
        }
        if now - self.last_prune > 3600 * 1000 {
            self.last_prune = now;
            if let Err(e) = state.store.prune_check_results(now - RETENTION_MS).await {
                tracing::warn!("old check results were not deleted: {e}");
                failed(state);
            }
        }
    }

    /// Records one probe and acts on the change it makes.
    async fn settle(&mut self, state: &AppState, c: &CheckPlan, seen: &Observation) {
        let now = state.now_ms();
        let verdict = checks::judge(c, seen);
        let mut row = self
            .standings
            .as_ref()
            .and_then(|m| m.get(&c.name))
            .cloned()
            .unwrap_or(CheckStateRow {
                check: c.name.clone(),
                ..CheckStateRow::default()
            });
        let mut s = Standing {
            up: row.up,
            fails: row.fails,
            passes: row.passes,
        };
        let change = checks::record(c, &mut s, verdict.is_ok());
        row.up = s.up;
        row.fails = s.fails;
        row.passes = s.passes;
        if change != Change::Same {
            row.changed_at = now;
        }
        let result = CheckResultRow {
            check: c.name.clone(),
            at: now,
            passed: verdict.is_ok(),
            status: seen.status,
            latency_ms: seen.latency_ms,
            error: verdict.as_ref().err().cloned(),
        };
        if let Err(e) = state.store.record_check(&result, &row).await {
            tracing::warn!(check = %c.name, "a probe's result was not stored: {e}");
            failed(state);
            return;
        }
        match change {
            Change::Down => {
                let why = verdict.err().unwrap_or_default();
                tracing::warn!(check = %c.name, service = %c.service, "check {} is down: {why}", c.name);
                let taken = raise(state, c, Status::Firing, &why).await;
                if !taken && row.incident_id.is_none() {
                    row.incident_id = open_incident(state, c, &why).await;
                    if let Err(e) = state.store.put_check_state(&row).await {
                        tracing::warn!(check = %c.name, "the check's incident was not recorded: {e}");
                        failed(state);
                    }
                }
            }
            Change::Up => {
                tracing::info!(check = %c.name, "check {} is up again", c.name);
                raise(state, c, Status::Resolved, "every condition holds again").await;
                if let Some(id) = row.incident_id.take() {
                    let resolved = state
                        .engine
                        .steer_incident(
                            &id,
                            crate::runtime::IncidentSteer::Resolve,
                            &format!("check {}", c.name),
                            Some("the check passes again".into()),
                            None,
                        )
                        .await;
                    if let Err(e) = resolved {
                        tracing::warn!(check = %c.name, incident = %id, "the check's incident was not resolved: {e}");
                        failed(state);
                    }
                    if let Err(e) = state.store.put_check_state(&row).await {
                        tracing::warn!(check = %c.name, "the check's standing was not stored: {e}");
                        failed(state);
                    }
                }
            }
            Change::Same => {}
        }
        self.standings
            .get_or_insert_with(BTreeMap::new)
            .insert(c.name.clone(), row);
    }
}

/// Sends the check's alert into the rules; whether a rule took it.
async fn raise(state: &AppState, c: &CheckPlan, status: Status, why: &str) -> bool {
    let now = state.now_ms();
    let labels = BTreeMap::from([
        ("alertname".to_string(), "CheckFailed".to_string()),
        ("check".to_string(), c.name.clone()),
        ("service".to_string(), c.service.clone()),
    ]);
    let annotations = BTreeMap::from([(
        "summary".to_string(),
        format!("{} ({}): {why}", c.name, c.url),
    )]);
    let alert = Alert::raised(
        SOURCE,
        format!("check:{}", c.name),
        status,
        &c.severity,
        labels,
        annotations,
        c.tenant.clone(),
        now,
    );
    match super::events::take_own(state, SOURCE, vec![alert]).await {
        Ok(Some(decisions)) => decisions.iter().any(|d| d.outcome == "matched"),
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(check = %c.name, "the check's alert was not taken: {e:?}");
            failed(state);
            false
        }
    }
}

/// Opens the incident of a down check no rule took, and escalates it when a policy covers its
/// service.
async fn open_incident(state: &AppState, c: &CheckPlan, why: &str) -> Option<String> {
    let now = state.now_ms();
    let by = format!("check {}", c.name);
    let row = IncidentRow {
        id: super::auth::random_id("inc"),
        run_id: None,
        tenant: c
            .tenant
            .clone()
            .unwrap_or_else(|| crate::runtime::PROVIDER.into()),
        title: format!("{} is failing its check {}", c.service, c.name),
        severity: c.severity.clone(),
        service: Some(c.service.clone()),
        status: crate::incidents::TRIGGERED.into(),
        timeline: json!([crate::incidents::opened(
            now,
            &by,
            &format!("opened: {why}"),
            &c.severity
        )]),
        details: json!({}),
        created_at: now,
        updated_at: now,
        partition: 0,
    };
    let opened = match state.engine.open_incident(row, Vec::new()).await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(check = %c.name, "the check's incident was not opened: {e}");
            failed(state);
            return None;
        }
    };
    if state.oncall().policy_for(&c.service).is_some() {
        let run = state
            .engine
            .submit(crate::runtime::NewRun {
                workflow: crate::alerts::dispatch::ESCALATE_WORKFLOW.into(),
                version: None,
                inputs: json!({ "incident": opened.id }),
                tenant: crate::runtime::PROVIDER.into(),
                requester: Some(by),
                // It lives with its incident, which hears of acknowledgements in process.
                partition: Some(opened.partition),
            })
            .await;
        if let Err(e) = run {
            tracing::warn!(check = %c.name, incident = %opened.id, "the check's incident was not escalated: {e}");
            failed(state);
        }
    }
    Some(opened.id)
}

/// Counts a failure of this source in `csmp_alerts_own_errors_total` (its log line says
/// which).
fn failed(state: &AppState) {
    state.alerts.metrics.add("own_errors", SOURCE, 1);
}
