//! The executor loop: the single owner of every active run's state.
//!
//! This file owns the state, recovery, the loop and the commit that ends every turn. What a
//! turn does to runs is split by concern: `commands.rs` (what callers ask: submit, signal,
//! approve, cancel, incidents), `units.rs` (starting units, their results and timers),
//! `fanout.rs` (items of a `for_each` step), `failure.rs` (failing, compensating, cancelling
//! and finishing runs) and `cron.rs` (firing triggers).

mod commands;
mod commit;
mod cron;
mod escalate;
mod failure;
mod fanout;
mod inbox;
mod incidents;
mod ownership;
mod resume;
mod retry;
mod units;

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::cron::CronTrigger;
use super::mailbox::Mailbox;
use super::scope::{Extra, Scope, ScopeCache};
use super::workers::{self, Done, Job};
use super::{
    Clock, Command, Definitions, EngineConfig, EngineError, Health, Held, Metrics, RunEvent,
};
use crate::plan::{Plan, UnitKey};
use crate::plugin::{CancellationToken, PluginHost};
use crate::store::{
    Fence, IncidentRow, RunRow, RunStatus, SignalRow, StepRow, StepStatus, Store, Write,
};
use tokio_util::sync::CancellationToken as Stopping;

/// One active run.
#[derive(Debug)]
struct RunState {
    /// The stored row, kept current.
    row: RunRow,
    /// Its plan.
    plan: Arc<Plan>,
    /// Every unit by key.
    units: HashMap<UnitKey, StepRow>,
    /// Signals delivered and not yet taken.
    signals: Vec<SignalRow>,
    /// Attempts in flight, by unit (a late result of an earlier attempt must not take the
    /// current attempt's handle).
    cancels: HashMap<UnitKey, InFlight>,
    /// Its template scope, kept between renders.
    scope: ScopeCache,
    /// Its fan-outs in progress, by step id (rebuilt from the units after a restart).
    fanouts: HashMap<String, fanout::FanOut>,
    /// While failing or cancelling: what is left to compensate, next first.
    undo: Option<std::collections::VecDeque<UnitKey>>,
    /// Main steps (plan positions) not started yet; `None` until the run is first looked at
    /// (after a restart it is read off the units once).
    unstarted: Option<BTreeSet<usize>>,
    /// Timers that fell due while the run was paused (time, unit), fired when it resumes.
    held: Vec<(i64, UnitKey)>,
}

impl RunState {
    /// A run made active here with the units and signals stored for it.
    fn new(
        row: RunRow,
        plan: Arc<Plan>,
        units: HashMap<UnitKey, StepRow>,
        signals: Vec<SignalRow>,
    ) -> Self {
        Self {
            row,
            plan,
            units,
            signals,
            cancels: HashMap::new(),
            scope: ScopeCache::default(),
            fanouts: HashMap::new(),
            undo: None,
            unstarted: None,
            held: Vec::new(),
        }
    }
}

/// An attempt handed to the workers and not answered yet.
#[derive(Debug)]
struct InFlight {
    /// Which attempt of its unit it is.
    attempt: u32,
    /// Stops it.
    cancel: CancellationToken,
    /// When it was queued (ms), for its history row.
    started_at: i64,
}

pub(super) struct Executor {
    store: Store,
    defs: Arc<Definitions>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    /// `config.secrets`, shared with every plugin attempt.
    secrets: Arc<std::collections::BTreeMap<String, String>>,
    /// Masks those secrets in the errors the executor writes.
    masker: Arc<crate::plugin::mask::Masker>,
    events: broadcast::Sender<RunEvent>,
    /// What keeps the loop from progressing, for `/readyz`.
    health: Arc<Health>,
    /// Counters for `/metrics`, updated after each commit.
    metrics: Arc<Metrics>,
    /// Channels of followed runs.
    followers: Arc<super::events::Followers>,
    /// Runs created this turn (counted once they are committed).
    created: usize,
    /// Cancelled when shutdown is asked for, so a commit retrying against a failing database
    /// gives up instead of holding the shutdown.
    stopping: Stopping,
    runs: HashMap<String, RunState>,
    /// Runs held here whose workflow version does not plan: they wait, with their lease kept,
    /// until a [`Command::Define`] of that version.
    blocked: HashMap<String, RunRow>,
    /// (wake time ms, run id, unit).
    timers: BTreeSet<(i64, String, UnitKey)>,
    /// Cron triggers of the newest workflow versions (empty when `config.cron` is off).
    crons: Vec<CronTrigger>,
    /// Attempts for the worker threads: one waiting per worker at most; the rest wait in
    /// `backlog`, in order.
    jobs: std::sync::mpsc::SyncSender<Job>,
    backlog: std::collections::VecDeque<Job>,
    done_rx: mpsc::Receiver<Done>,
    /// Signal ids reserved from the store and not yet used.
    signal_ids: std::ops::Range<i64>,
    /// This turn: runs to advance.
    dirty: BTreeSet<String>,
    /// This turn: units and runs changed (to write and announce).
    touched_units: BTreeSet<(String, UnitKey)>,
    touched_runs: BTreeSet<String>,
    /// This turn: attempts to dispatch after the commit.
    dispatch: Vec<Job>,
    /// This turn: callers to answer after the commit.
    replies: Vec<Reply>,
    /// Incidents changed this turn.
    incident_writes: Vec<Write>,
    /// Finished attempts of this turn, for the units' histories.
    attempt_writes: Vec<Write>,
    /// Signals delivered or taken this turn.
    signal_writes: Vec<Write>,
    /// Requests whose runs were created this turn.
    request_writes: Vec<Write>,
    /// Incidents not yet resolved, so `update`/`resolve` steps find them without a read.
    open_incidents: HashMap<String, IncidentRow>,
    /// People, schedules and escalation policies, for `escalate:` units.
    oncall: super::OnCallSet,
    /// Partitions held: partition → the epoch of this process's lease on it.
    held: BTreeMap<i64, i64>,
    /// The same set, for the API and the one-at-a-time duties.
    held_now: Arc<Held>,
    /// How many shared partitions the database has.
    shared: u32,
    /// This process's private partition (`csmp run`).
    private: Option<i64>,
    /// Inbox commands taken and not yet answered in a commit, with their partitions.
    inbox_taken: HashMap<String, i64>,
    /// Whether the inbox is to be read at the next turn (a wake-up, a partition gained).
    inbox_due: bool,
    /// Rung when another process wrote to an inbox.
    bell: Arc<tokio::sync::Notify>,
    /// Rung when a process joined or left: this one rebalances at once.
    members: Arc<tokio::sync::Notify>,
    /// Waits for the answers of commands forwarded to other processes.
    mailbox: Arc<Mailbox>,
    /// This turn: commands forwarded (inbox id, partition, caller), handed to the mailbox after
    /// the commit.
    forwarded: Vec<(String, i64, Answerer)>,
    /// This turn: partitions whose holder is to be woken after the commit.
    wake: BTreeSet<i64>,
    /// This turn: inbox commands answered (their senders are woken after the commit).
    answered: Vec<String>,
}

/// What the executor shares with its [`Engine`](super::Engine) handles.
pub(super) struct Shared {
    /// Committed transitions, for subscribers.
    pub(super) events: broadcast::Sender<RunEvent>,
    /// What keeps the loop from progressing.
    pub(super) health: Arc<Health>,
    /// The executor's counters.
    pub(super) metrics: Arc<Metrics>,
    /// Channels of followed runs.
    pub(super) followers: Arc<super::events::Followers>,
    /// Cancelled when a shutdown is coming.
    pub(super) stopping: Stopping,
    /// The on-call set in force.
    pub(super) oncall: super::OnCallSet,
    /// The partitions held, for the API.
    pub(super) held: Arc<Held>,
    /// Waits for forwarded commands' answers.
    pub(super) mailbox: Arc<Mailbox>,
    /// Rung when another process wrote to an inbox.
    pub(super) bell: Arc<tokio::sync::Notify>,
    /// Rung when a process joined or left.
    pub(super) members: Arc<tokio::sync::Notify>,
}

/// Where a steer's caller waits for its outcome.
type Answerer = oneshot::Sender<Result<super::Done, EngineError>>;

enum Reply {
    Submitted(oneshot::Sender<Result<String, EngineError>>, String),
    /// Done once committed; refused if the run it names was taken over meanwhile.
    Done(oneshot::Sender<Result<(), EngineError>>, Option<String>),
    /// A steer applied here: its answer once committed; refused if the run it names was taken
    /// over meanwhile.
    Steered(Answerer, super::Done, Option<String>),
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
        shared: Shared,
    ) -> Result<Self, EngineError> {
        let Shared {
            events,
            health,
            metrics,
            followers,
            stopping,
            oncall,
            held: held_now,
            mailbox,
            bell,
            members,
        } = shared;
        let (done_tx, done_rx) = mpsc::channel(RESULTS_QUEUE);
        let jobs = workers::start(host, done_tx, config.observer.clone(), Arc::clone(&metrics));
        let mut exec = Self {
            store,
            defs,
            clock,
            secrets: Arc::new(config.secrets.clone()),
            masker: Arc::new(crate::plugin::mask::Masker::new(&config.secrets)),
            config,
            events,
            health,
            metrics,
            followers,
            created: 0,
            stopping,
            runs: HashMap::new(),
            blocked: HashMap::new(),
            timers: BTreeSet::new(),
            crons: Vec::new(),
            jobs,
            backlog: std::collections::VecDeque::new(),
            done_rx,
            signal_ids: 0..0,
            dirty: BTreeSet::new(),
            touched_units: BTreeSet::new(),
            touched_runs: BTreeSet::new(),
            dispatch: Vec::new(),
            replies: Vec::new(),
            incident_writes: Vec::new(),
            attempt_writes: Vec::new(),
            signal_writes: Vec::new(),
            request_writes: Vec::new(),
            open_incidents: HashMap::new(),
            oncall,
            held: BTreeMap::new(),
            held_now,
            shared: 1,
            private: None,
            inbox_taken: HashMap::new(),
            inbox_due: true,
            bell,
            members,
            mailbox,
            forwarded: Vec::new(),
            wake: BTreeSet::new(),
            answered: Vec::new(),
        };
        exec.shared = exec.store.partition_count().await?;
        exec.reload_incidents().await?;
        exec.signal_ids = exec.store.reserve_ids("signals", SIGNAL_IDS).await?;
        exec.join().await?;
        Ok(exec)
    }

    /// Arms the cron triggers (this process now holds the cron partition), each against its
    /// last recorded fire.
    async fn arm_crons(&mut self) {
        if !self.config.cron {
            return;
        }
        match self.store.last_cron_fires().await {
            Ok(last) => {
                self.crons =
                    super::cron::arm(&self.defs, &last, self.clock.now_ms(), self.catch_up_ms());
                tracing::info!(triggers = self.crons.len(), "cron triggers fire here");
            }
            Err(e) => tracing::warn!(
                "cannot read the last cron fires; triggers are armed at the next takeover: {e}"
            ),
        }
    }

    /// How far back missed cron instants still fire, in order, when a process takes the cron
    /// partition over (a failover's gap); older ones are dropped but for the latest.
    fn catch_up_ms(&self) -> i64 {
        self.lease_ms().saturating_mul(2)
    }

    /// Keeps every unresolved incident in view (`incident:` steps update them by id); other
    /// processes change them too, so this is read again as leases are tended.
    async fn reload_incidents(&mut self) -> Result<(), EngineError> {
        let open: HashMap<String, IncidentRow> = self
            .store
            .open_incidents()
            .await?
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
        self.open_incidents = open;
        Ok(())
    }

    /// The lease length in ms.
    fn lease_ms(&self) -> i64 {
        i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// Reserves more signal ids when few are left (as leases are tended, so a signal seldom
    /// waits for a reservation).
    async fn refill_signal_ids(&mut self) {
        if self.signal_ids.end - self.signal_ids.start < SIGNAL_IDS / 4 {
            match self.store.reserve_ids("signals", SIGNAL_IDS).await {
                Ok(ids) => self.signal_ids = ids,
                Err(e) => tracing::warn!("cannot reserve signal ids: {e}"),
            }
        }
    }

    /// The next signal id, from a block reserved in the store (refilled as leases are tended,
    /// so a signal seldom waits for a reservation).
    async fn signal_id(&mut self) -> Result<i64, EngineError> {
        if self.signal_ids.is_empty() {
            match self.store.reserve_ids("signals", SIGNAL_IDS).await {
                Ok(ids) => self.signal_ids = ids,
                Err(e) => {
                    if e.is_transient() {
                        self.health
                            .storage_down(&e.to_string(), self.clock.now_ms());
                    }
                    return Err(e.into());
                }
            }
        }
        let id = self.signal_ids.start;
        self.signal_ids.start += 1;
        Ok(id)
    }

    /// Tells the callers waiting on a change to an incident of partition `p` (lost) that it was
    /// not made; those waiting on its runs are told by [`Self::lose_run`].
    fn refuse_replies_of(&mut self, p: i64) {
        fn refused<T>(id: &str) -> Result<T, EngineError> {
            Err(EngineError::Conflict(format!(
                "incident `{id}` is held by another process now; send this again"
            )))
        }
        let mut kept = Vec::with_capacity(self.replies.len());
        for reply in self.replies.drain(..) {
            match reply {
                Reply::Incident(tx, row) if row.partition == p => drop(tx.send(refused(&row.id))),
                Reply::Steered(tx, super::Done::Incident { row }, _) if row.partition == p => {
                    drop(tx.send(refused(&row.id)));
                }
                other => kept.push(other),
            }
        }
        self.replies = kept;
    }

    /// The leases held, and the partitions of the runs active (or blocked) here among `runs`,
    /// to fence writes with.
    fn fence(&self, runs: impl IntoIterator<Item = String>) -> Fence {
        Fence {
            owner: self.config.owner.clone(),
            held: self.held.iter().map(|(p, e)| (*p, *e)).collect(),
            runs: runs
                .into_iter()
                .filter_map(|id| {
                    let partition = match self.runs.get(&id) {
                        Some(r) => r.row.partition,
                        None => self.blocked.get(&id)?.partition,
                    };
                    Some((id, partition))
                })
                .collect(),
        }
    }

    /// A run of a partition this process no longer holds: it is dropped here without writing
    /// anything more; callers waiting on it are told.
    fn lose_run(&mut self, run_id: &str) {
        let Some(run) = self.runs.remove(run_id) else {
            return;
        };
        tracing::debug!(
            run = %run_id,
            workflow = %run.row.workflow,
            "run dropped here: its partition is another process's now"
        );
        for f in run.cancels.values() {
            f.cancel.cancel();
        }
        self.followers.close(run_id);
        self.dispatch.retain(|job| job.run_id != run_id);
        self.backlog.retain(|job| job.run_id != run_id);
        self.touched_units.retain(|(r, _)| r != run_id);
        self.touched_runs.remove(run_id);
        self.dirty.remove(run_id);
        let mut kept = Vec::with_capacity(self.replies.len());
        for reply in self.replies.drain(..) {
            match reply {
                Reply::Done(tx, Some(r)) if r == run_id => {
                    drop(tx.send(Err(EngineError::Conflict(format!(
                        "run `{run_id}` is executed by another process now; send this again"
                    )))))
                }
                Reply::Submitted(tx, r) if r == run_id => {
                    drop(tx.send(Err(EngineError::Conflict(format!(
                        "run `{run_id}` could not be written: its partition is another process's now; send this again"
                    )))))
                }
                Reply::Steered(tx, _, Some(r)) if r == run_id => {
                    drop(tx.send(Err(EngineError::Conflict(format!(
                        "run `{run_id}` is executed by another process now; send this again"
                    )))))
                }
                other => kept.push(other),
            }
        }
        self.replies = kept;
    }

    pub(super) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let renew_every = (self.config.lease / 3).max(Duration::from_millis(100));
        // The inbox is read when another process rings, and this often without a ring (a
        // notification can be lost; SQLite has none).
        let mut inbox_poll = tokio::time::interval(INBOX_POLL);
        inbox_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let bell = Arc::clone(&self.bell);
        let members = Arc::clone(&self.members);
        // While a storage fault is recorded and nothing is retrying a commit, a write is tried
        // this often, so the fault clears as soon as the database takes writes again.
        let mut probe = tokio::time::interval(Duration::from_secs(1));
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Recovery has just set every lease: the first renewal is one period away.
        let mut renew =
            tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop: Option<oneshot::Sender<()>> = None;
        // The first turn advances everything recovered.
        if !self.turn().await {
            return;
        }
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
                    self.tend().await;
                    self.inbox_due = true;
                }
                _ = probe.tick(), if self.health.storage_fault().is_some() => self.tend().await,
                () = bell.notified() => self.inbox_due = true,
                () = members.notified() => self.tend().await,
                _ = inbox_poll.tick(), if !self.held.is_empty() => self.inbox_due = true,
            }
            if std::mem::take(&mut self.inbox_due) {
                self.read_inbox().await;
            }
            // Take everything else that is already waiting: one commit for all of it.
            while let Ok(d) = self.done_rx.try_recv() {
                self.done(d);
            }
            // Workers that answered are free for waiting attempts.
            self.feed_workers();
            while stop.is_none() {
                match commands.try_recv() {
                    Ok(Command::Shutdown(tx)) => stop = Some(tx),
                    Ok(c) => self.command(c).await,
                    Err(_) => break,
                }
            }
            if !self.turn().await {
                // Asked to stop while the database fails: nothing more can be written.
                if let Some(tx) = stop.take() {
                    let _ = tx.send(());
                }
                return;
            }
            if let Some(tx) = stop.take() {
                // Hand the partitions back, so another process may take them at once instead
                // of waiting out the lease. Attempts still in flight are run again by whoever
                // takes their run (same idempotency key).
                let leases = self.leases();
                let owner = self.config.owner.clone();
                // Private partitions left with nothing to do are forgotten, not given back.
                let private: Vec<crate::store::Lease> = leases
                    .iter()
                    .copied()
                    .filter(|l| l.partition >= i64::from(self.shared))
                    .collect();
                if let Err(e) = self.store.release_idle_private(&owner, &private).await {
                    tracing::debug!("cannot forget idle private partitions: {e}");
                }
                if let Err(e) = self.store.release_partitions(&owner, &leases).await {
                    tracing::warn!("cannot give back partitions: {e}");
                }
                if let Err(e) = self.store.leave(&owner).await {
                    tracing::warn!("cannot leave the members: {e}");
                }
                self.announce_membership();
                let _ = tx.send(());
                return;
            }
        }
    }

    /// Fires due cron triggers and timers, advances changed runs, commits, then acts on the
    /// commit; again while the commit itself left runs to advance. Returns `false` when the
    /// loop must stop (shutdown while the database fails).
    async fn turn(&mut self) -> bool {
        self.fire_crons().await;
        self.fire_timers();
        loop {
            while let Some(id) = self.dirty.pop_first() {
                self.advance(&id);
            }
            if !self.flush().await {
                return false;
            }
            if self.dirty.is_empty() {
                return true;
            }
        }
    }

    async fn flush(&mut self) -> bool {
        let mut writes = Vec::new();
        // Errors the executor composes (a template that cannot render, a run failed because
        // of a step) are masked here, in memory, before anything stores, logs or streams them;
        // what came from a plugin attempt was masked by the host already.
        let masker = &self.masker;
        for id in &self.touched_runs {
            if let Some(r) = self.runs.get_mut(id) {
                if let Some(e) = &mut r.row.error {
                    masker.mask_in_place(e);
                }
                writes.push(Write::Run(r.row.clone()));
            }
        }
        for (run, key) in &self.touched_units {
            if let Some(u) = self.runs.get_mut(run).and_then(|r| r.units.get_mut(key)) {
                if let Some(e) = &mut u.error {
                    masker.mask_in_place(e);
                }
                writes.push(Write::Step(u.clone()));
            }
        }
        writes.append(&mut self.signal_writes);
        writes.append(&mut self.request_writes);
        writes.append(&mut self.incident_writes);
        writes.append(&mut self.attempt_writes);
        if !self.commit(writes).await {
            return false;
        }
        // Committed: now it is safe to act and to tell.
        let dispatch = std::mem::take(&mut self.dispatch);
        self.backlog.extend(dispatch);
        self.feed_workers();
        for reply in self.replies.drain(..) {
            match reply {
                Reply::Submitted(tx, id) => drop(tx.send(Ok(id))),
                Reply::Done(tx, _) => drop(tx.send(Ok(()))),
                Reply::Steered(tx, done, _) => drop(tx.send(Ok(done))),
                Reply::Incident(tx, row) => drop(tx.send(Ok(*row))),
            }
        }
        self.after_commit();
        for _ in 0..std::mem::take(&mut self.created) {
            self.metrics.run_started();
        }
        for (run, key) in std::mem::take(&mut self.touched_units) {
            if let Some(u) = self.runs.get(&run).and_then(|r| r.units.get(&key)) {
                log_unit(&run, u);
                match u.status {
                    StepStatus::Retrying => self.metrics.attempt_retried(),
                    s if s.is_final() => self.metrics.unit_ended(s),
                    _ => {}
                }
                let event = RunEvent {
                    run_id: run.clone(),
                    step: Some(key.to_string()),
                    status: u.status.as_str().into(),
                    error: u.error.clone(),
                    outputs: None,
                };
                self.followers.publish(&event, false);
                let _ = self.events.send(event);
            }
        }
        let finished: Vec<String> = std::mem::take(&mut self.touched_runs)
            .into_iter()
            .filter(|id| {
                let Some(r) = self.runs.get(id) else {
                    return false;
                };
                log_run(&r.row);
                if r.row.status.is_final() {
                    self.metrics.run_finished(
                        r.row.status,
                        r.row.finished_at.unwrap_or(r.row.updated_at) - r.row.created_at,
                    );
                }
                let ended = r.row.status.is_final();
                let event = RunEvent {
                    run_id: id.clone(),
                    step: None,
                    status: r.row.status.as_str().into(),
                    error: r.row.error.clone(),
                    outputs: r.row.outputs.clone().filter(|_| ended),
                };
                self.followers.publish(&event, ended);
                let _ = self.events.send(event);
                ended
            })
            .collect();
        for id in finished {
            self.runs.remove(&id);
        }
        self.metrics
            .set_load(self.runs.len(), self.blocked.len(), self.backlog.len());
        true
    }

    /// Hands waiting attempts to the worker threads as long as one is free to take them.
    fn feed_workers(&mut self) {
        while let Some(job) = self.backlog.pop_front() {
            match self.jobs.try_send(job) {
                Ok(()) => self.metrics.attempt_handed(),
                Err(std::sync::mpsc::TrySendError::Full(job)) => {
                    self.backlog.push_front(job);
                    return;
                }
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                    tracing::error!("step workers are gone; attempts cannot run");
                    self.backlog.clear();
                    return;
                }
            }
        }
    }

    // ----- small helpers shared by the concerns -----

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

    fn blank(&self, run_id: &str, key: UnitKey, now: i64) -> StepRow {
        let position = self
            .runs
            .get(run_id)
            .map_or(0, |r| plan_position(&r.plan, &key));
        StepRow {
            run_id: run_id.into(),
            key,
            position,
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
        self.mark(run_id, key);
    }

    /// Marks a unit changed: it is written and announced at the end of the turn, and its run
    /// is advanced.
    fn touch(&mut self, run_id: &str, key: UnitKey) {
        self.mark(run_id, key);
        self.dirty.insert(run_id.into());
    }

    /// Records that a unit changed this turn — to be written and announced — and that the
    /// run's template scope must refresh its entry. Every change of a unit goes through here.
    fn mark(&mut self, run_id: &str, key: UnitKey) {
        if let Some(run) = self.runs.get_mut(run_id) {
            run.scope.invalidate(&key);
        }
        self.touched_units.insert((run_id.into(), key));
    }
}

/// A committed unit transition in the service log: every one at debug, failures at warn.
fn log_unit(run: &str, u: &StepRow) {
    let status = u.status.as_str();
    match u.status {
        StepStatus::Failed => tracing::warn!(
            run = %run,
            unit = %u.key,
            attempt = u.attempt,
            error = u.error.as_deref().unwrap_or_default(),
            "unit failed"
        ),
        StepStatus::Retrying => tracing::warn!(
            run = %run,
            unit = %u.key,
            attempt = u.attempt,
            error = u.error.as_deref().unwrap_or_default(),
            "attempt failed; retrying"
        ),
        _ => tracing::debug!(run = %run, unit = %u.key, attempt = u.attempt, status, "unit"),
    }
}

/// A committed run transition in the service log: every one at debug, failures at warn.
fn log_run(r: &RunRow) {
    let status = r.status.as_str();
    match r.status {
        RunStatus::Failed | RunStatus::Failing => tracing::warn!(
            run = %r.id,
            workflow = %r.workflow,
            version = r.version,
            status,
            error = r.error.as_deref().unwrap_or_default(),
            "run failed"
        ),
        _ => {
            tracing::debug!(run = %r.id, workflow = %r.workflow, version = r.version, status, "run")
        }
    }
}

/// Where a unit's step comes in the plan, for listing units in plan order: main steps by
/// position, then `on_failure` steps, then compensations (by the step they undo).
fn plan_position(plan: &Plan, key: &UnitKey) -> u32 {
    let main = plan.steps().len();
    let index = |id: &str| plan.position(id).unwrap_or(main);
    let at = match key {
        UnitKey::Step(id) | UnitKey::Item(id, _) => index(id),
        UnitKey::OnFailure(id) => {
            main + plan
                .on_failure()
                .iter()
                .position(|s| s.id == *id)
                .unwrap_or(0)
        }
        UnitKey::Compensation(id, _) => main + plan.on_failure().len() + index(id),
    };
    u32::try_from(at).unwrap_or(u32::MAX)
}

/// Results of attempts waiting for the executor at most; past it worker threads wait.
const RESULTS_QUEUE: usize = 1024;

/// Signal ids reserved from the store at a time.
const SIGNAL_IDS: i64 = 64;

/// How often the inbox is read without a wake-up.
const INBOX_POLL: Duration = Duration::from_secs(1);

fn failed(mut row: StepRow, error: String, now: i64) -> StepRow {
    row.status = StepStatus::Failed;
    row.error = Some(explain(error));
    row.finished_at = Some(now);
    row
}

/// Milliseconds of a duration, saturating.
fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
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
