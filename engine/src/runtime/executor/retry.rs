//! Running a run again: a failed run retried in place, or any finished run rerun from a step
//! as a new run.
//!
//! **Retry.** Its failed and interrupted units run again, what they held up starts after
//! them, and completed steps keep their outputs and never run again.
//!
//! A plugin unit that failed or was interrupted is put back `retrying`, due now, so its next
//! attempt continues its attempt history; a fan-out waits for its items again (only the items
//! that failed or were interrupted run again, and those never started start); a unit that is
//! not a plugin call (a wait, an approval, a signal, a child workflow) starts afresh; the
//! `on_failure` units are forgotten, so they run again should the run fail again. A run whose
//! completed steps were compensated when it failed is not retried: its work was undone.

use std::collections::BTreeSet;

use super::Executor;
use crate::plan::{PlanKind, UnitKey};
use crate::runtime::{EngineError, NewRun, Submission};
use crate::store::{AuditRow, Retry, RunStatus, StepStatus, Write};

impl Executor {
    /// Puts the failed run `run_id` back to running here; its units run again from the next
    /// turn.
    pub(super) async fn retry_run(
        &mut self,
        run_id: &str,
        by: &str,
        audit: Option<AuditRow>,
    ) -> Result<(), EngineError> {
        if self.runs.contains_key(run_id) || self.blocked.contains_key(run_id) {
            return Err(EngineError::Conflict(format!(
                "run `{run_id}` is not over; only a failed run can be retried"
            )));
        }
        let row = self
            .store
            .run(run_id)
            .await?
            .ok_or_else(|| EngineError::UnknownRun(run_id.into()))?;
        if row.status != RunStatus::Failed {
            return Err(EngineError::Conflict(format!(
                "run `{run_id}` is {}; only a failed run can be retried",
                row.status.as_str()
            )));
        }
        let plan = self
            .defs
            .get(&row.workflow, Some(row.version))
            .cloned()
            .ok_or_else(|| {
                EngineError::Conflict(format!(
                    "{}@{} is not loaded, so run `{run_id}` cannot run again; upload that version",
                    row.workflow, row.version
                ))
            })?;
        let units = self.store.steps(run_id).await?;
        if units.iter().any(|u| u.key.is_compensation()) {
            return Err(EngineError::Conflict(format!(
                "when run `{run_id}` failed, it compensated (undid) its completed steps, so running it again in place would build on undone work; start a new run instead"
            )));
        }
        let now = self.clock.now_ms();
        let mut reset = Vec::new();
        let mut dropped = Vec::new();
        for mut u in units {
            if let UnitKey::OnFailure(_) = u.key {
                dropped.push(u.key);
                continue;
            }
            if !matches!(u.status, StepStatus::Failed | StepStatus::Cancelled) {
                continue;
            }
            let Some(step) = plan.step_of(&u.key) else {
                dropped.push(u.key);
                continue;
            };
            let item = u.key.item().is_some();
            if step.for_each.is_some() && !item {
                u.status = StepStatus::Waiting;
                u.error = None;
                u.output = None;
                u.finished_at = None;
                reset.push(u);
            } else if matches!(step.kind, PlanKind::Uses { .. }) {
                u.status = StepStatus::Retrying;
                u.wake_at = Some(now);
                u.finished_at = None;
                reset.push(u);
            } else if item {
                return Err(EngineError::Conflict(format!(
                    "unit `{}` of run `{run_id}` is an item of a fan-out that is not a plugin call, which cannot run again in place; start a new run instead",
                    u.key
                )));
            } else {
                dropped.push(u.key);
            }
        }
        let retry = Retry {
            run_id: run_id.to_string(),
            reset,
            dropped,
            by: by.to_string(),
            at: now,
        };
        let Some(epoch) = self.held.get(&row.partition).copied() else {
            return Err(EngineError::Conflict(format!(
                "run `{run_id}` is executed by another process now; send this again"
            )));
        };
        let lease = crate::store::Lease {
            partition: row.partition,
            epoch,
        };
        let Some(row) = self
            .store
            .retry_run(&retry, &self.config.owner, lease, audit.as_ref())
            .await?
        else {
            return Err(EngineError::Conflict(format!(
                "run `{run_id}` is no longer failed (it was retried meanwhile), or its partition changed hands"
            )));
        };
        tracing::info!(run = %run_id, by, units = retry.reset.len() + retry.dropped.len(), "run retried");
        self.take_runs(vec![row]).await?;
        // Announced as running again with the turn's other transitions.
        self.touched_runs.insert(run_id.to_string());
        Ok(())
    }

    /// **Rerun.** Starts a new run of finished run `run_id`'s workflow version, inputs and
    /// tenant in which step `from` and every step that needs it (directly or not) run again,
    /// and every other main step that succeeded or was skipped in the old run is copied with
    /// its output (a fan-out with its items). The new run carries the old one's labels and
    /// `rerun-of`/`rerun-from` labels naming it; returns its id.
    pub(super) async fn rerun(
        &mut self,
        run_id: &str,
        from: &str,
        by: &str,
        audit: Option<AuditRow>,
    ) -> Result<String, EngineError> {
        let old = self
            .store
            .run(run_id)
            .await?
            .ok_or_else(|| EngineError::UnknownRun(run_id.into()))?;
        if !old.status.is_final() {
            return Err(EngineError::Conflict(format!(
                "run `{run_id}` is {}; rerun it once it is over (or cancel it)",
                old.status.as_str()
            )));
        }
        let plan = self
            .defs
            .get(&old.workflow, Some(old.version))
            .cloned()
            .ok_or_else(|| {
                EngineError::Conflict(format!(
                    "{}@{} is not loaded, so run `{run_id}` cannot run again; upload that version",
                    old.workflow, old.version
                ))
            })?;
        let Some(start) = plan.position(from) else {
            return Err(EngineError::Conflict(format!(
                "workflow `{}` has no main step `{from}`; its steps: {}",
                old.workflow,
                plan.steps()
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        // `from` and everything downstream of it (steps are in topological order).
        let mut again: BTreeSet<usize> = BTreeSet::from([start]);
        for (i, step) in plan.steps().iter().enumerate().skip(start + 1) {
            if step.needs.iter().any(|n| again.contains(n)) {
                again.insert(i);
            }
        }
        let units = self.store.steps(run_id).await?;
        let kept: BTreeSet<String> = units
            .iter()
            .filter(|u| matches!(u.key, UnitKey::Step(_)))
            .filter(|u| matches!(u.status, StepStatus::Succeeded | StepStatus::Skipped))
            .filter_map(|u| {
                let i = plan.position(u.key.step_id())?;
                (!again.contains(&i)).then(|| u.key.step_id().to_string())
            })
            .collect();
        let mut labels = self
            .store
            .labels_of(&[run_id])
            .await?
            .remove(run_id)
            .unwrap_or_default();
        labels.insert("rerun-of".into(), run_id.to_string());
        labels.insert("rerun-from".into(), from.to_string());
        let id = self.create_run(
            NewRun {
                workflow: old.workflow.clone(),
                version: Some(old.version),
                inputs: old.inputs.clone(),
                tenant: old.tenant.clone(),
                requester: Some(by.to_string()),
                // Beside the run it reruns (held here), so the new run and the answer to whoever
                // asked are written together or not at all.
                partition: Some(old.partition),
            },
            None,
        )?;
        let now = self.clock.now_ms();
        for mut u in units {
            let copied = match &u.key {
                UnitKey::Step(s) | UnitKey::Item(s, _) => kept.contains(s),
                _ => false,
            };
            if copied {
                u.run_id = id.clone();
                self.put(&id, u);
            }
        }
        let extras = Submission {
            labels,
            key: None,
            audit,
        };
        self.request_writes.push(Write::RunMeta {
            run_id: id.clone(),
            labels: extras.labels,
            key: None,
            at: now,
        });
        if let Some(row) = extras.audit {
            self.request_writes.push(Write::Audit {
                row,
                run: Some(id.clone()),
            });
        }
        tracing::info!(run = %id, of = %run_id, from, by, copied = kept.len(), "run rerun from a step");
        Ok(id)
    }
}
