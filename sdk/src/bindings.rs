//! The wit-bindgen glue for `wit/plugin.wit`: generated code only, nothing hand-written.
//!
//! This is the one place in the SDK that allows `unsafe` (the canonical ABI needs it). Plugin
//! authors never touch it; `csmp_sdk::plugin!` uses the generated `export!` macro.

#![allow(missing_docs, unreachable_pub, missing_debug_implementations)]

wit_bindgen::generate!({
    world: "plugin",
    path: "wit",
    pub_export_macro: true,
    export_macro_name: "__csmp_export",
    default_bindings_module: "csmp_sdk::__private::bindings",
    runtime_path: "csmp_sdk::__private::wit_bindgen::rt",
});
