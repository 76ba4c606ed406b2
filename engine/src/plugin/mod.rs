//! Plugins: what they declare (`descriptor`) and the wasmtime host that runs them, sandboxed.
//! The only module of csmp that knows wasmtime; it knows nothing about workflows or retries.
//!
//! A plugin is a WebAssembly component (`wasm32-wasip2`) implementing the WIT world in
//! `sdk/wit/plugin.wit`: it exports `describe` and `run` (JSON text in and out) and may import
//! `csmp:plugin/log`, `csmp:plugin/http` and `csmp:plugin/secrets`. [`PluginHost`] loads
//! plugins ([`PluginHost::load`], [`PluginHost::load_builtins`]), lists them for the validator
//! ([`PluginHost::index`]) and runs one step attempt per [`PluginHost::invoke`].
//!
//! # Sandbox
//!
//! Deny by default. Each attempt gets a fresh `Store` whose WASI context has no preopened
//! directory, no environment variable, no argument and no network; stdout and stderr are
//! captured into the step's log (capped). A component importing anything beyond
//! `csmp:plugin/*` and WASI `cli`, `io`, `clocks`, `random` and (empty) `filesystem` is refused
//! at load (`imports`). CPU time is bounded by an epoch deadline equal to the step timeout;
//! memory by a resource limiter; output, log and HTTP response sizes by caps; HTTP hosts and
//! secrets by the operator's grants, checked on every call (a call outside them fails the
//! attempt as [`FailureKind::Denied`]).
//!
//! # Grants file
//!
//! The operator's configuration, read by `csmp serve` into [`Grants`]; every key is optional:
//!
//! ```yaml
//! defaults:                     # limits for every plugin unless its grant overrides them
//!   memory_mib: 64              # linear memory cap per attempt
//!   output_bytes: 1048576       # largest output JSON
//!   log_bytes: 65536            # captured log kept per attempt
//!   http_timeout_ms: 10000      # longest single HTTP request
//!   http_response_bytes: 4194304
//! max_concurrent_steps: 64      # attempts running at once (sizes the instance pool)
//! plugins:
//!   http:
//!     http_hosts:               # host (its scheme's default port), host:port, host:*, *.domain (subdomains, default port), or *
//!       - api.cloud.example.com
//!       - "*.svc.example.com"
//!       - "127.0.0.1:8080"        # an inside address is reachable only when named, or with:
//!     allow_private: false      # true: inside addresses under any granted host
//!     secrets: [cloud_api_token]   # exact names, or a prefix ending in *
//!     memory_mib: 128
//!     output_bytes: 4194304
//!   notify:
//!     http_hosts: [hooks.slack.com, events.pagerduty.com]
//!     secrets: ["notify_*"]
//! ```
//!
//! # Cache
//!
//! Compiled plugins are cached by wasmtime under [`HostConfig::cache_dir`], keyed by a sha256
//! of the wasm bytes and the engine's compilation settings, so a restart loads native code
//! (milliseconds) instead of compiling (tens of milliseconds to seconds); nothing compiles on
//! the step path, where each attempt instantiates a pre-linked `InstancePre` from a pool.

mod abi;
pub mod address;
pub mod builtin;
mod capture;
mod certificate;
pub mod config;
pub mod descriptor;
mod error;
mod grants;
mod host;
mod imports;
pub mod mask;
mod outbound;
mod policy;
mod sandbox;
mod slots;
mod ticker;

pub use config::{ConfigError, Grant, Grants, HostConfig, Limits};
pub use descriptor::{Capabilities, PluginDescriptor, PluginIndex};
pub use error::{FailureKind, LoadError, PluginError, StepFailure};
pub use grants::{GrantChange, Review, diff as grants_diff};
pub use host::{Examined, Invocation, Outcome, PluginHost, Trial};
pub use imports::check_one as check_import;
pub use tokio_util::sync::CancellationToken;
