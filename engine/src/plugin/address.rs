//! Where a plugin's request may connect: the host name is resolved once, every address it
//! resolves to is checked, and the connection goes to those checked addresses and no others —
//! so a name that resolves to a public address when checked and to 127.0.0.1 when connected
//! (DNS rebinding) cannot reach anything the check did not see.
//!
//! Addresses inside the machine or its networks — loopback, link-local (the cloud metadata
//! service at 169.254.169.254 and fd00:ec2::254 among them), private and unique-local ranges,
//! carrier-grade NAT, unspecified, multicast and reserved — are refused unless the grant names
//! that very address (`127.0.0.1:8080`) or says `allow_private: true`.
//!
//! Knows `std::net` and ureq's resolver seam; nothing about plugins beyond the grant's answer.

use std::cell::RefCell;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// Turns a host name and port into addresses: the system's resolver, or a test's.
pub trait Lookup: Send + Sync + fmt::Debug {
    /// Every address `host` resolves to, with `port`.
    fn lookup(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>>;
}

/// The system's resolver (`getaddrinfo`).
#[derive(Debug, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok((host, port).to_socket_addrs()?.collect())
    }
}

/// What kind of non-public address this is, for the error that refuses it.
pub(crate) fn private_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => {
            // An IPv4 address carried in IPv6 (mapped, or NAT64's well-known prefix) is
            // judged as the IPv4 address it carries.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_kind(v4);
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return v4_kind(Ipv4Addr::new(a, b, c, d));
            }
            v6_kind(v6)
        }
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_link_local() {
        "a link-local address (the cloud metadata service lives there)"
    } else if ip.is_private() {
        "a private address"
    } else if a == 100 && (64..128).contains(&b) {
        "a carrier-grade NAT address"
    } else if ip.is_unspecified() || a == 0 {
        "an unspecified address"
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        "a multicast or reserved address"
    } else {
        return None;
    })
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_unspecified() {
        "an unspecified address"
    } else if first & 0xffc0 == 0xfe80 {
        "a link-local address"
    } else if first & 0xfe00 == 0xfc00 {
        "a unique-local address (the cloud metadata service at fd00:ec2::254 is one)"
    } else if ip.is_multicast() {
        "a multicast address"
    } else {
        return None;
    })
}

thread_local! {
    /// The checked addresses of the request this thread is sending (each request is sent on
    /// a thread of its own).
    static PINNED: RefCell<Option<Vec<SocketAddr>>> = const { RefCell::new(None) };
}

/// Sets the addresses the next connection made on this thread must go to.
pub(crate) fn pin(addrs: Vec<SocketAddr>) {
    PINNED.with(|p| *p.borrow_mut() = Some(addrs));
}

/// ureq's resolver: answers with the addresses pinned on this thread and never looks a name
/// up itself, so nothing connects to an address that was not checked.
#[derive(Debug, Default)]
pub(crate) struct PinnedResolver;

impl Resolver for PinnedResolver {
    fn resolve(
        &self,
        _uri: &Uri,
        _config: &Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let pinned = PINNED.with(|p| p.borrow().clone());
        let Some(addrs) = pinned.filter(|a| !a.is_empty()) else {
            return Err(ureq::Error::HostNotFound);
        };
        let mut out = self.empty();
        for a in addrs.into_iter().take(16) {
            out.push(a);
        }
        Ok(out)
    }
}

/// The lookup a host uses.
pub(crate) type SharedLookup = Arc<dyn Lookup>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_addresses_are_named_and_public_ones_pass() {
        let cases = [
            ("127.0.0.1", true),
            ("127.8.9.10", true),
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("172.32.0.1", false),
            ("192.168.1.1", true),
            ("169.254.169.254", true),
            ("100.64.0.1", true),
            ("100.128.0.1", false),
            ("0.0.0.0", true),
            ("224.0.0.1", true),
            ("255.255.255.255", true),
            ("93.184.216.34", false),
            ("::1", true),
            ("::", true),
            ("fe80::1", true),
            ("fd00:ec2::254", true),
            ("fc00::1", true),
            ("ff02::1", true),
            ("::ffff:127.0.0.1", true),
            ("::ffff:169.254.169.254", true),
            ("64:ff9b::a9fe:a9fe", true),
            ("2606:2800:220:1:248:1893:25c8:1946", false),
        ];
        for (ip, inside) in cases {
            let ip: IpAddr = ip.parse().expect("an address");
            assert_eq!(private_kind(ip).is_some(), inside, "{ip}");
        }
    }

    #[test]
    fn the_resolver_answers_only_with_what_was_pinned() {
        let uri: Uri = "http://example.test/".parse().expect("uri");
        let config = Config::default();
        let timeout = NextTimeout {
            after: ureq::unversioned::transport::time::Duration::NotHappening,
            reason: ureq::Timeout::Resolve,
            per_read: None,
            per_write: None,
        };
        std::thread::spawn(move || {
            assert!(PinnedResolver.resolve(&uri, &config, timeout).is_err());
            let addr: SocketAddr = "93.184.216.34:80".parse().expect("addr");
            pin(vec![addr]);
            let got = PinnedResolver
                .resolve(&uri, &config, timeout)
                .expect("pinned");
            assert_eq!(got.iter().copied().collect::<Vec<_>>(), [addr]);
        })
        .join()
        .expect("the check runs");
    }
}
