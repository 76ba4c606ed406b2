//! Incidents in the executor, which owns the open ones: `incident:` steps open, update and
//! resolve them; people acknowledge, resolve, reopen, annotate and edit them through the API.
//! Every change is one timeline entry (who, when, what, whether the tenant sees it) written in
//! the turn's commit, and escalations following the incident hear of it.

use serde_json::{Value as Json, json};

use super::{Executor, new_id};
use crate::dsl::IncidentAction;
use crate::incidents::{self, ACKNOWLEDGED, RESOLVED, TRIGGERED, entry, push};
use crate::runtime::{EngineError, IncidentSteer};
use crate::store::{IncidentRow, Write};

impl Executor {
    /// An `incident:` step: opens, updates or resolves an incident; the step's output is the
    /// incident.
    pub(super) fn incident(
        &mut self,
        run_id: &str,
        spec: &crate::plan::IncidentPlan,
        scope: &handlebars::Context,
        now: i64,
    ) -> Result<Json, String> {
        let text = |t: &Option<crate::template::Template>| -> Result<Option<String>, String> {
            match t {
                None => Ok(None),
                Some(t) => match t.render(scope).map_err(|e| e.message)? {
                    Json::String(s) => Ok(Some(s)),
                    Json::Null => Ok(None),
                    other => Ok(Some(other.to_string())),
                },
            }
        };
        let note = text(&spec.note)?;
        let severity = text(&spec.severity)?;
        if let Some(s) = &severity
            && !crate::dsl::workflow::SEVERITIES.contains(&s.as_str())
        {
            return Err(format!(
                "severity `{s}` is not one of sev1, sev2, sev3, sev4"
            ));
        }
        let (tenant, partition) = self
            .runs
            .get(run_id)
            .map(|r| (r.row.tenant.clone(), r.row.partition))
            .unwrap_or_default();
        let by = format!("run {run_id}");
        let said = |what: &str| note.clone().unwrap_or_else(|| what.to_string());
        let mut raised = false;
        let row = match spec.action {
            IncidentAction::Open => {
                let severity = severity.unwrap_or_else(|| "sev3".into());
                IncidentRow {
                    id: new_id("inc"),
                    run_id: Some(run_id.into()),
                    tenant,
                    title: text(&spec.title)?.unwrap_or_default(),
                    timeline: json!([incidents::opened(now, &by, &said("opened"), &severity)]),
                    severity,
                    service: text(&spec.service)?,
                    status: TRIGGERED.into(),
                    details: json!({}),
                    created_at: now,
                    updated_at: now,
                    partition,
                }
            }
            action => {
                let id = text(&spec.id)?.ok_or("no incident id")?;
                let row = self.open_incidents.get(&id).cloned().ok_or_else(|| {
                    format!("incident `{id}` does not exist or is already resolved")
                })?;
                let change = incidents::Change {
                    title: text(&spec.title)?,
                    severity,
                    note: note.clone(),
                    resolve: action == IncidentAction::Resolve,
                    entries: Vec::new(),
                };
                if !self.held.contains_key(&row.partition) {
                    // Another process holds the incident: it applies the change to the
                    // incident as it is there, in order with what people do to it (the step
                    // goes on with the incident as seen from here).
                    let (seen, _) = incidents::apply_change(row.clone(), &change, &by, now);
                    self.forward_incident_change(&row, change, &by, Some(run_id));
                    return Ok(summary(&seen));
                }
                let (row, up) = incidents::apply_change(row, &change, &by, now);
                raised = up;
                row
            }
        };
        let out = summary(&row);
        self.keep(&row);
        self.incident_writes.push(Write::Incident {
            row: row.clone(),
            by_run: Some(run_id.to_string()),
            opened: false,
        });
        if spec.action == IncidentAction::Resolve || raised {
            self.incident_changed(&row, &by);
        }
        Ok(out)
    }

    /// Applies a change an `incident:` step (or an escalation) of another process made to an
    /// incident held here.
    pub(super) fn change_incident(
        &mut self,
        row: IncidentRow,
        change: &incidents::Change,
        by: &str,
    ) -> IncidentRow {
        let now = self.clock.now_ms();
        let (row, raised) = incidents::apply_change(row, change, by, now);
        self.keep(&row);
        self.incident_writes.push(Write::Incident {
            row: row.clone(),
            by_run: None,
            opened: false,
        });
        if change.resolve || raised {
            self.incident_changed(&row, by);
        }
        row
    }

    /// Forwards `change` to the process holding `row`'s partition, in this turn's commit (with
    /// the writes of `run`, when a run's step made it); nobody waits for the answer.
    pub(super) fn forward_incident_change(
        &mut self,
        row: &IncidentRow,
        change: incidents::Change,
        by: &str,
        run: Option<&str>,
    ) {
        let steer = crate::runtime::Steer::IncidentChange {
            id: row.id.clone(),
            change,
            by: by.to_string(),
        };
        match serde_json::to_string(&steer) {
            Ok(command) => {
                self.forward_for(row.partition, command, run);
            }
            Err(e) => tracing::warn!(incident = %row.id, "cannot forward an incident change: {e}"),
        }
    }

    /// A reopened incident follows its service's policy again: a new run of the shipped
    /// `escalate` workflow, created in this turn's commit. Without a policy for its service
    /// nothing starts; a failure to start is logged and written on the timeline.
    fn escalate_again(&mut self, row: &mut IncidentRow, now: i64) {
        let covered = row.service.as_deref().is_some_and(|s| {
            self.oncall
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .policy_for(s)
                .is_some()
        });
        if !covered {
            return;
        }
        let new = crate::runtime::NewRun {
            workflow: crate::alerts::dispatch::ESCALATE_WORKFLOW.into(),
            version: None,
            inputs: json!({ "incident": row.id }),
            tenant: crate::runtime::PROVIDER.into(),
            requester: Some("reopen".into()),
            // Escalations live with their incident, so they hear of it in process.
            partition: Some(row.partition),
        };
        let note = match self.create_run(new, None) {
            Ok(run) => format!("escalated again (run {run})"),
            Err(e) => {
                tracing::warn!(incident = %row.id, "the reopened incident was not escalated: {e}");
                format!("could not escalate again: {e}")
            }
        };
        push(row, entry(now, "csmp", "escalation", &note, false));
    }

    /// Keeps `row` among the open incidents while it is not resolved.
    fn keep(&mut self, row: &IncidentRow) {
        if row.status == RESOLVED {
            self.open_incidents.remove(&row.id);
        } else {
            self.open_incidents.insert(row.id.clone(), row.clone());
        }
    }

    /// Acknowledges, resolves, reopens, annotates or edits an incident on behalf of a person.
    /// Acknowledging an incident whose opening run is active here also sends that run the
    /// signal `ack`; escalations following the incident end on an acknowledgement or a
    /// resolution and page again on a raised severity.
    pub(super) async fn steer_incident(
        &mut self,
        id: &str,
        action: IncidentSteer,
        by: &str,
        note: Option<String>,
    ) -> Result<IncidentRow, EngineError> {
        let mut row = match self.open_incidents.get(id).cloned() {
            Some(row) => row,
            None => match self.store.incident(id).await? {
                Some(row) => row,
                None => return Err(EngineError::UnknownIncident(id.into())),
            },
        };
        let now = self.clock.now_ms();
        let conflict = |what: &str| Err(EngineError::Conflict(format!("incident `{id}` {what}")));
        let said = |what: &str| note.clone().unwrap_or_else(|| what.to_string());
        let mut raised = false;
        match &action {
            IncidentSteer::Acknowledge => {
                match row.status.as_str() {
                    ACKNOWLEDGED => return conflict("is already acknowledged"),
                    RESOLVED => return conflict("is already resolved"),
                    _ => {}
                }
                row.status = ACKNOWLEDGED.into();
                push(
                    &mut row,
                    entry(now, by, ACKNOWLEDGED, &said(ACKNOWLEDGED), true),
                );
            }
            IncidentSteer::Resolve => {
                if row.status == RESOLVED {
                    return conflict("is already resolved");
                }
                row.status = RESOLVED.into();
                push(&mut row, entry(now, by, RESOLVED, &said(RESOLVED), true));
            }
            IncidentSteer::Reopen => {
                if row.status != RESOLVED {
                    return conflict(&format!("is {}, not resolved", row.status));
                }
                row.status = TRIGGERED.into();
                push(
                    &mut row,
                    entry(now, by, "reopened", &said("reopened"), true),
                );
                self.escalate_again(&mut row, now);
            }
            IncidentSteer::Note { public } => {
                push(&mut row, entry(now, by, "note", &said(""), *public));
            }
            IncidentSteer::Edit { edit } => {
                let before = row.severity.clone();
                let changed = incidents::apply(&mut row, edit);
                if changed.is_empty() {
                    return Ok(row);
                }
                let (severity, rest): (Vec<String>, Vec<String>) = changed
                    .into_iter()
                    .partition(|c| c.starts_with("severity "));
                if let Some(s) = severity.first() {
                    raised = row.severity < before;
                    let now_severity = row.severity.clone();
                    push(
                        &mut row,
                        incidents::severity_changed(now, by, s, &now_severity),
                    );
                }
                if !rest.is_empty() {
                    push(&mut row, entry(now, by, "edited", &rest.join("; "), false));
                }
            }
        }
        row.updated_at = now;
        self.keep(&row);
        // Steered by a person, here, where its partition is held: fenced by that.
        self.incident_writes.push(Write::Incident {
            row: row.clone(),
            by_run: None,
            opened: false,
        });
        if matches!(action, IncidentSteer::Acknowledge | IncidentSteer::Resolve) || raised {
            self.incident_changed(&row, by);
        }
        if action == IncidentSteer::Acknowledge
            && let Some(run_id) = row.run_id.clone()
        {
            let payload = json!({ "incident": id, "by": by });
            match self.runs.get(&run_id) {
                Some(r) if !r.row.status.is_final() => {
                    self.deliver_signal(run_id, "ack".into(), payload).await?;
                }
                Some(_) => {}
                // Executed elsewhere (or over): its holder delivers it, if it still runs.
                None => {
                    let signal = crate::runtime::Steer::Signal {
                        run_id,
                        name: "ack".into(),
                        payload,
                        audit: None,
                        also: Vec::new(),
                    };
                    if let Ok(running) = self.store.run(signal.target()).await
                        && let Some(run) = running.filter(|r| !r.status.is_final())
                        && let Ok(command) = serde_json::to_string(&signal)
                    {
                        self.forward(run.partition, command);
                    }
                }
            }
        }
        Ok(row)
    }
}

/// What an `incident:` step returns: the incident's main fields.
fn summary(row: &IncidentRow) -> Json {
    json!({ "id": row.id, "title": row.title, "severity": row.severity, "status": row.status, "service": row.service })
}
