//! The epoch ticker: a thread that advances the engine's epoch at a fixed interval, so every
//! running plugin reaches its epoch-deadline callback (timeout and cancellation checks) within
//! one tick. Stopped and joined when dropped.
//!
//! Knows only `wasmtime::Engine::increment_epoch`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::Engine;

#[derive(Debug)]
pub(crate) struct EpochTicker {
    /// Set on drop; the thread exits at its next tick.
    stop: Arc<AtomicBool>,
    /// Joined on drop.
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine, tick: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("csmp-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .ok();
        if thread.is_none() {
            tracing::error!("cannot start the epoch ticker thread; plugin timeouts will not fire");
        }
        Self { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
