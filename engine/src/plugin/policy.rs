//! One plugin's effective sandbox policy: its grant resolved against the defaults, and the
//! checks for "may this plugin reach this URL" and "may it read this secret".
//!
//! Pure: no I/O and no wasmtime. `sandbox` asks these questions on every host call.

use std::time::Duration;

use super::config::{Grant, Limits};

/// What one plugin may do, resolved once at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Policy {
    /// The plugin's name, for error messages.
    pub(crate) plugin: String,
    /// Granted host patterns (lower case).
    http_hosts: Vec<HostPattern>,
    /// Granted secret names or `prefix*` patterns.
    secrets: Vec<String>,
    /// Addresses inside the machine and its networks are reachable under any granted host.
    pub(crate) allow_private: bool,
    /// Linear memory cap in bytes.
    pub(crate) memory_bytes: usize,
    /// Output cap in bytes.
    pub(crate) output_bytes: usize,
    /// Log cap in bytes.
    pub(crate) log_bytes: usize,
    /// Longest single HTTP request.
    pub(crate) http_timeout: Duration,
    /// Largest HTTP response body.
    pub(crate) http_response_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// `*`: any host on any port.
    Any,
    /// `*.example.com`: any subdomain, not the apex, on the scheme's default port.
    Suffix(String),
    /// `example.com` (the scheme's default port), `example.com:8443` (that port) or
    /// `example.com:*` (any port).
    Exact { host: String, port: Port },
}

/// The ports a host pattern grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    /// 80 for `http`, 443 for `https`.
    Default,
    /// Exactly this one.
    Only(u16),
    /// Every port (`host:*`).
    Any,
}

impl Policy {
    pub(crate) fn new(plugin: &str, grant: &Grant, defaults: &Limits) -> Self {
        let mib = grant.memory_mib.unwrap_or(defaults.memory_mib);
        Self {
            plugin: plugin.to_owned(),
            http_hosts: grant
                .http_hosts
                .iter()
                .map(|h| HostPattern::parse(h))
                .collect(),
            secrets: grant.secrets.clone(),
            allow_private: grant.allow_private,
            memory_bytes: usize::try_from(mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX),
            output_bytes: grant.output_bytes.unwrap_or(defaults.output_bytes),
            log_bytes: defaults.log_bytes,
            http_timeout: Duration::from_millis(defaults.http_timeout_ms),
            http_response_bytes: defaults.http_response_bytes,
        }
    }

    /// Whether the plugin may send a request to `host` (as in a URL, IPv6 in brackets) on
    /// `port` (the URL's port or its scheme's default), where `default_port` is its scheme's
    /// default: a grant without a port grants only that one.
    pub(crate) fn allows_host(&self, host: &str, port: u16, default_port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let ports = |p: Port| match p {
            Port::Default => port == default_port,
            Port::Only(granted) => port == granted,
            Port::Any => true,
        };
        self.http_hosts.iter().any(|p| match p {
            HostPattern::Any => true,
            HostPattern::Suffix(suffix) => {
                ports(Port::Default)
                    && host
                        .strip_suffix(suffix.as_str())
                        .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1)
            }
            HostPattern::Exact { host: h, port: p } => *h == host && ports(*p),
        })
    }

    /// Whether a granted host pattern is this very address (an IP literal, with a port rule
    /// that admits `port`): then the operator meant it, private or not.
    pub(crate) fn names_address(&self, ip: std::net::IpAddr, port: u16, default_port: u16) -> bool {
        self.http_hosts.iter().any(|p| match p {
            HostPattern::Exact { host, port: rule } => {
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|granted| granted == ip)
                    && match rule {
                        Port::Default => port == default_port,
                        Port::Only(p) => *p == port,
                        Port::Any => true,
                    }
            }
            _ => false,
        })
    }

    /// Whether the plugin may read secret `name`.
    pub(crate) fn allows_secret(&self, name: &str) -> bool {
        self.secrets.iter().any(|s| match s.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => s == name,
        })
    }
}

impl HostPattern {
    fn parse(pattern: &str) -> Self {
        let p = pattern.trim().to_ascii_lowercase();
        if p == "*" {
            return Self::Any;
        }
        if let Some(suffix) = p.strip_prefix("*.") {
            return Self::Suffix(suffix.to_owned());
        }
        // `host:port`, `host:*`, `[v6]:port`, `[v6]` or `host`.
        if let Some((host, port)) = p.rsplit_once(':')
            && (!host.contains(':') || host.ends_with(']'))
        {
            let port = match port {
                "*" => Some(Port::Any),
                n => n.parse::<u16>().ok().map(Port::Only),
            };
            if let Some(port) = port {
                return Self::Exact {
                    host: host.to_owned(),
                    port,
                };
            }
        }
        Self::Exact {
            host: p,
            port: Port::Default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hosts: &[&str], secrets: &[&str]) -> Policy {
        let grant = Grant {
            http_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            ..Grant::default()
        };
        Policy::new("p", &grant, &Limits::default())
    }

    #[test]
    fn host_patterns() {
        let p = policy(
            &[
                "api.example.com",
                "*.svc.example.com",
                "localhost:8080",
                "[::1]:9000",
                "Mixed.Case",
                "any-port.test:*",
            ],
            &[],
        );
        let cases = [
            ("api.example.com", 443, true),
            ("API.example.com", 443, true),
            ("api.example.com", 8443, false),
            ("any-port.test", 1, true),
            ("any-port.test", 65535, true),
            ("api.example.com.", 443, true),
            ("evil.api.example.com", 443, false),
            ("example.com", 443, false),
            ("a.svc.example.com", 443, true),
            ("a.b.svc.example.com", 443, true),
            ("svc.example.com", 443, false),
            ("xsvc.example.com", 443, false),
            ("localhost", 8080, true),
            ("localhost", 8081, false),
            ("[::1]", 9000, true),
            ("[::1]", 9001, false),
            ("mixed.case", 443, true),
            ("mixed.case", 1, false),
            ("a.svc.example.com", 8443, false),
            ("127.0.0.1", 443, false),
        ];
        for (host, port, allowed) in cases {
            assert_eq!(p.allows_host(host, port, 443), allowed, "{host}:{port}");
        }
        // A bare host on plain http means port 80.
        assert!(p.allows_host("api.example.com", 80, 80));
        assert!(!p.allows_host("api.example.com", 443, 80));
    }

    #[test]
    fn nothing_granted_means_nothing_allowed() {
        let p = policy(&[], &[]);
        assert!(!p.allows_host("example.com", 443, 443));
        assert!(!p.allows_secret("anything"));
        assert!(policy(&["*"], &[]).allows_host("anything.at.all", 1, 443));
    }

    #[test]
    fn secret_patterns() {
        let p = policy(&[], &["cloud_api", "notify_*"]);
        assert!(p.allows_secret("cloud_api"));
        assert!(!p.allows_secret("cloud_api2"));
        assert!(p.allows_secret("notify_ops"));
        assert!(!p.allows_secret("notif"));
    }

    #[test]
    fn limits_resolve_against_defaults() {
        let defaults = Limits::default();
        let p = Policy::new("p", &Grant::default(), &defaults);
        assert_eq!(p.memory_bytes, 64 * 1024 * 1024);
        assert_eq!(p.output_bytes, 1024 * 1024);
        let big = Grant {
            memory_mib: Some(256),
            output_bytes: Some(10),
            ..Grant::default()
        };
        let p = Policy::new("p", &big, &defaults);
        assert_eq!(p.memory_bytes, 256 * 1024 * 1024);
        assert_eq!(p.output_bytes, 10);
    }
}
