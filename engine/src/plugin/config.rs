//! The operator's plugin configuration: default limits, per-plugin grants (HTTP hosts, secrets,
//! memory, output size) and where compiled plugins are cached.
//!
//! Plain serde data read from YAML (the shape is documented in `plugin/mod.rs`); it knows
//! nothing of wasmtime. `policy` turns a grant into the checks the sandbox runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a grants file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read plugin grants file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML did not fit the grants shape.
    #[error("invalid plugin grants{}: {message}", path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    Parse {
        /// The file, when there was one.
        path: Option<PathBuf>,
        /// The decoder's message, with its location.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid plugin grants: {0}")]
    Invalid(String),
}

/// Limits every plugin gets unless its grant overrides them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Linear memory cap per step attempt, in MiB.
    pub memory_mib: u64,
    /// Largest output (the JSON text) a step may return, in bytes.
    pub output_bytes: usize,
    /// Largest captured log (stdout, stderr and log lines) kept per attempt, in bytes; the rest
    /// is dropped with a note.
    pub log_bytes: usize,
    /// Longest a single outbound HTTP request may take, in milliseconds (also clamped to the
    /// step's remaining time).
    pub http_timeout_ms: u64,
    /// Largest HTTP response body a plugin may receive, in bytes.
    pub http_response_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_mib: 64,
            output_bytes: 1024 * 1024,
            log_bytes: 64 * 1024,
            http_timeout_ms: 10_000,
            http_response_bytes: 4 * 1024 * 1024,
        }
    }
}

/// What the operator grants one plugin. Deny by default: an absent grant is an empty one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Hosts the plugin may reach: `example.com` (its scheme's default port),
    /// `example.com:8443` (that port), `example.com:*` (any port), `*.example.com` (any
    /// subdomain, default port), or `*` (any host and port).
    #[serde(default)]
    pub http_hosts: Vec<String>,
    /// Secrets the plugin may read: exact names, or a prefix ending in `*` (`notify_*`).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Overrides `defaults.memory_mib`.
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// Overrides `defaults.output_bytes`.
    #[serde(default)]
    pub output_bytes: Option<usize>,
    /// Lets the plugin reach addresses inside the machine and its networks (loopback,
    /// link-local, private, unique-local) under any host it is granted. Without it, such an
    /// address is reachable only when `http_hosts` names it (`127.0.0.1:8080`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_private: bool,
}

/// The grants file (`csmp serve --plugin-grants FILE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Limits for plugins whose grant does not override them.
    #[serde(default)]
    pub defaults: Limits,
    /// How many steps may run plugins at once in this process; sizes the instance pool.
    #[serde(default = "default_max_concurrent_steps")]
    pub max_concurrent_steps: u32,
    /// Per plugin name.
    #[serde(default)]
    pub plugins: BTreeMap<String, Grant>,
}

fn default_max_concurrent_steps() -> u32 {
    64
}

impl Default for Grants {
    fn default() -> Self {
        Self {
            defaults: Limits::default(),
            max_concurrent_steps: default_max_concurrent_steps(),
            plugins: BTreeMap::new(),
        }
    }
}

impl Grants {
    /// Parses a grants document.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let grants: Self = serde_norway::from_str(text).map_err(|e| ConfigError::Parse {
            path: None,
            message: e.to_string(),
        })?;
        grants.check()?;
        Ok(grants)
    }

    /// Reads and parses a grants file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: Some(path.to_owned()),
                message,
            },
            other => other,
        })
    }

    /// The grant for `plugin` (empty when the operator granted it nothing).
    pub fn grant(&self, plugin: &str) -> Grant {
        self.plugins.get(plugin).cloned().unwrap_or_default()
    }

    /// The most memory any plugin may get, in bytes: sizes the instance pool's slots.
    pub fn max_memory_bytes(&self) -> u64 {
        self.plugins
            .values()
            .filter_map(|g| g.memory_mib)
            .chain([self.defaults.memory_mib])
            .max()
            .unwrap_or(self.defaults.memory_mib)
            .saturating_mul(1024 * 1024)
    }

    fn check(&self) -> Result<(), ConfigError> {
        const MAX_MIB: u64 = 4096;
        let mibs = self
            .plugins
            .iter()
            .filter_map(|(n, g)| g.memory_mib.map(|m| (n.as_str(), m)))
            .chain([("defaults", self.defaults.memory_mib)]);
        for (who, mib) in mibs {
            if mib == 0 || mib > MAX_MIB {
                return Err(ConfigError::Invalid(format!(
                    "memory_mib of {who} is {mib}; use a value between 1 and {MAX_MIB}"
                )));
            }
        }
        if self.max_concurrent_steps == 0 {
            return Err(ConfigError::Invalid(
                "max_concurrent_steps is 0; allow at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Everything `PluginHost::new` needs.
#[derive(Debug, Clone, Default)]
pub struct HostConfig {
    /// Where compiled plugins are cached across restarts; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// Default limits and per-plugin grants.
    pub grants: Grants,
    /// How often the CPU deadline is checked; also the cancellation latency. 5 ms unless set.
    pub epoch_tick: Option<Duration>,
    /// Resolves the host names plugins ask for; the system's resolver unless set (tests
    /// give one that answers what they need, a rebinding name among them).
    pub lookup: Option<std::sync::Arc<dyn super::address::Lookup>>,
}

impl HostConfig {
    /// A configuration caching compiled plugins under `cache_dir`, with `grants`.
    pub fn new(cache_dir: impl Into<PathBuf>, grants: Grants) -> Self {
        Self {
            cache_dir: Some(cache_dir.into()),
            grants,
            epoch_tick: None,
            lookup: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_is_deny_by_default() -> Result<(), ConfigError> {
        let g = Grants::from_yaml("{}")?;
        assert_eq!(g.defaults, Limits::default());
        assert_eq!(g.grant("http"), Grant::default());
        assert_eq!(g.max_memory_bytes(), 64 * 1024 * 1024);
        Ok(())
    }

    #[test]
    fn full_document() -> Result<(), ConfigError> {
        let g = Grants::from_yaml(
            r#"
defaults:
  memory_mib: 32
  output_bytes: 2048
max_concurrent_steps: 8
plugins:
  http:
    http_hosts: [api.example.com, "*.svc.example.com", "localhost:8080"]
    secrets: [cloud_api]
    memory_mib: 128
  notify:
    http_hosts: [hooks.slack.com]
    secrets: ["notify_*"]
"#,
        )?;
        assert_eq!(g.defaults.memory_mib, 32);
        assert_eq!(g.defaults.log_bytes, Limits::default().log_bytes);
        assert_eq!(g.max_concurrent_steps, 8);
        assert_eq!(g.grant("http").http_hosts.len(), 3);
        assert_eq!(g.grant("notify").secrets, vec!["notify_*".to_string()]);
        assert_eq!(g.max_memory_bytes(), 128 * 1024 * 1024);
        Ok(())
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        let cases = [
            ("plugins: { http: { hosts: [a] } }", "unknown field"),
            ("defaults: { memory_mib: 0 }", "memory_mib of defaults is 0"),
            ("plugins: { x: { memory_mib: 99999 } }", "memory_mib of x"),
            ("max_concurrent_steps: 0", "max_concurrent_steps"),
        ];
        for (yaml, expected) in cases {
            let err = Grants::from_yaml(yaml).map(|_| ()).err();
            let message = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains(expected), "{yaml}: {message}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let err = Grants::load(Path::new("/nonexistent/grants.yaml")).err();
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("/nonexistent/grants.yaml"), "{message}");
    }
}
