//! Time, injected: the executor never reads the system clock directly.
//!
//! The executor asks its [`Clock`] what time it is and waits on it for the next timer, so a
//! clock decides both what "now" is and when "later" arrives. [`TokioClock`] is real time
//! (measured on tokio's clock). [`ManualClock`] stands still until a test moves it with
//! [`ManualClock::advance`], which wakes the executor at once: timers, retry back-offs,
//! approval and signal timeouts, step timeouts and cron triggers are tested without sleeping.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// A future that resolves when a clock reaches some time.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where the executor gets "now", and how it waits for "later".
pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Resolves once [`now_ms`](Clock::now_ms) has reached `ms` (at once if it already has).
    /// By default a real-time sleep for the difference, right for any clock that follows real
    /// time; a clock that does not must override it.
    fn sleep_until(&self, ms: i64) -> Sleep {
        let ahead = u64::try_from(ms.saturating_sub(self.now_ms())).unwrap_or(0);
        Box::pin(tokio::time::sleep(Duration::from_millis(ahead)))
    }

    /// Whether this clock moves with real time. The plugin host stops an attempt at its step
    /// timeout in real time (the epoch deadline); a clock that does not follow real time gets
    /// step timeouts enforced by the executor in clock time instead, which cancels the attempt.
    fn follows_real_time(&self) -> bool {
        true
    }
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
        self.base + Duration::from_millis(offset)
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

    fn sleep_until(&self, ms: i64) -> Sleep {
        Box::pin(tokio::time::sleep_until(self.instant_at(ms)))
    }
}

/// A clock that moves only when told to. Cheap to clone; clones share one time, so a test
/// keeps a clone and hands another to the engine.
#[derive(Debug, Clone)]
pub struct ManualClock {
    /// The shared time and the waiters on it.
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    /// Milliseconds since the Unix epoch.
    now_ms: AtomicI64,
    /// Woken on every change of `now_ms`, so sleepers re-check their deadline.
    changed: Notify,
}

impl ManualClock {
    /// A clock standing at `ms` milliseconds since the Unix epoch.
    pub fn new(ms: i64) -> Self {
        Self {
            inner: Arc::new(ManualInner {
                now_ms: AtomicI64::new(ms),
                changed: Notify::new(),
            }),
        }
    }

    /// A clock standing at an RFC 3339 time such as `2030-01-01T00:00:00Z`.
    pub fn at(rfc3339: &str) -> Result<Self, chrono::ParseError> {
        let t = chrono::DateTime::parse_from_rfc3339(rfc3339)?;
        Ok(Self::new(t.timestamp_millis()))
    }

    /// Moves time forward by `by` and wakes everything waiting on this clock.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.inner.now_ms.fetch_add(by, Ordering::SeqCst);
        self.inner.changed.notify_waiters();
    }

    /// Sets the time to `ms` (never backwards: an earlier time is ignored) and wakes waiters.
    pub fn set(&self, ms: i64) {
        self.inner.now_ms.fetch_max(ms, Ordering::SeqCst);
        self.inner.changed.notify_waiters();
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.inner.now_ms.load(Ordering::SeqCst)
    }

    fn sleep_until(&self, ms: i64) -> Sleep {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            loop {
                // Registered before the check, so an advance between the two is not missed.
                let changed = inner.changed.notified();
                if inner.now_ms.load(Ordering::SeqCst) >= ms {
                    return;
                }
                changed.await;
            }
        })
    }

    fn follows_real_time(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_sleep_ends_when_the_clock_reaches_its_time() {
        let clock = ManualClock::new(1_000);
        let mut sleep = clock.sleep_until(61_000);
        let poll = |s: &mut Sleep| {
            let waker = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            s.as_mut().poll(&mut cx).is_ready()
        };
        assert!(!poll(&mut sleep));
        clock.advance(Duration::from_secs(59));
        assert!(!poll(&mut sleep));
        clock.advance(Duration::from_secs(1));
        assert!(poll(&mut sleep));
        assert_eq!(clock.now_ms(), 61_000);
        assert!(
            poll(&mut clock.sleep_until(0)),
            "a past time is due at once"
        );
    }

    #[tokio::test]
    async fn an_advance_wakes_a_waiting_task() {
        let clock = ManualClock::at("2030-01-01T00:00:00Z").expect("valid time");
        let start = clock.now_ms();
        let waiter = tokio::spawn(clock.sleep_until(start + 3_600_000));
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(3_600));
        waiter.await.expect("the sleeper wakes");
        clock.set(start);
        assert_eq!(clock.now_ms(), start + 3_600_000, "time never goes back");
    }
}
