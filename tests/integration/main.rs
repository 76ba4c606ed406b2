//! csmp's integration tests: one binary, real components (the `csmp` executable, the wasmtime
//! host, real files), no mocks.

mod alert_burst;
mod api;
mod aws;
mod bench_cli;
mod console_browser;
mod crash;
mod cron;
mod escalation;
mod examples;
mod examples_run;
mod helpers;
mod languages;
mod monitoring;
mod monitoring_e2e;
mod moto;
mod plugin_cli;
mod plugin_sandbox;
mod receivers;
mod run_cli;
mod runtime;
mod scaffold;
mod sns_e2e;
mod validate_cli;
