//! One step attempt's sandbox: the per-`Store` state (an empty WASI context, the log, the
//! memory cap, the plugin's policy and secrets), the host side of the plugin's imports, the
//! epoch-deadline callback that enforces the timeout and cancellation, and the mapping of
//! whatever wasmtime returns into a `StepFailure`.
//!
//! Knows wasmtime and WASI; knows nothing about how plugins are found or cached (`host`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxView, WasiView};

use super::abi::{self, WitHttpError, WitLevel, WitRequest, WitResponse};
use super::capture::{self, LogSink};
use super::error::{FailureKind, Interrupt, StepFailure};
use super::outbound::Outbound;
use super::policy::Policy;

/// Everything one `Store` owns. A fresh one per step attempt: nothing survives an attempt.
pub(crate) struct StepState {
    /// WASI with nothing in it: no preopened directories, no environment, no arguments, no
    /// network; stdout and stderr go to `log`.
    wasi: WasiCtx,
    /// WASI's resource handles.
    table: ResourceTable,
    /// Enforces the memory cap.
    memory: MemoryCap,
    /// The attempt's log.
    log: LogSink,
    /// What this plugin may reach.
    policy: Arc<Policy>,
    /// Secret values for this attempt; readable only where `policy` allows.
    secrets: Arc<BTreeMap<String, String>>,
    /// The shared HTTP client.
    outbound: Outbound,
    /// When the attempt runs out of time (host calls clamp their own timeouts to it).
    deadline: Instant,
    /// Fires when the attempt is cancelled; host calls that wait stop waiting.
    cancel: CancellationToken,
}

impl std::fmt::Debug for StepState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepState")
            .field("plugin", &self.policy.plugin)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl StepState {
    pub(crate) fn log(&self) -> &LogSink {
        &self.log
    }

    /// The most linear memory the instance held at once, in bytes.
    pub(crate) fn peak_memory(&self) -> usize {
        self.memory.peak
    }
}

/// Creates the store for one attempt, with the memory cap, the deadline and cancellation armed.
pub(crate) fn new_store(
    engine: &Engine,
    policy: Arc<Policy>,
    secrets: Arc<BTreeMap<String, String>>,
    outbound: Outbound,
    timeout: Duration,
    cancel: CancellationToken,
) -> Store<StepState> {
    let log = LogSink::new(policy.log_bytes);
    let wasi = WasiCtx::builder()
        .stdout(log.clone())
        .stderr(log.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let now = Instant::now();
    let deadline = now
        .checked_add(timeout)
        .unwrap_or(now + Duration::from_secs(86_400 * 365));
    let state = StepState {
        wasi,
        table: ResourceTable::new(),
        memory: MemoryCap {
            limit: policy.memory_bytes,
            plugin: policy.plugin.clone(),
            in_use: 0,
            peak: 0,
        },
        log,
        policy,
        secrets,
        outbound,
        deadline,
        cancel: cancel.clone(),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.memory);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if cancel.is_cancelled() {
            return Err(wasmtime::Error::new(Interrupt::Cancelled));
        }
        if Instant::now() >= deadline {
            return Err(wasmtime::Error::new(Interrupt::Timeout(timeout)));
        }
        Ok(UpdateDeadline::Continue(1))
    });
    store
}

/// The attempt's context as the plugin sees it.
pub(crate) fn wit_context(idempotency_key: &str, timeout: Duration) -> abi::WitContext {
    abi::WitContext {
        idempotency_key: idempotency_key.to_owned(),
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
    }
}

/// Turns an error from instantiating or calling the plugin into a step failure.
pub(crate) fn classify(err: &wasmtime::Error, log: &str) -> StepFailure {
    if let Some(interrupt) = err.downcast_ref::<Interrupt>() {
        return StepFailure::new(interrupt.kind(), interrupt.to_string());
    }
    if let Some(exit) = err.downcast_ref::<I32Exit>() {
        return StepFailure::new(
            FailureKind::Trap,
            format!(
                "plugin exited the process with status {}; return an error instead",
                exit.0
            ),
        );
    }
    if let Some(trap) = err.downcast_ref::<Trap>() {
        if let Some(panic) = capture::panic_message(log) {
            return StepFailure::new(FailureKind::Trap, format!("plugin panicked: {panic}"));
        }
        return StepFailure::new(FailureKind::Trap, format!("plugin trapped: {trap}"));
    }
    StepFailure::new(FailureKind::Trap, format!("plugin failed: {err:#}"))
}

/// The memory cap, enforced when the guest creates or grows a memory or a table; it also
/// keeps the high-water mark that `csmp plugin try` reports.
struct MemoryCap {
    limit: usize,
    plugin: String,
    /// Bytes of every linear memory of the instance together.
    in_use: usize,
    /// The most `in_use` ever was.
    peak: usize,
}

/// Tables hold function references; no honest plugin needs more entries than this.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            return Err(wasmtime::Error::new(Interrupt::MemoryLimit {
                plugin: self.plugin.clone(),
                mib: self.limit / (1024 * 1024),
            }));
        }
        let allowed = maximum.is_none_or(|m| desired <= m);
        if allowed {
            self.in_use = self.in_use.saturating_add(desired.saturating_sub(current));
            self.peak = self.peak.max(self.in_use);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS && maximum.is_none_or(|m| desired <= m))
    }
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl abi::csmp::plugin::types::Host for StepState {}

impl abi::csmp::plugin::log::Host for StepState {
    fn write(&mut self, level: WitLevel, message: String) -> wasmtime::Result<()> {
        let level = match level {
            WitLevel::Debug => "debug",
            WitLevel::Info => "info",
            WitLevel::Warn => "warn",
            WitLevel::Error => "error",
        };
        self.log.line(level, &message);
        Ok(())
    }
}

impl abi::csmp::plugin::http::Host for StepState {
    fn send(&mut self, request: WitRequest) -> wasmtime::Result<Result<WitResponse, WitHttpError>> {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let method = request.method.clone();
        let url = request.url.clone();
        let result = self
            .outbound
            .send(&self.policy, request, remaining, &self.cancel)
            .map_err(wasmtime::Error::new)?;
        match &result {
            Ok(r) => self
                .log
                .line("http", &format!("{method} {url} -> {}", r.status)),
            Err(e) => self
                .log
                .line("http", &format!("{method} {url} failed: {e:?}")),
        }
        Ok(result)
    }
}

impl abi::csmp::plugin::secrets::Host for StepState {
    fn get(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        if !self.policy.allows_secret(&name) {
            return Err(wasmtime::Error::new(Interrupt::SecretDenied {
                plugin: self.policy.plugin.clone(),
                name,
            }));
        }
        Ok(self.secrets.get(&name).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_cap_refuses_growth_past_the_limit() {
        let mut cap = MemoryCap {
            limit: 1024,
            plugin: "p".into(),
            in_use: 0,
            peak: 0,
        };
        assert!(matches!(cap.memory_growing(0, 1024, None), Ok(true)));
        assert!(matches!(cap.memory_growing(0, 512, Some(256)), Ok(false)));
        assert!(matches!(cap.memory_growing(0, 256, None), Ok(true)));
        assert_eq!(cap.peak, 1280, "two memories held together");
        let err = cap.memory_growing(0, 2048, None).err();
        let interrupt = err.as_ref().and_then(|e| e.downcast_ref::<Interrupt>());
        assert!(matches!(interrupt, Some(Interrupt::MemoryLimit { .. })));
        assert!(matches!(
            cap.table_growing(0, MAX_TABLE_ELEMENTS + 1, None),
            Ok(false)
        ));
    }

    #[test]
    fn classify_maps_interrupts_and_traps() {
        let e = wasmtime::Error::new(Interrupt::Cancelled);
        assert_eq!(classify(&e, "").kind, FailureKind::Cancelled);
        let e = wasmtime::Error::new(Trap::UnreachableCodeReached);
        let f = classify(&e, "thread 'main' panicked at src/lib.rs:1:1:\nkaboom\n");
        assert_eq!(f.kind, FailureKind::Trap);
        assert_eq!(f.message, "plugin panicked: kaboom (at src/lib.rs:1:1)");
        let f = classify(&e, "");
        assert!(f.message.starts_with("plugin trapped"), "{}", f.message);
        let e = wasmtime::Error::new(I32Exit(3));
        assert!(classify(&e, "").message.contains("status 3"));
    }
}
