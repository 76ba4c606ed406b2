//! Glue between the generated bindings and a plugin's typed `run` function: JSON in and out,
//! errors mapped to the WIT `plugin-error`, and the [`Context`] backend that calls the host.
//!
//! Used by the `plugin!` macro only; plugin code never names anything here.

use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::csmp::plugin::{http as wit_http, log as wit_log, secrets as wit_secrets};
use crate::context::{Backend, Context, Level};
use crate::http::{HttpError, Request, Response};
use crate::{Capabilities, Descriptor, PluginError};

pub use crate::bindings;
pub use crate::bindings::Guest;
pub use crate::bindings::csmp::plugin::types::{
    Context as WitContext, PluginError as WitPluginError,
};
pub use wit_bindgen;

/// The descriptor of a plugin whose run function is `_run` (only its types matter).
pub fn descriptor<I, O, F>(
    name: &str,
    version: &str,
    description: &str,
    capabilities: Capabilities,
    _run: F,
) -> Descriptor
where
    I: JsonSchema,
    O: JsonSchema,
    F: Fn(&Context, I) -> Result<O, PluginError>,
{
    Descriptor::for_types::<I, O>(name, version, description, capabilities)
}

/// Runs `run` on JSON `input` under the host's context.
pub fn run_json<I, O, F>(input: &str, ctx: WitContext, run: F) -> Result<String, WitPluginError>
where
    I: DeserializeOwned,
    O: Serialize,
    F: Fn(&Context, I) -> Result<O, PluginError>,
{
    let context = Context::new(
        ctx.idempotency_key,
        Duration::from_millis(ctx.timeout_ms),
        Arc::new(HostBackend),
    );
    let input: I = serde_json::from_str(input).map_err(|e| {
        WitPluginError::Permanent(format!("input does not fit the plugin's input type: {e}"))
    })?;
    let output = run(&context, input).map_err(|e| match e {
        PluginError::Retryable(m) => WitPluginError::Retryable(m),
        PluginError::Permanent(m) => WitPluginError::Permanent(m),
    })?;
    serde_json::to_string(&output)
        .map_err(|e| WitPluginError::Permanent(format!("output does not serialize to json: {e}")))
}

/// The real host, reached through the component's imports.
struct HostBackend;

impl Backend for HostBackend {
    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Debug => wit_log::Level::Debug,
            Level::Info => wit_log::Level::Info,
            Level::Warn => wit_log::Level::Warn,
            Level::Error => wit_log::Level::Error,
        };
        wit_log::write(level, message);
    }

    fn http(&self, request: Request) -> Result<Response, HttpError> {
        let request = wit_http::Request {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout_ms: request
                .timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        };
        match wit_http::send(&request) {
            Ok(r) => Ok(Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(wit_http::HttpError::InvalidRequest(m)) => Err(HttpError::InvalidRequest(m)),
            Err(wit_http::HttpError::Timeout(m)) => Err(HttpError::Timeout(m)),
            Err(wit_http::HttpError::TooLarge(m)) => Err(HttpError::TooLarge(m)),
            Err(wit_http::HttpError::Transport(m)) => Err(HttpError::Transport(m)),
        }
    }

    fn secret(&self, name: &str) -> Option<String> {
        wit_secrets::get(name)
    }

    fn now(&self) -> std::time::SystemTime {
        // `wasi:clocks/wall-clock`, which the host provides.
        std::time::SystemTime::now()
    }
}
