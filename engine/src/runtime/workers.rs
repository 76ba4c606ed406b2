//! The bounded pool of threads that run plugin attempts.
//!
//! Knows the plugin host's blocking call and the channels back to the executor; knows nothing
//! about runs or steps beyond the keys it carries back.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use super::{AttemptObserver, Metrics};
use crate::plan::UnitKey;
use crate::plugin::{FailureKind, Invocation, Outcome, PluginHost, StepFailure};

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

/// Starts one worker thread per step slot of `host` (`max_concurrent_steps`, so threads and
/// sandbox slots always agree); returns the job queue. Threads end when the queue's sender
/// drops.
pub(crate) fn start(
    host: PluginHost,
    done: tokio::sync::mpsc::Sender<Done>,
    observer: Option<Arc<dyn AttemptObserver>>,
    metrics: Arc<Metrics>,
) -> mpsc::SyncSender<Job> {
    let n = host.max_concurrent_steps().max(1);
    // One attempt waiting per thread: the executor keeps the rest, so the queue never grows
    // past what the threads are about to take.
    let (tx, rx) = mpsc::sync_channel::<Job>(n);
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..n {
        let rx = Arc::clone(&rx);
        let host = host.clone();
        let done = done.clone();
        let observer = observer.clone();
        let metrics = Arc::clone(&metrics);
        let spawned = std::thread::Builder::new()
            .name(format!("csmp-step-{i}"))
            .spawn(move || {
                loop {
                    let job = {
                        let guard = rx.lock().unwrap_or_else(PoisonError::into_inner);
                        guard.recv()
                    };
                    let Ok(job) = job else { return };
                    metrics.attempt_running(true);
                    let (run_id, key, attempt) = (job.run_id, job.key, job.attempt);
                    let call = job.call;
                    // A panic here is the host's bug, not the plugin's: it fails this attempt
                    // (retryable) and the thread goes on with the next one.
                    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        if let Some(o) = &observer {
                            o.started(&run_id, &key, attempt);
                        }
                        let result = host.invoke_blocking(call);
                        if let Some(o) = &observer {
                            o.finished(&run_id, &key, attempt);
                        }
                        result
                    }))
                    .unwrap_or_else(|panic| {
                        let what = panic_text(panic.as_ref());
                        tracing::error!(run = %run_id, unit = %key, attempt, "a step worker panicked: {what}");
                        Err(StepFailure::new(
                            FailureKind::HostFault,
                            format!("the step worker running this attempt panicked ({what}); the attempt is retried per the step's retry policy"),
                        ))
                    });
                    metrics.attempt_running(false);
                    // Waits when the executor is behind: results are never dropped.
                    let sent = done.blocking_send(Done {
                        run_id,
                        key,
                        attempt,
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

/// The message a panic carried.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_string()
    }
}
