//! Errors of the plugin host, grouped by what the caller does next: fix the host configuration
//! (`PluginError`), fix or replace a plugin (`LoadError`), or retry or fail one step attempt
//! (`StepFailure`).
//!
//! No wasmtime types leak through here; `sandbox` classifies wasmtime's errors into these.

use std::fmt;
use std::time::Duration;

/// The host could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// wasmtime rejected the engine configuration (for example the pool does not fit in the
    /// address space).
    #[error("cannot start the plugin engine: {0}; lower max_concurrent_steps or memory_mib")]
    Engine(String),
    /// The compilation cache directory is unusable.
    #[error("cannot use plugin cache directory {path}: {message}; make it writable or unset it")]
    Cache {
        /// The directory.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// A plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not WebAssembly at all.
    #[error(
        "the file is not WebAssembly (no `\\0asm` header); give the `.wasm` that `csmp plugin build` or `cargo build --release --target wasm32-wasip2` printed"
    )]
    NotWasm,
    /// A core WebAssembly module, not a component.
    #[error(
        "the file is a core WebAssembly module, not a component; build it for `wasm32-wasip2` (not wasm32-unknown-unknown or wasm32-wasip1), e.g. with `csmp plugin build`"
    )]
    CoreModule,
    /// The bytes are not a valid WebAssembly component for this host.
    #[error(
        "plugin is not a valid wasm component: {0}; build it with `cargo build --target wasm32-wasip2`"
    )]
    Compile(String),
    /// The component imports an interface the sandbox never grants.
    #[error("plugin imports `{import}`, which the sandbox does not grant: {hint}")]
    ForbiddenImport {
        /// The import name, e.g. `wasi:sockets/tcp@0.2.6`.
        import: String,
        /// Why it is refused and what to use instead.
        hint: &'static str,
    },
    /// The component's imports or exports do not match the csmp plugin world.
    #[error(
        "plugin does not implement the csmp plugin world: {0}; build it against `sdk/wit/plugin.wit` (world `plugin`, exports `describe` and `run`), in Rust with csmp-sdk"
    )]
    Link(String),
    /// `describe` failed or returned something unusable.
    #[error("plugin describe failed: {0}")]
    Describe(String),
    /// A declared schema is not a valid JSON Schema.
    #[error("plugin {plugin} declares an invalid {which} schema: {message}")]
    InvalidSchema {
        /// `name@version`.
        plugin: String,
        /// `input` or `output`.
        which: &'static str,
        /// The schema compiler's message.
        message: String,
    },
    /// The plugin describes itself as another name or version than the uploader said.
    #[error("the plugin describes itself as {found}, not {expected}")]
    Mismatch {
        /// `name@version` the uploader gave.
        expected: String,
        /// `name@version` the plugin declares.
        found: String,
    },
    /// The same name and version is already loaded from different wasm.
    #[error("plugin {plugin} is already loaded from different wasm; bump the plugin's version")]
    Conflict {
        /// `name@version`.
        plugin: String,
    },
}

/// Why a step attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The plugin reported a transient failure.
    Retryable,
    /// The plugin reported a failure retrying will not fix.
    Permanent,
    /// The attempt ran past its deadline (CPU or wall time).
    Timeout,
    /// The plugin tried to grow its memory past its cap.
    MemoryLimit,
    /// The output exceeded the output cap.
    OutputTooLarge,
    /// The input did not match the plugin's input schema.
    InvalidInput,
    /// The output was not JSON or did not match the plugin's output schema.
    InvalidOutput,
    /// The plugin made a call its grants do not allow.
    Denied,
    /// The plugin trapped (including a panic, whose message is kept).
    Trap,
    /// The attempt was cancelled from outside.
    Cancelled,
    /// No loaded plugin has that name and version.
    UnknownPlugin,
    /// The host itself failed while running the attempt (a panic in a step worker): not the
    /// plugin's doing, so it is retried like a transient failure.
    HostFault,
}

impl FailureKind {
    /// Whether the engine may retry the step. Timeouts count as transient (a slow upstream), and
    /// so do faults of the host; everything the plugin or its inputs will do again the same way
    /// does not.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Retryable | Self::Timeout | Self::HostFault)
    }

    /// A stable lower-case name (for the store and the API).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retryable => "retryable",
            Self::Permanent => "permanent",
            Self::Timeout => "timeout",
            Self::MemoryLimit => "memory_limit",
            Self::OutputTooLarge => "output_too_large",
            Self::InvalidInput => "invalid_input",
            Self::InvalidOutput => "invalid_output",
            Self::Denied => "denied",
            Self::Trap => "trap",
            Self::Cancelled => "cancelled",
            Self::UnknownPlugin => "unknown_plugin",
            Self::HostFault => "host_fault",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed step attempt: what kind, a message naming the limit hit, and the log so far.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct StepFailure {
    /// What went wrong, which decides retrying.
    pub kind: FailureKind,
    /// For the operator: what happened and what to change.
    pub message: String,
    /// The attempt's captured log (stdout, stderr, log lines), capped.
    pub log: String,
}

impl StepFailure {
    pub(crate) fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            log: String::new(),
        }
    }

    /// Whether the engine may retry the step.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

/// Why the host stopped a plugin mid-call. Raised from host code (the epoch callback, the
/// resource limiter, host imports) as a wasmtime error and recovered by downcasting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Interrupt {
    #[error(
        "step exceeded its timeout of {0:?} and was stopped; raise the step's `timeout` if it needs longer"
    )]
    Timeout(Duration),
    #[error("step was cancelled")]
    Cancelled,
    #[error(
        "plugin {plugin} exceeded its memory limit of {mib} MiB; raise `memory_mib` in its grant if it needs more"
    )]
    MemoryLimit { plugin: String, mib: usize },
    #[error(
        "plugin {plugin} may not reach `{host}`: the host is not in its grant; add it to `plugins.{plugin}.http_hosts` in the grants file"
    )]
    HttpDenied { plugin: String, host: String },
    #[error(
        "plugin {plugin} may not set the `{header}` header: the host sets how a request reaches its server (Connection, Transfer-Encoding, Upgrade, Proxy-*, and a Host other than the URL's); leave it out"
    )]
    HttpHeaderDenied { plugin: String, header: String },
    #[error(
        "plugin {plugin} may not reach `{host}` at {addr}: it is {kind}; name that address in its grant (`plugins.{plugin}.http_hosts: [\"{addr}\"]`) or set `allow_private: true` if it is meant to"
    )]
    HttpAddressDenied {
        plugin: String,
        host: String,
        addr: String,
        kind: &'static str,
    },
    #[error(
        "plugin {plugin} may not read secret `{name}`; add it to `plugins.{plugin}.secrets` in the grants file"
    )]
    SecretDenied { plugin: String, name: String },
}

impl Interrupt {
    pub(crate) fn kind(&self) -> FailureKind {
        match self {
            Self::Timeout(_) => FailureKind::Timeout,
            Self::Cancelled => FailureKind::Cancelled,
            Self::MemoryLimit { .. } => FailureKind::MemoryLimit,
            Self::HttpDenied { .. }
            | Self::HttpHeaderDenied { .. }
            | Self::HttpAddressDenied { .. }
            | Self::SecretDenied { .. } => FailureKind::Denied,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryability() {
        let retryable = [FailureKind::Retryable, FailureKind::Timeout];
        let all = [
            FailureKind::Retryable,
            FailureKind::Permanent,
            FailureKind::Timeout,
            FailureKind::MemoryLimit,
            FailureKind::OutputTooLarge,
            FailureKind::InvalidInput,
            FailureKind::InvalidOutput,
            FailureKind::Denied,
            FailureKind::Trap,
            FailureKind::Cancelled,
            FailureKind::UnknownPlugin,
        ];
        for kind in all {
            assert_eq!(kind.is_retryable(), retryable.contains(&kind), "{kind}");
        }
    }

    #[test]
    fn messages_name_the_limit_and_the_fix() {
        let m = Interrupt::MemoryLimit {
            plugin: "x".into(),
            mib: 64,
        }
        .to_string();
        assert!(m.contains("64 MiB") && m.contains("memory_mib"), "{m}");
        let d = Interrupt::HttpDenied {
            plugin: "x".into(),
            host: "evil.example".into(),
        };
        assert_eq!(d.kind(), FailureKind::Denied);
        assert!(d.to_string().contains("plugins.x.http_hosts"));
        let f = StepFailure::new(FailureKind::Timeout, "slow");
        assert!(f.is_retryable());
        assert_eq!(f.to_string(), "timeout: slow");
    }
}
