//! The step log: one size-capped buffer that a plugin's stdout, stderr and `log` lines all
//! append to, in order. Past the cap, bytes are counted and dropped, never an error (a chatty
//! plugin must not fail because of its log).
//!
//! Knows the WASI output-stream traits it implements, nothing about steps or grants.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;

use super::mask::Masker;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// A cheap handle to one attempt's log; clones share the buffer.
#[derive(Debug, Clone)]
pub(crate) struct LogSink(Arc<Mutex<Buffer>>);

#[derive(Debug)]
struct Buffer {
    bytes: Vec<u8>,
    cap: usize,
    dropped: usize,
}

/// How much a single `check-write` permits; what WASI streams usually offer.
const WRITE_PERMIT: usize = 64 * 1024;

impl LogSink {
    pub(crate) fn new(cap: usize) -> Self {
        Self(Arc::new(Mutex::new(Buffer {
            bytes: Vec::new(),
            cap,
            dropped: 0,
        })))
    }

    /// Appends raw bytes, keeping at most the cap.
    pub(crate) fn append(&self, data: &[u8]) {
        let mut b = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let room = b.cap.saturating_sub(b.bytes.len());
        let kept = room.min(data.len());
        b.bytes.extend_from_slice(&data[..kept]);
        b.dropped += data.len() - kept;
    }

    /// Appends one line, prefixed with its level.
    pub(crate) fn line(&self, level: &str, message: &str) {
        let mut line = Vec::with_capacity(level.len() + message.len() + 4);
        line.push(b'[');
        line.extend_from_slice(level.as_bytes());
        line.extend_from_slice(b"] ");
        line.extend_from_slice(message.as_bytes());
        line.push(b'\n');
        self.append(&line);
    }

    /// The log as text, masked for `masker`'s secrets — whatever the writes that made it, so
    /// a secret split across two writes is masked too — with a note when some of it was
    /// dropped (and then a secret cut in half at the cap masked as well).
    pub(crate) fn text(&self, masker: &Masker) -> String {
        let b = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let raw = String::from_utf8_lossy(&b.bytes);
        let mut text = if b.dropped > 0 {
            masker.mask_cut(&raw)
        } else {
            masker.mask(&raw)
        };
        if b.dropped > 0 {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!(
                "[csmp] {} more bytes of log dropped: the log cap is {} bytes (log_bytes)\n",
                b.dropped, b.cap
            ));
        }
        text
    }
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for LogSink {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogSink {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The panic message in a Rust plugin's stderr (`panicked at FILE:LINE:COL:\nMESSAGE`), if any.
pub(crate) fn panic_message(log: &str) -> Option<String> {
    let start = log.find("panicked at ")? + "panicked at ".len();
    let rest = &log[start..];
    let (location, after) = rest.split_once(":\n")?;
    let message: Vec<&str> = after
        .lines()
        .take_while(|l| !l.starts_with("note: ") && !l.starts_with("[csmp]"))
        .collect();
    Some(format!("{} (at {location})", message.join("\n").trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_caps() {
        let sink = LogSink::new(16);
        sink.append(b"out\n");
        sink.line("info", "hi");
        sink.append(b"0123456789");
        let text = sink.text(&Masker::default());
        assert!(text.starts_with("out\n[info] hi\n01\n[csmp]"), "{text}");
        assert!(text.contains("8 more bytes of log dropped"), "{text}");
        assert!(text.contains("16 bytes"), "{text}");
    }

    #[test]
    fn writes_past_the_cap_are_not_errors() {
        let mut sink = LogSink::new(4);
        assert!(OutputStream::write(&mut sink, Bytes::from_static(b"abcdefgh")).is_ok());
        assert_eq!(sink.check_write().ok(), Some(WRITE_PERMIT));
        assert!(sink.text(&Masker::default()).starts_with("abcd\n"));
    }

    #[test]
    fn finds_the_panic_message() {
        let log = "[info] start\nthread '<unnamed>' panicked at src/lib.rs:80:25:\nboom happened\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(log).as_deref(),
            Some("boom happened (at src/lib.rs:80:25)")
        );
        assert_eq!(panic_message("no panic here"), None);
    }
}
