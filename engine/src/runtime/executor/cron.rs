//! Firing cron triggers: each due instant handled once, under its overlap policy, recorded in
//! the same transaction as the run it starts.

use std::sync::Arc;

use super::Executor;
use crate::dsl::Overlap;
use crate::runtime::NewRun;
use crate::runtime::cron;
use crate::store::{CronClaim, CronFire};

impl Executor {
    /// Fires every cron trigger whose instant has come.
    pub(super) async fn fire_crons(&mut self) {
        let now = self.clock.now_ms();
        let mut i = 0;
        // (A fire that finds the cron partition gone disarms every trigger.)
        while i < self.crons.len() {
            if self.crons[i].wake_at().is_some_and(|t| t <= now) {
                self.fire_cron(i, now).await;
            }
            i += 1;
        }
    }

    /// Handles the next due instant of trigger `i` under its overlap policy: the instants a
    /// short stall (a failover) passed fire one after another, in order; after a longer one
    /// only the most recent fires (no catch-up storm). The fire is recorded in the same
    /// transaction as the run it starts, only once per instant, never after a later one, and
    /// only while this process holds the cron partition.
    async fn fire_cron(&mut self, i: usize, now: i64) {
        let plan = Arc::clone(&self.crons[i].plan);
        let (Some(spec), Some(next)) = (self.crons[i].spec().cloned(), self.crons[i].next) else {
            return;
        };
        let scheduled = if next >= now.saturating_sub(self.catch_up_ms()) {
            next
        } else {
            cron::latest_in(&spec, next - 1, now).unwrap_or(next)
        };
        let previous = match self.crons[i].last_run.clone() {
            Some(id) if self.run_is_active(&id).await => Some(id),
            _ => None,
        };
        let mut fire = CronFire {
            workflow: plan.name().to_string(),
            trigger: self.crons[i].index,
            scheduled_at: scheduled,
            fired_at: now,
            run_id: None,
        };
        if previous.is_none() || spec.overlap != Overlap::Skip {
            let new = NewRun {
                workflow: plan.name().to_string(),
                version: Some(plan.version()),
                inputs: spec.inputs.clone(),
                tenant: cron::CRON_TENANT.into(),
                requester: Some(cron::CRON_REQUESTER.into()),
                partition: None,
            };
            match self.create_run(new, None) {
                Ok(id) => fire.run_id = Some(id),
                Err(e) => {
                    // Not expected: the trigger's inputs were checked when the plan was built.
                    tracing::error!(
                        "cron trigger `{}` of {}@{} cannot start a run: {e}",
                        spec.expression,
                        plan.name(),
                        plan.version()
                    );
                    self.crons[i].next = cron::next_after(&spec, now);
                    return;
                }
            }
        }
        let row = fire
            .run_id
            .as_ref()
            .and_then(|id| self.runs.get(id))
            .map(|r| r.row.clone());
        let fence = self.fence(std::iter::empty());
        match self
            .store
            .claim_cron_fire(&fire, row.as_ref(), &fence)
            .await
        {
            Ok(CronClaim::Fired) => {
                if let Some(id) = &fire.run_id {
                    if let (Overlap::CancelPrevious, Some(prev)) = (spec.overlap, &previous) {
                        if self.runs.contains_key(prev) {
                            self.cancel_run(prev, true);
                        } else {
                            // Executed by another process: its holder cancels it.
                            self.forward_cancel(prev).await;
                        }
                    }
                    self.crons[i].last_run = Some(id.clone());
                }
            }
            Ok(CronClaim::Handled) => {
                // This process before a restart, or another, already handled the instant.
                if let Some(id) = &fire.run_id {
                    self.forget_run(id);
                }
            }
            Ok(CronClaim::RunElsewhere) => {
                if let Some(id) = &fire.run_id {
                    self.forget_run(id);
                }
                self.crons[i].retry_at = Some(now + 1_000);
                return;
            }
            Ok(CronClaim::NotHolder) => {
                if let Some(id) = &fire.run_id {
                    self.forget_run(id);
                }
                tracing::warn!(
                    "this process no longer holds the cron partition; another fires the triggers"
                );
                self.crons.clear();
                return;
            }
            Err(e) => {
                tracing::warn!(
                    "cannot record a cron fire of {}, retrying: {e}",
                    plan.name()
                );
                if let Some(id) = &fire.run_id {
                    self.forget_run(id);
                }
                self.crons[i].retry_at = Some(now + 1_000);
                return;
            }
        }
        self.crons[i].next = cron::next_after(&spec, scheduled);
        self.crons[i].retry_at = None;
    }

    /// A version of `workflow` was defined: if it is now the newest, its triggers replace
    /// those of the version it supersedes, from now on.
    pub(super) fn rearm_crons(&mut self, workflow: &str) {
        if !self.config.cron || !self.held.contains_key(&crate::store::CRON_PARTITION) {
            return;
        }
        let Some(plan) = self.defs.get(workflow, None).cloned() else {
            return;
        };
        if self
            .crons
            .iter()
            .any(|t| t.plan.name() == workflow && Arc::ptr_eq(&t.plan, &plan))
        {
            return; // the newest version is unchanged (an older one was defined)
        }
        let (previous, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.crons)
            .into_iter()
            .partition(|t| t.plan.name() == workflow);
        self.crons = kept;
        let armed = cron::arm_defined(&plan, &previous, self.clock.now_ms());
        tracing::info!(
            workflow,
            version = plan.version(),
            armed = armed.len(),
            disarmed = previous.len(),
            "cron triggers follow the newest version"
        );
        self.crons.extend(armed);
    }

    /// Whether a run is unfinished (here, or in another process sharing the database).
    async fn run_is_active(&self, id: &str) -> bool {
        if let Some(r) = self.runs.get(id) {
            return !r.row.status.is_final();
        }
        match self.store.run(id).await {
            Ok(row) => row.is_some_and(|r| !r.status.is_final()),
            Err(e) => {
                tracing::warn!("cannot read run {id}: {e}");
                false
            }
        }
    }

    /// Drops a run created this turn that must not exist after all.
    fn forget_run(&mut self, id: &str) {
        if self.runs.remove(id).is_some() {
            self.created = self.created.saturating_sub(1);
        }
        self.touched_runs.remove(id);
        self.dirty.remove(id);
    }
}
