//! What keeps the executor from making progress, for `/readyz`, `/metrics` and the log.
//!
//! The executor reports each storage fault as it meets it and each recovery; this records
//! the current state, counts, and logs once per change of state (not once per retry), so a
//! database that is down for an hour is one error line and one recovery line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// A fault that is stopping commits now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// What the database said last, in words an operator acts on.
    pub reason: String,
    /// When it began (ms since the epoch).
    pub since_ms: i64,
    /// When the log last said what the fault is (ms).
    logged_ms: i64,
}

/// A fault whose words change while it lasts (a full disk, then a busy lock; an I/O error
/// that a fresh connection reports as read-only) is logged again at most this often.
const RELOG_MS: i64 = 60_000;

/// The executor's health. Shared between the executor and the API.
#[derive(Debug, Default)]
pub struct Health {
    /// The storage fault in force, if any.
    storage: Mutex<Option<Fault>>,
    /// Commits that failed with a transient fault and were retried.
    retried: AtomicU64,
    /// Runs failed because the database refused to store one of their transitions.
    refused: AtomicU64,
}

impl Health {
    /// The storage fault in force, if any.
    pub fn storage_fault(&self) -> Option<Fault> {
        self.lock().clone()
    }

    /// Commits that failed transiently and were retried, since start.
    pub fn commits_retried(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }

    /// Runs failed because a transition of theirs could not be stored, since start.
    pub fn runs_refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// A commit failed transiently; it will be retried. Logged when the fault begins (and
    /// when its reason changes, at most once a minute).
    pub(crate) fn storage_down(&self, reason: &str, now_ms: i64) {
        self.retried.fetch_add(1, Ordering::Relaxed);
        let mut state = self.lock();
        match &mut *state {
            None => {
                tracing::error!(
                    reason,
                    "cannot commit to the database; retrying with backoff until it works (readyz answers 503 meanwhile)"
                );
                *state = Some(Fault {
                    reason: reason.to_string(),
                    since_ms: now_ms,
                    logged_ms: now_ms,
                });
            }
            Some(f) if f.reason != reason => {
                if now_ms - f.logged_ms >= RELOG_MS {
                    tracing::error!(
                        reason,
                        down_ms = now_ms - f.since_ms,
                        "the database still refuses commits, now for another reason"
                    );
                    f.logged_ms = now_ms;
                }
                f.reason = reason.to_string();
            }
            Some(_) => {}
        }
    }

    /// A commit succeeded.
    pub(crate) fn storage_up(&self, now_ms: i64) {
        let mut state = self.lock();
        if let Some(f) = state.take() {
            tracing::info!(
                down_ms = now_ms - f.since_ms,
                "the database accepts commits again after: {}",
                f.reason
            );
        }
    }

    /// A run was failed because its transition could not be stored.
    pub(crate) fn run_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Fault>> {
        self.storage.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
