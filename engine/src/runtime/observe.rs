//! Watching plugin attempts as the worker threads run them, for benchmarks and metrics.
//!
//! An observer sees when a worker thread begins and ends a plugin call; it knows nothing
//! about commits, and nothing it does can change a run.

use std::fmt::Debug;

use crate::plan::UnitKey;

/// Told by the worker threads when a plugin attempt starts and ends. Calls come from several
/// threads at once and sit on the step path, so they must be quick and must not block.
pub trait AttemptObserver: Send + Sync + Debug {
    /// A worker thread is about to call the plugin for attempt `attempt` of unit `key`.
    fn started(&self, run_id: &str, key: &UnitKey, attempt: u32);
    /// The plugin call of that attempt returned (its result is not yet recorded).
    fn finished(&self, run_id: &str, key: &UnitKey, attempt: u32);
}
