//! The plugin host: one wasmtime `Engine` and `Linker` per process, plugins compiled once
//! (through wasmtime's on-disk cache) and kept as `InstancePre`s, and `invoke`, which runs one
//! step attempt in a fresh sandboxed `Store` on a blocking thread.
//!
//! Knows how plugins are loaded, found and called; the per-attempt sandbox lives in `sandbox`,
//! the grant checks in `policy`. Knows nothing about workflows, retries or the store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Cache, CacheConfig, Config, Enabled, Engine, InstanceAllocationStrategy,
    PoolingAllocationConfig,
};

use super::abi::{self, WitPluginError};
use super::builtin;
use super::config::{Grants, HostConfig};
use super::descriptor::{PluginDescriptor, PluginIndex};
use super::error::{FailureKind, LoadError, PluginError, StepFailure};
use super::imports;
use super::mask::Masker;
use super::outbound::Outbound;
use super::policy::Policy;
use super::sandbox::{self, StepState};
use super::slots::Slots;
use super::ticker::EpochTicker;

/// How long `describe` may run at load.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pool slots kept for `describe` calls beside the step slots.
const SPARE_SLOTS: u32 = 4;
/// Validation errors quoted in an invalid-input or invalid-output message.
const MAX_SCHEMA_ERRORS: usize = 5;
/// Bytes of each pooled linear memory reset in place (not unmapped) when an attempt ends.
const KEEP_RESIDENT_MEMORY: usize = 2 << 20;
/// Bytes of each pooled table reset in place when an attempt ends.
const KEEP_RESIDENT_TABLE: usize = 64 << 10;

/// Runs plugins. Cheap to clone (an `Arc` inside); `Send + Sync`.
#[derive(Clone)]
pub struct PluginHost {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    /// The one engine: compiled code and the instance pool live here.
    engine: Engine,
    /// The one linker: WASI (served empty) plus the csmp imports.
    linker: Linker<StepState>,
    /// Default limits and per-plugin grants in force; replaced by a reload (`grants.rs`).
    pub(super) grants: RwLock<Grants>,
    /// What the instance pool was sized for, which a reload cannot change.
    pub(super) pool: PoolSize,
    /// The shared HTTP client for plugins' outbound requests.
    outbound: Outbound,
    /// Every loaded plugin.
    pub(super) registry: RwLock<Registry>,
    /// Bounds concurrent attempts to the pool's step slots, so a burst waits instead of failing.
    slots: Slots,
    /// Advances the engine's epoch so deadlines and cancellation are noticed.
    _ticker: EpochTicker,
    /// The masker of the secrets map last handed in, kept while callers hand the same map
    /// (the executor hands one map to every attempt).
    masker: Mutex<Option<(SecretMap, Arc<Masker>)>>,
}

/// The secrets handed to attempts.
type SecretMap = Arc<BTreeMap<String, String>>;

/// The limits the instance pool was built for at start.
#[derive(Debug, Clone, Copy)]
pub(super) struct PoolSize {
    /// `max_concurrent_steps`: the step slots and the executor's worker threads.
    pub(super) max_concurrent_steps: u32,
    /// The largest linear memory a slot can hold, in bytes.
    pub(super) max_memory_bytes: u64,
}

#[derive(Default)]
pub(super) struct Registry {
    /// name → version → plugin.
    pub(super) plugins: BTreeMap<String, BTreeMap<semver::Version, Arc<Loaded>>>,
    /// sha256 of the wasm → descriptor, so loading the same bytes twice is free.
    by_sha: HashMap<String, PluginDescriptor>,
}

/// One plugin version, ready to instantiate.
pub(super) struct Loaded {
    pub(super) descriptor: PluginDescriptor,
    pre: abi::PluginPre<StepState>,
    input: jsonschema::Validator,
    output: jsonschema::Validator,
    /// Its grant resolved against the defaults; swapped when the grants are reloaded, so an
    /// attempt that started keeps the policy it started with.
    pub(super) policy: RwLock<Arc<Policy>>,
}

impl Loaded {
    fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.policy.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A component that passed every load check, not yet registered.
struct Prepared {
    descriptor: PluginDescriptor,
    pre: abi::PluginPre<StepState>,
    input: jsonschema::Validator,
    output: jsonschema::Validator,
}

/// What a component is, found without registering it: its imports and its self-description.
#[derive(Debug)]
pub struct Examined {
    /// Every interface it imports, as named in the component (`wasi:cli/stdout@0.2.6`).
    pub imports: Vec<String>,
    /// Its descriptor, or why it cannot be loaded (a refused import, not our world, a broken
    /// `describe` or schema).
    pub descriptor: Result<PluginDescriptor, LoadError>,
}

/// One attempt run by [`PluginHost::trial`], measured.
#[derive(Debug, Clone)]
pub struct Trial {
    /// What [`PluginHost::invoke_blocking`] would have returned.
    pub result: Result<Outcome, StepFailure>,
    /// From taking a step slot to having checked the output: instantiation, the call, both
    /// schema checks.
    pub elapsed: Duration,
    /// The most linear memory the instance held at once, in bytes (every memory of the
    /// component together); 0 when it never started.
    pub peak_memory: usize,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let registry = self
            .inner
            .registry
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("PluginHost")
            .field("plugins", &registry.plugins.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// One step attempt to run.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The plugin's name.
    pub plugin: String,
    /// The exact version the plan resolved.
    pub version: semver::Version,
    /// The rendered `with:`; checked against the plugin's input schema.
    pub input: serde_json::Value,
    /// Stable across attempts of the same step (the plugin sends it upstream).
    pub idempotency_key: String,
    /// Secret values the plugin may ask for; only names its grant allows are readable.
    /// Shared, so handing them to every attempt copies nothing.
    pub secrets: Arc<BTreeMap<String, String>>,
    /// Wall-clock budget of this attempt; the plugin is stopped when it runs out.
    pub timeout: Duration,
    /// Cancels the attempt from outside (noticed within one epoch tick).
    pub cancel: CancellationToken,
}

/// A successful step attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The plugin's output, valid against its output schema.
    pub output: serde_json::Value,
    /// The attempt's captured log (stdout, stderr, log lines), capped.
    pub log: String,
}

impl PluginHost {
    /// Starts the engine, the instance pool and the epoch ticker; loads no plugin.
    pub fn new(config: HostConfig) -> Result<Self, PluginError> {
        let grants = config.grants;
        let slots = grants.max_concurrent_steps.saturating_add(SPARE_SLOTS);
        let max_memory = usize::try_from(grants.max_memory_bytes()).unwrap_or(usize::MAX);

        let mut pool = PoolingAllocationConfig::default();
        // A Rust wasip2 component holds a handful of core instances (the program, the WASI
        // adapter, shims), one or two memories and a few tables.
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(8))
            .total_memories(slots.saturating_mul(2))
            .total_tables(slots.saturating_mul(4))
            .max_memory_size(max_memory)
            // Reset a slot by rewriting the pages the attempt dirtied (found with the
            // PAGEMAP_SCAN ioctl where the kernel has it) instead of `madvise`-ing them away:
            // every `madvise` costs a TLB shootdown on each other core running csmp threads,
            // which was the largest single cost of a step.
            .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_TABLE)
            .pagemap_scan(Enabled::Auto);

        let mut wasm = Config::new();
        wasm.epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if let Some(dir) = &config.cache_dir {
            let cache_error = |message: String| PluginError::Cache {
                path: dir.clone(),
                message,
            };
            std::fs::create_dir_all(dir).map_err(|e| cache_error(e.to_string()))?;
            let mut cache = CacheConfig::new();
            cache.with_directory(dir);
            let cache = Cache::new(cache).map_err(|e| cache_error(format!("{e:#}")))?;
            wasm.cache(Some(cache));
        }
        let engine = Engine::new(&wasm).map_err(|e| PluginError::Engine(format!("{e:#}")))?;

        let mut linker = Linker::<StepState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        abi::Plugin::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Engine(format!("{e:#}")))?;

        let pool_size = PoolSize {
            max_concurrent_steps: grants.max_concurrent_steps,
            max_memory_bytes: grants.max_memory_bytes(),
        };
        let tick = config.epoch_tick.unwrap_or(Duration::from_millis(5));
        let ticker = EpochTicker::start(engine.clone(), tick);
        let step_slots = usize::try_from(grants.max_concurrent_steps).unwrap_or(usize::MAX);
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                grants: RwLock::new(grants),
                pool: pool_size,
                outbound: Outbound::new(
                    config
                        .lookup
                        .clone()
                        .unwrap_or_else(|| Arc::new(super::address::SystemLookup)),
                ),
                registry: RwLock::default(),
                slots: Slots::new(step_slots),
                _ticker: ticker,
                masker: Mutex::new(None),
            }),
        })
    }

    /// Compiles `wasm` (or loads it from the cache), checks its imports, asks it to describe
    /// itself and registers it. Loading the same bytes again returns the same descriptor.
    pub fn load(&self, wasm: &[u8]) -> Result<PluginDescriptor, LoadError> {
        self.load_expecting(wasm, None)
    }

    /// Like [`PluginHost::load`], but registers nothing unless the plugin describes itself
    /// as `name` at `version` (for uploads addressed to a name and version).
    pub fn load_as(
        &self,
        wasm: &[u8],
        name: &str,
        version: &semver::Version,
    ) -> Result<PluginDescriptor, LoadError> {
        self.load_expecting(wasm, Some((name, version)))
    }

    fn load_expecting(
        &self,
        wasm: &[u8],
        expect: Option<(&str, &semver::Version)>,
    ) -> Result<PluginDescriptor, LoadError> {
        let check = |d: &PluginDescriptor| match expect {
            Some((name, version)) if d.name != name || &d.version != version => {
                Err(LoadError::Mismatch {
                    expected: format!("{name}@{version}"),
                    found: format!("{}@{}", d.name, d.version),
                })
            }
            _ => Ok(()),
        };
        let sha = hex(&Sha256::digest(wasm));
        if let Some(d) = self.read_registry().by_sha.get(&sha) {
            check(d)?;
            return Ok(d.clone());
        }
        let component = self.compile(wasm)?;
        let prepared = self.prepare(&component)?;
        let descriptor = prepared.descriptor.clone();
        check(&descriptor)?;
        let id = format!("{}@{}", descriptor.name, descriptor.version);
        // The grants stay locked until the plugin is registered (always grants, then
        // registry, as a reload takes them), so a reload cannot slip in between and leave it
        // with the old policy.
        let grants = self
            .inner
            .grants
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let policy = Arc::new(Policy::new(
            &descriptor.name,
            &grants.grant(&descriptor.name),
            &grants.defaults,
        ));

        let mut registry = self
            .inner
            .registry
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(d) = registry.by_sha.get(&sha) {
            // Another thread loaded the same bytes meanwhile.
            return Ok(d.clone());
        }
        let versions = registry.plugins.entry(descriptor.name.clone()).or_default();
        if versions.contains_key(&descriptor.version) {
            return Err(LoadError::Conflict { plugin: id });
        }
        versions.insert(
            descriptor.version.clone(),
            Arc::new(Loaded {
                descriptor: descriptor.clone(),
                pre: prepared.pre,
                input: prepared.input,
                output: prepared.output,
                policy: RwLock::new(policy),
            }),
        );
        registry.by_sha.insert(sha, descriptor.clone());
        tracing::info!(plugin = %id, "plugin loaded");
        Ok(descriptor)
    }

    /// Looks at a component the way [`PluginHost::load`] does — compile, imports, link,
    /// `describe`, schemas — without registering it. `Err` only when it does not compile.
    pub fn examine(&self, wasm: &[u8]) -> Result<Examined, LoadError> {
        let component = self.compile(wasm)?;
        let ty = component.component_type();
        let imports = ty
            .imports(&self.inner.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let descriptor = self.prepare(&component).map(|p| p.descriptor);
        Ok(Examined {
            imports,
            descriptor,
        })
    }

    fn compile(&self, wasm: &[u8]) -> Result<Component, LoadError> {
        match wasm.get(..8) {
            Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => return Err(LoadError::CoreModule),
            Some([0, b'a', b's', b'm', ..]) => {}
            _ => return Err(LoadError::NotWasm),
        }
        Component::new(&self.inner.engine, wasm).map_err(|e| LoadError::Compile(format!("{e:#}")))
    }

    /// Checks the imports, links, asks the plugin to describe itself and compiles its schemas.
    fn prepare(&self, component: &Component) -> Result<Prepared, LoadError> {
        let inner = &self.inner;
        let ty = component.component_type();
        let import_names: Vec<&str> = ty.imports(&inner.engine).map(|(name, _)| name).collect();
        imports::check(import_names)?;
        let pre = inner
            .linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let pre = abi::PluginPre::new(pre).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let descriptor = self.describe(&pre)?;
        let id = format!("{}@{}", descriptor.name, descriptor.version);
        let compile = |which: &'static str, schema: &serde_json::Value| {
            jsonschema::validator_for(schema).map_err(|e| LoadError::InvalidSchema {
                plugin: id.clone(),
                which,
                message: e.to_string(),
            })
        };
        let input = compile("input", &descriptor.input_schema)?;
        let output = compile("output", &descriptor.output_schema)?;
        Ok(Prepared {
            descriptor,
            pre,
            input,
            output,
        })
    }

    /// Loads the plugins embedded in this binary: `echo`, `http`, `notify`.
    pub fn load_builtins(&self) -> Result<Vec<PluginDescriptor>, LoadError> {
        builtin::ALL
            .iter()
            .map(|(_, wasm)| self.load(wasm))
            .collect()
    }

    /// Every loaded plugin, for the validator.
    pub fn index(&self) -> PluginIndex {
        let registry = self.read_registry();
        PluginIndex::new(
            registry
                .plugins
                .values()
                .flat_map(|versions| versions.values())
                .map(|loaded| loaded.descriptor.clone()),
        )
    }

    /// How many attempts run at once at most (`max_concurrent_steps`): the step slots of the
    /// instance pool, and the number of threads an executor runs attempts on.
    pub fn max_concurrent_steps(&self) -> usize {
        usize::try_from(self.inner.pool.max_concurrent_steps).unwrap_or(usize::MAX)
    }

    /// Runs one step attempt on a blocking thread (see [`PluginHost::invoke_blocking`]).
    ///
    /// Blocking rather than wasmtime's async mode: a plugin call is short, CPU-bound work whose
    /// only waits are host HTTP requests; a plain call keeps the warm path free of fiber stacks
    /// and polling, and the epoch deadline stops a runaway plugin either way.
    pub async fn invoke(&self, call: Invocation) -> Result<Outcome, StepFailure> {
        let host = self.clone();
        let joined = tokio::task::spawn_blocking(move || host.invoke_blocking(call)).await;
        joined.unwrap_or_else(|e| {
            Err(StepFailure::new(
                FailureKind::HostFault,
                format!("the plugin host thread failed: {e}"),
            ))
        })
    }

    /// Sends one `method` request to `url` as plugin `plugin` would — only to a host its grant
    /// names, under `timeout`, redirects not followed — and answers its status and body (at
    /// most the host's response cap), or why there is none; with `certificate`, also when the
    /// `https` server's certificate expires (ms since the epoch). Blocks; synthetic checks use
    /// it, so they reach exactly what the `http` plugin may.
    pub fn probe(
        &self,
        plugin: &str,
        method: &str,
        url: &str,
        timeout: Duration,
        certificate: bool,
    ) -> Result<(u16, Vec<u8>, Option<i64>), String> {
        let policy = {
            let grants = self
                .inner
                .grants
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            Policy::new(plugin, &grants.grant(plugin), &grants.defaults)
        };
        let request = abi::WitRequest {
            method: method.to_string(),
            url: url.to_string(),
            headers: Vec::new(),
            body: None,
            timeout_ms: u64::try_from(timeout.as_millis()).ok(),
        };
        let expires = if certificate {
            match self
                .inner
                .outbound
                .certificate_expiry(&policy, url, timeout)
            {
                Ok(Ok(at)) => Some(at),
                Ok(Err(e)) => return Err(format!("reading the certificate: {e}")),
                Err(denied) => return Err(denied.to_string()),
            }
        } else {
            None
        };
        match self
            .inner
            .outbound
            .send(&policy, request, timeout, &CancellationToken::new())
        {
            Ok(Ok(r)) => Ok((r.status, r.body, expires)),
            Ok(Err(e)) => Err(match e {
                abi::WitHttpError::InvalidRequest(m)
                | abi::WitHttpError::Timeout(m)
                | abi::WitHttpError::TooLarge(m)
                | abi::WitHttpError::Transport(m) => m,
            }),
            Err(denied) => Err(denied.to_string()),
        }
    }

    /// Runs one step attempt on the calling thread. When `max_concurrent_steps` attempts are
    /// already running it first waits for a slot (or for its cancellation).
    pub fn invoke_blocking(&self, call: Invocation) -> Result<Outcome, StepFailure> {
        self.trial(call).result
    }

    /// Runs one step attempt like [`PluginHost::invoke_blocking`] and says how long it took
    /// and how much memory it held (`csmp plugin try`).
    pub fn trial(&self, call: Invocation) -> Trial {
        let started = std::time::Instant::now();
        let mut peak_memory = 0;
        // Everything that leaves the attempt is masked for every secret it was handed: the
        // output, the error (which may quote the input or a URL) and the log.
        let masker = self.masker_for(&call.secrets);
        let mut result = self.attempt(call, &masker, &mut peak_memory);
        match &mut result {
            Ok(out) => masker.mask_json(&mut out.output),
            Err(f) => {
                masker.mask_in_place(&mut f.message);
            }
        }
        Trial {
            result,
            elapsed: started.elapsed(),
            peak_memory,
        }
    }

    /// The masker for `secrets`, built once per distinct map.
    fn masker_for(&self, secrets: &SecretMap) -> Arc<Masker> {
        let mut cached = self
            .inner
            .masker
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((map, masker)) = cached.as_ref()
            && Arc::ptr_eq(map, secrets)
        {
            return Arc::clone(masker);
        }
        let masker = Arc::new(Masker::new(secrets));
        *cached = Some((Arc::clone(secrets), Arc::clone(&masker)));
        masker
    }

    fn attempt(
        &self,
        call: Invocation,
        masker: &Masker,
        peak_memory: &mut usize,
    ) -> Result<Outcome, StepFailure> {
        let Some(_slot) = self.inner.slots.take(&call.cancel) else {
            return Err(StepFailure::new(
                FailureKind::Cancelled,
                "step was cancelled",
            ));
        };
        let loaded = self.find(&call.plugin, &call.version)?;
        if !loaded.input.is_valid(&call.input) {
            let errors = schema_errors(&loaded.input, &call.input);
            return Err(StepFailure::new(
                FailureKind::InvalidInput,
                format!(
                    "input does not match the input schema of {}@{}: {errors}",
                    call.plugin, call.version
                ),
            ));
        }
        let input = serde_json::to_string(&call.input).map_err(|e| {
            StepFailure::new(FailureKind::InvalidInput, format!("input is not json: {e}"))
        })?;
        if call.cancel.is_cancelled() {
            return Err(StepFailure::new(
                FailureKind::Cancelled,
                "step was cancelled",
            ));
        }

        let policy = loaded.policy();
        // A secret templated into `with:` reaches the plugin as plainly as one it reads: the
        // grant covers both.
        if let Some(name) = masker
            .found_in(&input)
            .into_iter()
            .find(|name| !policy.allows_secret(name))
        {
            return Err(StepFailure::new(
                FailureKind::Denied,
                format!(
                    "the input of this attempt carries secret `{name}`, which plugin {} is not granted; add it to `plugins.{}.secrets` in the grants file, or take it out of the step's `with:`",
                    call.plugin, call.plugin
                ),
            ));
        }
        let cap = policy.output_bytes;
        let mut store = sandbox::new_store(
            &self.inner.engine,
            policy,
            call.secrets,
            self.inner.outbound.clone(),
            call.timeout,
            call.cancel,
        );
        let log = store.data().log().clone();
        let fail = |e: wasmtime::Error| {
            let text = log.text(masker);
            let mut failure = sandbox::classify(&e, &text);
            failure.log = text;
            failure
        };
        let instantiated = loaded.pre.instantiate(&mut store);
        *peak_memory = store.data().peak_memory();
        let plugin = instantiated.map_err(|e| {
            let mut failure = fail(e);
            if failure.kind == FailureKind::Trap {
                failure.kind = FailureKind::Retryable;
                failure.message = format!(
                    "cannot start plugin {}@{}: {}; the host may be at max_concurrent_steps",
                    call.plugin, call.version, failure.message
                );
            }
            failure
        })?;
        let context = sandbox::wit_context(&call.idempotency_key, call.timeout);
        let called = plugin.call_run(&mut store, &input, &context);
        *peak_memory = store.data().peak_memory();
        let result = called.map_err(fail)?;
        drop(store);

        let with_log = |kind: FailureKind, message: String| StepFailure {
            kind,
            message,
            log: log.text(masker),
        };
        let text = match result {
            Ok(text) => text,
            Err(WitPluginError::Retryable(m)) => return Err(with_log(FailureKind::Retryable, m)),
            Err(WitPluginError::Permanent(m)) => return Err(with_log(FailureKind::Permanent, m)),
        };
        if text.len() > cap {
            return Err(with_log(
                FailureKind::OutputTooLarge,
                format!(
                    "output of {} bytes exceeds the output limit of {cap} bytes; return less, or raise `output_bytes` in the plugin's grant",
                    text.len()
                ),
            ));
        }
        let output: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            with_log(
                FailureKind::InvalidOutput,
                format!("output is not json: {e}"),
            )
        })?;
        if !loaded.output.is_valid(&output) {
            let errors = schema_errors(&loaded.output, &output);
            return Err(with_log(
                FailureKind::InvalidOutput,
                format!(
                    "output does not match the output schema of {}@{}: {errors}",
                    call.plugin, call.version
                ),
            ));
        }
        Ok(Outcome {
            output,
            log: log.text(masker),
        })
    }

    fn describe(&self, pre: &abi::PluginPre<StepState>) -> Result<PluginDescriptor, LoadError> {
        let defaults = self
            .inner
            .grants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .defaults
            .clone();
        let policy = Arc::new(Policy::new("(loading)", &Default::default(), &defaults));
        let mut store = sandbox::new_store(
            &self.inner.engine,
            policy,
            Default::default(),
            self.inner.outbound.clone(),
            DESCRIBE_TIMEOUT,
            CancellationToken::new(),
        );
        let log = store.data().log().clone();
        let fail = |e: wasmtime::Error| {
            LoadError::Describe(sandbox::classify(&e, &log.text(&Masker::default())).message)
        };
        let plugin = pre.instantiate(&mut store).map_err(fail)?;
        let json = plugin.call_describe(&mut store).map_err(fail)?;
        let descriptor: PluginDescriptor = serde_json::from_str(&json).map_err(|e| {
            LoadError::Describe(format!("describe returned an unusable descriptor: {e}"))
        })?;
        let name_ok = !descriptor.name.is_empty()
            && descriptor
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(LoadError::Describe(format!(
                "plugin name `{}` must match [a-z0-9-]+",
                descriptor.name
            )));
        }
        Ok(descriptor)
    }

    fn find(&self, name: &str, version: &semver::Version) -> Result<Arc<Loaded>, StepFailure> {
        let registry = self.read_registry();
        let Some(versions) = registry.plugins.get(name) else {
            return Err(StepFailure::new(
                FailureKind::UnknownPlugin,
                format!("no plugin named `{name}` is loaded; load it or fix `uses:`"),
            ));
        };
        versions.get(version).cloned().ok_or_else(|| {
            let known: Vec<String> = versions.keys().map(ToString::to_string).collect();
            StepFailure::new(
                FailureKind::UnknownPlugin,
                format!(
                    "plugin `{name}` has no version {version} loaded (loaded: {}); load it or fix `uses:`",
                    known.join(", ")
                ),
            )
        })
    }

    fn read_registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.inner
            .registry
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn schema_errors(validator: &jsonschema::Validator, value: &serde_json::Value) -> String {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .take(MAX_SCHEMA_ERRORS)
        .map(|e| {
            let path = e.instance_path().to_string();
            let at = if path.is_empty() {
                "/".to_owned()
            } else {
                path
            };
            format!("at {at}: {e}")
        })
        .collect();
    errors.join("; ")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
