//! `csmp incidents …`: incidents on a running service — list, show, acknowledge, resolve,
//! reopen, annotate, and export the post-incident review.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use super::remote::Server;
use super::remote_client::{Api, Failure, encode, pretty, table, text};

/// `csmp incidents …`.
#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    /// Incidents, newest first.
    List {
        /// How many (1–200).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One incident with its timeline.
    Show {
        /// The incident (`inc-…`).
        id: String,
    },
    /// Acknowledge: you are on it, and its escalation stops.
    Ack {
        /// The incident.
        id: String,
        /// A note for the timeline.
        #[arg(long)]
        note: Option<String>,
    },
    /// Resolve it.
    Resolve {
        /// The incident.
        id: String,
        /// A note for the timeline.
        #[arg(long)]
        note: Option<String>,
    },
    /// Reopen a resolved incident.
    Reopen {
        /// The incident.
        id: String,
        /// A note for the timeline.
        #[arg(long)]
        note: Option<String>,
    },
    /// Add a note to its timeline (internal unless --public).
    Note {
        /// The incident.
        id: String,
        /// The note.
        text: String,
        /// A status update the incident's tenant sees.
        #[arg(long)]
        public: bool,
    },
    /// The post-incident review, as Markdown (or the API's JSON with --json).
    Review {
        /// The incident.
        id: String,
        /// Write it to this file instead of standard output.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// `csmp incidents …`.
pub fn incidents(server: &Server, command: IncidentsCommand) -> ExitCode {
    match incidents_inner(server, command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            f.print();
            ExitCode::from(2)
        }
    }
}

fn line(i: &Value) -> String {
    format!(
        "incident {} is {} ({}): {}",
        text(&i["id"]),
        text(&i["status"]),
        text(&i["severity"]),
        text(&i["title"])
    )
}

fn incidents_inner(server: &Server, command: IncidentsCommand) -> Result<(), Failure> {
    let api = Api::new(server)?;
    let print = |v: &Value, human: String| {
        if server.json {
            println!("{}", pretty(v));
        } else {
            println!("{human}");
        }
    };
    let steer = |id: &str, action: &str, body: Value| -> Result<(), Failure> {
        let r = api.call(
            "POST",
            &format!("/v1/incidents/{}/{action}", encode(id)),
            Some(&body),
        )?;
        print(&r, line(&r));
        Ok(())
    };
    match command {
        IncidentsCommand::List { limit } => {
            let list = api.call("GET", &format!("/v1/incidents?limit={limit}"), None)?;
            if server.json {
                println!("{}", pretty(&list));
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| {
                    vec![
                        text(&i["id"]),
                        text(&i["status"]),
                        text(&i["severity"]),
                        text(&i["service"]),
                        text(&i["created_at"]),
                        text(&i["title"]),
                    ]
                })
                .collect();
            table(
                &[
                    "incident", "status", "severity", "service", "opened", "title",
                ],
                &rows,
            );
        }
        IncidentsCommand::Show { id } => {
            let i = api.call("GET", &format!("/v1/incidents/{}", encode(&id)), None)?;
            let mut human = line(&i);
            for e in i["timeline"].as_array().into_iter().flatten() {
                human.push_str(&format!(
                    "\n  {}  {:<24} {}",
                    text(&e["at"]),
                    text(&e["by"]),
                    text(&e["note"])
                ));
            }
            print(&i, human);
        }
        IncidentsCommand::Ack { id, note } => steer(&id, "acknowledge", json!({ "note": note }))?,
        IncidentsCommand::Resolve { id, note } => steer(&id, "resolve", json!({ "note": note }))?,
        IncidentsCommand::Reopen { id, note } => steer(&id, "reopen", json!({ "note": note }))?,
        IncidentsCommand::Note { id, text, public } => {
            steer(&id, "notes", json!({ "note": text, "public": public }))?;
        }
        IncidentsCommand::Review { id, output } => {
            let path = format!("/v1/incidents/{}/review", encode(&id));
            let body = if server.json {
                pretty(&api.call("GET", &path, None)?)
            } else {
                api.get_text(&path, "text/markdown")?
            };
            match output {
                Some(file) => {
                    std::fs::write(&file, &body).map_err(|e| {
                        Failure::Other(format!("cannot write {}: {e}", file.display()))
                    })?;
                    eprintln!("wrote the review of {id} to {}", file.display());
                }
                None => print!("{body}"),
            }
        }
    }
    Ok(())
}
