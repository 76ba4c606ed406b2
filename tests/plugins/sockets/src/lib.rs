//! A plugin that bypasses the host's HTTP and opens a TCP socket itself, for
//! `tests/integration/plugin_sandbox.rs`: built for `wasm32-wasip2` it imports `wasi:sockets`,
//! which the host never grants, so loading it must fail.
//!
//! Knows nothing about the host; natively it is an ordinary (tested) function.

use std::io::Write;
use std::net::TcpStream;

use csmp_sdk::serde_json::{Value, json};
use csmp_sdk::{Context, PluginError};

/// Connects to `input.addr` and writes a line; returns whether it worked.
pub fn run(_ctx: &Context, input: Value) -> Result<Value, PluginError> {
    let addr = input["addr"]
        .as_str()
        .ok_or_else(|| PluginError::permanent("input needs `addr`"))?;
    let mut stream = TcpStream::connect(addr).map_err(|e| PluginError::retryable(e.to_string()))?;
    stream
        .write_all(b"hello\n")
        .map_err(|e| PluginError::retryable(e.to_string()))?;
    Ok(json!({ "sent": true }))
}

csmp_sdk::plugin! {
    name: "sockets",
    version: env!("CARGO_PKG_VERSION"),
    description: "Opens a raw TCP socket (sandbox tests only)",
    run: run,
}

#[cfg(test)]
mod tests {
    use super::*;
    use csmp_sdk::testing::MockHost;

    #[test]
    fn refuses_input_without_an_address() {
        let out = run(&MockHost::new().context(), json!({}));
        assert!(matches!(out, Err(PluginError::Permanent(_))));
    }
}
