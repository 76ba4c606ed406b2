//! The executor's counters and gauges, kept in memory as transitions are committed, so
//! `/metrics` reads numbers instead of scanning tables on every scrape.
//!
//! Counters count from the process's start (Prometheus takes rates of them); gauges say what
//! is true now. Updated only after a commit, so they never count what was not stored.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::{RunStatus, StepStatus};

/// Upper bounds (s) of the run-duration histogram.
pub const RUN_SECONDS_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0];

/// Final step statuses, in the order [`Metrics::steps_finished`] lists them.
const STEP_ENDS: [StepStatus; 4] = [
    StepStatus::Succeeded,
    StepStatus::Failed,
    StepStatus::Skipped,
    StepStatus::Cancelled,
];

/// Final run statuses, in the order [`Metrics::runs_finished`] lists them.
const RUN_ENDS: [RunStatus; 3] = [
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::Cancelled,
];

/// The executor's numbers.
#[derive(Debug, Default)]
pub struct Metrics {
    runs_started: AtomicU64,
    runs_finished: [AtomicU64; 3],
    steps_finished: [AtomicU64; 4],
    attempts_retried: AtomicU64,
    run_seconds: [AtomicU64; RUN_SECONDS_BUCKETS.len()],
    run_seconds_count: AtomicU64,
    /// Sum of run durations in ms (kept whole, reported in seconds).
    run_ms_sum: AtomicU64,
    runs_active: AtomicU64,
    runs_blocked: AtomicU64,
    /// Attempts the executor holds back until a worker can take them.
    backlog: AtomicU64,
    /// Attempts handed to the workers' queue and not yet taken by a thread.
    handed: AtomicU64,
    attempts_running: AtomicU64,
    /// Partitions this process holds now.
    partitions_held: AtomicU64,
    /// Partitions taken over from this process (found lost at a commit or a renewal).
    partitions_lost: AtomicU64,
    /// Steers forwarded to the process holding their partition.
    commands_forwarded: AtomicU64,
    /// Forwarded steers whose holder did not answer in time (still queued there).
    commands_unanswered: AtomicU64,
}

/// A copy of the numbers at one moment, for rendering.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    /// Runs created since start.
    pub runs_started: u64,
    /// Runs ended since start, by final status.
    pub runs_finished: Vec<(&'static str, u64)>,
    /// Units ended since start, by final status.
    pub steps_finished: Vec<(&'static str, u64)>,
    /// Attempts that failed and were scheduled again.
    pub attempts_retried: u64,
    /// Run durations: cumulative count per upper bound (s), the sum (s) and the count.
    pub run_seconds: (Vec<(f64, u64)>, f64, u64),
    /// Runs this process executes now.
    pub runs_active: u64,
    /// Runs this process holds blocked (their workflow version does not plan).
    pub runs_blocked: u64,
    /// Attempts waiting for a worker thread.
    pub attempts_queued: u64,
    /// Attempts on a worker thread now.
    pub attempts_running: u64,
    /// Partitions held now.
    pub partitions_held: u64,
    /// Partitions taken over from this process since start.
    pub partitions_lost: u64,
    /// Commands forwarded to other processes since start.
    pub commands_forwarded: u64,
    /// Forwarded commands not answered in time since start.
    pub commands_unanswered: u64,
}

impl Metrics {
    pub(crate) fn run_started(&self) {
        self.runs_started.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn run_finished(&self, status: RunStatus, took_ms: i64) {
        if let Some(i) = RUN_ENDS.iter().position(|s| *s == status) {
            self.runs_finished[i].fetch_add(1, Ordering::Relaxed);
        }
        let ms = u64::try_from(took_ms).unwrap_or(0);
        #[allow(clippy::cast_precision_loss)]
        let secs = ms as f64 / 1000.0;
        for (i, b) in RUN_SECONDS_BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.run_seconds[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.run_seconds_count.fetch_add(1, Ordering::Relaxed);
        self.run_ms_sum.fetch_add(ms, Ordering::Relaxed);
    }

    pub(crate) fn unit_ended(&self, status: StepStatus) {
        if let Some(i) = STEP_ENDS.iter().position(|s| *s == status) {
            self.steps_finished[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn attempt_retried(&self) {
        self.attempts_retried.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the gauges of what the executor holds now.
    pub(crate) fn set_load(&self, active: usize, blocked: usize, backlog: usize) {
        let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        self.runs_active.store(n(active), Ordering::Relaxed);
        self.runs_blocked.store(n(blocked), Ordering::Relaxed);
        self.backlog.store(n(backlog), Ordering::Relaxed);
    }

    /// How many partitions are held now.
    pub(crate) fn set_partitions(&self, held: usize) {
        self.partitions_held
            .store(u64::try_from(held).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// A partition was found taken over.
    pub(crate) fn partition_lost(&self) {
        self.partitions_lost.fetch_add(1, Ordering::Relaxed);
    }

    /// A command went to another process (`answered` false: it did not answer in time).
    pub(crate) fn command_forwarded(&self, answered: bool) {
        if answered {
            self.commands_forwarded.fetch_add(1, Ordering::Relaxed);
        } else {
            self.commands_unanswered.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The executor handed an attempt to the workers' queue.
    pub(crate) fn attempt_handed(&self) {
        self.handed.fetch_add(1, Ordering::Relaxed);
    }

    /// A worker thread took an attempt from the queue (`true`) or finished it (`false`).
    pub(crate) fn attempt_running(&self, started: bool) {
        if started {
            let _ = self
                .handed
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
            self.attempts_running.fetch_add(1, Ordering::Relaxed);
        } else {
            self.attempts_running.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The numbers now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        #[allow(clippy::cast_precision_loss)]
        let sum = get(&self.run_ms_sum) as f64 / 1000.0;
        MetricsSnapshot {
            runs_started: get(&self.runs_started),
            runs_finished: RUN_ENDS
                .iter()
                .zip(&self.runs_finished)
                .map(|(s, n)| (s.as_str(), get(n)))
                .collect(),
            steps_finished: STEP_ENDS
                .iter()
                .zip(&self.steps_finished)
                .map(|(s, n)| (s.as_str(), get(n)))
                .collect(),
            attempts_retried: get(&self.attempts_retried),
            run_seconds: (
                RUN_SECONDS_BUCKETS
                    .iter()
                    .zip(&self.run_seconds)
                    .map(|(b, n)| (*b, get(n)))
                    .collect(),
                sum,
                get(&self.run_seconds_count),
            ),
            runs_active: get(&self.runs_active),
            runs_blocked: get(&self.runs_blocked),
            attempts_queued: get(&self.backlog) + get(&self.handed),
            attempts_running: get(&self.attempts_running),
            partitions_held: get(&self.partitions_held),
            partitions_lost: get(&self.partitions_lost),
            commands_forwarded: get(&self.commands_forwarded),
            commands_unanswered: get(&self.commands_unanswered),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_cumulative_buckets() {
        let m = Metrics::default();
        m.run_finished(RunStatus::Succeeded, 300);
        m.run_finished(RunStatus::Failed, 45_000);
        m.unit_ended(StepStatus::Skipped);
        m.unit_ended(StepStatus::Running);
        let s = m.snapshot();
        assert_eq!(
            s.runs_finished,
            [("succeeded", 1), ("failed", 1), ("cancelled", 0)]
        );
        assert_eq!(s.steps_finished[2], ("skipped", 1));
        let (buckets, sum, count) = s.run_seconds;
        assert_eq!(buckets[0], (0.1, 0));
        assert_eq!(buckets[1], (0.5, 1));
        assert_eq!(buckets[5], (60.0, 2));
        assert_eq!((sum, count), (45.3, 2));
    }
}
