//! Retrying a failed run in place: its failed and interrupted units run again, what they held
//! up starts after them, and completed steps keep their outputs and never run again.
//!
//! A plugin unit that failed or was interrupted is put back `retrying`, due now, so its next
//! attempt continues its attempt history; a fan-out waits for its items again (only the items
//! that failed or were interrupted run again, and those never started start); a unit that is
//! not a plugin call (a wait, an approval, a signal, a child workflow) starts afresh; the
//! `on_failure` units are forgotten, so they run again should the run fail again. A run whose
//! completed steps were compensated when it failed is not retried: its work was undone.

use super::Executor;
use crate::plan::{PlanKind, UnitKey};
use crate::runtime::EngineError;
use crate::store::{AuditRow, Retry, RunStatus, StepStatus};

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
        let until = now.saturating_add(self.lease_ms());
        let Some(row) = self
            .store
            .retry_run(&retry, &self.config.owner, until, audit.as_ref())
            .await?
        else {
            return Err(EngineError::Conflict(format!(
                "run `{run_id}` is no longer failed (it was retried meanwhile)"
            )));
        };
        tracing::info!(run = %run_id, by, units = retry.reset.len() + retry.dropped.len(), "run retried");
        self.take_runs(vec![row]).await?;
        // Announced as running again with the turn's other transitions.
        self.touched_runs.insert(run_id.to_string());
        Ok(())
    }
}
