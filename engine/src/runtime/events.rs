//! Who follows which run: a channel per followed run, so a follower gets that run's committed
//! transitions only — it neither wades through every other run's nor falls behind because of
//! them. Nothing is kept for runs nobody follows.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio::sync::broadcast;

use super::RunEvent;

/// Transitions a follower may fall behind by before it is told it lagged (and re-reads).
const BUFFER: usize = 1024;

/// The followed runs and their channels.
#[derive(Debug, Default)]
pub(crate) struct Followers {
    runs: Mutex<HashMap<String, broadcast::Sender<RunEvent>>>,
}

impl Followers {
    /// Follows `run_id` from now on.
    pub(crate) fn follow(&self, run_id: &str) -> broadcast::Receiver<RunEvent> {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        // Channels whose followers all left (of runs that ended meanwhile, or parked for long)
        // go now; the map holds only runs somebody follows.
        runs.retain(|_, tx| tx.receiver_count() > 0);
        runs.entry(run_id.to_string())
            .or_insert_with(|| broadcast::channel(BUFFER).0)
            .subscribe()
    }

    /// Ends the run's channel without a last event (the run went to another process).
    pub(crate) fn close(&self, run_id: &str) {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(run_id);
    }

    /// Sends a committed transition to the run's followers. A run's last event (its end)
    /// closes its channel; channels nobody listens to any more are dropped.
    pub(crate) fn publish(&self, event: &RunEvent, run_ended: bool) {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        if runs.is_empty() {
            return;
        }
        let Some(tx) = runs.get(&event.run_id) else {
            return;
        };
        if tx.send(event.clone()).is_err() || run_ended {
            runs.remove(&event.run_id);
        }
    }
}
