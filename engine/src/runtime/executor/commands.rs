//! What callers ask of the executor: start runs, deliver signals, decide approvals, cancel,
//! steer incidents. Each answer waits for the turn's commit (see `Reply`).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::{Executor, Reply, RunState, new_id};
use crate::plan::{PlanKind, UnitKey};
use crate::runtime::{Command, EngineError, NewRun, OrderStart, Steer};
use crate::store::{RunRow, RunStatus, SignalRow, StepStatus, Write, partition_of};

/// Ids tried for a new run before one hashes to a partition held here (with one partition of
/// 64 held, 1 in 64 does).
const PLACEMENT_TRIES: usize = 1024;

impl Executor {
    pub(super) async fn command(&mut self, c: Command) {
        match c {
            Command::Submit {
                run: new,
                request,
                extras,
                reply,
            } => match self.create_run(new, None) {
                Ok(id) => {
                    if !extras.labels.is_empty() || extras.key.is_some() {
                        self.request_writes.push(Write::RunMeta {
                            run_id: id.clone(),
                            labels: extras.labels,
                            key: extras.key,
                            at: self.clock.now_ms(),
                        });
                    }
                    match request {
                        Some(OrderStart::Stored(request_id)) => {
                            self.request_writes.push(Write::StartRequest {
                                request_id,
                                run_id: id.clone(),
                                at: self.clock.now_ms(),
                            });
                        }
                        Some(OrderStart::New(mut row)) => {
                            row.status = "started".into();
                            row.run_id = Some(id.clone());
                            self.request_writes.push(Write::Request(row));
                        }
                        None => {}
                    }
                    self.audited(extras.audit, Some(&id));
                    self.replies.push(Reply::Submitted(reply, id));
                }
                Err(e) => drop(reply.send(Err(e))),
            },
            Command::Define(plan, reply) => {
                let (name, version) = (plan.name().to_string(), plan.version());
                Arc::make_mut(&mut self.defs).insert(*plan);
                self.rearm_crons(&name);
                self.unblock(&name, version).await;
                drop(reply.send(Ok(())));
            }
            Command::Steer { steer, reply } => self.steer(steer, reply).await,
            Command::OpenIncident {
                mut row,
                also,
                reply,
            } => {
                row.partition = self.incident_partition(&row.id);
                if row.status != "resolved" {
                    self.open_incidents.insert(row.id.clone(), (*row).clone());
                }
                self.incident_writes.push(Write::Incident {
                    row: (*row).clone(),
                    by_run: None,
                    opened: true,
                });
                for link in also {
                    self.request_writes
                        .push(Write::AlertLink { link, run: None });
                }
                self.replies.push(Reply::Incident(reply, row));
            }
            Command::Undefine(name, reply) => {
                let result = self.undefine(&name).await;
                drop(reply.send(result));
            }
            Command::SetSecret { name, value, reply } => {
                let mut secrets = (*self.secrets).clone();
                secrets.insert(name, value);
                self.masker = Arc::new(crate::plugin::mask::Masker::new(&secrets));
                // The engine holds every secret the process knows: the service log masks
                // the same set.
                crate::plugin::mask::set_service_log_secrets(&secrets);
                self.secrets = Arc::new(secrets);
                drop(reply.send(Ok(())));
            }
            Command::Sync(reply) => self.replies.push(Reply::Done(reply, None)),
            Command::Shutdown(_) => {}
        }
    }

    /// The partition a new incident opened outside any run lives in: one held here (so this
    /// process applies what people do to it), else its id's.
    fn incident_partition(&self, id: &str) -> i64 {
        let mine: Vec<i64> = self
            .held
            .keys()
            .copied()
            .filter(|p| *p < i64::from(self.shared) || Some(*p) == self.private)
            .collect();
        match mine.len() {
            0 => partition_of(id, self.shared),
            n => {
                mine[usize::try_from(partition_of(id, u32::try_from(n).unwrap_or(1))).unwrap_or(0)]
            }
        }
    }

    /// Where a new run lives, and its id: a child with its parent, a run that names its
    /// partition there, a `csmp run`'s in its own; else an id that hashes to a partition held
    /// here when any is (so the caller's process executes it and streams its events), or any
    /// id, executed by its partition's holder.
    fn place(&self, new: &NewRun, parent: Option<&(String, UnitKey)>) -> (String, i64) {
        if let Some(p) = parent.and_then(|(p, _)| self.runs.get(p)) {
            return (new_id("run"), p.row.partition);
        }
        if let Some(p) = new.partition.or(self.private) {
            return (new_id("run"), p);
        }
        let shared = self.shared;
        let any_held = self.held.keys().any(|p| *p < i64::from(shared));
        let mut id = new_id("run");
        let mut partition = partition_of(&id, shared);
        if any_held {
            for _ in 0..PLACEMENT_TRIES {
                if self.held.contains_key(&partition) {
                    break;
                }
                id = new_id("run");
                partition = partition_of(&id, shared);
            }
        }
        (id, partition)
    }

    /// Forgets workflow `name` unless an unfinished run (here or in the database) uses it.
    async fn undefine(&mut self, name: &str) -> Result<(), EngineError> {
        let here = self
            .runs
            .values()
            .map(|r| &r.row)
            .chain(self.blocked.values())
            .filter(|r| r.workflow == name)
            .count() as u64;
        let stored = self.store.unfinished_runs_of(name).await?;
        let using = here.max(stored);
        if using > 0 {
            return Err(EngineError::Conflict(format!(
                "{using} unfinished run{} of workflow `{name}`; delete it once they end (or cancel them)",
                if using == 1 { "" } else { "s" }
            )));
        }
        Arc::make_mut(&mut self.defs).remove(name);
        self.crons.retain(|t| t.plan.name() != name);
        tracing::info!(
            workflow = name,
            "workflow deleted: its versions are no longer runnable"
        );
        Ok(())
    }

    /// Pauses or resumes a run active here; on resume the timers held meanwhile are due.
    pub(super) fn set_paused(&mut self, run_id: &str, pause: bool) -> Result<(), EngineError> {
        let now = self.clock.now_ms();
        let Some(run) = self.runs.get_mut(run_id) else {
            return Err(EngineError::UnknownRun(run_id.into()));
        };
        match (pause, run.row.paused_at) {
            (_, _) if run.row.status.is_final() => {
                return Err(EngineError::Conflict(format!(
                    "run `{run_id}` is {}; only an unfinished run can be paused or resumed",
                    run.row.status.as_str()
                )));
            }
            (true, Some(_)) => return Ok(()),
            (true, None) if run.row.status != RunStatus::Running => {
                return Err(EngineError::Conflict(format!(
                    "run `{run_id}` is {}; it is ending and cannot be paused",
                    run.row.status.as_str()
                )));
            }
            (true, None) => run.row.paused_at = Some(now),
            (false, None) => {
                return Err(EngineError::Conflict(format!(
                    "run `{run_id}` is not paused"
                )));
            }
            (false, Some(_)) => {
                run.row.paused_at = None;
                for (t, key) in std::mem::take(&mut run.held) {
                    self.timers.insert((t, run_id.to_string(), key));
                }
            }
        }
        if let Some(run) = self.runs.get_mut(run_id) {
            run.row.updated_at = now;
        }
        self.touched_runs.insert(run_id.into());
        self.dirty.insert(run_id.into());
        Ok(())
    }

    /// Writes the audit entry of the call behind a change in the turn's commit, with the
    /// writes of the run it changed.
    pub(super) fn audited(&mut self, audit: Option<crate::store::AuditRow>, run: Option<&str>) {
        if let Some(row) = audit {
            self.request_writes.push(Write::Audit {
                row,
                run: run.map(str::to_string),
            });
        }
    }

    /// Buffers a signal for a run active here; a `signal:` step waiting for it takes it.
    pub(super) async fn deliver_signal(
        &mut self,
        run_id: String,
        name: String,
        payload: Json,
    ) -> Result<(), EngineError> {
        let signal = SignalRow {
            id: self.signal_id().await?,
            run_id: run_id.clone(),
            name,
            payload,
            created_at: self.clock.now_ms(),
        };
        self.signal_writes.push(Write::Signal(signal.clone()));
        if let Some(run) = self.runs.get_mut(&run_id) {
            run.signals.push(signal);
        }
        // A `signal:` step already waiting for it takes it now.
        self.take_signals(&run_id);
        self.dirty.insert(run_id);
        Ok(())
    }

    /// Creates a run (a child run when `parent` names the waiting unit); it is written at the
    /// end of the turn. A run placed in a partition another process holds is written for it,
    /// with a command in its inbox that makes the holder start it.
    pub(super) fn create_run(
        &mut self,
        new: NewRun,
        parent: Option<(String, UnitKey)>,
    ) -> Result<String, EngineError> {
        let plan = self
            .defs
            .get(&new.workflow, new.version)
            .cloned()
            .ok_or_else(|| {
                EngineError::UnknownWorkflow(match new.version {
                    Some(v) => format!("{}@{v}", new.workflow),
                    None => new.workflow.clone(),
                })
            })?;
        if let Some(schema) = plan.inputs() {
            let violations = schema.violations(&new.inputs);
            if !violations.is_empty() {
                return Err(EngineError::InvalidInputs(
                    violations
                        .into_iter()
                        .map(|v| {
                            format!(
                                "{}: {}",
                                if v.pointer.is_empty() {
                                    "/"
                                } else {
                                    &v.pointer
                                },
                                v.message
                            )
                        })
                        .collect(),
                ));
            }
        }
        let now = self.clock.now_ms();
        let (id, partition) = self.place(&new, parent.as_ref());
        let row = RunRow {
            id: id.clone(),
            workflow: plan.name().to_string(),
            version: plan.version(),
            tenant: new.tenant,
            requester: new.requester,
            inputs: new.inputs,
            status: RunStatus::Running,
            outputs: None,
            error: None,
            parent_run: parent.as_ref().map(|p| p.0.clone()),
            parent_step: parent.map(|p| p.1),
            created_at: now,
            updated_at: now,
            finished_at: None,
            partition,
            blocked: None,
            cancel_compensates: true,
            paused_at: None,
        };
        if !self.held.contains_key(&partition) {
            self.request_writes.push(Write::ForeignRun(row));
            let start = Steer::Start { run_id: id.clone() };
            let command = serde_json::to_string(&start).unwrap_or_default();
            self.forward(partition, command);
            tracing::debug!(run = %id, partition, "run written for the holder of its partition");
            return Ok(id);
        }
        self.runs.insert(
            id.clone(),
            RunState::new(row, plan, HashMap::new(), Vec::new()),
        );
        self.touched_runs.insert(id.clone());
        self.dirty.insert(id.clone());
        self.created += 1;
        Ok(id)
    }

    /// Decides a waiting `approval:` step (`step` is its unit key as the API names it).
    pub(super) fn decide(
        &mut self,
        run_id: &str,
        step: &str,
        approved: bool,
        by: &str,
    ) -> Result<(), EngineError> {
        let now = self.clock.now_ms();
        let run = self
            .runs
            .get_mut(run_id)
            .ok_or_else(|| EngineError::UnknownRun(run_id.into()))?;
        let key = UnitKey::parse(step);
        let is_approval = key.as_ref().is_some_and(|k| {
            matches!(
                run.plan.step_of(k).map(|s| &s.kind),
                Some(PlanKind::Approval { .. })
            )
        });
        let unit = key
            .as_ref()
            .and_then(|k| run.units.get_mut(k))
            .filter(|u| u.status == StepStatus::Waiting && is_approval);
        let Some(unit) = unit else {
            return Err(EngineError::Conflict(format!(
                "step `{step}` of run `{run_id}` is not waiting for an approval"
            )));
        };
        unit.wake_at = None;
        unit.finished_at = Some(now);
        if approved {
            unit.status = StepStatus::Succeeded;
            unit.output = Some(json!({ "approved": true, "by": by, "at": now }));
        } else {
            unit.status = StepStatus::Failed;
            unit.error = Some(format!("rejected by {by}"));
        }
        let key = unit.key.clone();
        self.touch(run_id, key);
        Ok(())
    }
}
