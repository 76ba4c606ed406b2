//! Following a run another process executes: its transitions are read from the store, a few
//! times a second, and told as the same [`RunEvent`]s the executor sends for its own runs.
//! (The events of a run executed here come from the executor's commits instead.)

use std::collections::HashMap;
use std::time::Duration;

use super::RunEvent;
use crate::store::{RunStatus, StepStatus, Store, StoreError};

/// How often the run is read.
const EVERY: Duration = Duration::from_millis(250);

/// Units compared one by one; a wider run is followed by its own status only.
const MOST_UNITS: u32 = 2_000;

/// A run followed through the store.
#[derive(Debug)]
pub struct Watch {
    store: Store,
    run_id: String,
    /// Each unit's (status, attempt) as last told.
    seen: HashMap<String, (StepStatus, u32)>,
    /// The run's status as last told.
    status: Option<RunStatus>,
    every: tokio::time::Interval,
}

impl Watch {
    /// Starts following `run_id` from what the store holds now (told as nothing: the caller
    /// sent a snapshot).
    pub async fn start(store: Store, run_id: &str) -> Result<Self, StoreError> {
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut w = Self {
            store,
            run_id: run_id.to_string(),
            seen: HashMap::new(),
            status: None,
            every,
        };
        w.look().await?;
        Ok(w)
    }

    /// The transitions since the last look, once there are any; empty when the run is gone.
    pub async fn next(&mut self) -> Result<Vec<RunEvent>, StoreError> {
        loop {
            self.every.tick().await;
            let events = self.look().await?;
            if !events.is_empty() || self.status.is_none() {
                return Ok(events);
            }
        }
    }

    async fn look(&mut self) -> Result<Vec<RunEvent>, StoreError> {
        let Some(run) = self.store.run(&self.run_id).await? else {
            self.status = None;
            return Ok(Vec::new());
        };
        let mut events = Vec::new();
        let first = self.status.is_none();
        for u in self
            .store
            .steps_page(&self.run_id, None, MOST_UNITS)
            .await?
        {
            let key = u.key.to_string();
            let now = (u.status, u.attempt);
            if self.seen.get(&key) != Some(&now) {
                if !first {
                    events.push(RunEvent {
                        run_id: self.run_id.clone(),
                        step: Some(key.clone()),
                        status: u.status.as_str().into(),
                        error: u.error.clone(),
                        outputs: None,
                    });
                }
                self.seen.insert(key, now);
            }
        }
        if self.status != Some(run.status) {
            if !first {
                let ended = run.status.is_final();
                events.push(RunEvent {
                    run_id: self.run_id.clone(),
                    step: None,
                    status: run.status.as_str().into(),
                    error: run.error.clone(),
                    outputs: run.outputs.clone().filter(|_| ended),
                });
            }
            self.status = Some(run.status);
        }
        Ok(events)
    }
}
