//! The bounded pool of threads that run plugin attempts.
//!
//! Knows the plugin host's blocking call and the channels back to the executor; knows nothing
//! about runs or steps beyond the keys it carries back.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use super::AttemptObserver;
use crate::plan::UnitKey;
use crate::plugin::{Invocation, Outcome, PluginHost, StepFailure};

/// One attempt to run.
#[derive(Debug)]
pub(crate) struct Job {
    /// The run it belongs to.
    pub(crate) run_id: String,
    /// The unit the attempt is for.
    pub(crate) key: UnitKey,
    /// The attempt number, so a late result of an abandoned attempt is recognised.
    pub(crate) attempt: u32,
    /// What to call.
    pub(crate) call: Invocation,
}

/// The result of one attempt.
#[derive(Debug)]
pub(crate) struct Done {
    /// The run it belongs to.
    pub(crate) run_id: String,
    /// The unit the attempt is for.
    pub(crate) key: UnitKey,
    /// The attempt number it answers.
    pub(crate) attempt: u32,
    /// Output or failure.
    pub(crate) result: Result<Outcome, StepFailure>,
}

/// Starts `n` worker threads; returns the job queue. Threads end when the queue's sender drops.
pub(crate) fn start(
    n: usize,
    host: PluginHost,
    done: tokio::sync::mpsc::UnboundedSender<Done>,
    observer: Option<Arc<dyn AttemptObserver>>,
) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..n.max(1) {
        let rx = Arc::clone(&rx);
        let host = host.clone();
        let done = done.clone();
        let observer = observer.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("csmp-step-{i}"))
            .spawn(move || {
                loop {
                    let job = {
                        let guard = rx.lock().unwrap_or_else(PoisonError::into_inner);
                        guard.recv()
                    };
                    let Ok(job) = job else { return };
                    if let Some(o) = &observer {
                        o.started(&job.run_id, &job.key, job.attempt);
                    }
                    let result = host.invoke_blocking(job.call);
                    if let Some(o) = &observer {
                        o.finished(&job.run_id, &job.key, job.attempt);
                    }
                    let sent = done.send(Done {
                        run_id: job.run_id,
                        key: job.key,
                        attempt: job.attempt,
                        result,
                    });
                    if sent.is_err() {
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start step worker {i}: {e}");
        }
    }
    tx
}
