//! The burn-rate watcher: every `ApiConfig::slo_every`, each catalog entry with an `slo` has
//! its requests' outcomes of the last days weighed against the SRE workbook's multi-window
//! rules (`slo::BURN_RULES`), and a rule that starts or stops holding is sent into the alert
//! pipeline as an alert of source `slo` — firing or resolved — where rules, silences and
//! incidents take it like any other. The newest stored alert of each rule says what was sent
//! last, so a restart neither repeats nor forgets a transition.

use std::collections::BTreeMap;

use serde_json::json;

use super::AppState;
use crate::alerts::{Alert, Status};
use crate::slo::{self, BURN_RULES};
use crate::store::EventRow;

/// The source of the alerts this raises.
pub(super) const SOURCE: &str = "slo";

/// How far back outcomes are read: the longest rule window (3 d), plus a day for requests
/// decided inside it but submitted before.
const LOOKBACK_MS: i64 = 4 * 24 * 3600 * 1000;

/// One pass: sends the transitions of every entry's burn-rate rules.
pub(super) async fn check(state: &AppState) {
    let now = state.now_ms();
    let catalog = state.catalog();
    let with_slo: Vec<(String, slo::Objective)> = catalog
        .values()
        .filter_map(|e| e.slo.map(|o| (e.id.clone(), o)))
        .collect();
    if with_slo.is_empty() {
        return;
    }
    let facts = match state
        .store
        .request_facts(None, now - LOOKBACK_MS, now + 1)
        .await
    {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("burn rates not checked: reading requests failed: {e}");
            return;
        }
    };
    let mut by_entry: BTreeMap<&str, Vec<slo::Outcome>> = BTreeMap::new();
    for f in &facts {
        by_entry
            .entry(f.catalog_id.as_str())
            .or_default()
            .push(slo::outcome(f, now));
    }
    let mut alerts = Vec::new();
    for (entry, objective) in &with_slo {
        let outcomes = by_entry.get(entry.as_str()).map_or(&[][..], Vec::as_slice);
        let firing = slo::burning(outcomes, objective, now);
        for rule in BURN_RULES {
            let fingerprint = format!("slo:{entry}:{}", rule.long);
            let holds = firing.iter().find(|(r, _, _)| r.long == rule.long);
            let last = match state.store.latest_alert(SOURCE, &fingerprint).await {
                Ok(a) => a.map(|a| a.alert.status),
                Err(e) => {
                    tracing::warn!(%fingerprint, "burn rate not checked: {e}");
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
            let labels = BTreeMap::from([
                ("alertname".to_string(), "SLOBurnRate".to_string()),
                ("slo".to_string(), entry.clone()),
                ("catalog_id".to_string(), entry.clone()),
                ("window".to_string(), rule.long.to_string()),
                ("severity".to_string(), rule.severity.to_string()),
            ]);
            let summary = format!(
                "{entry} burns its {}% error budget faster than {}× over {} and {}",
                objective.percent, rule.factor, rule.long, rule.short
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
            let raw = json!({ "fingerprint": fingerprint, "status": status.as_str(), "labels": labels, "annotations": annotations });
            alerts.push(Alert {
                source: SOURCE.into(),
                fingerprint,
                status,
                severity: Some(rule.severity.to_string()),
                labels,
                annotations,
                starts_at: Some(now),
                ends_at: (status == Status::Resolved).then_some(now),
                tenant: None,
                raw,
            });
        }
    }
    if alerts.is_empty() {
        return;
    }
    let count = u32::try_from(alerts.len()).unwrap_or(u32::MAX);
    let payload = json!({ "alerts": alerts.iter().map(|a| a.raw.clone()).collect::<Vec<_>>() });
    let event = EventRow {
        id: super::auth::random_id("evt"),
        source: SOURCE.into(),
        received_at: now,
        received_by: "csmp".into(),
        status: None,
        alerts: count,
        payload,
    };
    let taken = state
        .alerts
        .take(crate::alerts::dispatch::Intake {
            event,
            alerts,
            audit: None,
            once: None,
        })
        .await;
    if let Err(e) = taken {
        tracing::warn!("burn-rate alerts not taken: {e:?}");
    }
}
