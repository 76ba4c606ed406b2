//! The grants in force: reading them, judging a plugin's requested capabilities against them
//! (`Review`), and replacing them while the host runs (`PluginHost::reload_grants`).
//!
//! A reload swaps each loaded plugin's policy; an attempt already running keeps the policy it
//! started with. What sized the instance pool (`max_concurrent_steps`, the largest
//! `memory_mib`) cannot grow without a restart, so a reload asking for that is refused whole.
//! Knows nothing about files, signals or the API: callers hand it a parsed [`Grants`].

use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError};

use serde::Serialize;

use super::config::{ConfigError, Grant, Grants};
use super::descriptor::Capabilities;
use super::host::PluginHost;
use super::policy::Policy;

/// A plugin's requested capabilities beside what its grant gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Review {
    /// The operator's grant for the plugin's name (empty when none).
    pub granted: Grant,
    /// Requested hosts the grant does not cover: calls to them fail as denied.
    pub missing_http_hosts: Vec<String>,
    /// Requested secrets the grant does not cover: reading them fails as denied.
    pub missing_secrets: Vec<String>,
}

impl Review {
    /// Judges `requested` against `grant` (resolved with `grants.defaults`).
    pub fn of(plugin: &str, requested: &Capabilities, grants: &Grants) -> Self {
        let granted = grants.grant(plugin);
        let policy = Policy::new(plugin, &granted, &grants.defaults);
        let missing_http_hosts = requested
            .http_hosts
            .iter()
            .filter(|h| !host_covered(&policy, &granted, h))
            .cloned()
            .collect();
        let missing_secrets = requested
            .secrets
            .iter()
            .filter(|s| !secret_covered(&policy, &granted, s))
            .cloned()
            .collect();
        Self {
            granted,
            missing_http_hosts,
            missing_secrets,
        }
    }

    /// Whether everything requested is granted.
    pub fn complete(&self) -> bool {
        self.missing_http_hosts.is_empty() && self.missing_secrets.is_empty()
    }
}

/// A requested host is covered when the grant names the same pattern, or lets the host
/// through on its port (443 when the request names none).
fn host_covered(policy: &Policy, grant: &Grant, requested: &str) -> bool {
    let requested = requested.trim().to_ascii_lowercase();
    if grant
        .http_hosts
        .iter()
        .any(|g| g.trim().eq_ignore_ascii_case(&requested) || g.trim() == "*")
    {
        return true;
    }
    if let Some(domain) = requested.strip_prefix("*.") {
        // Every subdomain: covered by a grant of this domain's subdomains or a wider one.
        return grant.http_hosts.iter().any(|g| {
            g.trim()
                .to_ascii_lowercase()
                .strip_prefix("*.")
                .is_some_and(|wider| domain == wider || domain.ends_with(&format!(".{wider}")))
        });
    }
    let (host, port) = match requested.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => match p.parse::<u16>() {
            Ok(port) => (h.to_owned(), port),
            Err(_) => return false,
        },
        _ => (requested.clone(), 443),
    };
    // A request without a port asks for https' default.
    policy.allows_host(&host, port, 443)
}

/// A requested secret is covered when the grant names it, or (for a `prefix*` request) a
/// prefix pattern at least as wide.
fn secret_covered(policy: &Policy, grant: &Grant, requested: &str) -> bool {
    match requested.strip_suffix('*') {
        Some(prefix) => grant.secrets.iter().any(|g| match g.strip_suffix('*') {
            Some(wider) => prefix.starts_with(wider),
            None => false,
        }),
        None => policy.allows_secret(requested),
    }
}

/// One plugin whose grant a reload changed, or a changed default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantChange {
    /// `plugins.NAME`, `defaults` or `max_concurrent_steps`.
    pub scope: String,
    /// What changed, for people: `http_hosts +a -b; secrets +c; memory_mib 64 → 128`.
    pub change: String,
}

/// What changed between two grant documents, scope by scope; empty when nothing did.
pub fn diff(old: &Grants, new: &Grants) -> Vec<GrantChange> {
    let mut changes = Vec::new();
    if old.defaults != new.defaults {
        changes.push(GrantChange {
            scope: "defaults".into(),
            change: format!("{:?} → {:?}", old.defaults, new.defaults),
        });
    }
    if old.max_concurrent_steps != new.max_concurrent_steps {
        changes.push(GrantChange {
            scope: "max_concurrent_steps".into(),
            change: format!(
                "{} → {}",
                old.max_concurrent_steps, new.max_concurrent_steps
            ),
        });
    }
    let names: BTreeSet<&String> = old.plugins.keys().chain(new.plugins.keys()).collect();
    for name in names {
        let (a, b) = (old.grant(name), new.grant(name));
        if a == b {
            continue;
        }
        let mut parts = Vec::new();
        list_change("http_hosts", &a.http_hosts, &b.http_hosts, &mut parts);
        list_change("secrets", &a.secrets, &b.secrets, &mut parts);
        if a.memory_mib != b.memory_mib {
            parts.push(format!(
                "memory_mib {} → {}",
                shown(a.memory_mib),
                shown(b.memory_mib)
            ));
        }
        if a.output_bytes != b.output_bytes {
            parts.push(format!(
                "output_bytes {} → {}",
                shown(a.output_bytes),
                shown(b.output_bytes)
            ));
        }
        if a.allow_private != b.allow_private {
            parts.push(format!(
                "allow_private {} → {}",
                a.allow_private, b.allow_private
            ));
        }
        if parts.is_empty() {
            // Only the order of a list changed.
            parts.push("reordered".into());
        }
        changes.push(GrantChange {
            scope: format!("plugins.{name}"),
            change: parts.join("; "),
        });
    }
    changes
}

fn list_change(what: &str, old: &[String], new: &[String], parts: &mut Vec<String>) {
    let added: Vec<String> = new
        .iter()
        .filter(|x| !old.contains(x))
        .map(|x| format!("+{x}"))
        .collect();
    let removed: Vec<String> = old
        .iter()
        .filter(|x| !new.contains(x))
        .map(|x| format!("-{x}"))
        .collect();
    if !added.is_empty() || !removed.is_empty() {
        parts.push(format!("{what} {}", [added, removed].concat().join(" ")));
    }
}

fn shown<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "default".to_owned(), |v| v.to_string())
}

impl PluginHost {
    /// The grants in force.
    pub fn grants(&self) -> Grants {
        self.inner
            .grants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A plugin's requested capabilities beside its grant in force.
    pub fn review(&self, plugin: &str, requested: &Capabilities) -> Review {
        Review::of(plugin, requested, &self.grants())
    }

    /// Puts `grants` in force for every loaded plugin and every later load, and says what
    /// changed. Refused, changing nothing, when it needs a larger instance pool than the one
    /// this process started with.
    pub fn reload_grants(&self, grants: Grants) -> Result<Vec<GrantChange>, ConfigError> {
        let pool = self.inner.pool;
        if grants.max_concurrent_steps != pool.max_concurrent_steps {
            return Err(ConfigError::Invalid(format!(
                "max_concurrent_steps changed from {} to {}, which sizes the instance pool and the workers; restart csmp to change it",
                pool.max_concurrent_steps, grants.max_concurrent_steps
            )));
        }
        if grants.max_memory_bytes() > pool.max_memory_bytes {
            return Err(ConfigError::Invalid(format!(
                "a memory_mib of {} MiB exceeds the {} MiB the instance pool was started with; restart csmp to raise it",
                grants.max_memory_bytes() / (1024 * 1024),
                pool.max_memory_bytes / (1024 * 1024)
            )));
        }
        let mut current = self
            .inner
            .grants
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let changes = diff(&current, &grants);
        let registry = self
            .inner
            .registry
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for loaded in registry.plugins.values().flat_map(|v| v.values()) {
            let name = &loaded.descriptor.name;
            let policy = Policy::new(name, &grants.grant(name), &grants.defaults);
            *loaded
                .policy
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Arc::new(policy);
        }
        *current = grants;
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(yaml: &str) -> Grants {
        Grants::from_yaml(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
    }

    fn caps(hosts: &[&str], secrets: &[&str]) -> Capabilities {
        Capabilities {
            http_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn review_lists_what_is_not_granted() {
        let g = grants(
            r#"
plugins:
  p:
    http_hosts: [api.example.com, "127.0.0.1:9000", "*.svc.example.com"]
    secrets: [token, "aws_*"]
"#,
        );
        // (requested hosts, requested secrets, missing hosts, missing secrets)
        type Case<'a> = (&'a [&'a str], &'a [&'a str], &'a [&'a str], &'a [&'a str]);
        let cases: &[Case] = &[
            (&["api.example.com"], &["token"], &[], &[]),
            (&["API.example.com"], &["aws_key"], &[], &[]),
            // A grant without a port is the default port only.
            (
                &["api.example.com:8443"],
                &[],
                &["api.example.com:8443"],
                &[],
            ),
            (
                &["127.0.0.1:9000", "127.0.0.1:9001"],
                &[],
                &["127.0.0.1:9001"],
                &[],
            ),
            (
                &["*.svc.example.com", "*.a.svc.example.com", "*.example.com"],
                &[],
                &["*.example.com"],
                &[],
            ),
            (
                &["other.example.com"],
                &["aws_*", "aws_prod_*", "tok*", "other"],
                &["other.example.com"],
                &["tok*", "other"],
            ),
        ];
        for (hosts, secrets, missing_hosts, missing_secrets) in cases {
            let r = Review::of("p", &caps(hosts, secrets), &g);
            assert_eq!(r.missing_http_hosts, *missing_hosts, "{hosts:?}");
            assert_eq!(r.missing_secrets, *missing_secrets, "{secrets:?}");
            assert_eq!(
                r.complete(),
                missing_hosts.is_empty() && missing_secrets.is_empty()
            );
        }
        let nothing = Review::of("q", &caps(&["a.example"], &["s"]), &g);
        assert_eq!(nothing.granted, Grant::default());
        assert!(!nothing.complete());
        let any = Review::of(
            "r",
            &caps(&["x.example"], &[]),
            &grants("plugins: { r: { http_hosts: ['*'] } }"),
        );
        assert!(any.complete());
    }

    #[test]
    fn diff_says_what_changed_per_plugin() {
        let old =
            grants("plugins: { a: { http_hosts: [x, y], secrets: [s] }, b: { secrets: [t] } }");
        let new = grants(
            "defaults: { memory_mib: 32 }\nplugins: { a: { http_hosts: [y, z], secrets: [s], memory_mib: 16 }, c: { secrets: [u] } }",
        );
        let changes: Vec<(String, String)> = diff(&old, &new)
            .into_iter()
            .map(|c| (c.scope, c.change))
            .collect();
        assert_eq!(changes.len(), 4, "{changes:?}");
        assert_eq!(changes[0].0, "defaults");
        assert_eq!(
            changes[1],
            (
                "plugins.a".into(),
                "http_hosts +z -x; memory_mib default → 16".into()
            )
        );
        assert_eq!(changes[2], ("plugins.b".into(), "secrets -t".into()));
        assert_eq!(changes[3], ("plugins.c".into(), "secrets +u".into()));
        assert!(diff(&new, &new).is_empty());
    }
}
