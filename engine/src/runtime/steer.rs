//! What callers ask of the executor: the commands on its queue, and the steers of a run or an
//! incident that the holder of its partition applies (forwarded as JSON through the inbox when
//! another process took the call).

use serde_json::Value as Json;
use tokio::sync::oneshot;

use super::{EngineError, NewRun, OrderStart, Submission};
use crate::plan::Plan;
use crate::store::{AuditRow, IncidentRow};

/// What a person does to an incident through the API.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum IncidentSteer {
    /// Someone is on it (an opening run waiting for the signal `ack` gets it; escalations
    /// of it end).
    Acknowledge,
    /// It is over (escalations of it end).
    Resolve,
    /// It is back: a resolved incident is triggered again.
    Reopen,
    /// A timeline entry, nothing else: internal, or a public update its tenant sees.
    Note {
        /// Whether the incident's tenant sees it.
        public: bool,
    },
    /// Ticket fields changed (checked by `incidents::check` first).
    Edit {
        /// The changes.
        edit: Box<crate::incidents::Edit>,
    },
}

/// What callers ask of a run or an incident. The process holding its partition applies it;
/// another process forwards it there through the inbox (as JSON) and waits for the answer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Steer {
    /// A new run another process wrote into a partition held here: execute it.
    Start { run_id: String },
    /// Deliver a signal (and write the alert links with it).
    Signal {
        run_id: String,
        name: String,
        payload: Json,
        audit: Option<AuditRow>,
        #[serde(default)]
        also: Vec<crate::store::AlertLink>,
    },
    /// Decide a waiting approval step.
    Approve {
        run_id: String,
        step: String,
        approved: bool,
        by: String,
        audit: Option<AuditRow>,
    },
    /// Cancel a run.
    Cancel {
        run_id: String,
        compensate: bool,
        audit: Option<AuditRow>,
    },
    /// Pause (`true`) or resume (`false`) a run.
    Pause {
        run_id: String,
        pause: bool,
        audit: Option<AuditRow>,
    },
    /// Retry a failed run in place.
    Retry {
        run_id: String,
        by: String,
        audit: Option<AuditRow>,
    },
    /// Rerun a finished run from a step, as a new run.
    Rerun {
        run_id: String,
        from: String,
        by: String,
        audit: Option<AuditRow>,
    },
    /// What an `incident:` step or an escalation of another process changes on an incident
    /// held here (nobody waits for the answer).
    IncidentChange {
        id: String,
        change: crate::incidents::Change,
        by: String,
    },
    /// Acknowledge, resolve, reopen, annotate or edit an incident.
    Incident {
        id: String,
        action: IncidentSteer,
        by: String,
        note: Option<String>,
        audit: Option<AuditRow>,
    },
}

impl Steer {
    /// What it is about: a run or an incident id.
    pub(crate) fn target(&self) -> &str {
        match self {
            Steer::Start { run_id }
            | Steer::Signal { run_id, .. }
            | Steer::Approve { run_id, .. }
            | Steer::Cancel { run_id, .. }
            | Steer::Pause { run_id, .. }
            | Steer::Retry { run_id, .. }
            | Steer::Rerun { run_id, .. } => run_id,
            Steer::Incident { id, .. } | Steer::IncidentChange { id, .. } => id,
        }
    }
}

/// What a steer gave back, once committed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "done", rename_all = "snake_case")]
pub(crate) enum Done {
    /// Nothing to tell but that it happened.
    Nothing,
    /// A new run (a rerun).
    Run { id: String },
    /// The incident as committed.
    Incident { row: Box<IncidentRow> },
}

pub(crate) enum Command {
    /// A run to start, and the request it fulfils (marked started in the same commit).
    Submit {
        run: NewRun,
        request: Option<OrderStart>,
        extras: Submission,
        reply: oneshot::Sender<Result<String, EngineError>>,
    },
    /// A workflow version to make runnable.
    Define(Box<Plan>, oneshot::Sender<Result<(), EngineError>>),
    /// Something asked of a run or an incident.
    Steer {
        steer: Steer,
        reply: oneshot::Sender<Result<Done, EngineError>>,
    },
    /// An incident opened outside any run (an alert rule's action, a failing check), with the
    /// alert links committed alongside it.
    OpenIncident {
        row: Box<IncidentRow>,
        also: Vec<crate::store::AlertLink>,
        reply: oneshot::Sender<Result<IncidentRow, EngineError>>,
    },
    /// Forget every version of a workflow no unfinished run uses.
    Undefine(String, oneshot::Sender<Result<(), EngineError>>),
    /// A secret set or changed: attempts dispatched from now on get it, and it is masked.
    SetSecret {
        name: String,
        value: String,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Answered after the next turn has committed.
    Sync(oneshot::Sender<Result<(), EngineError>>),
    Shutdown(oneshot::Sender<()>),
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Submit { .. } => "Submit",
            Command::Define(..) => "Define",
            Command::SetSecret { .. } => "SetSecret",
            Command::Steer { .. } => "Steer",
            Command::OpenIncident { .. } => "OpenIncident",
            Command::Undefine(..) => "Undefine",
            Command::Sync(_) => "Sync",
            Command::Shutdown(_) => "Shutdown",
        })
    }
}
