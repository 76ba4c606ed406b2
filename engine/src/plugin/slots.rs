//! The sandbox's instance slots as a counting semaphore for blocking threads.
//!
//! The instance pool holds `max_concurrent_steps` slots for steps (plus a few for `describe` at
//! load). An attempt takes a slot before it instantiates and gives it back when it ends, so a
//! burst of attempts waits for a slot instead of failing to instantiate; a cancelled attempt
//! stops waiting.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often a waiting attempt looks at its cancellation token.
const CANCEL_CHECK: Duration = Duration::from_millis(10);

/// Free step slots.
#[derive(Debug)]
pub(crate) struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

/// One slot, given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot<'a>(&'a Slots);

impl Slots {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            free: Mutex::new(n),
            freed: Condvar::new(),
        }
    }

    /// Waits for a free slot; `None` when `cancel` fires first.
    pub(crate) fn take(&self, cancel: &CancellationToken) -> Option<Slot<'_>> {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if cancel.is_cancelled() {
                return None;
            }
            if *free > 0 {
                *free -= 1;
                return Some(Slot(self));
            }
            free = self
                .freed
                .wait_timeout(free, CANCEL_CHECK)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_pool_makes_callers_wait_and_cancel_frees_them() {
        let slots = Slots::new(1);
        let cancel = CancellationToken::new();
        let first = slots.take(&cancel).expect("a free slot");
        std::thread::scope(|s| {
            let waiter = s.spawn(|| slots.take(&CancellationToken::new()).is_some());
            std::thread::sleep(Duration::from_millis(30));
            drop(first);
            assert!(
                waiter.join().expect("joined"),
                "the waiter gets the freed slot"
            );
        });
        let held = slots.take(&cancel).expect("free again");
        let stop = CancellationToken::new();
        stop.cancel();
        assert!(slots.take(&stop).is_none(), "a cancelled wait gives up");
        drop(held);
    }
}
