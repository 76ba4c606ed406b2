//! What one caller may cost: connections open at once (for everybody), calls per second (per
//! token). Past either, the answer is 503 or 429 with `Retry-After`, counted in `/metrics`.
//!
//! The connection cap sits in the listener: a connection past it is answered by a small task
//! of its own, a 503 problem and close, without reaching the router. Every accepted connection
//! has Nagle's algorithm off: an event stream's small frames must not wait for the client's
//! delayed ACK.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Calls per second per token, with bursts of twice that.
#[derive(Debug)]
pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<String>,
    per_second: NonZeroU32,
    refused: AtomicU64,
}

impl RateLimit {
    /// `per_second` calls a second for each token, in bursts of up to twice that.
    pub fn per_token(per_second: NonZeroU32) -> Self {
        let burst = per_second.saturating_mul(NonZeroU32::MIN.saturating_add(1));
        Self::with_quota(Quota::per_second(per_second).allow_burst(burst), per_second)
    }

    fn with_quota(quota: Quota, per_second: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::keyed(quota),
            per_second,
            refused: AtomicU64::new(0),
        }
    }

    /// `Err(wait)` when `token` has used its calls for now: retry after `wait`.
    pub fn check(&self, token: &str) -> Result<(), Duration> {
        // Keys are the ids of valid tokens only, so the map is as small as the token table.
        self.limiter
            .check_key(&token.to_string())
            .map_err(|not_until| {
                self.refused.fetch_add(1, Ordering::Relaxed);
                not_until.wait_time_from(DefaultClock::default().now())
            })
    }

    /// The configured rate.
    pub fn per_second(&self) -> u32 {
        self.per_second.get()
    }

    pub(super) fn render(&self, out: &mut String) {
        let name = "csmp_http_rate_limited_total";
        let _ = writeln!(
            out,
            "# HELP {name} Calls answered 429 because their token used its calls per second."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name} {}", self.refused.load(Ordering::Relaxed));
    }
}

/// Counts of the listener, for `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    refused: AtomicU64,
    accept_errors: AtomicU64,
    max: AtomicU64,
    permits: std::sync::OnceLock<Arc<Semaphore>>,
}

impl ConnectionCounters {
    pub(super) fn render(&self, out: &mut String) {
        let open = self.permits.get().map_or(0, |p| {
            self.max
                .load(Ordering::Relaxed)
                .saturating_sub(p.available_permits() as u64)
        });
        for (name, kind, help, v) in [
            (
                "csmp_http_connections_open",
                "gauge",
                "Client connections open now.",
                open,
            ),
            (
                "csmp_http_connections_max",
                "gauge",
                "Most client connections open at once (--max-connections).",
                self.max.load(Ordering::Relaxed),
            ),
            (
                "csmp_http_connections_refused_total",
                "counter",
                "Connections answered 503 because --max-connections were open.",
                self.refused.load(Ordering::Relaxed),
            ),
            (
                "csmp_http_accept_errors_total",
                "counter",
                "Failures to accept a connection (out of file descriptors, say).",
                self.accept_errors.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {v}");
        }
    }
}

/// A TCP listener that holds at most `max` connections open at once.
#[derive(Debug)]
pub struct Limited {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    counters: Arc<ConnectionCounters>,
}

impl Limited {
    /// Caps `listener` at `max` open connections; `counters` are what `/metrics` shows.
    pub fn new(listener: TcpListener, max: usize, counters: Arc<ConnectionCounters>) -> Self {
        let permits = Arc::new(Semaphore::new(max.max(1)));
        counters.max.store(max.max(1) as u64, Ordering::Relaxed);
        let _ = counters.permits.set(Arc::clone(&permits));
        Self {
            inner: listener,
            permits,
            counters,
        }
    }
}

impl axum::serve::Listener for Limited {
    type Io = Held;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => match Arc::clone(&self.permits).try_acquire_owned() {
                    Ok(permit) => {
                        if let Err(e) = stream.set_nodelay(true) {
                            tracing::debug!("cannot turn Nagle's algorithm off for {addr}: {e}");
                        }
                        return (
                            Held {
                                stream,
                                _permit: permit,
                            },
                            addr,
                        );
                    }
                    Err(_) => {
                        let refused = self.counters.refused.fetch_add(1, Ordering::Relaxed) + 1;
                        if refused.is_power_of_two() {
                            tracing::warn!(
                                %addr,
                                "{} connections are open, the most --max-connections allows: refusing new ones with 503 ({refused} so far)",
                                self.counters.max.load(Ordering::Relaxed)
                            );
                        }
                        tokio::spawn(refuse(stream));
                    }
                },
                Err(e) => {
                    self.counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                    if is_connection_error(&e) {
                        continue;
                    }
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::error!("cannot accept a connection: {e}; trying again in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Errors of one connection (the peer left before it was accepted), not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

const REFUSAL_BODY: &str = r#"{"type":"urn:csmp:problem:too-many-connections","title":"Service Unavailable","status":503,"detail":"the service has as many connections open as it allows (--max-connections); retry after the time in Retry-After"}"#;

/// Answers a connection past the cap with a 503 problem and closes it.
async fn refuse(mut stream: TcpStream) {
    // Read what the client sent first (briefly, bounded): closing a socket with unread data
    // resets it, and the client would see a reset instead of the answer.
    let mut buf = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{REFUSAL_BODY}",
        REFUSAL_BODY.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// An accepted connection; its slot under the cap is given back when it closes.
#[derive(Debug)]
pub struct Held {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Held {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Held {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_past_its_burst_waits_and_another_token_does_not() {
        // A burst of two, then one call an hour: the test cannot be slow enough to refill.
        let two = NonZeroU32::MIN.saturating_add(1);
        let limit = RateLimit::with_quota(
            Quota::per_hour(NonZeroU32::MIN).allow_burst(two),
            NonZeroU32::MIN,
        );
        assert_eq!(limit.check("a"), Ok(()));
        assert_eq!(limit.check("a"), Ok(()));
        let wait = limit.check("a").err();
        assert!(
            wait.is_some_and(|w| w > Duration::ZERO && w <= Duration::from_secs(3600)),
            "{wait:?}"
        );
        assert_eq!(limit.check("b"), Ok(()));
        let mut out = String::new();
        limit.render(&mut out);
        assert!(out.contains("csmp_http_rate_limited_total 1"), "{out}");
    }
}
