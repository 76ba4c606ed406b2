//! Runs taken on by this executor — at start, with a partition gained, or once the workflow
//! version they wait for plans again: their steps and buffered signals read back, attempts
//! that were in flight dispatched again (same idempotency key, next attempt) and timers re-armed.

use std::collections::HashMap;

use super::{Executor, RunState};
use crate::plan::UnitKey;
use crate::runtime::EngineError;
use crate::store::{RunRow, SignalRow, StepRow, StepStatus, Write};

impl Executor {
    /// Makes claimed runs active here: reads their steps and buffered signals (a few queries
    /// for all of them), re-dispatches what was in flight and re-arms timers.
    pub(super) async fn take_runs(&mut self, claimed: Vec<RunRow>) -> Result<(), EngineError> {
        if claimed.is_empty() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let ids: Vec<String> = claimed.iter().map(|r| r.id.clone()).collect();
        let mut steps: HashMap<String, HashMap<UnitKey, StepRow>> = HashMap::new();
        for s in self.store.steps_of_runs(&ids).await? {
            steps
                .entry(s.run_id.clone())
                .or_default()
                .insert(s.key.clone(), s);
        }
        let mut signals: HashMap<String, Vec<SignalRow>> = HashMap::new();
        for s in self.store.pending_signals_of_runs(&ids).await? {
            signals.entry(s.run_id.clone()).or_default().push(s);
        }
        for mut row in claimed {
            tracing::debug!(run = %row.id, partition = row.partition, "run taken");
            let Some(plan) = self.defs.get(&row.workflow, Some(row.version)).cloned() else {
                self.block(row, now).await?;
                continue;
            };
            if row.blocked.take().is_some() {
                tracing::info!(run = %row.id, "the run's workflow version plans again; it goes on");
                row.updated_at = now;
                self.touched_runs.insert(row.id.clone());
            }
            let units = steps.remove(&row.id).unwrap_or_default();
            let signals = signals.remove(&row.id).unwrap_or_default();
            let id = row.id.clone();
            self.runs
                .insert(id.clone(), RunState::new(row, plan, units, signals));
            self.rearm(&id);
            self.dirty.insert(id);
        }
        Ok(())
    }

    /// Keeps a claimed run whose workflow version does not plan waiting, and says why on the
    /// run; it goes on when that version is defined again.
    pub(super) async fn block(&mut self, mut row: RunRow, now: i64) -> Result<(), EngineError> {
        let why = match self.defs.unplanned(&row.workflow, row.version) {
            Some(u) => format!(
                "workflow `{}` version {} no longer validates: {}; the run waits and goes on once that is fixed",
                row.workflow, row.version, u.reason
            ),
            None => format!(
                "workflow `{}` version {} is not stored here; store it (PUT /v1/workflows/{}) and the run goes on",
                row.workflow, row.version, row.workflow
            ),
        };
        if row.blocked.as_deref() != Some(why.as_str()) {
            tracing::warn!(run = %row.id, workflow = %row.workflow, version = row.version, "run blocked: {why}");
            row.blocked = Some(why);
            row.updated_at = now;
            let mut fence = self.fence(std::iter::empty());
            fence.runs.insert(row.id.clone(), row.partition);
            let lost = self
                .store
                .commit_fenced(&[Write::Run(row.clone())], &fence)
                .await?;
            if !lost.is_empty() {
                for p in lost {
                    self.lose_partition(p, "another process took it over");
                }
                return Ok(());
            }
        }
        self.blocked.insert(row.id.clone(), row);
        Ok(())
    }

    /// A workflow version became runnable: its blocked runs go on.
    pub(super) async fn unblock(&mut self, workflow: &str, version: u32) {
        let ids: Vec<String> = self
            .blocked
            .values()
            .filter(|r| r.workflow == workflow && r.version == version)
            .map(|r| r.id.clone())
            .collect();
        let rows: Vec<RunRow> = ids
            .iter()
            .filter_map(|id| self.blocked.remove(id))
            .collect();
        if rows.is_empty() {
            return;
        }
        if let Err(e) = self.take_runs(rows.clone()).await {
            tracing::warn!("cannot resume the runs of {workflow}@{version} yet: {e}");
            for r in rows {
                self.blocked.insert(r.id.clone(), r);
            }
        }
    }

    /// After recovery: re-dispatch attempts that were in flight, re-arm timers.
    pub(super) fn rearm(&mut self, run_id: &str) {
        let Some(run) = self.runs.get(run_id) else {
            return;
        };
        let keys: Vec<(UnitKey, StepStatus, Option<i64>)> = run
            .units
            .values()
            .map(|u| (u.key.clone(), u.status, u.wake_at))
            .collect();
        for (key, status, wake) in keys {
            match status {
                StepStatus::Running => self.redispatch(run_id, &key),
                StepStatus::Waiting | StepStatus::Retrying => {
                    if let Some(t) = wake {
                        self.timers.insert((t, run_id.to_string(), key));
                    }
                }
                _ => {}
            }
        }
    }
}
