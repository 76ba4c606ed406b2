//! csmp-sdk: write a csmp step plugin as one typed function.
//!
//! ```ignore
//! use csmp_sdk::{Context, PluginError};
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Input { name: String }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct Output { greeting: String }
//!
//! fn run(ctx: &Context, input: Input) -> Result<Output, PluginError> {
//!     ctx.info(format!("greeting {}", input.name));
//!     Ok(Output { greeting: format!("hello, {}", input.name) })
//! }
//!
//! csmp_sdk::plugin! {
//!     name: "greet",
//!     version: env!("CARGO_PKG_VERSION"),
//!     description: "Greets someone",
//!     run: run,
//! }
//! ```
//!
//! Layout: `context` (what a plugin may ask of its host), `http` (request/response types),
//! `error` (retryable vs permanent), `describe` (metadata and generated schemas), `testing`
//! (a mock host for native unit tests), `export` and `bindings` (the ABI glue, hidden), and,
//! with the `aws` feature, `aws` (SigV4 signing and the AWS Query and JSON protocols).
//!
//! The SDK compiles natively too, so a plugin's unit tests run with plain `cargo test` against
//! [`testing::MockHost`]; only the export glue is limited to `wasm32`.

extern crate self as csmp_sdk;

#[cfg(feature = "aws")]
pub mod aws;
#[allow(unsafe_code)]
#[doc(hidden)]
pub mod bindings;
mod context;
mod describe;
mod error;
#[doc(hidden)]
pub mod export;
mod http;
pub mod testing;

pub use context::{Context, Level};
pub use describe::{Capabilities, Descriptor, dispatch_on_action};
pub use error::PluginError;
pub use http::{HttpError, Request, Response};

// Re-exported so plugin crates need no direct dependency for the derives they use.
pub use schemars;
pub use serde;
pub use serde_json;

/// What the `plugin!` macro expands to; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::*;
}

/// Declares the crate's plugin: its metadata and its run function.
///
/// ```ignore
/// csmp_sdk::plugin! {
///     name: "notify",                            // [a-z0-9-]+
///     version: env!("CARGO_PKG_VERSION"),        // semver
///     description: "Sends a notification",
///     capabilities: csmp_sdk::Capabilities::none().http_host("hooks.slack.com"), // optional
///     run: run,                                  // fn(&Context, In) -> Result<Out, PluginError>
/// }
/// ```
///
/// `In` must implement `Deserialize + JsonSchema` and `Out` `Serialize + JsonSchema`; their
/// schemas become the plugin's input and output schemas. The macro also defines
/// `pub fn csmp_descriptor() -> csmp_sdk::Descriptor` in the calling module so native tests can
/// check the metadata. The WebAssembly exports are only emitted when compiling for `wasm32`.
#[macro_export]
macro_rules! plugin {
    (
        name: $name:expr,
        version: $version:expr,
        description: $description:expr,
        $(capabilities: $capabilities:expr,)?
        run: $run:path $(,)?
    ) => {
        /// This plugin's self-description, as its `describe` export returns it.
        pub fn csmp_descriptor() -> $crate::Descriptor {
            let capabilities = $crate::Capabilities::none();
            $(let capabilities = $capabilities;)?
            $crate::__private::descriptor($name, $version, $description, capabilities, $run)
        }

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct CsmpPlugin;

            impl $crate::__private::Guest for CsmpPlugin {
                fn describe() -> ::std::string::String {
                    csmp_descriptor().to_json()
                }

                fn run(
                    input: ::std::string::String,
                    ctx: $crate::__private::WitContext,
                ) -> ::std::result::Result<::std::string::String, $crate::__private::WitPluginError>
                {
                    $crate::__private::run_json(&input, ctx, $run)
                }
            }

            $crate::__private::bindings::__csmp_export!(CsmpPlugin with_types_in $crate::__private::bindings);
        };
    };
}
