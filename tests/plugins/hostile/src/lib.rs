//! A plugin that misbehaves on request, for `tests/integration/plugin_sandbox.rs`.
//!
//! Each mode tries one thing the sandbox must stop. Knows nothing about the host; the tests
//! decide what "stopped" looks like.

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};

use csmp_sdk::schemars::JsonSchema;
use csmp_sdk::serde::{Deserialize, Serialize};
use csmp_sdk::{Context, PluginError, Request};

/// Which misbehaviour to try.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", rename_all = "snake_case")]
#[schemars(crate = "csmp_sdk::schemars")]
pub enum Mode {
    /// Spin forever.
    Spin,
    /// Allocate until something gives.
    Hoard,
    /// Panic with a recognisable message.
    Panic,
    /// Read `/etc/passwd` and the environment, and report what was seen.
    Snoop,
    /// Send an HTTP GET to `url`.
    Fetch,
    /// Return `bytes` bytes of output.
    Flood,
    /// Read the secret `secret`.
    Peek,
    /// Read the secret `secret` and let it out every way a plugin can: in the output (plain,
    /// URL-encoded, base64), split across two writes to stderr, in a log line, and, with
    /// `bytes` set, as the error.
    Leak,
    /// Report what earlier attempts left behind (a counter in static memory, bytes in a
    /// zero-initialised heap buffer larger than a kept-resident slot), then leave marks.
    Remember,
}

/// Attempts this instance has seen: always 0 on entry if every attempt gets fresh memory.
static ATTEMPTS: AtomicU32 = AtomicU32::new(0);

/// Bytes of the heap buffer `remember` checks and scribbles over (past the 2 MiB the host
/// resets in place, so both ways a slot is reset are covered).
const REMEMBER_BYTES: usize = 6 << 20;

/// What to do.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Input {
    /// The misbehaviour.
    pub mode: Mode,
    /// For `fetch`: where to send the request.
    #[serde(default)]
    pub url: Option<String>,
    /// For `flood`: how many bytes of output.
    #[serde(default)]
    pub bytes: Option<usize>,
    /// For `peek` and `leak`: which secret to read.
    #[serde(default)]
    pub secret: Option<String>,
    /// For `fetch`: one header to send, `Name: value`.
    #[serde(default)]
    pub header: Option<String>,
}

/// What the plugin saw or made.
#[derive(Debug, Default, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Output {
    /// For `snoop`: the file's content if it could be read, else the error.
    pub passwd: Option<String>,
    /// For `snoop`: the error reading the file.
    pub passwd_error: Option<String>,
    /// For `snoop`: every environment variable visible to the plugin.
    pub env: Vec<(String, String)>,
    /// For `fetch`: the response status.
    pub status: Option<u16>,
    /// For `flood`: the payload.
    pub payload: Option<String>,
    /// For `peek`: the secret's value.
    pub secret: Option<String>,
    /// For `remember`: attempts seen before this one.
    pub previous_attempts: Option<u32>,
    /// For `remember`: nonzero bytes found in freshly zeroed heap memory.
    pub dirty_bytes: Option<usize>,
}

/// Misbehaves as asked.
pub fn run(ctx: &Context, input: Input) -> Result<Output, PluginError> {
    match input.mode {
        Mode::Spin => {
            let mut n: u64 = 0;
            loop {
                n = black_box(n.wrapping_add(1));
            }
        }
        Mode::Hoard => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                black_box(&hoard);
            }
        }
        Mode::Panic => panic!("hostile plugin panicked on purpose"),
        Mode::Snoop => {
            let (passwd, passwd_error) = match std::fs::read_to_string("/etc/passwd") {
                Ok(text) => (Some(text), None),
                Err(e) => (None, Some(e.to_string())),
            };
            Ok(Output {
                passwd,
                passwd_error,
                env: std::env::vars().collect(),
                ..Output::default()
            })
        }
        Mode::Fetch => {
            let url = input
                .url
                .ok_or_else(|| PluginError::permanent("fetch needs `url`"))?;
            let mut request = Request::get(url);
            if let Some((name, value)) = input.header.as_deref().and_then(|h| h.split_once(':')) {
                request = request.header(name.trim(), value.trim());
            }
            let response = ctx.http(request)?;
            Ok(Output {
                status: Some(response.status),
                ..Output::default()
            })
        }
        Mode::Peek => {
            let name = input
                .secret
                .ok_or_else(|| PluginError::permanent("peek needs `secret`"))?;
            Ok(Output {
                secret: ctx.secret(&name),
                ..Output::default()
            })
        }
        Mode::Remember => {
            let previous = ATTEMPTS.fetch_add(1, Ordering::SeqCst);
            let mut buf = vec![0u8; REMEMBER_BYTES];
            let dirty = black_box(&buf).iter().filter(|&&b| b != 0).count();
            buf.fill(0xab);
            black_box(&buf);
            Ok(Output {
                previous_attempts: Some(previous),
                dirty_bytes: Some(dirty),
                ..Output::default()
            })
        }
        Mode::Leak => {
            let name = input
                .secret
                .ok_or_else(|| PluginError::permanent("leak needs `secret`"))?;
            let value = ctx.secret(&name).unwrap_or_default();
            let (head, tail) = value.split_at(value.len() / 2);
            eprint!("first half {head}");
            eprintln!("{tail} second half");
            ctx.info(format!("the secret is {value}"));
            if input.bytes.is_some() {
                return Err(PluginError::retryable(format!(
                    "failed at https://api.test/?key={value}"
                )));
            }
            Ok(Output {
                secret: Some(value.clone()),
                payload: Some(format!(
                    "url {} b64 {}",
                    value.replace(' ', "%20"),
                    base64_of(value.as_bytes())
                )),
                ..Output::default()
            })
        }
        Mode::Flood => Ok(Output {
            payload: Some("x".repeat(input.bytes.unwrap_or(50 * 1024 * 1024))),
            ..Output::default()
        }),
    }
}

/// Standard base64 with padding (written out: the plugin has no dependency for it).
fn base64_of(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

csmp_sdk::plugin! {
    name: "hostile",
    version: env!("CARGO_PKG_VERSION"),
    description: "Misbehaves on request (sandbox tests only)",
    capabilities: csmp_sdk::Capabilities::none().http_host("*").secret("*"),
    run: run,
}

#[cfg(test)]
mod tests {
    use super::*;
    use csmp_sdk::testing::MockHost;

    #[test]
    fn flood_makes_the_requested_size() -> Result<(), PluginError> {
        let out = run(
            &MockHost::new().context(),
            Input {
                mode: Mode::Flood,
                url: None,
                bytes: Some(10),
                secret: None,
                header: None,
            },
        )?;
        assert_eq!(out.payload.as_deref(), Some("xxxxxxxxxx"));
        Ok(())
    }

    #[test]
    fn fetch_needs_a_url() {
        let err = run(
            &MockHost::new().context(),
            Input {
                mode: Mode::Fetch,
                url: None,
                bytes: None,
                secret: None,
                header: None,
            },
        );
        assert!(matches!(err, Err(PluginError::Permanent(_))));
    }
}
