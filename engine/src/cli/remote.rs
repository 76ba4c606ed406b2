//! `csmp runs …`, `csmp approvals …`, `csmp requests …`: the REST API from the command line,
//! for an operator's day. Each talks to `--server` (`CSMP_SERVER`) with `--token`
//! (`CSMP_TOKEN`), prints a table (or the API's JSON with `--json`), and turns a problem
//! document into one clear line (and the violations under it) with a non-zero exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::remote_client::{Api, Failure, encode, pretty, table, text};

/// Where the service is and who is calling.
#[derive(Debug, Clone, Args)]
pub struct Server {
    /// The service's base URL.
    #[arg(
        long,
        env = "CSMP_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// A bearer token (`csmp token create`).
    #[arg(long, env = "CSMP_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `csmp runs …`.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Runs, newest first, narrowed by status, workflow, tenant and labels.
    List {
        /// running, paused, failing, cancelling, blocked, succeeded, failed, cancelled.
        #[arg(long)]
        status: Option<String>,
        /// Only runs of this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// Only this tenant's runs.
        #[arg(long)]
        tenant: Option<String>,
        /// Only runs with this label, `KEY=VALUE`; repeatable (all must match).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Only runs created at or after this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        created_after: Option<String>,
        /// Only runs created before this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        created_before: Option<String>,
        /// How many (1–200).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One run and its steps; with --follow, its progress live until it ends.
    Show {
        /// The run's id.
        run: String,
        /// Print each transition as it happens, until the run ends.
        #[arg(long)]
        follow: bool,
    },
    /// Start a run of a loaded workflow (operators).
    Start {
        /// The workflow's name.
        workflow: String,
        /// Its version (default: the newest).
        #[arg(long = "workflow-version", value_name = "N")]
        workflow_version: Option<u32>,
        /// An input, `KEY=VALUE` (VALUE read as JSON when it parses); repeatable.
        #[arg(long = "input", value_name = "KEY=VALUE")]
        input: Vec<String>,
        /// A YAML or JSON file of inputs.
        #[arg(long)]
        inputs: Option<PathBuf>,
        /// The tenant it runs for (default: the provider's own).
        #[arg(long)]
        tenant: Option<String>,
        /// A label, `KEY=VALUE`; repeatable.
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Makes a retried start safe: the same key returns the run it started.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Follow the run until it ends; the exit code is its outcome.
        #[arg(long)]
        follow: bool,
    },
    /// Cancel a run: running steps are interrupted, then compensations and `on_failure` run.
    Cancel {
        /// The run's id.
        run: String,
        /// Only stop it: no compensations, no `on_failure` steps.
        #[arg(long)]
        no_compensate: bool,
    },
    /// Retry a failed run in place: what failed runs again, what completed is kept.
    Retry {
        /// The run's id.
        run: String,
        /// Follow the run until it ends; the exit code is its outcome.
        #[arg(long)]
        follow: bool,
    },
    /// Rerun a finished run from a step, as a new run (what is upstream is copied).
    Rerun {
        /// The run's id.
        run: String,
        /// The step that runs again, with everything downstream of it.
        #[arg(long)]
        from: String,
        /// Follow the new run until it ends; the exit code is its outcome.
        #[arg(long)]
        follow: bool,
    },
    /// Pause a run: nothing new starts until it is resumed.
    Pause {
        /// The run's id.
        run: String,
    },
    /// Resume a paused run.
    Resume {
        /// The run's id.
        run: String,
    },
    /// Every attempt of one step: outcome, error and the log its plugin wrote.
    Logs {
        /// The run's id.
        run: String,
        /// The step's key (`deploy`, `fan#3`, …).
        step: String,
    },
}

/// `csmp approvals …`.
#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// What waits on your role: approval steps and request gates.
    List,
    /// Approve a request (`req-…`) or a run's approval step (`run-… STEP`).
    Approve {
        /// A request id, or a run id followed by the step.
        id: String,
        /// The step, when `id` is a run.
        step: Option<String>,
        /// Why (kept with a request's decision).
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a request (`req-…`) or a run's approval step (`run-… STEP`).
    Reject {
        /// A request id, or a run id followed by the step.
        id: String,
        /// The step, when `id` is a run.
        step: Option<String>,
        /// Why (kept with a request's decision).
        #[arg(long)]
        comment: Option<String>,
    },
}

/// `csmp requests …`.
#[derive(Debug, Subcommand)]
pub enum RequestsCommand {
    /// Catalog requests, newest first.
    List {
        /// How many (1–200).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One request.
    Show {
        /// The request's id.
        request: String,
    },
}

fn labels(pairs: &[String]) -> Result<serde_json::Map<String, Value>, Failure> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .ok_or_else(|| Failure::Other(format!("`--label {p}` is not KEY=VALUE")))
        })
        .collect()
}

fn run_rows(items: &Value) -> Vec<Vec<String>> {
    items
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                text(&r["id"]),
                format!("{}@{}", text(&r["workflow"]), text(&r["version"])),
                text(&r["tenant"]),
                text(&r["status"]),
                text(&r["created_at"]),
                r["labels"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", text(v)))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default(),
            ]
        })
        .collect()
}

/// Exit codes: 0 done (a followed run succeeded), 1 a followed run did not succeed, 2 the call
/// failed or was refused.
fn finish(result: Result<Option<String>, Failure>) -> ExitCode {
    match result {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(status)) if status == "succeeded" => ExitCode::SUCCESS,
        Ok(Some(_)) => ExitCode::FAILURE,
        Err(f) => {
            f.print();
            ExitCode::from(2)
        }
    }
}

/// `csmp runs …`.
pub fn runs(server: &Server, command: RunsCommand) -> ExitCode {
    finish(runs_inner(server, command))
}

fn runs_inner(server: &Server, command: RunsCommand) -> Result<Option<String>, Failure> {
    let api = Api::new(server)?;
    match command {
        RunsCommand::List {
            status,
            workflow,
            tenant,
            labels,
            created_after,
            created_before,
            limit,
        } => {
            let mut query = vec![format!("limit={limit}")];
            for (k, v) in [
                ("status", status),
                ("workflow", workflow),
                ("tenant", tenant),
                ("created_after", created_after),
                ("created_before", created_before),
            ] {
                if let Some(v) = v {
                    query.push(format!("{k}={}", encode(&v)));
                }
            }
            if !labels.is_empty() {
                query.push(format!("label={}", encode(&labels.join(","))));
            }
            let list = api.call("GET", &format!("/v1/runs?{}", query.join("&")), None)?;
            if server.json {
                println!("{}", pretty(&list));
            } else {
                table(
                    &["id", "workflow", "tenant", "status", "created", "labels"],
                    &run_rows(&list["items"]),
                );
            }
            Ok(None)
        }
        RunsCommand::Show { run, follow } => {
            if follow {
                return api.follow(&run).map(Some);
            }
            let r = api.call("GET", &format!("/v1/runs/{}", encode(&run)), None)?;
            if server.json {
                println!("{}", pretty(&r));
                return Ok(None);
            }
            println!(
                "run {} of {}@{} for {}: {}{}",
                text(&r["id"]),
                text(&r["workflow"]),
                text(&r["version"]),
                text(&r["tenant"]),
                text(&r["status"]),
                r["error"]
                    .as_str()
                    .map(|e| format!(" — {e}"))
                    .unwrap_or_default()
            );
            let rows: Vec<Vec<String>> = r["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    vec![
                        text(&s["key"]),
                        text(&s["status"]),
                        text(&s["attempts"]),
                        text(&s["started_at"]),
                        text(&s["finished_at"]),
                        s["error"].as_str().unwrap_or("").to_string(),
                    ]
                })
                .collect();
            table(
                &["step", "status", "attempts", "started", "finished", "error"],
                &rows,
            );
            if let Some(o) = r.get("outputs").filter(|o| !o.is_null()) {
                println!("outputs: {}", pretty(o));
            }
            Ok(None)
        }
        RunsCommand::Start {
            workflow,
            workflow_version: version,
            input,
            inputs,
            tenant,
            labels: label_args,
            idempotency_key,
            follow,
        } => {
            let inputs = super::run::inputs(&input, inputs.as_deref())?;
            let mut body = json!({ "workflow": workflow, "inputs": inputs });
            if let Some(v) = version {
                body["version"] = json!(v);
            }
            if let Some(t) = tenant {
                body["tenant"] = json!(t);
            }
            if !label_args.is_empty() {
                body["labels"] = Value::Object(labels(&label_args)?);
            }
            let started =
                api.call_keyed("POST", "/v1/runs", Some(&body), idempotency_key.as_deref())?;
            let id = text(&started["id"]);
            if server.json && !follow {
                println!("{}", pretty(&started));
            } else {
                println!("started run {id} of {}", text(&started["workflow"]));
            }
            if follow {
                return api.follow(&id).map(Some);
            }
            Ok(None)
        }
        RunsCommand::Cancel { run, no_compensate } => {
            let r = api.call(
                "POST",
                &format!("/v1/runs/{}/cancel", encode(&run)),
                Some(&json!({ "compensate": !no_compensate })),
            )?;
            say(server, &r, &format!("run {run} is {}", text(&r["status"])));
            Ok(None)
        }
        RunsCommand::Retry { run, follow } => {
            let r = api.call("POST", &format!("/v1/runs/{}/retry", encode(&run)), None)?;
            say(
                server,
                &r,
                &format!("run {run} is {} again", text(&r["status"])),
            );
            if follow {
                return api.follow(&run).map(Some);
            }
            Ok(None)
        }
        RunsCommand::Rerun { run, from, follow } => {
            let r = api.call(
                "POST",
                &format!("/v1/runs/{}/rerun", encode(&run)),
                Some(&json!({ "from": from })),
            )?;
            let new = text(&r["id"]);
            say(
                server,
                &r,
                &format!("started run {new}, rerunning {run} from {from}"),
            );
            if follow {
                return api.follow(&new).map(Some);
            }
            Ok(None)
        }
        RunsCommand::Pause { run } => {
            let r = api.call("POST", &format!("/v1/runs/{}/pause", encode(&run)), None)?;
            say(server, &r, &format!("run {run} is {}", text(&r["status"])));
            Ok(None)
        }
        RunsCommand::Resume { run } => {
            let r = api.call("POST", &format!("/v1/runs/{}/resume", encode(&run)), None)?;
            say(server, &r, &format!("run {run} is {}", text(&r["status"])));
            Ok(None)
        }
        RunsCommand::Logs { run, step } => {
            let d = api.call(
                "GET",
                &format!("/v1/runs/{}/steps/{}", encode(&run), encode(&step)),
                None,
            )?;
            if server.json {
                println!("{}", pretty(&d));
                return Ok(None);
            }
            println!("{} of run {run}: {}", text(&d["key"]), text(&d["status"]));
            for a in d["history"].as_array().into_iter().flatten() {
                println!(
                    "attempt {} {} → {}: {}{}",
                    text(&a["attempt"]),
                    text(&a["started_at"]),
                    text(&a["finished_at"]),
                    text(&a["outcome"]),
                    a["error"]
                        .as_str()
                        .map(|e| format!(" — {e}"))
                        .unwrap_or_default()
                );
                for line in a["log"].as_str().unwrap_or("").lines() {
                    println!("  | {line}");
                }
            }
            Ok(None)
        }
    }
}

fn say(server: &Server, answer: &Value, line: &str) {
    if server.json {
        println!("{}", pretty(answer));
    } else {
        println!("{line}");
    }
}

/// `csmp approvals …`.
pub fn approvals(server: &Server, command: ApprovalsCommand) -> ExitCode {
    finish(approvals_inner(server, command))
}

fn approvals_inner(server: &Server, command: ApprovalsCommand) -> Result<Option<String>, Failure> {
    let api = Api::new(server)?;
    let (id, step, comment, approved) = match command {
        ApprovalsCommand::List => {
            let list = api.call("GET", "/v1/approvals", None)?;
            if server.json {
                println!("{}", pretty(&list));
                return Ok(None);
            }
            let rows: Vec<Vec<String>> = list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|w| {
                    let what = match w["kind"].as_str() {
                        Some("step") => format!("{} {}", text(&w["run_id"]), text(&w["step"])),
                        _ => text(&w["request_id"]),
                    };
                    let about = match w["kind"].as_str() {
                        Some("step") => w["message"]
                            .as_str()
                            .map_or_else(|| text(&w["workflow"]), String::from),
                        _ => format!("order of {}", text(&w["catalog_id"])),
                    };
                    vec![what, text(&w["tenant"]), text(&w["waiting_since"]), about]
                })
                .collect();
            table(&["waiting", "tenant", "since", "about"], &rows);
            return Ok(None);
        }
        ApprovalsCommand::Approve { id, step, comment } => (id, step, comment, true),
        ApprovalsCommand::Reject { id, step, comment } => (id, step, comment, false),
    };
    let verb = if approved { "approved" } else { "rejected" };
    match step {
        Some(step) => {
            let r = api.call(
                "POST",
                &format!("/v1/runs/{}/approvals/{}", encode(&id), encode(&step)),
                Some(&json!({ "approved": approved })),
            )?;
            say(server, &r, &format!("{verb} step {step} of run {id}"));
        }
        None if id.starts_with("run-") => {
            return Err(Failure::Other(format!(
                "`{id}` is a run: name its approval step too (`csmp approvals list` shows it)"
            )));
        }
        None => {
            let r = api.call(
                "POST",
                &format!("/v1/requests/{}/approval", encode(&id)),
                Some(&json!({ "approved": approved, "comment": comment })),
            )?;
            say(
                server,
                &r,
                &format!("{verb} request {id}; it is {}", text(&r["status"])),
            );
        }
    }
    Ok(None)
}

/// `csmp requests …`.
pub fn requests(server: &Server, command: RequestsCommand) -> ExitCode {
    finish(requests_inner(server, command))
}

fn requests_inner(server: &Server, command: RequestsCommand) -> Result<Option<String>, Failure> {
    let api = Api::new(server)?;
    match command {
        RequestsCommand::List { limit } => {
            let list = api.call("GET", &format!("/v1/requests?limit={limit}"), None)?;
            if server.json {
                println!("{}", pretty(&list));
                return Ok(None);
            }
            let rows: Vec<Vec<String>> = list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    vec![
                        text(&r["id"]),
                        text(&r["catalog_id"]),
                        text(&r["tenant"]),
                        text(&r["status"]),
                        text(&r["run_id"]),
                        text(&r["created_at"]),
                    ]
                })
                .collect();
            table(
                &["id", "entry", "tenant", "status", "run", "created"],
                &rows,
            );
        }
        RequestsCommand::Show { request } => {
            let r = api.call("GET", &format!("/v1/requests/{}", encode(&request)), None)?;
            println!("{}", pretty(&r));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_line_is_well_formed() {
        // clap checks names, flags and defaults of every subcommand here, not only when a
        // user first runs the one that is wrong.
        use clap::CommandFactory as _;
        super::super::Cli::command().debug_assert();
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("team=db,tier=1"), "team%3Ddb%2Ctier%3D1");
        assert_eq!(encode("run-1a"), "run-1a");
    }

    #[test]
    fn labels_must_be_pairs() {
        assert!(labels(&["a=1".into()]).is_ok());
        assert!(matches!(labels(&["a".into()]), Err(Failure::Other(_))));
    }
}
