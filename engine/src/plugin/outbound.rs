//! Outbound HTTP on a plugin's behalf: checks the URL against the plugin's grant, then sends it
//! with a blocking client (`ureq`, rustls) under a timeout and a response size cap. Redirects
//! are not followed (a redirect could lead to a host that is not granted) and proxies from the
//! environment are ignored. The request runs on a thread of its own while the attempt waits for
//! it or for its cancellation, so cancelling a run stops a step that waits on a slow server at
//! once (the abandoned request ends by its own timeout).
//!
//! Knows the ABI's request and response records and `Policy`; nothing about stores or steps.

use std::sync::mpsc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use ureq::RequestExt;
use ureq::http;

use std::net::{IpAddr, SocketAddr};

use ureq::unversioned::transport::DefaultConnector;

use super::abi::{WitHttpError, WitRequest, WitResponse};
use super::address::{self, PinnedResolver, SharedLookup, private_kind};
use super::error::Interrupt;
use super::policy::Policy;

/// The process-wide HTTP client plugins share (connection pooling across steps).
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    agent: ureq::Agent,
    /// Resolves host names, once per request, before the addresses are checked.
    lookup: SharedLookup,
}

impl Outbound {
    pub(crate) fn new(lookup: SharedLookup) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .build();
        // The agent never resolves a name itself: it connects to the addresses `send`
        // checked and pinned.
        let agent = ureq::Agent::with_parts(config, DefaultConnector::default(), PinnedResolver);
        Self { agent, lookup }
    }

    /// Every address `host` stands for on `port`, each allowed by `policy`, or why not.
    fn checked_addresses(
        &self,
        policy: &Policy,
        host: &str,
        port: u16,
        default_port: u16,
    ) -> Result<Result<Vec<SocketAddr>, WitHttpError>, Interrupt> {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let addrs = match literal.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => match self.lookup.lookup(host, port) {
                Ok(a) if !a.is_empty() => a,
                Ok(_) => {
                    return Ok(Err(WitHttpError::Transport(format!(
                        "`{host}` resolves to no address"
                    ))));
                }
                Err(e) => {
                    return Ok(Err(WitHttpError::Transport(format!(
                        "cannot resolve `{host}`: {e}"
                    ))));
                }
            },
        };
        for a in &addrs {
            if let Some(kind) = private_kind(a.ip())
                && !policy.allow_private
                && !policy.names_address(a.ip(), port, default_port)
            {
                return Err(Interrupt::HttpAddressDenied {
                    plugin: policy.plugin.clone(),
                    host: host.to_string(),
                    addr: a.to_string(),
                    kind,
                });
            }
        }
        Ok(Ok(addrs))
    }

    /// When the certificate of the `https` server at `url` expires (ms since the epoch), if
    /// `policy` allows its host and every address it stands for, as for a request.
    pub(crate) fn certificate_expiry(
        &self,
        policy: &Policy,
        url: &str,
        timeout: Duration,
    ) -> Result<Result<i64, String>, Interrupt> {
        let uri: http::Uri = match url.parse() {
            Ok(uri) => uri,
            Err(e) => return Ok(Err(format!("bad url `{url}`: {e}"))),
        };
        if uri.scheme_str() != Some("https") {
            return Ok(Err(format!(
                "`{url}` is not an https URL: it has no certificate"
            )));
        }
        let Some(host) = uri.host().map(str::to_string) else {
            return Ok(Err(format!("url `{url}` has no host")));
        };
        let port = uri.port_u16().unwrap_or(443);
        if !policy.allows_host(&host, port, 443) {
            return Err(Interrupt::HttpDenied {
                plugin: policy.plugin.clone(),
                host: format!("{host}:{port}"),
            });
        }
        let addrs = match self.checked_addresses(policy, &host, port, 443)? {
            Ok(a) => a,
            Err(
                WitHttpError::InvalidRequest(m)
                | WitHttpError::Timeout(m)
                | WitHttpError::TooLarge(m)
                | WitHttpError::Transport(m),
            ) => return Ok(Err(m)),
        };
        let name = host.trim_start_matches('[').trim_end_matches(']');
        Ok(addrs
            .first()
            .ok_or_else(|| format!("`{host}` resolves to no address"))
            .and_then(|a| super::certificate::leaf_expiry(*a, name, timeout)))
    }

    /// Sends `request` if `policy` allows its host. A host outside the grant is an
    /// [`Interrupt`] (it fails the step); everything else the plugin may handle.
    pub(crate) fn send(
        &self,
        policy: &Policy,
        request: WitRequest,
        remaining: Duration,
        cancel: &CancellationToken,
    ) -> Result<Result<WitResponse, WitHttpError>, Interrupt> {
        let uri: http::Uri = match request.url.parse() {
            Ok(uri) => uri,
            Err(e) => return Ok(Err(invalid(format!("bad url `{}`: {e}", request.url)))),
        };
        let default_port = match uri.scheme_str() {
            Some("http") => 80,
            Some("https") => 443,
            _ => {
                return Ok(Err(invalid(format!(
                    "url `{}` must start with http:// or https://",
                    request.url
                ))));
            }
        };
        let Some(host) = uri.host().map(str::to_string) else {
            return Ok(Err(invalid(format!("url `{}` has no host", request.url))));
        };
        let port = uri.port_u16().unwrap_or(default_port);
        if !policy.allows_host(&host, port, default_port) {
            return Err(Interrupt::HttpDenied {
                plugin: policy.plugin.clone(),
                host: format!("{host}:{port}"),
            });
        }

        let method = match http::Method::from_bytes(request.method.as_bytes()) {
            Ok(m) => m,
            Err(_) => return Ok(Err(invalid(format!("bad method `{}`", request.method)))),
        };
        // Headers that would steer the connection itself (another virtual host behind the
        // granted address, request smuggling, a protocol switch, a proxy hop) are the host's.
        // A `Host` equal to the URL's own authority says nothing new (request signing, such
        // as AWS's SigV4, covers it) and is allowed; any other is refused.
        let authority = uri.authority().map(|a| a.as_str().to_ascii_lowercase());
        let same_host = |value: &str| {
            let value = value.trim().to_ascii_lowercase();
            authority.as_deref() == Some(value.as_str())
                || (value == host.to_ascii_lowercase() && port == default_port)
        };
        if let Some((name, _)) = request.headers.iter().find(|(name, value)| {
            reserved(name) && !(name.trim().eq_ignore_ascii_case("host") && same_host(value))
        }) {
            return Err(Interrupt::HttpHeaderDenied {
                plugin: policy.plugin.clone(),
                header: name.clone(),
            });
        }
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let req = match builder.body(request.body.unwrap_or_default()) {
            Ok(r) => r,
            Err(e) => return Ok(Err(invalid(format!("bad request: {e}")))),
        };

        let addrs = match self.checked_addresses(policy, &host, port, default_port)? {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };

        let asked = request
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(policy.http_timeout);
        let timeout = asked.min(policy.http_timeout).min(remaining);
        if timeout.is_zero() {
            return Ok(Err(WitHttpError::Timeout(
                "the step has no time left for an http request".into(),
            )));
        }

        let agent = self.agent.clone();
        let cap = policy.http_response_bytes;
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("csmp-plugin-http".into())
            .spawn(move || {
                address::pin(addrs);
                let _ = tx.send(exchange(&agent, req, timeout, cap));
            });
        if let Err(e) = spawned {
            return Ok(Err(WitHttpError::Transport(format!(
                "cannot start the request: {e}"
            ))));
        }
        loop {
            match rx.recv_timeout(CANCEL_CHECK) {
                Ok(result) => return Ok(result),
                Err(mpsc::RecvTimeoutError::Timeout) if cancel.is_cancelled() => {
                    return Err(Interrupt::Cancelled);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Ok(Err(WitHttpError::Transport(
                        "the request's thread ended without an answer".into(),
                    )));
                }
            }
        }
    }
}

/// Whether a plugin may not set this request header.
fn reserved(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    matches!(
        name.as_str(),
        "host" | "connection" | "transfer-encoding" | "upgrade" | "keep-alive" | "te" | "trailer"
    ) || name.starts_with("proxy-")
}

/// How often an attempt waiting on a request looks at its cancellation.
const CANCEL_CHECK: Duration = Duration::from_millis(10);

/// Sends `req` and reads the whole response (at most `cap` bytes of body).
fn exchange(
    agent: &ureq::Agent,
    req: http::Request<Vec<u8>>,
    timeout: Duration,
    cap: usize,
) -> Result<WitResponse, WitHttpError> {
    {
        let result = req
            .with_agent(agent)
            .configure()
            .timeout_global(Some(timeout))
            .run();
        let mut response = match result {
            Ok(r) => r,
            Err(e) => return Err(classify(e, timeout, cap)),
        };
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let limit = u64::try_from(cap).unwrap_or(u64::MAX);
        let body = match response.body_mut().with_config().limit(limit).read_to_vec() {
            Ok(b) => b,
            Err(e) => return Err(classify(e, timeout, cap)),
        };
        Ok(WitResponse {
            status,
            headers,
            body,
        })
    }
}

fn invalid(message: String) -> WitHttpError {
    WitHttpError::InvalidRequest(message)
}

fn classify(e: ureq::Error, timeout: Duration, cap: usize) -> WitHttpError {
    match e {
        ureq::Error::Timeout(_) => {
            WitHttpError::Timeout(format!("no complete response within {timeout:?}"))
        }
        ureq::Error::BodyExceedsLimit(_) => WitHttpError::TooLarge(format!(
            "response body is larger than {cap} bytes (http_response_bytes)"
        )),
        other => WitHttpError::Transport(other.to_string()),
    }
}
