//! The REST API (v1) over real HTTP: a server on 127.0.0.1 (port 0) with a fresh SQLite
//! database per test, called with a blocking HTTP client. Most tests run the server in this
//! process (`harness::App`); `process` runs the real `csmp` binary for `csmp token create` and
//! for a graceful shutdown followed by a restart on the same database.
//!
//! Every test asserts status codes and bodies: problem documents by their `type` and, for
//! invalid inputs, by the JSON pointers in `errors[]`. Waits poll with a guard timeout; nothing
//! asserts on how long anything took.

mod access;
mod admin;
mod alerts;
mod approvals;
mod catalog;
mod checks;
mod console;
mod control;
mod escalation_crash;
mod events;
mod faults;
mod hardening;
mod harness;
mod incidents;
mod levels;
mod oncall;
mod plugin_loop;
mod plugins;
mod postgres;
mod process;
mod remote_cli;
mod requests;
mod retry;
mod runs;
mod scaleout;
mod secrets;
mod start;
mod strangers;
mod workflows;
