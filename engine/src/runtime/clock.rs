//! Time, injected: the executor never reads the system clock directly.
//!
//! [`TokioClock`] measures time on tokio's clock, so tests that pause tokio's time
//! (`#[tokio::test(start_paused = true)]`) run timers, retries and timeouts without sleeping.

use std::fmt::Debug;

/// Where the executor gets "now".
pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// Wall-clock time read at creation, advanced by tokio's monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    /// Wall time (ms) when the clock was made.
    base_ms: i64,
    /// Tokio's instant at that moment.
    base: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading the current wall time now.
    pub fn new() -> Self {
        let base_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self {
            base_ms,
            base: tokio::time::Instant::now(),
        }
    }

    /// The tokio instant corresponding to `ms` on this clock (for sleeping until a timer).
    pub fn instant_at(&self, ms: i64) -> tokio::time::Instant {
        let offset = u64::try_from(ms.saturating_sub(self.base_ms)).unwrap_or(0);
        self.base + std::time::Duration::from_millis(offset)
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.base);
        self.base_ms
            .saturating_add(i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
    }
}
