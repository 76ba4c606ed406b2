//! What each alert does: deduplicated, silenced, or placed in its rules' groups — opening a
//! group, waiting in it, signalling its run, or counted while it cools down. Reads the store,
//! writes nothing: the dispatcher writes what this decides (and `POST /v1/rules/test` shows it).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::dispatch::{ms, new_id};
use super::rules::RulePlan;
use super::silences::{Silence, silencing};
use super::{Alert, Status};
use crate::store::{AlertRow, EventRow, GroupRow, IntakeWrite, MatchRow, Store, StoreError};

/// What one alert did, for the answer and for `POST /v1/rules/test`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Decision {
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// `duplicate`, `silenced`, `unmatched`, `matched` or `ignored`.
    pub outcome: String,
    /// The silence that holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silence: Option<String>,
    /// What each rule does with it.
    pub rules: Vec<RuleDecision>,
}

/// What one rule does with one alert.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleDecision {
    /// The rule.
    pub rule: String,
    /// The group's values.
    pub group: BTreeMap<String, String>,
    /// The group's id (a new group's id is made when it is stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// `open a group`, `wait`, `signal alert`, `signal resolved`, `count (cooldown)`, …
    pub action: String,
    /// The run it reaches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Why it does nothing, when its `when` failed to render.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The key of the group an alert falls in: the rule's `group_by` values, and the tenant.
fn group_key(rule: &RulePlan, alert: &Alert) -> BTreeMap<String, String> {
    let mut key = rule.group_key(alert);
    if let Some(t) = &alert.tenant {
        key.insert("@tenant".into(), t.clone());
    }
    key
}

/// Decides what each alert does against the stored groups; returns the writes (when `event`
/// is given) and the decisions. Reads only.
pub(super) async fn decide(
    store: &Store,
    rules: &BTreeMap<String, RulePlan>,
    silences: &[Silence],
    alerts: &[Alert],
    now: i64,
    event: Option<&EventRow>,
    dedup: bool,
) -> Result<(IntakeWrite, Vec<Decision>), StoreError> {
    let mut w = IntakeWrite {
        event: event.cloned(),
        ..IntakeWrite::default()
    };
    let mut decisions = Vec::new();
    let mut latest: HashMap<(String, String), (Status, Option<i64>)> = HashMap::new();
    let mut groups: HashMap<(String, String), Option<GroupRow>> = HashMap::new();
    let mut ended_runs: HashMap<String, Option<(String, Option<i64>)>> = HashMap::new();
    for alert in alerts {
        let id = new_id("alr");
        let mut d = Decision {
            fingerprint: alert.fingerprint.clone(),
            status: alert.status.as_str().into(),
            outcome: String::new(),
            silence: None,
            rules: Vec::new(),
        };
        let fp = (alert.source.clone(), alert.fingerprint.clone());
        let prev = match latest.get(&fp) {
            Some(p) => Some(*p),
            None if !dedup => None,
            None => store
                .latest_alert(&alert.source, &alert.fingerprint)
                .await?
                .map(|r| (r.alert.status, r.alert.starts_at)),
        };
        latest.insert(fp, (alert.status, alert.starts_at));
        let duplicate = prev.is_some_and(|(status, starts)| {
            status == alert.status
                && (alert.status == Status::Resolved || starts == alert.starts_at)
        });
        if duplicate {
            d.outcome = "duplicate".into();
        } else if let Some(s) = silencing(silences, alert, now) {
            d.outcome = "silenced".into();
            d.silence = Some(s.row.id.clone());
        } else {
            for rule in rules.values() {
                let matched = match rule.matches(alert) {
                    Ok(m) => m,
                    Err(e) => {
                        d.rules.push(RuleDecision {
                            rule: rule.name.clone(),
                            group: BTreeMap::new(),
                            group_id: None,
                            action: "nothing: its `when` could not be rendered".into(),
                            run_id: None,
                            error: Some(e),
                        });
                        continue;
                    }
                };
                if !matched {
                    continue;
                }
                let key = group_key(rule, alert);
                let slot = (rule.name.clone(), crate::store::key_text(&key));
                if !groups.contains_key(&slot) {
                    let g = store.current_group(&rule.name, &key).await?;
                    groups.insert(slot.clone(), g);
                }
                let current = groups.get(&slot).cloned().flatten();
                let (group, m, action) = place(
                    store,
                    rule,
                    current,
                    alert,
                    &id,
                    key.clone(),
                    now,
                    &mut ended_runs,
                )
                .await?;
                d.rules.push(RuleDecision {
                    rule: rule.name.clone(),
                    group: key
                        .into_iter()
                        .filter(|(k, _)| !k.starts_with('@'))
                        .collect(),
                    group_id: group.as_ref().map(|g| g.id.clone()),
                    action,
                    run_id: group.as_ref().and_then(|g| g.run_id.clone()),
                    error: None,
                });
                if let Some(g) = group {
                    w.groups.retain(|x| x.id != g.id);
                    w.groups.push(g.clone());
                    groups.insert(slot, Some(g));
                }
                if let Some(m) = m {
                    w.matches.push(m);
                }
            }
            let matched = w.matches.iter().any(|m| m.alert_id == id);
            d.outcome = if matched {
                "matched".into()
            } else if d.rules.is_empty() {
                "unmatched".into()
            } else {
                "ignored".into()
            };
        }
        w.alerts.push(AlertRow {
            id,
            event_id: event.map(|e| e.id.clone()),
            alert: alert.clone(),
            received_at: now,
            outcome: d.outcome.clone(),
            silence_id: d.silence.clone(),
        });
        decisions.push(d);
    }
    Ok((w, decisions))
}

/// Where an alert goes in its rule's group: the group as it becomes, the alert's place in it,
/// and what that means in words.
#[allow(clippy::too_many_arguments)]
async fn place(
    store: &Store,
    rule: &RulePlan,
    current: Option<GroupRow>,
    alert: &Alert,
    alert_id: &str,
    key: BTreeMap<String, String>,
    now: i64,
    ended_runs: &mut HashMap<String, Option<(String, Option<i64>)>>,
) -> Result<(Option<GroupRow>, Option<MatchRow>, String), StoreError> {
    let firing = alert.status == Status::Firing;
    let row_for = |g: &GroupRow, outcome: &str, signal: Option<&str>| MatchRow {
        alert_id: alert_id.to_string(),
        group_id: g.id.clone(),
        rule: rule.name.clone(),
        received_at: now,
        firing,
        outcome: outcome.into(),
        signal: signal.map(String::from),
    };
    let mut g = current;
    // An open group whose run has ended is over: its cooldown starts when the run ended.
    if let Some(group) = &mut g
        && matches!(group.state.as_str(), "active" | "resolved")
    {
        let end = match &group.run_id {
            Some(run) => {
                if !ended_runs.contains_key(run) {
                    let e = store.run_end(run).await?;
                    ended_runs.insert(run.clone(), e);
                }
                ended_runs.get(run).cloned().flatten()
            }
            None => None,
        };
        if let Some((status, finished)) = end
            && matches!(status.as_str(), "succeeded" | "failed" | "cancelled")
        {
            group.state = "ended".into();
            group.ended_at = Some(finished.unwrap_or(now));
            group.updated_at = now;
        }
    }
    match g {
        Some(mut group) if group.state == "waiting" => {
            if firing {
                group.firing.insert(alert.fingerprint.clone());
            } else {
                group.firing.remove(&alert.fingerprint);
            }
            let action = if group.firing.is_empty() {
                group.state = "ended".into();
                group.act_at = None;
                group.ended_at = Some(now);
                "close the group: every alert resolved before it acted".to_string()
            } else {
                if group.act_at.is_none() {
                    // Waited out `group_wait` short of `min_occurrences`: look again now.
                    group.act_at = Some(now);
                }
                "wait: the group gathers alerts until group_wait ends".to_string()
            };
            group.updated_at = now;
            let m = row_for(
                &group,
                if group.state == "ended" {
                    "dropped"
                } else {
                    "waiting"
                },
                None,
            );
            Ok((Some(group), Some(m), action))
        }
        Some(mut group) if matches!(group.state.as_str(), "active" | "resolved") => {
            if firing {
                group.firing.insert(alert.fingerprint.clone());
                group.state = "active".into();
            } else {
                group.firing.remove(&alert.fingerprint);
            }
            let signal = if group.firing.is_empty() {
                group.state = "resolved".into();
                "resolved"
            } else {
                "alert"
            };
            group.updated_at = now;
            let m = row_for(&group, "pending", Some(signal));
            let action = match &group.run_id {
                Some(run) => format!("signal `{signal}` to run {run}"),
                None if signal == "resolved" => "resolve the group's incident".into(),
                None => "note it on the group's incident".into(),
            };
            Ok((Some(group), Some(m), action))
        }
        Some(group)
            if group.state == "ended"
                && group
                    .ended_at
                    .unwrap_or(0)
                    .saturating_add(ms(rule.cooldown))
                    > now =>
        {
            let m = row_for(&group, "counted", None);
            let until = super::iso(
                group
                    .ended_at
                    .unwrap_or(0)
                    .saturating_add(ms(rule.cooldown)),
            );
            Ok((
                Some(group),
                Some(m),
                format!("count only: the group cools down until {until}"),
            ))
        }
        previous => {
            if !firing {
                return Ok((None, None, "nothing: no open group to resolve".into()));
            }
            let generation = previous.as_ref().map_or(1, |p| p.generation + 1);
            let group = GroupRow {
                id: new_id("grp"),
                rule: rule.name.clone(),
                tenant: alert.tenant.clone(),
                key,
                generation,
                state: "waiting".into(),
                opened_at: now,
                act_at: Some(now.saturating_add(ms(rule.group_wait))),
                acted_at: None,
                run_id: None,
                incident_id: None,
                firing: std::iter::once(alert.fingerprint.clone()).collect(),
                error: None,
                ended_at: None,
                updated_at: now,
            };
            let m = row_for(&group, "waiting", None);
            let action = if rule.group_wait.is_zero() {
                "open a group and act".to_string()
            } else {
                format!(
                    "open a group; act after group_wait ({})",
                    crate::dsl::format_duration(rule.group_wait)
                )
            };
            Ok((Some(group), Some(m), action))
        }
    }
}
