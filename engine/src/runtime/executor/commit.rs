//! The commit that ends every turn, and what happens when the database will not take it.
//!
//! A transient fault (busy, locked, I/O, disk full, read-only) is retried with backoff while
//! [`Health`](crate::runtime::Health) reports it (`/readyz` answers 503, one log line per
//! change of state); nothing is dispatched or acknowledged until the commit lands, and a
//! shutdown asked for meanwhile ends the loop instead of waiting for the database. A write
//! the database refuses for good (a constraint, a row it cannot hold) fails only the run it
//! belongs to: the batch is split by run, and the run whose writes are refused is recorded as
//! failed with the reason while the others carry on.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::time::Duration;

use super::Executor;
use crate::store::{RunStatus, StoreError, Write};

/// First and largest pause between attempts at a commit the database did not take.
const FIRST_RETRY: Duration = Duration::from_millis(50);
const LAST_RETRY: Duration = Duration::from_secs(5);

impl Executor {
    /// Commits `writes`. Returns `false` when the executor was asked to stop while the
    /// database was failing: then nothing more was written, and nothing must be acted on.
    pub(super) async fn commit(&mut self, writes: Vec<Write>) -> bool {
        let mut queue = VecDeque::from([writes]);
        let mut delay = FIRST_RETRY;
        // Runs already being failed for a refused write, so a refused failure record is
        // given up instead of retried forever.
        let mut refused: HashSet<String> = HashSet::new();
        while let Some(batch) = queue.pop_front() {
            let fence = self.fence(
                batch
                    .iter()
                    .filter_map(Write::run_id)
                    .map(str::to_string)
                    .collect::<BTreeSet<_>>(),
            );
            match self.store.commit_fenced(&batch, &fence).await {
                Ok(lost) => {
                    self.health.storage_up(self.clock.now_ms());
                    delay = FIRST_RETRY;
                    for partition in lost {
                        self.lose_partition(
                            partition,
                            "another process took it over; this turn's writes for it were not applied",
                        );
                    }
                }
                Err(e) if e.is_transient() => {
                    self.health
                        .storage_down(&e.to_string(), self.clock.now_ms());
                    queue.push_front(batch);
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.stopping.cancelled() => {
                            tracing::warn!(
                                "stopping while the database fails: {} transitions of this turn are not written; the runs resume from what was committed",
                                queue.iter().map(Vec::len).sum::<usize>()
                            );
                            return false;
                        }
                    }
                    delay = (delay * 2).min(LAST_RETRY);
                }
                Err(e) => {
                    let mut groups = by_run(batch);
                    if groups.len() > 1 {
                        // Find whose writes are refused: try each run's on its own.
                        for g in groups.into_values().rev() {
                            queue.push_front(g);
                        }
                        continue;
                    }
                    let Some((run, writes)) = groups.pop_first() else {
                        continue;
                    };
                    match run {
                        Some(run) if refused.insert(run.clone()) => {
                            if let Some(w) = self.refuse_run(&run, &e) {
                                queue.push_back(w);
                            }
                        }
                        Some(run) => {
                            tracing::error!(
                                run = %run,
                                "the database refuses even the record that run {run} failed ({e}); it stays unfinished in the database and is not executed further"
                            );
                            self.runs.remove(&run);
                        }
                        None => tracing::error!(
                            "dropping {} incident changes the database refuses: {e}",
                            writes.len()
                        ),
                    }
                }
            }
        }
        true
    }

    /// Fails `run_id` because the database refused one of its transitions: its attempts are
    /// stopped, and the record of its failure is returned to be written in its place.
    fn refuse_run(&mut self, run_id: &str, e: &StoreError) -> Option<Vec<Write>> {
        let now = self.clock.now_ms();
        self.health.run_refused();
        let run = self.runs.get_mut(run_id)?;
        tracing::error!(
            run = %run_id,
            workflow = %run.row.workflow,
            "run failed: the database refuses to store one of its transitions: {e}"
        );
        for f in run.cancels.values() {
            f.cancel.cancel();
        }
        run.row.status = RunStatus::Failed;
        run.row.error = Some(format!(
            "the database refused to store a transition of this run, so it was stopped: {e}; nothing after its last stored step ran to completion"
        ));
        run.row.finished_at = Some(now);
        run.row.updated_at = now;
        let mut writes = vec![Write::Run(run.row.clone())];
        // Announced and forgotten with the turn's other finished runs.
        self.touched_runs.insert(run_id.to_string());
        self.touched_units.retain(|(r, _)| r != run_id);
        self.dispatch.retain(|job| job.run_id != run_id);
        // A parent waiting on this run learns it failed, in the same write.
        if let Some((parent, key)) = self.notify_parent(run_id)
            && let Some(unit) = self.runs.get(&parent).and_then(|r| r.units.get(&key))
        {
            writes.push(Write::Step(unit.clone()));
        }
        Some(writes)
    }
}

/// Splits a batch by the run each write belongs to, keeping the order within each run.
fn by_run(batch: Vec<Write>) -> BTreeMap<Option<String>, Vec<Write>> {
    let mut groups: BTreeMap<Option<String>, Vec<Write>> = BTreeMap::new();
    for w in batch {
        groups
            .entry(w.run_id().map(str::to_string))
            .or_default()
            .push(w);
    }
    groups
}
