//! csmp's integration tests: one binary, real components (the `csmp` executable, the wasmtime
//! host, real files), no mocks.

mod bench_cli;
mod crash;
mod examples;
mod helpers;
mod plugin_sandbox;
mod run_cli;
mod runtime;
mod scaffold;
mod validate_cli;
