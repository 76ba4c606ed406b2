//! The executor loop: the single owner of every active run's state.
//!
//! Keys of the units it tracks per run: `id` (a step), `id#N` (fan-out item N of a step),
//! `~KEY` (the compensation of unit KEY), `!id` (an `on_failure` step).

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::cron::{self, CronTrigger};
use super::scope::{Extra, Scope, ScopeCache};
use super::workers::{self, Done, Job};
use super::{
    Clock, Command, Definitions, EngineConfig, EngineError, IncidentSteer, NewRun, RunEvent,
};
use crate::dsl::parse_duration;
use crate::dsl::{IncidentAction, Overlap};
use crate::plan::{Plan, PlanKind, PlanStep, WaitPlan};
use crate::plugin::{CancellationToken, FailureKind, Invocation, PluginHost, StepFailure};
use crate::store::{
    CronFire, IncidentRow, RunRow, RunStatus, SignalRow, StepRow, StepStatus, Store, Write,
};

/// Which list of the plan a unit's step is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Main,
    OnFailure,
}

/// One active run.
#[derive(Debug)]
struct RunState {
    /// The stored row, kept current.
    row: RunRow,
    /// Its plan.
    plan: Arc<Plan>,
    /// Every unit by key.
    units: HashMap<String, StepRow>,
    /// Signals delivered and not yet taken.
    signals: Vec<SignalRow>,
    /// Cancellation handles of attempts in flight.
    cancels: HashMap<String, CancellationToken>,
    /// Its template scope, kept between renders.
    scope: ScopeCache,
}

pub(super) struct Executor {
    store: Store,
    defs: Arc<Definitions>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    /// `config.secrets`, shared with every plugin attempt.
    secrets: Arc<std::collections::BTreeMap<String, String>>,
    events: broadcast::Sender<RunEvent>,
    runs: HashMap<String, RunState>,
    /// (wake time ms, run id, unit key).
    timers: BTreeSet<(i64, String, String)>,
    /// Cron triggers of the newest workflow versions (empty when `config.cron` is off).
    crons: Vec<CronTrigger>,
    jobs: std::sync::mpsc::Sender<Job>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    next_signal_id: i64,
    /// This turn: runs to advance.
    dirty: BTreeSet<String>,
    /// This turn: units and runs changed (to write and announce).
    touched_units: BTreeSet<(String, String)>,
    touched_runs: BTreeSet<String>,
    /// This turn: attempts to dispatch after the commit.
    dispatch: Vec<Job>,
    /// This turn: callers to answer after the commit.
    replies: Vec<Reply>,
    /// Incidents changed this turn.
    incidents: Vec<IncidentRow>,
    /// Signals delivered or taken this turn.
    signal_writes: Vec<Write>,
    /// Requests whose runs were created this turn.
    request_writes: Vec<Write>,
    /// Incidents not yet resolved, so `update`/`resolve` steps find them without a read.
    open_incidents: HashMap<String, IncidentRow>,
}

enum Reply {
    Submitted(oneshot::Sender<Result<String, EngineError>>, String),
    Done(oneshot::Sender<Result<(), EngineError>>),
    Incident(
        oneshot::Sender<Result<IncidentRow, EngineError>>,
        Box<IncidentRow>,
    ),
}

fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}-{:016x}", random_u64())
}

impl Executor {
    pub(super) async fn recover(
        store: Store,
        host: PluginHost,
        defs: Arc<Definitions>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
        events: broadcast::Sender<RunEvent>,
    ) -> Result<Self, EngineError> {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let jobs = workers::start(config.workers, host, done_tx, config.observer.clone());
        let next_signal_id = store.next_signal_id().await?;
        let mut exec = Self {
            store,
            defs,
            clock,
            secrets: Arc::new(config.secrets.clone()),
            config,
            events,
            runs: HashMap::new(),
            timers: BTreeSet::new(),
            crons: Vec::new(),
            jobs,
            done_rx,
            next_signal_id,
            dirty: BTreeSet::new(),
            touched_units: BTreeSet::new(),
            touched_runs: BTreeSet::new(),
            dispatch: Vec::new(),
            replies: Vec::new(),
            incidents: Vec::new(),
            signal_writes: Vec::new(),
            request_writes: Vec::new(),
            open_incidents: HashMap::new(),
        };
        for inc in exec.store.incidents().await? {
            if inc.status != "resolved" {
                exec.open_incidents.insert(inc.id.clone(), inc);
            }
        }
        let now = exec.clock.now_ms();
        let lease = i64::try_from(exec.config.lease.as_millis()).unwrap_or(i64::MAX);
        let claimed = exec
            .store
            .claim_unfinished(&exec.config.owner, now, lease)
            .await?;
        // Every claimed run's steps and buffered signals, in two queries.
        let mut steps: HashMap<String, HashMap<String, StepRow>> = HashMap::new();
        for s in exec.store.steps_of_leased_runs(&exec.config.owner).await? {
            steps
                .entry(s.run_id.clone())
                .or_default()
                .insert(s.key.clone(), s);
        }
        let mut signals: HashMap<String, Vec<SignalRow>> = HashMap::new();
        for s in exec
            .store
            .pending_signals_of_leased_runs(&exec.config.owner)
            .await?
        {
            signals.entry(s.run_id.clone()).or_default().push(s);
        }
        for mut row in claimed {
            let Some(plan) = exec.defs.get(&row.workflow, Some(row.version)).cloned() else {
                row.status = RunStatus::Failed;
                row.error = Some(format!(
                    "workflow `{}` version {} is not loaded; load it and start a new run",
                    row.workflow, row.version
                ));
                row.finished_at = Some(now);
                exec.store.commit(&[Write::Run(row)]).await?;
                continue;
            };
            let units = steps.remove(&row.id).unwrap_or_default();
            let signals = signals.remove(&row.id).unwrap_or_default();
            let id = row.id.clone();
            exec.runs.insert(
                id.clone(),
                RunState {
                    row,
                    plan,
                    units,
                    signals,
                    cancels: HashMap::new(),
                    scope: ScopeCache::default(),
                },
            );
            exec.rearm(&id);
            exec.dirty.insert(id);
        }
        if exec.config.cron {
            let last = exec.store.last_cron_fires().await?;
            exec.crons = cron::arm(&exec.defs, &last, now);
        }
        Ok(exec)
    }

    /// After recovery: re-dispatch attempts that were in flight, re-arm timers.
    fn rearm(&mut self, run_id: &str) {
        let Some(run) = self.runs.get(run_id) else {
            return;
        };
        let keys: Vec<(String, StepStatus, Option<i64>)> = run
            .units
            .values()
            .map(|u| (u.key.clone(), u.status, u.wake_at))
            .collect();
        for (key, status, wake) in keys {
            match status {
                StepStatus::Running => self.redispatch(run_id, &key),
                StepStatus::Waiting | StepStatus::Retrying => {
                    if let Some(t) = wake {
                        self.timers.insert((t, run_id.to_string(), key));
                    }
                }
                _ => {}
            }
        }
    }

    pub(super) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let renew_every = (self.config.lease / 3).max(Duration::from_millis(100));
        let mut renew = tokio::time::interval(renew_every);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop: Option<oneshot::Sender<()>> = None;
        // The first turn advances everything recovered.
        self.turn().await;
        loop {
            let next_timer = self.timers.first().map(|(t, ..)| *t);
            let next_cron = self.crons.iter().filter_map(CronTrigger::wake_at).min();
            let wait = next_timer.into_iter().chain(next_cron).min();
            let wait = wait.map(|t| self.clock.sleep_until(t));
            tokio::select! {
                c = commands.recv() => match c {
                    Some(Command::Shutdown(tx)) => stop = Some(tx),
                    Some(c) => self.command(c).await,
                    None => return,
                },
                Some(d) = self.done_rx.recv() => self.done(d),
                () = sleep_opt(wait) => {}
                _ = renew.tick() => {
                    let until = self.clock.now_ms() + i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
                    if let Err(e) = self.store.renew_leases(&self.config.owner, until).await {
                        tracing::warn!("cannot renew leases: {e}");
                    }
                }
            }
            // Take everything else that is already waiting: one commit for all of it.
            while let Ok(d) = self.done_rx.try_recv() {
                self.done(d);
            }
            while stop.is_none() {
                match commands.try_recv() {
                    Ok(Command::Shutdown(tx)) => stop = Some(tx),
                    Ok(c) => self.command(c).await,
                    Err(_) => break,
                }
            }
            self.turn().await;
            if let Some(tx) = stop.take() {
                // Hand the runs back, so another process may take them at once instead of
                // waiting out the lease. Attempts still in flight are run again by whoever
                // takes the run (same idempotency key).
                if let Err(e) = self.store.release_leases(&self.config.owner).await {
                    tracing::warn!("cannot release leases: {e}");
                }
                let _ = tx.send(());
                return;
            }
        }
    }

    /// Fires due cron triggers and timers, advances changed runs, commits, then acts on the
    /// commit.
    async fn turn(&mut self) {
        self.fire_crons().await;
        self.fire_timers();
        while let Some(id) = self.dirty.pop_first() {
            self.advance(&id);
        }
        self.flush().await;
    }

    async fn flush(&mut self) {
        let mut writes = Vec::new();
        for id in &self.touched_runs {
            if let Some(r) = self.runs.get(id) {
                writes.push(Write::Run(r.row.clone()));
            }
        }
        for (run, key) in &self.touched_units {
            if let Some(u) = self.runs.get(run).and_then(|r| r.units.get(key)) {
                writes.push(Write::Step(u.clone()));
            }
        }
        writes.append(&mut self.signal_writes);
        writes.append(&mut self.request_writes);
        writes.extend(self.incidents.drain(..).map(Write::Incident));
        let mut delay = Duration::from_millis(50);
        while let Err(e) = self.store.commit(&writes).await {
            tracing::error!("cannot commit {} transitions, retrying: {e}", writes.len());
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        // Committed: now it is safe to act and to tell.
        for job in self.dispatch.drain(..) {
            if self.jobs.send(job).is_err() {
                tracing::error!("step workers are gone");
            }
        }
        for reply in self.replies.drain(..) {
            match reply {
                Reply::Submitted(tx, id) => drop(tx.send(Ok(id))),
                Reply::Done(tx) => drop(tx.send(Ok(()))),
                Reply::Incident(tx, row) => drop(tx.send(Ok(*row))),
            }
        }
        for (run, key) in std::mem::take(&mut self.touched_units) {
            if let Some(u) = self.runs.get(&run).and_then(|r| r.units.get(&key)) {
                let _ = self.events.send(RunEvent {
                    run_id: run.clone(),
                    step: Some(key.clone()),
                    status: u.status.as_str().into(),
                    error: u.error.clone(),
                });
            }
        }
        let finished: Vec<String> = std::mem::take(&mut self.touched_runs)
            .into_iter()
            .filter(|id| {
                let Some(r) = self.runs.get(id) else {
                    return false;
                };
                let _ = self.events.send(RunEvent {
                    run_id: id.clone(),
                    step: None,
                    status: r.row.status.as_str().into(),
                    error: r.row.error.clone(),
                });
                r.row.status.is_final()
            })
            .collect();
        for id in finished {
            self.runs.remove(&id);
        }
    }

    // ----- inputs to the loop -----

    async fn command(&mut self, c: Command) {
        match c {
            Command::Submit(new, request, reply) => match self.create_run(new, None) {
                Ok(id) => {
                    if let Some(request_id) = request {
                        self.request_writes.push(Write::StartRequest {
                            request_id,
                            run_id: id.clone(),
                            at: self.clock.now_ms(),
                        });
                    }
                    self.replies.push(Reply::Submitted(reply, id));
                }
                Err(e) => drop(reply.send(Err(e))),
            },
            Command::Define(plan, reply) => {
                Arc::make_mut(&mut self.defs).insert(*plan);
                drop(reply.send(Ok(())));
            }
            Command::Incident {
                id,
                action,
                by,
                note,
                reply,
            } => match self.steer_incident(&id, action, &by, note).await {
                Ok(row) => self.replies.push(Reply::Incident(reply, Box::new(row))),
                Err(e) => drop(reply.send(Err(e))),
            },
            Command::Signal {
                run_id,
                name,
                payload,
                reply,
            } => match self.ensure_loaded(&run_id).await {
                Ok(()) => {
                    self.deliver_signal(run_id, name, payload);
                    self.replies.push(Reply::Done(reply));
                }
                Err(e) => drop(reply.send(Err(e))),
            },
            Command::Approve {
                run_id,
                step,
                approved,
                by,
                reply,
            } => {
                if let Err(e) = self.ensure_loaded(&run_id).await {
                    drop(reply.send(Err(e)));
                    return;
                }
                match self.decide(&run_id, &step, approved, &by) {
                    Ok(()) => self.replies.push(Reply::Done(reply)),
                    Err(e) => drop(reply.send(Err(e))),
                }
            }
            Command::Cancel { run_id, reply } => {
                if let Err(e) = self.ensure_loaded(&run_id).await {
                    drop(reply.send(Err(e)));
                    return;
                }
                self.cancel_run(&run_id);
                self.replies.push(Reply::Done(reply));
            }
            Command::Sync(reply) => self.replies.push(Reply::Done(reply)),
            Command::Shutdown(_) => {}
        }
    }

    /// Buffers a signal for a run active here; a `signal:` step waiting for it takes it.
    fn deliver_signal(&mut self, run_id: String, name: String, payload: Json) {
        let signal = SignalRow {
            id: self.next_signal_id,
            run_id: run_id.clone(),
            name,
            payload,
            created_at: self.clock.now_ms(),
        };
        self.next_signal_id += 1;
        self.signal_writes.push(Write::Signal(signal.clone()));
        if let Some(run) = self.runs.get_mut(&run_id) {
            run.signals.push(signal);
        }
        // A `signal:` step already waiting for it takes it now.
        self.take_signals(&run_id);
        self.dirty.insert(run_id);
    }

    /// Acknowledges, resolves or annotates an incident on behalf of a person. Acknowledging
    /// an incident whose opening run is active here also sends that run the signal `ack`.
    async fn steer_incident(
        &mut self,
        id: &str,
        action: IncidentSteer,
        by: &str,
        note: Option<String>,
    ) -> Result<IncidentRow, EngineError> {
        let Some(mut row) = self.open_incidents.get(id).cloned() else {
            return Err(match self.store.incident(id).await? {
                Some(_) => EngineError::Conflict(format!("incident `{id}` is already resolved")),
                None => EngineError::UnknownIncident(id.into()),
            });
        };
        let now = self.clock.now_ms();
        let what = match action {
            IncidentSteer::Acknowledge => {
                if row.status == "acknowledged" {
                    return Err(EngineError::Conflict(format!(
                        "incident `{id}` is already acknowledged"
                    )));
                }
                row.status = "acknowledged".into();
                "acknowledged"
            }
            IncidentSteer::Resolve => {
                row.status = "resolved".into();
                "resolved"
            }
            IncidentSteer::Note => "note",
        };
        if let Json::Array(items) = &mut row.timeline {
            items.push(
                json!({ "at": now, "by": by, "note": note.unwrap_or_else(|| what.to_string()) }),
            );
        }
        row.updated_at = now;
        if row.status == "resolved" {
            self.open_incidents.remove(id);
        } else {
            self.open_incidents.insert(id.to_string(), row.clone());
        }
        self.incidents.push(row.clone());
        if action == IncidentSteer::Acknowledge
            && let Some(run_id) = row.run_id.clone()
            && self
                .runs
                .get(&run_id)
                .is_some_and(|r| !r.row.status.is_final())
        {
            self.deliver_signal(run_id, "ack".into(), json!({ "incident": id, "by": by }));
        }
        Ok(row)
    }

    /// Whether the run is active here; a finished or unknown run is an error.
    async fn ensure_loaded(&mut self, run_id: &str) -> Result<(), EngineError> {
        if self.runs.contains_key(run_id) {
            return Ok(());
        }
        match self.store.run(run_id).await? {
            Some(r) if r.status.is_final() => Err(EngineError::Conflict(format!(
                "run `{run_id}` is already {}",
                r.status.as_str()
            ))),
            Some(_) => Err(EngineError::Conflict(format!(
                "run `{run_id}` is executed by another process"
            ))),
            None => Err(EngineError::UnknownRun(run_id.into())),
        }
    }

    fn create_run(
        &mut self,
        new: NewRun,
        parent: Option<(String, String)>,
    ) -> Result<String, EngineError> {
        let plan = self
            .defs
            .get(&new.workflow, new.version)
            .cloned()
            .ok_or_else(|| {
                EngineError::UnknownWorkflow(match new.version {
                    Some(v) => format!("{}@{v}", new.workflow),
                    None => new.workflow.clone(),
                })
            })?;
        if let Some(schema) = &plan.inputs {
            let violations = schema.violations(&new.inputs);
            if !violations.is_empty() {
                return Err(EngineError::InvalidInputs(
                    violations
                        .into_iter()
                        .map(|v| {
                            format!(
                                "{}: {}",
                                if v.pointer.is_empty() {
                                    "/"
                                } else {
                                    &v.pointer
                                },
                                v.message
                            )
                        })
                        .collect(),
                ));
            }
        }
        let now = self.clock.now_ms();
        let id = new_id("run");
        let lease = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
        let row = RunRow {
            id: id.clone(),
            workflow: plan.name.clone(),
            version: plan.version,
            tenant: new.tenant,
            requester: new.requester,
            inputs: new.inputs,
            status: RunStatus::Running,
            outputs: None,
            error: None,
            parent_run: parent.as_ref().map(|p| p.0.clone()),
            parent_step: parent.map(|p| p.1),
            created_at: now,
            updated_at: now,
            finished_at: None,
            lease_owner: Some(self.config.owner.clone()),
            lease_until: Some(now + lease),
        };
        self.runs.insert(
            id.clone(),
            RunState {
                row,
                plan,
                units: HashMap::new(),
                signals: Vec::new(),
                cancels: HashMap::new(),
                scope: ScopeCache::default(),
            },
        );
        self.touched_runs.insert(id.clone());
        self.dirty.insert(id.clone());
        Ok(id)
    }

    fn decide(
        &mut self,
        run_id: &str,
        step: &str,
        approved: bool,
        by: &str,
    ) -> Result<(), EngineError> {
        let now = self.clock.now_ms();
        let run = self
            .runs
            .get_mut(run_id)
            .ok_or_else(|| EngineError::UnknownRun(run_id.into()))?;
        let is_approval = run.plan.steps.iter().chain(&run.plan.on_failure).any(|s| {
            s.id == step.trim_start_matches('!') && matches!(s.kind, PlanKind::Approval { .. })
        });
        let unit = run
            .units
            .get_mut(step)
            .filter(|u| u.status == StepStatus::Waiting && is_approval);
        let Some(unit) = unit else {
            return Err(EngineError::Conflict(format!(
                "step `{step}` of run `{run_id}` is not waiting for an approval"
            )));
        };
        unit.wake_at = None;
        unit.finished_at = Some(now);
        if approved {
            unit.status = StepStatus::Succeeded;
            unit.output = Some(json!({ "approved": true, "by": by, "at": now }));
        } else {
            unit.status = StepStatus::Failed;
            unit.error = Some(format!("rejected by {by}"));
        }
        self.touched_units.insert((run_id.into(), step.into()));
        self.dirty.insert(run_id.into());
        Ok(())
    }

    fn done(&mut self, d: Done) {
        let now = self.clock.now_ms();
        let Some(run) = self.runs.get_mut(&d.run_id) else {
            return;
        };
        run.cancels.remove(&d.key);
        let Some(unit) = run.units.get_mut(&d.key) else {
            return;
        };
        if unit.status != StepStatus::Running || unit.attempt != d.attempt {
            return; // a late answer to an abandoned attempt
        }
        unit.wake_at = None; // the attempt's deadline, when the executor enforces it
        let retry = policy_of(&run.plan, &d.key);
        match d.result {
            Ok(out) => {
                unit.status = StepStatus::Succeeded;
                unit.output = Some(out.output);
                unit.error = None;
                unit.finished_at = Some(now);
            }
            Err(f) if f.kind == FailureKind::Cancelled => {
                unit.status = StepStatus::Cancelled;
                unit.error = Some(f.message);
                unit.finished_at = Some(now);
            }
            Err(f) if f.kind.is_retryable() && unit.attempt < retry.max_attempts => {
                let base = retry.delay_before(unit.attempt + 1);
                // Jitter: 80% to 120% of the delay, so retries of many runs spread out.
                let factor = 0.8 + (random_u64() % 401) as f64 / 1000.0;
                let delay = i64::try_from(base.mul_f64(factor).as_millis()).unwrap_or(i64::MAX);
                unit.status = StepStatus::Retrying;
                unit.error = Some(f.message);
                unit.wake_at = Some(now + delay);
                self.timers
                    .insert((now + delay, d.run_id.clone(), d.key.clone()));
            }
            Err(f) => {
                unit.status = StepStatus::Failed;
                unit.error = Some(if unit.attempt > 1 {
                    format!("{} (after {} attempts)", f.message, unit.attempt)
                } else {
                    f.message
                });
                unit.finished_at = Some(now);
            }
        }
        self.touched_units.insert((d.run_id.clone(), d.key));
        self.dirty.insert(d.run_id);
    }

    fn fire_timers(&mut self) {
        let now = self.clock.now_ms();
        while let Some((t, run_id, key)) = self.timers.first().cloned() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            let Some(run) = self.runs.get_mut(&run_id) else {
                continue;
            };
            let Some(unit) = run.units.get_mut(&key) else {
                continue;
            };
            if unit.wake_at != Some(t) {
                continue; // the unit moved on; this timer is stale
            }
            unit.wake_at = None;
            match unit.status {
                StepStatus::Retrying => {
                    self.redispatch(&run_id, &key);
                    continue;
                }
                StepStatus::Running => {
                    // The attempt's deadline in clock time: stop it and count a timeout
                    // (or a cancellation, when the run already interrupted it).
                    let timeout = step_of(&run.plan, &key).map(|s| timeout_of(s, &key));
                    let failure = match run.cancels.get(&key) {
                        Some(token) if token.is_cancelled() => {
                            StepFailure::new(FailureKind::Cancelled, "step was cancelled")
                        }
                        token => {
                            if let Some(token) = token {
                                token.cancel();
                            }
                            StepFailure::new(
                                FailureKind::Timeout,
                                format!(
                                    "step exceeded its timeout of {:?} and was stopped; raise the step's `timeout` if it needs longer",
                                    timeout.unwrap_or_default()
                                ),
                            )
                        }
                    };
                    let attempt = unit.attempt;
                    self.done(Done {
                        run_id,
                        key,
                        attempt,
                        result: Err(failure),
                    });
                    continue;
                }
                StepStatus::Waiting => {
                    let kind = step_of(&run.plan, &key).map(|s| &s.kind);
                    unit.finished_at = Some(now);
                    match kind {
                        Some(PlanKind::Wait(_)) => {
                            unit.status = StepStatus::Succeeded;
                            unit.output =
                                Some(json!({ "waited_ms": now - unit.started_at.unwrap_or(now) }));
                        }
                        Some(PlanKind::Approval { .. }) => {
                            unit.status = StepStatus::Failed;
                            unit.error = Some("no decision before the approval's timeout".into());
                        }
                        Some(PlanKind::Signal { name, .. }) => {
                            unit.status = StepStatus::Failed;
                            unit.error =
                                Some(format!("signal `{name}` did not arrive before the timeout"));
                        }
                        _ => continue,
                    }
                }
                _ => continue,
            }
            self.touched_units.insert((run_id.clone(), key));
            self.dirty.insert(run_id);
        }
    }

    /// Fires every cron trigger whose instant has come.
    async fn fire_crons(&mut self) {
        let now = self.clock.now_ms();
        for i in 0..self.crons.len() {
            if self.crons[i].wake_at().is_some_and(|t| t <= now) {
                self.fire_cron(i, now).await;
            }
        }
    }

    /// Handles the most recent due instant of trigger `i` (earlier ones it passed are not
    /// fired: no catch-up storm) under its overlap policy. The fire is recorded in the same
    /// transaction as the run it starts, and only once per instant.
    async fn fire_cron(&mut self, i: usize, now: i64) {
        let plan = Arc::clone(&self.crons[i].plan);
        let (Some(spec), Some(next)) = (self.crons[i].spec().cloned(), self.crons[i].next) else {
            return;
        };
        let scheduled = cron::latest_in(&spec, next - 1, now).unwrap_or(next);
        let previous = match self.crons[i].last_run.clone() {
            Some(id) if self.run_is_active(&id).await => Some(id),
            _ => None,
        };
        let mut fire = CronFire {
            workflow: plan.name.clone(),
            trigger: self.crons[i].index,
            scheduled_at: scheduled,
            fired_at: now,
            run_id: None,
        };
        if previous.is_none() || spec.overlap != Overlap::Skip {
            let new = NewRun {
                workflow: plan.name.clone(),
                version: Some(plan.version),
                inputs: spec.inputs.clone(),
                tenant: cron::CRON_TENANT.into(),
                requester: Some(cron::CRON_REQUESTER.into()),
            };
            match self.create_run(new, None) {
                Ok(id) => fire.run_id = Some(id),
                Err(e) => {
                    // Not expected: the trigger's inputs were checked when the plan was built.
                    tracing::error!(
                        "cron trigger `{}` of {}@{} cannot start a run: {e}",
                        spec.expression,
                        plan.name,
                        plan.version
                    );
                    self.crons[i].next = cron::next_after(&spec, now);
                    return;
                }
            }
        }
        let row = fire
            .run_id
            .as_ref()
            .and_then(|id| self.runs.get(id))
            .map(|r| r.row.clone());
        match self.store.claim_cron_fire(&fire, row.as_ref()).await {
            Ok(true) => {
                if let Some(id) = &fire.run_id {
                    if let (Overlap::CancelPrevious, Some(prev)) = (spec.overlap, &previous) {
                        if self.runs.contains_key(prev) {
                            self.cancel_run(prev);
                        } else {
                            tracing::warn!(
                                "cron: run {prev} of {} is executed by another process; not cancelled",
                                plan.name
                            );
                        }
                    }
                    self.crons[i].last_run = Some(id.clone());
                }
            }
            Ok(false) => {
                // Another process (or this one before a restart) already handled the instant.
                if let Some(id) = &fire.run_id {
                    self.forget_run(id);
                }
            }
            Err(e) => {
                tracing::warn!("cannot record a cron fire of {}, retrying: {e}", plan.name);
                if let Some(id) = &fire.run_id {
                    self.forget_run(id);
                }
                self.crons[i].retry_at = Some(now + 1_000);
                return;
            }
        }
        self.crons[i].next = cron::next_after(&spec, now);
        self.crons[i].retry_at = None;
    }

    /// Whether a run is unfinished (here, or in another process sharing the database).
    async fn run_is_active(&self, id: &str) -> bool {
        if let Some(r) = self.runs.get(id) {
            return !r.row.status.is_final();
        }
        match self.store.run(id).await {
            Ok(row) => row.is_some_and(|r| !r.status.is_final()),
            Err(e) => {
                tracing::warn!("cannot read run {id}: {e}");
                false
            }
        }
    }

    /// Drops a run created this turn that must not exist after all.
    fn forget_run(&mut self, id: &str) {
        self.runs.remove(id);
        self.touched_runs.remove(id);
        self.dirty.remove(id);
    }

    // ----- advancing a run -----

    fn advance(&mut self, run_id: &str) {
        let Some(status) = self.runs.get(run_id).map(|r| r.row.status) else {
            return;
        };
        match status {
            RunStatus::Running => self.advance_running(run_id),
            RunStatus::Failing => self.advance_failing(run_id),
            RunStatus::Cancelling => self.advance_cancelling(run_id),
            _ => {}
        }
        // A run with no attempt in flight is parked (on a timer, an approval, a signal, a
        // child run): it keeps no scope, so parked runs stay small; waking rebuilds it.
        if let Some(run) = self.runs.get_mut(run_id)
            && !run.units.values().any(|u| u.status == StepStatus::Running)
        {
            run.scope = ScopeCache::default();
        }
    }

    fn advance_running(&mut self, run_id: &str) {
        loop {
            let Some(run) = self.runs.get(run_id) else {
                return;
            };
            let plan = Arc::clone(&run.plan);
            let mut progressed = false;
            for (i, step) in plan.steps.iter().enumerate() {
                let status = self
                    .runs
                    .get(run_id)
                    .and_then(|r| r.units.get(&step.id))
                    .map(|u| u.status);
                match status {
                    None => {
                        if let Some(start) = self.readiness(run_id, &plan.steps, i, Section::Main) {
                            self.start_step(run_id, step, Section::Main, start);
                            progressed = true;
                        }
                    }
                    Some(StepStatus::Waiting) if step.for_each.is_some() => {
                        progressed |= self.progress_fan_out(run_id, step);
                    }
                    Some(StepStatus::Failed) if !step.continue_on_error => {
                        let error = self
                            .runs
                            .get(run_id)
                            .and_then(|r| r.units.get(&step.id))
                            .and_then(|u| u.error.clone())
                            .unwrap_or_default();
                        self.begin_failing(run_id, format!("step `{}` failed: {error}", step.id));
                        return;
                    }
                    _ => {}
                }
            }
            if !progressed {
                break;
            }
        }
        let Some(run) = self.runs.get(run_id) else {
            return;
        };
        let all_final = run
            .plan
            .steps
            .iter()
            .all(|s| run.units.get(&s.id).is_some_and(|u| u.status.is_final()));
        if all_final {
            self.finish_success(run_id);
        }
    }

    /// Whether step `i` of `steps` can start now: `Some(true)` to run it, `Some(false)` to
    /// skip it (every step it needs was skipped), `None` to keep waiting.
    fn readiness(
        &self,
        run_id: &str,
        steps: &[PlanStep],
        i: usize,
        section: Section,
    ) -> Option<bool> {
        let run = self.runs.get(run_id)?;
        let key = |id: &str| match section {
            Section::Main => id.to_string(),
            Section::OnFailure => format!("!{id}"),
        };
        let mut all_skipped = !steps[i].needs.is_empty();
        for &n in &steps[i].needs {
            let u = run.units.get(&key(&steps[n].id))?;
            if !u.status.is_final() {
                return None;
            }
            // A failed need fails the run (unless it may fail); its dependants never start.
            if matches!(u.status, StepStatus::Failed | StepStatus::Cancelled)
                && !steps[n].continue_on_error
            {
                return None;
            }
            all_skipped &= u.status == StepStatus::Skipped;
        }
        Some(!all_skipped)
    }

    fn start_step(&mut self, run_id: &str, step: &PlanStep, section: Section, run_it: bool) {
        let key = match section {
            Section::Main => step.id.clone(),
            Section::OnFailure => format!("!{}", step.id),
        };
        let now = self.clock.now_ms();
        let mut row = self.blank(run_id, &key, &step.id, now);
        if !run_it {
            row.status = StepStatus::Skipped;
            row.finished_at = Some(now);
            self.put(run_id, row);
            return;
        }
        let Some(scope) = self.scope(run_id, &Extra::default()) else {
            return;
        };
        if let Some(when) = &step.when {
            match when.render(&scope) {
                Ok(v) if !crate::template::truthy(&v) => {
                    self.give_back(run_id, scope);
                    row.status = StepStatus::Skipped;
                    row.finished_at = Some(now);
                    self.put(run_id, row);
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    self.give_back(run_id, scope);
                    self.put(run_id, failed(row, format!("`when`: {e}"), now));
                    return;
                }
            }
        }
        if let Some(fe) = &step.for_each {
            let rendered = fe.render(&scope);
            self.give_back(run_id, scope);
            let items = match rendered {
                Ok(Json::Array(items)) => items,
                Ok(other) => {
                    self.put(
                        run_id,
                        failed(row, format!("`for_each` gave {other}, not a list"), now),
                    );
                    return;
                }
                Err(e) => {
                    self.put(run_id, failed(row, format!("`for_each`: {e}"), now));
                    return;
                }
            };
            row.status = StepStatus::Waiting;
            row.state = Some(json!({ "items": items }));
            self.put(run_id, row);
            self.progress_fan_out(run_id, step);
            return;
        }
        self.start_unit_with(run_id, step, row, scope);
    }

    /// Starts items of a fan-out up to `max_parallel`; completes the step when all are done.
    /// Returns whether anything changed.
    fn progress_fan_out(&mut self, run_id: &str, step: &PlanStep) -> bool {
        let now = self.clock.now_ms();
        let Some(run) = self.runs.get(run_id) else {
            return false;
        };
        let Some(parent) = run.units.get(&step.id) else {
            return false;
        };
        let items: Vec<Json> = parent
            .state
            .as_ref()
            .and_then(|s| s.get("items"))
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default();
        let limit = step.max_parallel.map_or(usize::MAX, |m| m as usize);
        let mut active = 0;
        let mut to_start = Vec::new();
        let mut outputs = Vec::with_capacity(items.len());
        let mut first_error: Option<String> = None;
        let mut all_final = true;
        for (i, item) in items.iter().enumerate() {
            match run.units.get(&format!("{}#{i}", step.id)) {
                None => {
                    all_final = false;
                    if active < limit {
                        active += 1;
                        to_start.push((i, item.clone()));
                    }
                }
                Some(u) if !u.status.is_final() => {
                    all_final = false;
                    active += 1;
                }
                Some(u) => {
                    if u.status == StepStatus::Failed && first_error.is_none() {
                        first_error =
                            Some(format!("item {i}: {}", u.error.clone().unwrap_or_default()));
                    }
                    outputs.push(u.output.clone().unwrap_or(Json::Null));
                }
            }
        }
        let changed = !to_start.is_empty() || all_final;
        for (i, item) in to_start {
            let row = self.blank(run_id, &format!("{}#{i}", step.id), &step.id, now);
            self.start_unit(
                run_id,
                step,
                row,
                Extra {
                    item: Some((i, item)),
                    output: None,
                },
            );
        }
        if all_final {
            let Some(parent) = self
                .runs
                .get_mut(run_id)
                .and_then(|r| r.units.get_mut(&step.id))
            else {
                return true;
            };
            parent.finished_at = Some(now);
            match first_error {
                Some(e) if !step.continue_on_error => {
                    parent.status = StepStatus::Failed;
                    parent.error = Some(e);
                }
                _ => {
                    parent.status = StepStatus::Succeeded;
                    parent.output = Some(Json::Array(outputs));
                }
            }
            self.touched_units.insert((run_id.into(), step.id.clone()));
        }
        changed
    }

    /// Starts one unit (a step, or one fan-out item) according to its kind.
    fn start_unit(&mut self, run_id: &str, step: &PlanStep, row: StepRow, extra: Extra) {
        let Some(scope) = self.scope(run_id, &extra) else {
            return;
        };
        self.start_unit_with(run_id, step, row, scope);
    }

    /// Starts one unit with its scope already taken (and hands the scope back).
    fn start_unit_with(&mut self, run_id: &str, step: &PlanStep, mut row: StepRow, scope: Scope) {
        let now = self.clock.now_ms();
        match &step.kind {
            PlanKind::Uses { with, .. } => match with.render(&scope) {
                Ok(input) => {
                    row.status = StepStatus::Running;
                    row.attempt = 1;
                    let key = row.key.clone();
                    self.put(run_id, row);
                    self.send_attempt(run_id, &key, step, input, 1);
                }
                Err(e) => self.put(run_id, failed(row, format!("`with`: {e}"), now)),
            },
            PlanKind::Wait(w) => {
                let d = match w {
                    WaitPlan::Fixed(d) => Ok(*d),
                    WaitPlan::Template(t) => {
                        t.render(&scope)
                            .map_err(|e| e.message)
                            .and_then(|v| match v {
                                Json::String(s) => parse_duration(&s),
                                other => {
                                    Err(format!("`wait` gave {other}, not a duration like `30s`"))
                                }
                            })
                    }
                };
                match d {
                    Ok(d) => {
                        let at = now + i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                        row.status = StepStatus::Waiting;
                        row.wake_at = Some(at);
                        self.timers.insert((at, run_id.into(), row.key.clone()));
                        self.put(run_id, row);
                    }
                    Err(e) => self.put(run_id, failed(row, format!("`wait`: {e}"), now)),
                }
            }
            PlanKind::Approval {
                timeout, message, ..
            } => {
                let message = message.as_ref().and_then(|m| m.render(&scope).ok());
                row.status = StepStatus::Waiting;
                row.state = Some(json!({ "approval": message }));
                if let Some(t) = timeout {
                    let at = now + i64::try_from(t.as_millis()).unwrap_or(i64::MAX);
                    row.wake_at = Some(at);
                    self.timers.insert((at, run_id.into(), row.key.clone()));
                }
                self.put(run_id, row);
            }
            PlanKind::Signal { name, timeout } => {
                row.status = StepStatus::Waiting;
                if let Some(t) = timeout {
                    let at = now + i64::try_from(t.as_millis()).unwrap_or(i64::MAX);
                    row.wake_at = Some(at);
                    self.timers.insert((at, run_id.into(), row.key.clone()));
                }
                row.state = Some(json!({ "signal": name }));
                self.put(run_id, row);
                self.take_signals(run_id);
            }
            PlanKind::Workflow {
                name,
                version,
                with,
            } => match with.render(&scope) {
                Ok(inputs) => {
                    let Some(run) = self.runs.get(run_id) else {
                        return;
                    };
                    let tenant = run.row.tenant.clone();
                    let requester = run.row.requester.clone();
                    let new = NewRun {
                        workflow: name.clone(),
                        version: *version,
                        inputs,
                        tenant,
                        requester,
                    };
                    match self.create_run(new, Some((run_id.into(), row.key.clone()))) {
                        Ok(child) => {
                            row.status = StepStatus::Waiting;
                            row.state = Some(json!({ "child": child }));
                            self.put(run_id, row);
                        }
                        Err(e) => self.put(
                            run_id,
                            failed(row, format!("cannot start `{name}`: {e}"), now),
                        ),
                    }
                }
                Err(e) => self.put(run_id, failed(row, format!("`with`: {e}"), now)),
            },
            PlanKind::Incident(spec) => {
                let result = self.incident(run_id, spec, &scope, now);
                match result {
                    Ok(out) => {
                        row.status = StepStatus::Succeeded;
                        row.output = Some(out);
                        row.finished_at = Some(now);
                        self.put(run_id, row);
                    }
                    Err(e) => self.put(run_id, failed(row, e, now)),
                }
            }
        }
        self.give_back(run_id, scope);
    }

    /// Hands a buffered signal to each waiting `signal:` unit of the run that wants it.
    fn take_signals(&mut self, run_id: &str) {
        let now = self.clock.now_ms();
        let Some(run) = self.runs.get_mut(run_id) else {
            return;
        };
        let mut waiting: Vec<(String, String)> = run
            .units
            .values()
            .filter(|u| u.status == StepStatus::Waiting)
            .filter_map(|u| {
                let name = u.state.as_ref()?.get("signal")?.as_str()?;
                Some((u.key.clone(), name.to_string()))
            })
            .collect();
        waiting.sort();
        for (key, name) in waiting {
            let Some(pos) = run.signals.iter().position(|s| s.name == name) else {
                continue;
            };
            let signal = run.signals.remove(pos);
            if let Some(u) = run.units.get_mut(&key) {
                u.status = StepStatus::Succeeded;
                u.output = Some(signal.payload.clone());
                u.wake_at = None;
                u.finished_at = Some(now);
            }
            self.signal_writes.push(Write::ConsumeSignal {
                id: signal.id,
                by: key.clone(),
            });
            self.touched_units.insert((run_id.into(), key));
            self.dirty.insert(run_id.into());
        }
    }

    fn incident(
        &mut self,
        run_id: &str,
        spec: &crate::plan::IncidentPlan,
        scope: &handlebars::Context,
        now: i64,
    ) -> Result<Json, String> {
        let text = |t: &Option<crate::template::Template>| -> Result<Option<String>, String> {
            match t {
                None => Ok(None),
                Some(t) => match t.render(scope).map_err(|e| e.message)? {
                    Json::String(s) => Ok(Some(s)),
                    Json::Null => Ok(None),
                    other => Ok(Some(other.to_string())),
                },
            }
        };
        let note = text(&spec.note)?;
        let severity = text(&spec.severity)?;
        if let Some(s) = &severity
            && !crate::dsl::workflow::SEVERITIES.contains(&s.as_str())
        {
            return Err(format!(
                "severity `{s}` is not one of sev1, sev2, sev3, sev4"
            ));
        }
        let tenant = self
            .runs
            .get(run_id)
            .map(|r| r.row.tenant.clone())
            .unwrap_or_default();
        let entry = |what: &str| json!({ "at": now, "by": format!("run {run_id}"), "note": note.clone().unwrap_or_else(|| what.to_string()) });
        let row = match spec.action {
            IncidentAction::Open => IncidentRow {
                id: new_id("inc"),
                run_id: Some(run_id.into()),
                tenant,
                title: text(&spec.title)?.unwrap_or_default(),
                severity: severity.unwrap_or_else(|| "sev3".into()),
                service: text(&spec.service)?,
                status: "open".into(),
                timeline: json!([entry("opened")]),
                created_at: now,
                updated_at: now,
            },
            action => {
                let id = text(&spec.id)?.ok_or("no incident id")?;
                let mut row = self.open_incidents.get(&id).cloned().ok_or_else(|| {
                    format!("incident `{id}` does not exist or is already resolved")
                })?;
                if let Some(s) = severity {
                    row.severity = s;
                }
                if action == IncidentAction::Resolve {
                    row.status = "resolved".into();
                }
                if let Some(t) = text(&spec.title)? {
                    row.title = t;
                }
                if let Json::Array(items) = &mut row.timeline {
                    items.push(entry(if action == IncidentAction::Resolve {
                        "resolved"
                    } else {
                        "updated"
                    }));
                }
                row.updated_at = now;
                row
            }
        };
        let out = json!({ "id": row.id, "title": row.title, "severity": row.severity, "status": row.status, "service": row.service });
        if row.status == "resolved" {
            self.open_incidents.remove(&row.id);
        } else {
            self.open_incidents.insert(row.id.clone(), row.clone());
        }
        self.incidents.push(row);
        Ok(out)
    }

    fn send_attempt(
        &mut self,
        run_id: &str,
        key: &str,
        step: &PlanStep,
        input: Json,
        attempt: u32,
    ) {
        let (plugin, version) = match (&step.kind, key.starts_with('~')) {
            (_, true) => match &step.compensate {
                Some(c) => (c.plugin.clone(), c.version.clone()),
                None => return,
            },
            (
                PlanKind::Uses {
                    plugin, version, ..
                },
                false,
            ) => (plugin.clone(), version.clone()),
            _ => return,
        };
        let timeout = timeout_of(step, key);
        let cancel = CancellationToken::new();
        if let Some(run) = self.runs.get_mut(run_id) {
            run.cancels.insert(key.to_string(), cancel.clone());
            // The host's deadline is real time; a clock that does not follow real time gets
            // the step timeout enforced here, in clock time (`fire_timers`).
            if !self.clock.follows_real_time()
                && let Some(unit) = run.units.get_mut(key)
            {
                let ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
                let at = self.clock.now_ms().saturating_add(ms);
                unit.wake_at = Some(at);
                self.timers.insert((at, run_id.into(), key.into()));
            }
        }
        self.dispatch.push(Job {
            run_id: run_id.into(),
            key: key.into(),
            attempt,
            call: Invocation {
                plugin,
                version,
                input,
                idempotency_key: format!("{run_id}/{key}"),
                secrets: Arc::clone(&self.secrets),
                timeout,
                cancel,
            },
        });
    }

    /// Starts the next attempt of a plugin unit (a retry, or after recovery).
    fn redispatch(&mut self, run_id: &str, key: &str) {
        let Some(run) = self.runs.get(run_id) else {
            return;
        };
        let Some(step) = step_of(&run.plan, key).cloned() else {
            return;
        };
        let Some(unit) = run.units.get(key) else {
            return;
        };
        let attempt = unit.attempt + 1;
        let extra = self.extra_of(run_id, key);
        let Some(scope) = self.scope(run_id, &extra) else {
            return;
        };
        let with = if key.starts_with('~') {
            step.compensate.as_ref().map(|c| c.with.clone())
        } else if let PlanKind::Uses { with, .. } = &step.kind {
            Some(with.clone())
        } else {
            None
        };
        let Some(with) = with else { return };
        let now = self.clock.now_ms();
        let rendered = with.render(&scope);
        self.give_back(run_id, scope);
        match rendered {
            Ok(input) => {
                if let Some(u) = self.runs.get_mut(run_id).and_then(|r| r.units.get_mut(key)) {
                    u.status = StepStatus::Running;
                    u.attempt = attempt;
                    u.wake_at = None;
                }
                self.touched_units.insert((run_id.into(), key.into()));
                self.send_attempt(run_id, key, &step, input, attempt);
            }
            Err(e) => {
                if let Some(u) = self.runs.get_mut(run_id).and_then(|r| r.units.get_mut(key)) {
                    u.status = StepStatus::Failed;
                    u.error = Some(format!("`with`: {e}"));
                    u.finished_at = Some(now);
                }
                self.touched_units.insert((run_id.into(), key.into()));
                self.dirty.insert(run_id.into());
            }
        }
    }

    /// The item (and, for a compensation, the output) a unit's templates see.
    fn extra_of(&self, run_id: &str, key: &str) -> Extra {
        let Some(run) = self.runs.get(run_id) else {
            return Extra::default();
        };
        let target = key.trim_start_matches('~');
        let item = target.split_once('#').and_then(|(id, n)| {
            let n: usize = n.parse().ok()?;
            let items = run
                .units
                .get(id)?
                .state
                .as_ref()?
                .get("items")?
                .as_array()?;
            Some((n, items.get(n)?.clone()))
        });
        let output = key.starts_with('~').then(|| {
            run.units
                .get(target)
                .and_then(|u| u.output.clone())
                .unwrap_or(Json::Null)
        });
        Extra { item, output }
    }

    // ----- failing, compensating, cancelling, finishing -----

    fn begin_failing(&mut self, run_id: &str, error: String) {
        let now = self.clock.now_ms();
        let Some(run) = self.runs.get_mut(run_id) else {
            return;
        };
        run.row.status = RunStatus::Failing;
        run.row.error = Some(error);
        run.row.updated_at = now;
        self.touched_runs.insert(run_id.into());
        self.stop_open_units(run_id, "the run failed");
        self.dirty.insert(run_id.into());
    }

    /// Interrupts attempts in flight and ends waiting units of the main steps.
    fn stop_open_units(&mut self, run_id: &str, why: &str) {
        let now = self.clock.now_ms();
        let Some(run) = self.runs.get_mut(run_id) else {
            return;
        };
        for token in run.cancels.values() {
            token.cancel();
        }
        let mut children = Vec::new();
        for u in run.units.values_mut() {
            let main = !u.key.starts_with('~') && !u.key.starts_with('!');
            if main && matches!(u.status, StepStatus::Waiting | StepStatus::Retrying) {
                if let Some(child) = u
                    .state
                    .as_ref()
                    .and_then(|s| s.get("child"))
                    .and_then(Json::as_str)
                {
                    children.push(child.to_string());
                }
                u.status = StepStatus::Cancelled;
                u.error = Some(why.to_string());
                u.wake_at = None;
                u.finished_at = Some(now);
                self.touched_units.insert((run_id.into(), u.key.clone()));
            }
        }
        for child in children {
            self.cancel_run(&child);
        }
    }

    fn advance_failing(&mut self, run_id: &str) {
        let now = self.clock.now_ms();
        let Some(run) = self.runs.get(run_id) else {
            return;
        };
        if run.units.values().any(|u| {
            u.status == StepStatus::Running && !u.key.starts_with('~') && !u.key.starts_with('!')
        }) {
            return; // wait for interrupted attempts to report
        }
        // Compensations, one at a time, newest completion first.
        let plan = Arc::clone(&run.plan);
        let mut done_units: Vec<&StepRow> = run
            .units
            .values()
            .filter(|u| {
                u.status == StepStatus::Succeeded
                    && !u.key.starts_with('~')
                    && !u.key.starts_with('!')
            })
            .filter(|u| step_of(&plan, &u.key).is_some_and(|s| s.compensate.is_some()))
            .filter(|u| {
                !(u.key == u.step_id
                    && plan
                        .steps
                        .iter()
                        .any(|s| s.id == u.step_id && s.for_each.is_some()))
            })
            .collect();
        // Newest completion first; completions in the same millisecond (or under a clock that
        // stands still) by plan order, which puts a step after what it needs, then by item.
        let order = |u: &StepRow| {
            let position = plan.steps.iter().position(|s| s.id == u.step_id);
            let item = u
                .key
                .split_once('#')
                .and_then(|(_, n)| n.parse::<usize>().ok());
            (u.finished_at, position, item)
        };
        done_units.sort_by_key(|u| std::cmp::Reverse(order(u)));
        let queue: Vec<String> = done_units.iter().map(|u| u.key.clone()).collect();
        for key in queue {
            let comp_key = format!("~{key}");
            match self
                .runs
                .get(run_id)
                .and_then(|r| r.units.get(&comp_key))
                .map(|u| u.status)
            {
                Some(s) if s.is_final() => continue,
                Some(_) => return, // in progress
                None => {
                    let Some(step) = step_of(&plan, &key).cloned() else {
                        continue;
                    };
                    let Some(c) = &step.compensate else { continue };
                    let extra = self.extra_of(run_id, &comp_key);
                    let Some(scope) = self.scope(run_id, &extra) else {
                        return;
                    };
                    let mut row = self.blank(run_id, &comp_key, &step.id, now);
                    let rendered = c.with.render(&scope);
                    self.give_back(run_id, scope);
                    match rendered {
                        Ok(input) => {
                            row.status = StepStatus::Running;
                            row.attempt = 1;
                            self.put(run_id, row);
                            self.send_attempt(run_id, &comp_key, &step, input, 1);
                            return;
                        }
                        Err(e) => {
                            self.put(run_id, failed(row, format!("`compensate.with`: {e}"), now));
                            continue;
                        }
                    }
                }
            }
        }
        // Then the on_failure steps, as a DAG of their own.
        loop {
            let mut progressed = false;
            for (i, step) in plan.on_failure.iter().enumerate() {
                let key = format!("!{}", step.id);
                let exists = self
                    .runs
                    .get(run_id)
                    .is_some_and(|r| r.units.contains_key(&key));
                if !exists
                    && let Some(start) =
                        self.readiness(run_id, &plan.on_failure, i, Section::OnFailure)
                {
                    self.start_step(run_id, step, Section::OnFailure, start);
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        let Some(run) = self.runs.get_mut(run_id) else {
            return;
        };
        let settled = run.units.values().all(|u| u.status.is_final())
            && plan
                .on_failure
                .iter()
                .all(|s| run.units.contains_key(&format!("!{}", s.id)));
        if settled {
            self.end_run(run_id, RunStatus::Failed, None);
        }
    }

    fn cancel_run(&mut self, run_id: &str) {
        let now = self.clock.now_ms();
        let Some(run) = self.runs.get_mut(run_id) else {
            return;
        };
        if run.row.status.is_final() || run.row.status == RunStatus::Cancelling {
            return;
        }
        run.row.status = RunStatus::Cancelling;
        run.row.error = Some("cancelled".into());
        run.row.updated_at = now;
        self.touched_runs.insert(run_id.into());
        self.stop_open_units(run_id, "the run was cancelled");
        self.dirty.insert(run_id.into());
    }

    fn advance_cancelling(&mut self, run_id: &str) {
        let Some(run) = self.runs.get(run_id) else {
            return;
        };
        if run.units.values().any(|u| u.status == StepStatus::Running) {
            return;
        }
        self.end_run(run_id, RunStatus::Cancelled, None);
    }

    /// Records the run's final status (and outputs) and completes a waiting parent step.
    fn end_run(&mut self, run_id: &str, status: RunStatus, outputs: Option<Json>) {
        let now = self.clock.now_ms();
        let Some(run) = self.runs.get_mut(run_id) else {
            return;
        };
        run.row.status = status;
        run.row.outputs = outputs;
        run.row.finished_at = Some(now);
        run.row.updated_at = now;
        self.touched_runs.insert(run_id.into());
        self.notify_parent(run_id);
    }

    fn finish_success(&mut self, run_id: &str) {
        let (Some(scope), Some(run)) =
            (self.scope(run_id, &Extra::default()), self.runs.get(run_id))
        else {
            return;
        };
        let mut outputs = serde_json::Map::new();
        let mut error = None;
        for (name, tv) in &run.plan.outputs {
            match tv.render(&scope) {
                Ok(v) => {
                    outputs.insert(name.clone(), v);
                }
                Err(e) => {
                    error = Some(format!("output `{name}`: {e}"));
                    break;
                }
            }
        }
        if let Some(e) = error {
            self.begin_failing(run_id, e);
            return;
        }
        self.end_run(run_id, RunStatus::Succeeded, Some(Json::Object(outputs)));
    }

    /// Completes the parent's `workflow:` step when a child run ends.
    fn notify_parent(&mut self, child_id: &str) {
        let now = self.clock.now_ms();
        let Some(child) = self.runs.get(child_id) else {
            return;
        };
        let (Some(parent), Some(key)) =
            (child.row.parent_run.clone(), child.row.parent_step.clone())
        else {
            return;
        };
        let status = child.row.status;
        let outputs = child.row.outputs.clone();
        let error = child.row.error.clone();
        let Some(unit) = self
            .runs
            .get_mut(&parent)
            .and_then(|r| r.units.get_mut(&key))
        else {
            return;
        };
        if unit.status != StepStatus::Waiting {
            return;
        }
        unit.finished_at = Some(now);
        if status == RunStatus::Succeeded {
            unit.status = StepStatus::Succeeded;
            unit.output = outputs;
        } else {
            unit.status = StepStatus::Failed;
            unit.error = Some(format!(
                "child run {child_id} {}: {}",
                status.as_str(),
                error.unwrap_or_default()
            ));
        }
        self.touched_units.insert((parent.clone(), key));
        self.dirty.insert(parent);
    }

    // ----- small helpers -----

    /// The template scope of a unit of `run_id`, taken from the run's cache; hand it back
    /// with [`Self::give_back`] to keep it for the next render.
    fn scope(&mut self, run_id: &str, extra: &Extra) -> Option<Scope> {
        let run = self.runs.get_mut(run_id)?;
        Some(
            run.scope
                .take(&run.row, &run.plan, &run.units, &self.config.secrets, extra),
        )
    }

    fn give_back(&mut self, run_id: &str, scope: Scope) {
        if let Some(run) = self.runs.get_mut(run_id) {
            run.scope.give_back(scope);
        }
    }

    fn blank(&self, run_id: &str, key: &str, step_id: &str, now: i64) -> StepRow {
        StepRow {
            run_id: run_id.into(),
            key: key.into(),
            step_id: step_id.into(),
            status: StepStatus::Running,
            attempt: 0,
            output: None,
            error: None,
            state: None,
            wake_at: None,
            started_at: Some(now),
            finished_at: None,
        }
    }

    fn put(&mut self, run_id: &str, row: StepRow) {
        let key = row.key.clone();
        if row.status.is_final() {
            self.dirty.insert(run_id.into());
        }
        if let Some(run) = self.runs.get_mut(run_id) {
            run.units.insert(key.clone(), row);
        }
        self.touched_units.insert((run_id.into(), key));
    }
}

fn failed(mut row: StepRow, error: String, now: i64) -> StepRow {
    row.status = StepStatus::Failed;
    row.error = Some(explain(error));
    row.finished_at = Some(now);
    row
}

/// The plan step a unit key belongs to.
fn step_of<'a>(plan: &'a Plan, key: &str) -> Option<&'a PlanStep> {
    let base = key.trim_start_matches('~');
    if let Some(id) = base.strip_prefix('!') {
        return plan.on_failure.iter().find(|s| s.id == id);
    }
    let id = base.split_once('#').map_or(base, |(id, _)| id);
    plan.steps.iter().find(|s| s.id == id)
}

/// The time budget of one attempt of a plugin unit (a step, or its compensation).
fn timeout_of(step: &PlanStep, key: &str) -> Duration {
    if key.starts_with('~') {
        step.compensate.as_ref().map_or(step.timeout, |c| c.timeout)
    } else {
        step.timeout
    }
}

/// The retry policy that applies to a unit.
fn policy_of(plan: &Plan, key: &str) -> crate::plan::RetryPolicy {
    match step_of(plan, key) {
        Some(s) if key.starts_with('~') => s.compensate.as_ref().map_or(s.retry, |c| c.retry),
        Some(s) => s.retry,
        None => crate::plan::RetryPolicy::NONE,
    }
}

async fn sleep_opt(sleep: Option<super::clock::Sleep>) {
    match sleep {
        Some(sleep) => sleep.await,
        None => std::future::pending().await,
    }
}

/// Adds the fix to errors whose cause is configuration: a secret that is not set.
fn explain(error: String) -> String {
    let Some(rest) = error.split("unknown variable `secrets.").nth(1) else {
        return error;
    };
    let name = rest.split(['`', '.']).next().unwrap_or_default();
    format!(
        "{error}: the secret `{name}` is not set; set the environment variable CSMP_SECRET_{} for csmp",
        name.to_uppercase()
    )
}
