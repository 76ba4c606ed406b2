//! Executing validated plans durably.
//!
//! One task (the executor loop, `executor.rs`) owns every active run's state. Each turn it
//! takes everything that happened — plugin results, commands, due timers — advances the runs,
//! writes all resulting transitions in **one** transaction (group commit), and only then
//! dispatches new plugin attempts and answers callers. So: a caller told "accepted" finds the
//! run on disk; a step's recorded completion is never re-run; a crash at any instant loses at
//! most attempts in flight, which recovery runs again (at least once, same idempotency key).
//!
//! Knows plans, the store's methods and the plugin host's call; knows no SQL and no HTTP.

mod clock;
pub(crate) mod cluster;
mod cron;
mod definitions;
mod events;
mod executor;
mod health;
mod mailbox;
mod metrics;
mod observe;
mod scope;
mod steer;
mod watch;
mod workers;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;
use tokio::sync::{broadcast, mpsc, oneshot};

pub use clock::{Clock, ManualClock, Sleep, TokioClock};
pub use cluster::Held;
pub(crate) use cluster::channel;
pub use definitions::{Definitions, Unplanned};
pub use health::{Fault, Health};
pub use metrics::{Metrics, MetricsSnapshot, RUN_SECONDS_BUCKETS};
pub use observe::AttemptObserver;
pub use steer::IncidentSteer;
pub(crate) use steer::{Command, Done, Steer};
pub use watch::Watch;

use crate::plan::Plan;
use crate::plugin::PluginHost;
use crate::store::{AuditRow, IncidentRow, RunStatus, Store, StoreError};

/// Commands (submits, signals, approvals, …) waiting for the executor at most; past it callers
/// are refused at once (the API answers 503 with `Retry-After`) instead of queueing without
/// bound.
pub const COMMAND_QUEUE: usize = 4096;

/// Which partitions an executor holds, and so which runs it executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// An equal share of the shared partitions with the other live executors on the database
    /// (all of them when alone), taken over from processes that are gone and handed back when
    /// others join; and the private partitions of `csmp run` processes that are gone. A
    /// service.
    Shared,
    /// A partition of its own for the runs it starts, and nothing else (`csmp run`).
    Private,
    /// No partition: every run it starts and every command it takes goes to the process that
    /// holds the partition (an API-only process).
    Nothing,
}

/// How the executor runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This process's name in leases; unique among the processes sharing a database.
    pub owner: String,
    /// How long a partition's lease lasts without renewal: a process gone for longer has its
    /// partitions taken over (within this plus a third of it, the renewal interval).
    pub lease: Duration,
    /// Which partitions it holds.
    pub ownership: Ownership,
    /// What it is called among the members (`all`, `executor`, `api`, `run`).
    pub role: &'static str,
    /// Secret values by name, handed to templates and plugins at dispatch; never stored.
    pub secrets: BTreeMap<String, String>,
    /// Whether the cron triggers of the loaded workflows fire (while this process holds the
    /// cron partition; `csmp run`, which runs one workflow, turns them off).
    pub cron: bool,
    /// Commands that may wait for the loop at once (default [`COMMAND_QUEUE`]).
    pub command_queue: usize,
    /// Told when worker threads start and end plugin attempts (the benchmark's stopwatch).
    pub observer: Option<Arc<dyn AttemptObserver>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            owner: format!("csmp-{}", std::process::id()),
            lease: Duration::from_secs(10),
            ownership: Ownership::Shared,
            role: "all",
            secrets: BTreeMap::new(),
            cron: true,
            command_queue: COMMAND_QUEUE,
            observer: None,
        }
    }
}

/// A run to start.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Workflow name.
    pub workflow: String,
    /// Pinned version, or the newest.
    pub version: Option<u32>,
    /// The run's inputs (checked against the workflow's schema).
    pub inputs: Json,
    /// The tenant it runs for.
    pub tenant: String,
    /// Who asked.
    pub requester: Option<String>,
    /// The partition it must live in (the escalation of an incident lives with the incident);
    /// `None`: one this process holds when it holds any, else its id's.
    pub partition: Option<i64>,
}

/// The tenant of runs started for the provider itself: scheduled runs, runs started over the
/// API without a tenant, runs of alerts no tenant sent.
pub const PROVIDER: &str = "provider";

/// The catalog request a run fulfils.
#[derive(Debug, Clone)]
pub(crate) enum OrderStart {
    /// Stored already (approved, or accepted before a restart): marked started.
    Stored(String),
    /// Stored with the run, in its commit.
    New(Box<crate::store::RequestRow>),
}

/// What a run started over the API carries besides its inputs, written in the commit that
/// creates it.
#[derive(Debug, Clone, Default)]
pub struct Submission {
    /// Key/value labels kept with the run (runs are filtered by them).
    pub labels: std::collections::BTreeMap<String, String>,
    /// The Idempotency-Key it was started with.
    pub key: Option<crate::store::RunKey>,
    /// The audit entry of the call that started it.
    pub audit: Option<AuditRow>,
}

/// What went wrong, by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No such workflow (or version).
    #[error("workflow `{0}` is not loaded")]
    UnknownWorkflow(String),
    /// No such run.
    #[error("run `{0}` does not exist")]
    UnknownRun(String),
    /// No such incident.
    #[error("incident `{0}` does not exist")]
    UnknownIncident(String),
    /// The request does not fit the run's state (approving a step that is not waiting, …).
    #[error("{0}")]
    Conflict(String),
    /// Inputs violate the workflow's schema; each entry is `pointer: message`.
    #[error("inputs do not match the workflow's schema: {}", .0.join("; "))]
    InvalidInputs(Vec<String>),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database is failing now; the executor retries on its own, so retry later.
    #[error("the database is failing ({0}); the executor retries on its own, try again shortly")]
    Unavailable(String),
    /// The executor has stopped.
    #[error("the executor has stopped")]
    Stopped,
    /// A command forwarded to the process holding the partition of its run or incident was not
    /// answered in time: it stays queued and is applied when that process (or the next holder,
    /// after a failover) takes it.
    #[error(
        "the process holding partition {0} has not applied this yet (it may be failing over); it stays queued and will be applied, so do not send it again — follow the run or incident to see it happen"
    )]
    Unanswered(i64),
    /// The executor's queue of commands is full; retry shortly.
    #[error("the executor has {0} commands waiting already; retry shortly")]
    Busy(usize),
}

/// Something that happened to a run, for progress displays and event streams.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunEvent {
    /// The run.
    pub run_id: String,
    /// The step key, or `None` for the run itself.
    pub step: Option<String>,
    /// The new status (`running`, `succeeded`, …).
    pub status: String,
    /// Error text, when failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The run's outputs, on the event of a run that succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Json>,
}

/// A handle on the running executor. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    /// Commands to the loop.
    commands: mpsc::Sender<Command>,
    /// Run and step transitions, after they are committed.
    events: broadcast::Sender<RunEvent>,
    /// The store, for reads.
    store: Store,
    /// Channels of the runs somebody follows.
    followers: Arc<events::Followers>,
    /// What keeps the executor from progressing.
    health: Arc<Health>,
    /// The executor's counters.
    metrics: Arc<Metrics>,
    /// Cancelled at shutdown (see `executor/commit.rs`).
    stopping: tokio_util::sync::CancellationToken,
    /// People, schedules and escalation policies in force, read by `escalate:` units.
    oncall: OnCallSet,
    /// The partitions this process holds now.
    held: Arc<Held>,
    /// This process's lease name.
    owner: String,
    /// How long a partition's lease lasts.
    lease: Duration,
    /// Rung when another process took alerts (for the one acting on alert groups).
    alerts: Arc<tokio::sync::Notify>,
    /// Rung when another process changed definitions.
    redefined: Arc<tokio::sync::Notify>,
}

/// The on-call set in force, shared by the API and the executor.
pub(crate) type OnCallSet = Arc<std::sync::RwLock<Arc<crate::oncall::OnCall>>>;

impl Engine {
    /// Starts the executor: recovers every unfinished run, then serves commands.
    pub async fn start(
        store: Store,
        host: PluginHost,
        definitions: Definitions,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Result<Self, EngineError> {
        let (commands, rx) = mpsc::channel(config.command_queue.max(1));
        let (owner, lease) = (config.owner.clone(), config.lease);
        let (events, _) = broadcast::channel(4096);
        let health = Arc::new(Health::default());
        let metrics = Arc::new(Metrics::default());
        let followers = Arc::new(events::Followers::default());
        let stopping = tokio_util::sync::CancellationToken::new();
        let oncall = OnCallSet::default();
        let held = Arc::new(Held::default());
        let mailbox =
            mailbox::Mailbox::start(store.clone(), stopping.clone(), Arc::clone(&metrics));
        let bell = Arc::new(tokio::sync::Notify::new());
        let alerts = Arc::new(tokio::sync::Notify::new());
        let members = Arc::new(tokio::sync::Notify::new());
        let redefined = Arc::new(tokio::sync::Notify::new());
        cluster::listen(
            &store, &mailbox, &bell, &alerts, &members, &redefined, &stopping,
        )
        .await;
        let exec = executor::Executor::recover(
            store.clone(),
            host,
            Arc::new(definitions),
            clock,
            config,
            executor::Shared {
                events: events.clone(),
                health: Arc::clone(&health),
                metrics: Arc::clone(&metrics),
                followers: Arc::clone(&followers),
                stopping: stopping.clone(),
                oncall: Arc::clone(&oncall),
                held: Arc::clone(&held),
                mailbox,
                bell,
                members,
            },
        )
        .await?;
        tokio::spawn(exec.run(rx));
        Ok(Self {
            commands,
            events,
            store,
            health,
            metrics,
            followers,
            stopping,
            oncall,
            held,
            owner,
            lease,
            alerts,
            redefined,
        })
    }

    /// Tells the other processes that definitions changed here (after the change's commit;
    /// off the caller's path).
    pub fn announce_definitions(&self) {
        cluster::wake_others(&self.store, vec![(channel::DEFINITIONS, String::new())]);
    }

    /// Resolves when another process changed definitions (rung by its notification).
    pub async fn definitions_changed_elsewhere(&self) {
        self.redefined.notified().await;
    }

    /// Tells the process acting on alert groups that alerts were taken here (after their
    /// commit; off the caller's path). Nothing when this process is that one.
    pub fn announce_alerts(&self) {
        if !self.leads() {
            cluster::wake_others(&self.store, vec![(channel::ALERTS, String::new())]);
        }
    }

    /// Resolves when another process took alerts (rung by its notification).
    pub async fn alerts_taken_elsewhere(&self) {
        self.alerts.notified().await;
    }

    /// This process's lease name.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// How long a partition's lease lasts, in ms.
    pub fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// The partitions this process holds now.
    pub fn held(&self) -> &Arc<Held> {
        &self.held
    }

    /// Whether this process holds the partition whose holder fires cron triggers and does the
    /// service's other one-at-a-time duties (acting on alert groups, probing checks, watching
    /// burn rates).
    pub fn leads(&self) -> bool {
        self.held.holds(crate::store::CRON_PARTITION)
    }

    /// People, teams, schedules and escalation policies in force.
    pub fn oncall(&self) -> Arc<crate::oncall::OnCall> {
        Arc::clone(
            &self
                .oncall
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Puts people, teams, schedules and escalation policies in force: escalations under way
    /// page from the next level on with the new set.
    pub fn set_oncall(&self, set: crate::oncall::OnCall) {
        *self
            .oncall
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
    }

    /// Sends a command that changes something and waits for its commit; refused at once
    /// while the database is failing, rather than left waiting for it to come back.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> Command,
    ) -> Result<T, EngineError> {
        if let Some(fault) = self.health.storage_fault() {
            return Err(EngineError::Unavailable(fault.reason));
        }
        self.send(make).await
    }

    async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> Command,
    ) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.commands.try_send(make(tx)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => EngineError::Busy(self.commands.max_capacity()),
            mpsc::error::TrySendError::Closed(_) => EngineError::Stopped,
        })?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Starts a run. When this returns `Ok`, the run is on disk.
    pub async fn submit(&self, run: NewRun) -> Result<String, EngineError> {
        self.submit_with(run, Submission::default()).await
    }

    /// Starts a run with its labels, Idempotency-Key and audit entry, all written in the
    /// commit that creates it.
    pub async fn submit_with(
        &self,
        run: NewRun,
        extras: Submission,
    ) -> Result<String, EngineError> {
        self.ask(|reply| Command::Submit {
            run,
            request: None,
            extras,
            reply,
        })
        .await
    }

    /// Starts the run fulfilling a stored request; the request is marked started in the same
    /// commit that creates the run, so a request never gets two runs.
    pub async fn submit_for_request(
        &self,
        run: NewRun,
        request_id: &str,
        audit: Option<AuditRow>,
    ) -> Result<String, EngineError> {
        self.ask(|reply| Command::Submit {
            run,
            request: Some(OrderStart::Stored(request_id.into())),
            extras: Submission {
                audit,
                ..Submission::default()
            },
            reply,
        })
        .await
    }

    /// Stores a new order and starts its run in one commit (with the call's audit entry): the
    /// request is written `started`, with the run's id. When this returns `Ok`, both are on
    /// disk; on `Err`, neither is.
    pub async fn submit_order(
        &self,
        run: NewRun,
        request: crate::store::RequestRow,
        audit: Option<AuditRow>,
    ) -> Result<String, EngineError> {
        self.ask(|reply| Command::Submit {
            run,
            request: Some(OrderStart::New(Box::new(request))),
            extras: Submission {
                audit,
                ..Submission::default()
            },
            reply,
        })
        .await
    }

    /// Sets a secret for the attempts dispatched from now on; the value is masked in
    /// everything they let out and in the service log. Storing it is the caller's job
    /// (`vault`).
    pub async fn set_secret(&self, name: &str, value: &str) -> Result<(), EngineError> {
        let (name, value) = (name.to_string(), value.to_string());
        self.send(|reply| Command::SetSecret { name, value, reply })
            .await
    }

    /// Makes a validated workflow version runnable from now on (store it first).
    pub async fn define(&self, plan: Plan) -> Result<(), EngineError> {
        self.send(|reply| Command::Define(Box::new(plan), reply))
            .await
    }

    /// Forgets every version of workflow `name` (its cron triggers are disarmed); a conflict
    /// while an unfinished run uses it. Deleting it from the store is the caller's job.
    pub async fn undefine(&self, name: &str) -> Result<(), EngineError> {
        let name = name.to_string();
        self.ask(|reply| Command::Undefine(name, reply)).await
    }

    /// Applies `steer` where its run or incident lives (here, or through the inbox of the
    /// process holding its partition) and waits for its commit.
    async fn steer(&self, steer: Steer) -> Result<Done, EngineError> {
        self.ask(|reply| Command::Steer { steer, reply }).await
    }

    /// Acknowledges, resolves or annotates an incident; returns it as committed.
    pub async fn steer_incident(
        &self,
        id: &str,
        action: IncidentSteer,
        by: &str,
        note: Option<String>,
        audit: Option<AuditRow>,
    ) -> Result<IncidentRow, EngineError> {
        match self
            .steer(Steer::Incident {
                id: id.into(),
                action,
                by: by.into(),
                note,
                audit,
            })
            .await?
        {
            Done::Incident { row } => Ok(*row),
            other => Err(EngineError::Conflict(format!(
                "incident `{id}`: unexpected answer {other:?}"
            ))),
        }
    }

    /// Delivers a named signal to a run; a `signal:` step waiting for it (now or later) takes it.
    pub async fn signal(
        &self,
        run_id: &str,
        name: &str,
        payload: Json,
        audit: Option<AuditRow>,
    ) -> Result<(), EngineError> {
        self.steer(Steer::Signal {
            run_id: run_id.into(),
            name: name.into(),
            payload,
            audit,
            also: Vec::new(),
        })
        .await
        .map(drop)
    }

    /// Delivers a signal with writes of the caller's committed in the same transaction (an
    /// alert marked as delivered: it reaches the run exactly once).
    pub async fn signal_with(
        &self,
        run_id: &str,
        name: &str,
        payload: Json,
        also: Vec<crate::store::AlertLink>,
    ) -> Result<(), EngineError> {
        self.steer(Steer::Signal {
            run_id: run_id.into(),
            name: name.into(),
            payload,
            audit: None,
            also,
        })
        .await
        .map(drop)
    }

    /// Opens an incident no run owns (an alert rule's action), with `also` in its commit;
    /// returns it as committed.
    pub async fn open_incident(
        &self,
        row: IncidentRow,
        also: Vec<crate::store::AlertLink>,
    ) -> Result<IncidentRow, EngineError> {
        self.ask(|reply| Command::OpenIncident {
            row: Box::new(row),
            also,
            reply,
        })
        .await
    }

    /// Decides an `approval:` step that is waiting.
    pub async fn approve(
        &self,
        run_id: &str,
        step: &str,
        approved: bool,
        by: &str,
        audit: Option<AuditRow>,
    ) -> Result<(), EngineError> {
        self.steer(Steer::Approve {
            run_id: run_id.into(),
            step: step.into(),
            approved,
            by: by.into(),
            audit,
        })
        .await
        .map(drop)
    }

    /// Cancels a run: running plugin attempts are interrupted and nothing new of the run
    /// starts; then the compensations of what it completed run, newest first, and its
    /// `on_failure` steps, unless `compensate` is false.
    pub async fn cancel_with(
        &self,
        run_id: &str,
        compensate: bool,
        audit: Option<AuditRow>,
    ) -> Result<(), EngineError> {
        self.steer(Steer::Cancel {
            run_id: run_id.into(),
            compensate,
            audit,
        })
        .await
        .map(drop)
    }

    /// Pauses a run (`pause`) or resumes it: a paused run dispatches nothing new — attempts
    /// running finish and are recorded, timers that fall due wait — until it is resumed; the
    /// pause is stored with the run, so it outlives a restart. Pausing a paused run changes
    /// nothing; resuming a run that is not paused, or pausing one that is over, is a conflict.
    pub async fn pause(
        &self,
        run_id: &str,
        pause: bool,
        audit: Option<AuditRow>,
    ) -> Result<(), EngineError> {
        self.steer(Steer::Pause {
            run_id: run_id.into(),
            pause,
            audit,
        })
        .await
        .map(drop)
    }

    /// Retries a failed run in place: its failed and interrupted units run again (plugin
    /// units continue their attempt history), what they held up starts after them, completed
    /// steps keep their outputs. The retry is recorded in the run's history. A run whose
    /// completed steps were compensated, or that is not `failed`, is a conflict.
    pub async fn retry(
        &self,
        run_id: &str,
        by: &str,
        audit: Option<AuditRow>,
    ) -> Result<(), EngineError> {
        self.steer(Steer::Retry {
            run_id: run_id.into(),
            by: by.into(),
            audit,
        })
        .await
        .map(drop)
    }

    /// Starts a new run of a finished run's workflow version, inputs and tenant in which step
    /// `from` and everything downstream of it run again and every other step that succeeded
    /// (or was skipped) is copied with its output; labelled `rerun-of` and `rerun-from`.
    /// Returns the new run's id once it is on disk.
    pub async fn rerun(
        &self,
        run_id: &str,
        from: &str,
        by: &str,
        audit: Option<AuditRow>,
    ) -> Result<String, EngineError> {
        match self
            .steer(Steer::Rerun {
                run_id: run_id.into(),
                from: from.into(),
                by: by.into(),
                audit,
            })
            .await?
        {
            Done::Run { id } => Ok(id),
            other => Err(EngineError::Conflict(format!(
                "run `{run_id}`: unexpected answer {other:?}"
            ))),
        }
    }

    /// [`Engine::cancel_with`] compensating.
    pub async fn cancel(&self, run_id: &str) -> Result<(), EngineError> {
        self.cancel_with(run_id, true, None).await
    }

    /// Waits for a whole executor turn that starts after this call: every timer due at the
    /// clock's time of the call has fired, and what that changed is on disk (plugin attempts
    /// it started may still be running). Lets a test that moved a [`ManualClock`] check what
    /// did, and what did not, happen.
    pub async fn sync(&self) -> Result<(), EngineError> {
        self.send(Command::Sync).await
    }

    /// What keeps the executor from progressing (for `/readyz` and `/metrics`).
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// The executor's counters and gauges (for `/metrics`).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Commands waiting for the loop now.
    pub fn queued_commands(&self) -> usize {
        self.commands.max_capacity() - self.commands.capacity()
    }

    /// Whether the executor loop is still taking commands.
    pub fn is_running(&self) -> bool {
        !self.commands.is_closed()
    }

    /// Committed transitions of every run from now on (a busy engine makes a slow reader of
    /// this lag; to follow one run, use [`Engine::follow`]).
    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.events.subscribe()
    }

    /// Committed transitions of one run from now on, ending with its last event. Subscribe
    /// before reading the run's state, so nothing committed in between is missed; a reader
    /// that lags is told so and should read the state again.
    pub fn follow(&self, run_id: &str) -> broadcast::Receiver<RunEvent> {
        self.followers.follow(run_id)
    }

    /// The store, for reading runs and steps.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Waits until the run is over and returns its final status.
    pub async fn wait(&self, run_id: &str) -> Result<RunStatus, EngineError> {
        let mut events = self.follow(run_id);
        loop {
            let row = self
                .store
                .run(run_id)
                .await?
                .ok_or_else(|| EngineError::UnknownRun(run_id.into()))?;
            if row.status.is_final() {
                return Ok(row.status);
            }
            loop {
                // Another process may execute the run (its partition is not held here): look
                // at the store again now and then.
                match tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
                    Ok(Ok(e)) if e.run_id == run_id && e.step.is_none() => break,
                    Ok(Ok(_)) => {}
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) | Err(_) => break,
                    Ok(Err(broadcast::error::RecvError::Closed)) => {
                        if self.commands.is_closed() {
                            return Err(EngineError::Stopped);
                        }
                        events = self.follow(run_id);
                        break;
                    }
                }
            }
        }
    }

    /// Says a shutdown is coming: a commit retrying against a failing database gives up now
    /// instead of holding the shutdown (callers waiting on it are told the executor stops).
    /// Everything else goes on until [`Engine::shutdown`].
    pub fn begin_shutdown(&self) {
        self.stopping.cancel();
    }

    /// Stops the loop after its current turn (everything acknowledged stays on disk).
    pub async fn shutdown(&self) {
        self.stopping.cancel();
        let (tx, rx) = oneshot::channel();
        // Waits for room rather than failing: a shutdown is never refused.
        if self.commands.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

#[cfg(test)]
mod tests;
