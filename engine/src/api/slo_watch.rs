//! The burn-rate watcher: every `ApiConfig::slo_every`, each catalog entry with an `slo` has
//! its requests' outcomes of the last days — and each check with an `slo` its probes' —
//! weighed against the SRE workbook's multi-window rules (`slo::BURN_RULES`), and a rule that
//! starts or stops holding is sent into the alert
//! pipeline as an alert of source `slo` — firing or resolved — where rules, silences and
//! incidents take it like any other. The newest stored alert of each rule says what was sent
//! last, so a restart neither repeats nor forgets a transition.

use std::collections::BTreeMap;

use super::AppState;
use crate::alerts::{Alert, Status};
use crate::slo::{self, BURN_RULES};

/// The source of the alerts this raises.
pub(super) const SOURCE: &str = "slo";

/// How far back outcomes are read: the longest rule window (3 d), plus a day for requests
/// decided inside it but submitted before.
const LOOKBACK_MS: i64 = 4 * 24 * 3600 * 1000;

/// What an objective is kept over: a catalog entry's requests, or a check's probes.
pub(super) struct Subject {
    /// `slo:<entry>` or `slo:check:<name>`, the start of its rules' fingerprints.
    pub(super) key: String,
    /// What the alerts say it is.
    pub(super) labels: BTreeMap<String, String>,
    /// Its name in the summary.
    pub(super) name: String,
    /// Its objective.
    pub(super) objective: slo::Objective,
    /// Its outcomes over the lookback.
    pub(super) outcomes: Vec<slo::Outcome>,
    /// The tenant of a tenant's check.
    pub(super) tenant: Option<String>,
}

/// The catalog entries and checks with an objective, with their outcomes of the last
/// `lookback` ms.
pub(super) async fn subjects(
    state: &AppState,
    now: i64,
    lookback: i64,
) -> Result<Vec<Subject>, crate::store::StoreError> {
    let mut out = Vec::new();
    let catalog = state.catalog();
    let entries: Vec<(String, slo::Objective)> = catalog
        .values()
        .filter_map(|e| e.slo.map(|o| (e.id.clone(), o)))
        .collect();
    if !entries.is_empty() {
        let facts = state
            .store
            .request_facts(None, now - lookback, now + 1)
            .await?;
        let mut by_entry: BTreeMap<&str, Vec<slo::Outcome>> = BTreeMap::new();
        for f in &facts {
            by_entry
                .entry(f.catalog_id.as_str())
                .or_default()
                .push(slo::outcome(f, now));
        }
        for (entry, objective) in entries {
            out.push(Subject {
                key: format!("slo:{entry}"),
                labels: BTreeMap::from([
                    ("slo".to_string(), entry.clone()),
                    ("catalog_id".to_string(), entry.clone()),
                ]),
                outcomes: by_entry.remove(entry.as_str()).unwrap_or_default(),
                name: entry,
                objective,
                tenant: None,
            });
        }
    }
    for c in state.checks().iter() {
        let Some(objective) = c.slo else { continue };
        let results = state.store.check_results(&c.name, now - lookback).await?;
        out.push(Subject {
            key: format!("slo:check:{}", c.name),
            labels: BTreeMap::from([
                ("slo".to_string(), c.name.clone()),
                ("check".to_string(), c.name.clone()),
                ("service".to_string(), c.service.clone()),
            ]),
            name: format!("{} (check {})", c.service, c.name),
            objective,
            outcomes: results
                .into_iter()
                .map(|(at, passed)| {
                    if passed {
                        slo::Outcome::Good { at }
                    } else {
                        slo::Outcome::Bad { at }
                    }
                })
                .collect(),
            tenant: c.tenant.clone(),
        });
    }
    Ok(out)
}

/// One pass: sends the transitions of every objective's burn-rate rules.
pub(super) async fn check(state: &AppState) {
    let now = state.now_ms();
    let subjects = match subjects(state, now, LOOKBACK_MS).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("burn rates not checked: reading outcomes failed: {e}");
            failed(state);
            return;
        }
    };
    let mut alerts = Vec::new();
    for subject in &subjects {
        let objective = &subject.objective;
        let firing = slo::burning(&subject.outcomes, objective, now);
        for rule in BURN_RULES {
            let fingerprint = format!("{}:{}", subject.key, rule.long);
            let holds = firing.iter().find(|(r, _, _)| r.long == rule.long);
            let last = match state.store.latest_alert(SOURCE, &fingerprint).await {
                Ok(a) => a.map(|a| a.alert.status),
                Err(e) => {
                    tracing::warn!(%fingerprint, "burn rate not checked: {e}");
                    failed(state);
                    continue;
                }
            };
            let status = match (holds, last) {
                (Some(_), Some(Status::Firing)) | (None, None | Some(Status::Resolved)) => {
                    continue;
                }
                (Some(_), _) => Status::Firing,
                (None, Some(Status::Firing)) => Status::Resolved,
            };
            let (long, short) = holds.map_or((None, None), |(_, l, s)| (Some(*l), Some(*s)));
            let mut labels = subject.labels.clone();
            labels.extend([
                ("alertname".to_string(), "SLOBurnRate".to_string()),
                ("window".to_string(), rule.long.to_string()),
                ("severity".to_string(), rule.severity.to_string()),
            ]);
            let summary = format!(
                "{} burns its {}% error budget faster than {}× over {} and {}",
                subject.name, objective.percent, rule.factor, rule.long, rule.short
            );
            let annotations = BTreeMap::from([
                ("summary".to_string(), summary),
                (
                    "burn_rate_long".to_string(),
                    long.map(|v| format!("{v:.2}")).unwrap_or_default(),
                ),
                (
                    "burn_rate_short".to_string(),
                    short.map(|v| format!("{v:.2}")).unwrap_or_default(),
                ),
            ]);
            alerts.push(Alert::raised(
                SOURCE,
                fingerprint,
                status,
                rule.severity,
                labels,
                annotations,
                subject.tenant.clone(),
                now,
            ));
        }
    }
    if alerts.is_empty() {
        return;
    }
    let taken = super::events::take_own(state, SOURCE, alerts).await;
    if let Err(e) = taken {
        tracing::warn!("burn-rate alerts not taken: {e:?}");
        failed(state);
    }
}

/// Counts a failure of this source in `csmp_alerts_own_errors_total` (its log line says
/// which).
fn failed(state: &AppState) {
    state.alerts.metrics.add("own_errors", SOURCE, 1);
}
