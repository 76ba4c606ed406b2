//! `escalate:` units: an incident's responders paged level by level through an escalation
//! policy of `oncall/`, durably.
//!
//! The unit waits with its position (level, pass) in its state and the next level's time in
//! its `wake_at`, so a restart goes on where it stopped. Each page is a run of the page
//! workflow (`page` unless the step names another), created in the same commit that moves the
//! unit, so a page is started exactly once however the process dies. An acknowledgement ends
//! the unit (`outcome: acknowledged`), so does a resolution (`resolved`); a raised severity
//! pages the current level again; a level left unacknowledged past its delay pages the next,
//! and after the last pass the unit ends with `outcome: exhausted`.

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::{Executor, failed, ms};
use crate::oncall::{Policy, Position, policy};
use crate::plan::{EscalatePlan, PlanKind, UnitKey};
use crate::runtime::NewRun;
use crate::store::{IncidentRow, StepRow, StepStatus, Write};

/// The key of a unit's state that holds its escalation.
const STATE: &str = "escalate";

/// Where an escalation stands, kept in its unit's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Escalation {
    /// The incident.
    incident: String,
    /// The policy followed.
    policy: String,
    /// The workflow each page runs.
    page: String,
    /// The level paged last.
    at: Position,
    /// Round-robin turns taken (the first is chosen by the incident's id).
    turn: usize,
    /// The severity paged for; a raise above it pages again.
    severity: String,
    /// Page runs started so far.
    pages: Vec<String>,
}

impl Escalation {
    fn of(row: &StepRow) -> Option<Self> {
        let state = row.state.as_ref()?.get(STATE)?;
        serde_json::from_value(state.clone()).ok()
    }

    fn output(&self, outcome: &str, by: Option<&str>) -> Json {
        json!({
            "outcome": outcome,
            "incident": self.incident,
            "policy": self.policy,
            "level": self.at.level + 1,
            "pass": self.at.pass + 1,
            "pages": self.pages.len(),
            "by": by,
        })
    }
}

fn state_of(esc: &Escalation) -> Json {
    let mut m = serde_json::Map::new();
    m.insert(
        STATE.into(),
        serde_json::to_value(esc).unwrap_or(Json::Null),
    );
    Json::Object(m)
}

/// A stable small number from an incident id, so round-robin levels spread incidents over
/// their people.
fn spread(id: &str) -> usize {
    id.bytes().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(b))
    })
}

/// PagerDuty's event severity for an incident's.
fn pagerduty_severity(severity: &str) -> &'static str {
    match severity {
        "sev1" => "critical",
        "sev2" => "error",
        "sev3" => "warning",
        _ => "info",
    }
}

/// Whether `new` is a worse severity than `old` (`sev1` is the worst).
fn raised(old: &str, new: &str) -> bool {
    new < old
}

impl Executor {
    /// Starts an `escalate:` unit: finds its incident and policy and pages the first level.
    pub(super) fn start_escalation(
        &mut self,
        run_id: &str,
        spec: &EscalatePlan,
        scope: &handlebars::Context,
        mut row: StepRow,
    ) {
        let now = self.clock.now_ms();
        let id = match spec.incident.render(scope) {
            Ok(Json::String(s)) => s,
            Ok(other) => {
                return self.put(
                    run_id,
                    failed(
                        row,
                        format!("`escalate.incident` gave {other}, not an incident id"),
                        now,
                    ),
                );
            }
            Err(e) => {
                return self.put(
                    run_id,
                    failed(row, format!("`escalate.incident`: {}", e.message), now),
                );
            }
        };
        let Some(incident) = self.open_incidents.get(&id).cloned() else {
            return self.put(
                run_id,
                failed(
                    row,
                    format!("incident `{id}` does not exist or is already resolved"),
                    now,
                ),
            );
        };
        let oncall = self.oncall_set();
        let policy = match &spec.policy {
            Some(p) => oncall.policies.get(p).ok_or_else(|| {
                format!("escalation policy `{p}` is not defined: add it under `escalation_policies:` in a file of oncall/")
            }),
            None => match incident.service.as_deref() {
                Some(s) => oncall.policy_for(s).ok_or_else(|| {
                    format!("no escalation policy covers service `{s}`: add `services: [{s}]` to a policy in oncall/, or name one with `escalate.policy`")
                }),
                None => Err(format!(
                    "incident `{id}` names no service, so no policy covers it: name one with `escalate.policy`"
                )),
            },
        };
        let policy = match policy {
            Ok(p) => p.clone(),
            Err(e) => return self.put(run_id, failed(row, e, now)),
        };
        let mut esc = Escalation {
            incident: id,
            policy: policy.id.clone(),
            page: spec.page.clone(),
            at: Position { level: 0, pass: 0 },
            turn: spread(&incident.id),
            severity: incident.severity.clone(),
            pages: Vec::new(),
        };
        if incident.status == "acknowledged" {
            row.status = StepStatus::Succeeded;
            row.output = Some(esc.output("acknowledged", None));
            row.finished_at = Some(now);
            return self.put(run_id, row);
        }
        self.page_level(run_id, &mut esc, &policy, &oncall, "paged");
        self.wait_level(run_id, row, esc, &policy, now);
    }

    /// A level's delay ran out without an acknowledgement: pages the next level, or ends.
    pub(super) fn escalation_due(&mut self, run_id: &str, key: UnitKey) {
        let now = self.clock.now_ms();
        let Some(row) = self
            .runs
            .get(run_id)
            .and_then(|r| r.units.get(&key))
            .cloned()
        else {
            return;
        };
        let Some(mut esc) = Escalation::of(&row) else {
            return self.put(
                run_id,
                failed(row, "the escalation's state is unreadable".into(), now),
            );
        };
        let oncall = self.oncall_set();
        let Some(policy) = oncall.policies.get(&esc.policy).cloned() else {
            let e = format!(
                "escalation policy `{}` was removed from oncall/ while it was followed",
                esc.policy
            );
            return self.put(run_id, failed(row, e, now));
        };
        match policy::next(&policy, esc.at).filter(|p| p.level < policy.levels.len()) {
            Some(at) => {
                esc.at = at;
                self.page_level(run_id, &mut esc, &policy, &oncall, "escalated: paged");
                self.wait_level(run_id, row, esc, &policy, now);
            }
            None => {
                self.note(
                    &esc.incident,
                    run_id,
                    &esc.policy,
                    format!(
                        "escalation policy `{}` is spent: nobody acknowledged",
                        esc.policy
                    ),
                );
                let mut row = row;
                row.status = StepStatus::Succeeded;
                row.output = Some(esc.output("exhausted", None));
                row.finished_at = Some(now);
                self.put(run_id, row);
            }
        }
    }

    /// An incident changed: its escalations end on an acknowledgement or a resolution, and
    /// page their level again when its severity was raised.
    pub(super) fn incident_changed(&mut self, incident: &IncidentRow, by: &str) {
        let now = self.clock.now_ms();
        let mut found: Vec<(String, StepRow)> = Vec::new();
        for (run_id, run) in &self.runs {
            for u in run.units.values() {
                if u.status == StepStatus::Waiting
                    && let Some(e) = u.state.as_ref().and_then(|s| s.get(STATE))
                    && e.get("incident").and_then(Json::as_str) == Some(incident.id.as_str())
                {
                    found.push((run_id.clone(), u.clone()));
                }
            }
        }
        for (run_id, mut row) in found {
            let Some(mut esc) = Escalation::of(&row) else {
                continue;
            };
            let outcome = match incident.status.as_str() {
                "acknowledged" => Some("acknowledged"),
                "resolved" => Some("resolved"),
                _ => None,
            };
            if let Some(outcome) = outcome {
                row.status = StepStatus::Succeeded;
                row.output = Some(esc.output(outcome, Some(by)));
                row.wake_at = None;
                row.finished_at = Some(now);
                self.put(&run_id, row);
            } else if raised(&esc.severity, &incident.severity) {
                let oncall = self.oncall_set();
                let Some(policy) = oncall.policies.get(&esc.policy).cloned() else {
                    continue;
                };
                esc.severity = incident.severity.clone();
                let why = format!("severity raised to {}: paged", incident.severity);
                self.page_level(&run_id, &mut esc, &policy, &oncall, &why);
                row.state = Some(state_of(&esc));
                self.put(&run_id, row);
            }
        }
    }

    fn oncall_set(&self) -> std::sync::Arc<crate::oncall::OnCall> {
        std::sync::Arc::clone(
            &self
                .oncall
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Leaves the unit waiting for the current level's delay.
    fn wait_level(
        &mut self,
        run_id: &str,
        mut row: StepRow,
        esc: Escalation,
        policy: &Policy,
        now: i64,
    ) {
        let delay = policy.levels.get(esc.at.level).map_or(0, |l| ms(l.delay));
        let at = now.saturating_add(delay);
        row.status = StepStatus::Waiting;
        row.wake_at = Some(at);
        row.state = Some(state_of(&esc));
        self.timers
            .insert((at, run_id.to_string(), row.key.clone()));
        self.put(run_id, row);
    }

    /// Pages every person the current level names now, through each of their contacts, and
    /// writes who was paged (or why nobody was) on the incident's timeline.
    fn page_level(
        &mut self,
        run_id: &str,
        esc: &mut Escalation,
        policy: &Policy,
        oncall: &crate::oncall::OnCall,
        why: &str,
    ) {
        let Some(level) = policy.levels.get(esc.at.level) else {
            return;
        };
        let Some(incident) = self.open_incidents.get(&esc.incident).cloned() else {
            return;
        };
        let now = self.clock.now_ms();
        let at = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default();
        let people = oncall.paged(level, at, esc.turn);
        if level.round_robin {
            esc.turn = esc.turn.wrapping_add(1);
        }
        // Pages are the provider's runs: they name the responders and their contacts, which
        // the incident's tenant does not see.
        let (tenant, requester) = (
            crate::runtime::PROVIDER.to_string(),
            format!("escalation {}", policy.id),
        );
        let n = esc.at.level + 1;
        // (note, person paged, page run): a page entry names both, for reviews and links.
        let mut notes: Vec<(String, Option<String>, Option<String>)> = Vec::new();
        if people.is_empty() {
            tracing::warn!(incident = %incident.id, policy = %policy.id, level = n, "level {n} of escalation policy {} names nobody to page now", policy.id);
            notes.push((
                format!(
                    "level {n} of `{}` names nobody to page now (a schedule gap, or an empty team)",
                    policy.id
                ),
                None,
                None,
            ));
        }
        for person in people {
            if person.contacts.is_empty() {
                notes.push((format!("{} has no contact to page", person.id), None, None));
                continue;
            }
            for (kind, secret) in &person.contacts {
                let channel = secret
                    .strip_prefix(crate::dsl::oncall::PAGE_SECRET_PREFIX)
                    .unwrap_or(secret);
                let text = format!(
                    "[{}] {} ({}): level {n} of {}; acknowledge incident {}",
                    incident.severity,
                    incident.title,
                    incident.service.as_deref().unwrap_or("no service"),
                    policy.id,
                    incident.id
                );
                let new = NewRun {
                    workflow: esc.page.clone(),
                    version: None,
                    inputs: json!({
                        "incident": incident.id,
                        "title": incident.title,
                        "severity": incident.severity,
                        "service": incident.service.clone().unwrap_or_default(),
                        "person": person.id,
                        "kind": kind,
                        "channel": channel,
                        "level": n,
                        "pagerduty_severity": pagerduty_severity(&incident.severity),
                        "text": text,
                    }),
                    tenant: tenant.clone(),
                    requester: Some(requester.clone()),
                    partition: None,
                };
                match self.create_run(new, None) {
                    Ok(page) => {
                        notes.push((
                            format!("{why} {} ({kind}) at level {n} (run {page})", person.id),
                            Some(person.id.clone()),
                            Some(page.clone()),
                        ));
                        esc.pages.push(page);
                    }
                    Err(e) => {
                        tracing::warn!(incident = %incident.id, person = %person.id, "cannot page {} through {kind}: {e}", person.id);
                        notes.push((
                            format!("could not page {} ({kind}): {e}", person.id),
                            Some(person.id.clone()),
                            None,
                        ));
                    }
                }
            }
        }
        for (note, person, page) in notes {
            let mut e = crate::incidents::entry(
                now,
                &format!("escalation {}", policy.id),
                "page",
                &note,
                false,
            );
            if let Some(p) = person {
                e["person"] = Json::String(p);
            }
            if let Some(r) = page {
                e["run"] = Json::String(r);
            }
            self.record(&incident.id, run_id, e);
        }
    }

    /// Adds an entry about the escalation to an open incident's timeline.
    fn note(&mut self, incident: &str, run_id: &str, policy: &str, note: String) {
        let now = self.clock.now_ms();
        let by = format!("escalation {policy}");
        let e = crate::incidents::entry(now, &by, "escalation", &note, false);
        self.record(incident, run_id, e);
    }

    /// Adds `entry` to an open incident's timeline, written in this turn's commit (by the
    /// process holding the incident, which is this one unless the escalation was started
    /// apart from it).
    fn record(&mut self, incident: &str, run_id: &str, entry: Json) {
        let now = self.clock.now_ms();
        let Some(row) = self.open_incidents.get(incident).cloned() else {
            return;
        };
        if !self.held.contains_key(&row.partition) {
            let change = crate::incidents::Change {
                entries: vec![entry],
                ..crate::incidents::Change::default()
            };
            self.forward_incident_change(&row, change, &format!("run {run_id}"), Some(run_id));
            return;
        }
        let Some(row) = self.open_incidents.get_mut(incident) else {
            return;
        };
        if let Json::Array(items) = &mut row.timeline {
            items.push(entry);
        }
        row.updated_at = now;
        let row = row.clone();
        self.incident_writes.push(Write::Incident {
            row,
            by_run: Some(run_id.to_string()),
            opened: false,
        });
    }
}

/// Whether a step is an `escalate:` step.
pub(super) fn is_escalation(kind: Option<&PlanKind>) -> bool {
    matches!(kind, Some(PlanKind::Escalate(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lower_number_is_a_worse_severity() {
        assert!(raised("sev3", "sev2"));
        assert!(raised("sev2", "sev1"));
        assert!(!raised("sev2", "sev2"));
        assert!(!raised("sev1", "sev4"));
    }

    #[test]
    fn the_first_round_robin_turn_depends_only_on_the_incident() {
        assert_eq!(spread("inc-1"), spread("inc-1"));
        assert_ne!(spread("inc-1") % 7, spread("inc-2") % 7);
    }
}
