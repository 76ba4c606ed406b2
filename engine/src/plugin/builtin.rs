//! The built-in plugins, embedded in the binary: `echo`, `http` and `notify`, built from
//! `plugins/*` to `wasm32-wasip2` by `engine/build.rs`.
//!
//! Bytes only; `host` loads them like any other plugin.

/// `echo`: returns its input object.
pub const ECHO: &[u8] = include_bytes!(concat!(env!("CSMP_PLUGIN_WASM_DIR"), "/echo.wasm"));
/// `http`: one HTTP request with a JSON body.
pub const HTTP: &[u8] = include_bytes!(concat!(env!("CSMP_PLUGIN_WASM_DIR"), "/http.wasm"));
/// `notify`: Slack, PagerDuty Events v2 or a generic webhook.
pub const NOTIFY: &[u8] = include_bytes!(concat!(env!("CSMP_PLUGIN_WASM_DIR"), "/notify.wasm"));

/// Every built-in, by name.
pub const ALL: [(&str, &[u8]); 3] = [("echo", ECHO), ("http", HTTP), ("notify", NOTIFY)];
