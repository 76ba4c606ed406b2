//! csmp: a durable DAG workflow engine whose steps are sandboxed WebAssembly plugins.
//!
//! Layout, from the outside in:
//!
//! - `alerts` — alerts from every source in one model, rules, groups and silences: one
//!   durable run per alert group.
//! - `api` — the REST API (axum): thin handlers over the store and the engine.
//! - `cli` — the `csmp` command line (thin: parses arguments, calls the layers below).
//! - `dsl` — workflow and catalog YAML as authored, decoded with positions (pure).
//! - `oncall` — people, teams and on-call schedules: who is on call when (pure).
//! - `plan` — validated definitions: the DAG built, templates compiled, references checked.
//!   A `Plan` exists only if validation passed (pure).
//! - `template` — strict, type-preserving handlebars (pure).
//! - `runtime` — the durable executor: one loop owning every active run, group commits.
//! - `store` — runs, steps, signals, incidents and definitions on SQLite; the only module
//!   that knows SQL.
//! - `plugin` — plugin descriptors and the wasmtime host; the only module that knows wasmtime.
//! - `diag` — located diagnostics and their rendering.

pub mod alerts;
pub mod api;
pub mod checks;
pub mod cli;
pub mod diag;
pub mod dsl;
pub mod incidents;
pub mod oncall;
pub mod plan;
pub mod plugin;
pub mod runtime;
pub mod slo;
pub mod store;
pub mod template;
#[doc(hidden)]
pub mod testing;
pub mod vault;
