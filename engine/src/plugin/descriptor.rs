//! What a plugin says about itself: name, version, schemas, capabilities.
//!
//! Plain data, no wasmtime: the validator (`plan`) reads these to check `uses:` and `with:`
//! without loading any WebAssembly, and the host fills them from each plugin's `describe` export.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A plugin's self-description, as returned by its `describe` export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginDescriptor {
    /// `[a-z0-9-]+`, the name used in `uses: NAME@REQ`.
    pub name: String,
    /// The plugin's semver version; `uses:` requirements are matched against it.
    pub version: semver::Version,
    /// One line for humans: shown by `GET /v1/plugins` and in validation hints.
    pub description: String,
    /// JSON Schema of the step's `with:` after templates are rendered.
    pub input_schema: serde_json::Value,
    /// JSON Schema of what the plugin returns as the step's output.
    pub output_schema: serde_json::Value,
    /// What the plugin asks for; the operator's grants decide what it gets.
    pub capabilities: Capabilities,
}

/// Capabilities a plugin asks for. Deny by default: nothing here is granted until the operator
/// grants it in configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Host names (optionally `host:port`) the plugin wants to reach over HTTP.
    #[serde(default)]
    pub http_hosts: Vec<String>,
    /// Names of secrets the plugin wants to read.
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// Every plugin version the validator may resolve `uses:` against.
#[derive(Debug, Clone, Default)]
pub struct PluginIndex {
    /// Versions per name, kept sorted ascending so resolution picks the newest match.
    by_name: BTreeMap<String, Vec<PluginDescriptor>>,
}

impl PluginIndex {
    /// An index holding exactly these descriptors.
    pub fn new(descriptors: impl IntoIterator<Item = PluginDescriptor>) -> Self {
        let mut index = Self::default();
        for d in descriptors {
            index.insert(d);
        }
        index
    }

    /// Adds (or replaces) one plugin version.
    pub fn insert(&mut self, descriptor: PluginDescriptor) {
        let versions = self.by_name.entry(descriptor.name.clone()).or_default();
        versions.retain(|d| d.version != descriptor.version);
        versions.push(descriptor);
        versions.sort_by(|a, b| a.version.cmp(&b.version));
    }

    /// The newest version of `name` that satisfies `req`.
    pub fn resolve(&self, name: &str, req: &semver::VersionReq) -> Option<&PluginDescriptor> {
        self.by_name
            .get(name)?
            .iter()
            .rev()
            .find(|d| req.matches(&d.version))
    }

    /// Every known version of `name`, oldest first (empty if the name is unknown).
    pub fn versions(&self, name: &str) -> &[PluginDescriptor] {
        self.by_name.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every plugin name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Every descriptor, by name then version.
    pub fn all(&self) -> impl Iterator<Item = &PluginDescriptor> {
        self.by_name.values().flatten()
    }
}
