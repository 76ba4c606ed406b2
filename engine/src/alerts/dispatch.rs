//! The dispatcher: the one writer of alert groups. It stores each notification's alerts with
//! what they did (deduplicated, silenced, grouped), acts for a group once its `group_wait`
//! ends (a durable timer: the group row's `act_at`), and hands later alerts and the group's
//! resolution to the group's run as the signals `alert` and `resolved`, each marked delivered
//! in the commit that buffers it — so a restart at any point starts no second run and sends
//! no signal twice.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Alert;
use super::decide::decide;
pub use super::decide::{Decision, RuleDecision};
use super::rules::{NOTIFY_WORKFLOW, RulePlan};

/// The shipped workflow that escalates an incident a rule opened.
pub const ESCALATE_WORKFLOW: &str = "escalate";
use super::silences::Silence;
use crate::runtime::{Clock, Engine, EngineError, NewRun, PROVIDER, Submission};
use crate::store::{
    AlertLink, AlertRow, AuditRow, EventRow, GroupRow, IncidentRow, MatchRow, RunKey, Store,
    StoreError,
};

/// The database-wide lock under which alerts are taken and groups act, one process at a time.
const ALERTS_LOCK: i64 = 0x63_73_6d_70_61_6c_72_74;

/// Most alerts of a group listed in its run's inputs (`group.alerts`).
const GROUP_ALERTS_IN_SCOPE: usize = 100;
/// How long a transient failure waits before the dispatcher tries again.
const RETRY: Duration = Duration::from_secs(2);
/// How often groups whose run ended are closed, and due groups and undelivered signals are
/// looked at again without a wake-up (what a transient failure left is retried then).
const SWEEP: Duration = Duration::from_secs(5);

/// The rules in force, by name. Cheap to clone; shared with the API.
#[derive(Debug, Clone, Default)]
pub struct Rules(Arc<RwLock<Arc<BTreeMap<String, RulePlan>>>>);

impl Rules {
    /// The rules now.
    pub fn get(&self) -> Arc<BTreeMap<String, RulePlan>> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts `rules` in force.
    pub fn set(&self, rules: BTreeMap<String, RulePlan>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(rules);
    }
}

/// Counters for `/metrics`, by source and by rule.
#[derive(Debug, Default)]
pub struct AlertMetrics {
    counts: std::sync::Mutex<BTreeMap<(&'static str, String), u64>>,
}

impl AlertMetrics {
    pub(crate) fn add(&self, what: &'static str, label: &str, n: u64) {
        if n == 0 {
            return;
        }
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        *c.entry((what, label.to_string())).or_default() += n;
    }

    /// Every counter: (name, label value, count). Names: `received`, `deduplicated`,
    /// `silenced` (by source), `acted`, `rule_errors` (by rule).
    pub fn snapshot(&self) -> Vec<(&'static str, String, u64)> {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|((w, l), n)| (*w, l.clone(), *n))
            .collect()
    }
}

/// A notification's alerts, to be stored and acted on.
#[derive(Debug)]
pub struct Intake {
    /// The notification as received.
    pub event: EventRow,
    /// Its alerts.
    pub alerts: Vec<Alert>,
    /// The call's audit entry, written with them.
    pub audit: Option<AuditRow>,
    /// An SNS `MessageId`: a message already taken is not taken again (checked here, where
    /// intakes are one at a time, so copies arriving together are taken once).
    pub once: Option<String>,
}

enum Job {
    Intake(
        Box<Intake>,
        oneshot::Sender<Result<Option<Vec<Decision>>, DispatchError>>,
    ),
    Wake,
}

/// Why alerts could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The database refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The dispatcher has stopped (shutdown).
    #[error("the alert dispatcher has stopped")]
    Stopped,
}

/// The handle the API uses. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    jobs: mpsc::Sender<JobBox>,
    /// The rules in force.
    pub rules: Rules,
    /// Counters for `/metrics`.
    pub metrics: Arc<AlertMetrics>,
    store: Store,
    clock: Arc<dyn Clock>,
}

/// A job, boxed so the channel is `Debug`.
struct JobBox(Job);

impl std::fmt::Debug for JobBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl Dispatcher {
    /// Starts the dispatcher task: first it acts on what a crash left (due groups, signals
    /// not yet delivered), then it serves intakes and timers until `stop`.
    pub fn start(
        engine: Engine,
        rules: Rules,
        clock: Arc<dyn Clock>,
        stop: CancellationToken,
    ) -> Self {
        let (jobs, rx) = mpsc::channel(1024);
        let metrics = Arc::new(AlertMetrics::default());
        let store = engine.store().clone();
        let worker = Worker {
            engine,
            store: store.clone(),
            rules: rules.clone(),
            clock: Arc::clone(&clock),
            metrics: Arc::clone(&metrics),
            queued: std::sync::Mutex::default(),
        };
        tokio::spawn(worker.run(rx, stop));
        Self {
            jobs,
            rules,
            metrics,
            store,
            clock,
        }
    }

    /// Stores a notification's alerts (with its audit entry) and says what each did; the
    /// actions follow right after, in the dispatcher. `None`: its `once` key was taken before.
    pub async fn take(&self, intake: Intake) -> Result<Option<Vec<Decision>>, DispatchError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(JobBox(Job::Intake(Box::new(intake), tx)))
            .await
            .map_err(|_| DispatchError::Stopped)?;
        rx.await.map_err(|_| DispatchError::Stopped)?
    }

    /// Asks the dispatcher to look at due groups now (after rules changed, say).
    pub fn wake(&self) {
        drop(self.jobs.try_send(JobBox(Job::Wake)));
    }

    /// What `alerts` would do now against `rules`, changing nothing; `replay` (alerts that
    /// are stored already) skips deduplication, which would find each alert itself.
    pub async fn dry_run(
        &self,
        alerts: &[Alert],
        rules: &BTreeMap<String, RulePlan>,
        replay: bool,
    ) -> Result<Vec<Decision>, StoreError> {
        let now = self.clock.now_ms();
        let silences = active_silences(&self.store, now).await?;
        let (_, decisions) =
            decide(&self.store, rules, &silences, alerts, now, None, !replay).await?;
        Ok(decisions)
    }
}

async fn active_silences(store: &Store, now: i64) -> Result<Vec<Silence>, StoreError> {
    let rows = store.silences(now, false, None).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let id = row.id.clone();
            Silence::of(row)
                .map_err(|e| tracing::warn!(silence = %id, "a stored silence no longer compiles and silences nothing: {e}"))
                .ok()
        })
        .collect())
}

pub(super) fn new_id(prefix: &str) -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        b = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            .to_le_bytes();
    }
    format!(
        "{prefix}-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

pub(super) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

struct Worker {
    engine: Engine,
    store: Store,
    rules: Rules,
    clock: Arc<dyn Clock>,
    metrics: Arc<AlertMetrics>,
    /// Alerts whose signal went to another process's inbox unanswered (it applies them, and
    /// marks them delivered, when it can): not sent again before this time (ms).
    queued: std::sync::Mutex<BTreeMap<String, i64>>,
}

/// How long an alert whose forwarded signal was not answered in time is left to its run's
/// process before it is sent again.
const QUEUED_FOR: Duration = Duration::from_secs(600);

/// What a group's action run into: try again later, or give the group up.
enum Trouble {
    Later(String),
    Fatal(String),
}

impl From<StoreError> for Trouble {
    fn from(e: StoreError) -> Self {
        Trouble::Later(e.to_string())
    }
}

fn trouble(e: EngineError) -> Trouble {
    match e {
        EngineError::Unavailable(_)
        | EngineError::Busy(_)
        | EngineError::Stopped
        | EngineError::Store(_) => Trouble::Later(e.to_string()),
        other => Trouble::Fatal(other.to_string()),
    }
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<JobBox>, stop: CancellationToken) {
        self.work().await;
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = match self.store.next_group_due().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!("cannot read when the next alert group is due: {e}");
                    Some(self.clock.now_ms().saturating_add(ms(RETRY)))
                }
            };
            let due = self.clock.sleep_until(next.unwrap_or(i64::MAX / 2));
            tokio::select! {
                () = stop.cancelled() => return,
                job = rx.recv() => match job {
                    None => return,
                    Some(JobBox(Job::Intake(intake, reply))) => {
                        let result = self.intake(*intake).await;
                        let ok = matches!(result, Ok(Some(_)));
                        drop(reply.send(result));
                        if ok {
                            self.engine.announce_alerts();
                            self.work().await;
                        }
                    }
                    Some(JobBox(Job::Wake)) => self.work().await,
                },
                () = due => self.work().await,
                () = self.engine.alerts_taken_elsewhere() => self.work().await,
                _ = sweep.tick() => {
                    self.close_ended().await;
                    self.work().await;
                }
            }
        }
    }

    /// Stores a notification's alerts and decides what each does, while no other process
    /// sharing the database takes one (deduplication and grouping read what the last intake
    /// wrote).
    async fn intake(&self, intake: Intake) -> Result<Option<Vec<Decision>>, DispatchError> {
        self.store
            .serialized(ALERTS_LOCK, async || self.intake_now(intake).await)
            .await?
    }

    async fn intake_now(&self, intake: Intake) -> Result<Option<Vec<Decision>>, DispatchError> {
        if let Some(id) = &intake.once
            && self.store.sns_message_seen(id).await?
        {
            return Ok(None);
        }
        let now = self.clock.now_ms();
        let silences = active_silences(&self.store, now).await?;
        let rules = self.rules.get();
        let (write, decisions) = decide(
            &self.store,
            &rules,
            &silences,
            &intake.alerts,
            now,
            Some(&intake.event),
            true,
        )
        .await?;
        self.store
            .record_intake(&write, intake.audit.as_ref())
            .await?;
        for (a, d) in intake.alerts.iter().zip(&decisions) {
            self.metrics.add("received", &a.source, 1);
            match d.outcome.as_str() {
                "duplicate" => self.metrics.add("deduplicated", &a.source, 1),
                "silenced" => self.metrics.add("silenced", &a.source, 1),
                _ => {}
            }
            for r in &d.rules {
                if r.error.is_some() {
                    self.metrics.add("rule_errors", &r.rule, 1);
                }
            }
        }
        Ok(Some(decisions))
    }

    /// Acts for due groups and delivers what is pending — in the one process that holds the
    /// cron partition, and while no intake runs anywhere.
    async fn work(&self) {
        if !self.engine.leads() {
            return;
        }
        if let Err(e) = self
            .store
            .serialized(ALERTS_LOCK, async || self.work_now().await)
            .await
        {
            tracing::warn!("cannot act on alert groups now: {e}");
        }
    }

    async fn work_now(&self) {
        let now = self.clock.now_ms();
        match self.store.due_groups(now).await {
            Ok(groups) => {
                for g in groups {
                    let id = g.id.clone();
                    if let Err(e) = self.act(g).await {
                        tracing::warn!(group = %id, "an alert group could not act: {e}");
                    }
                }
            }
            Err(e) => tracing::warn!("cannot read the alert groups that are due: {e}"),
        }
        match self.store.groups_to_signal().await {
            Ok(groups) => {
                for g in groups {
                    let id = g.id.clone();
                    if let Err(e) = self.deliver(g).await {
                        tracing::warn!(group = %id, "alerts could not reach their group's run: {e}");
                    }
                }
            }
            Err(e) => tracing::warn!("cannot read the alert groups with signals to send: {e}"),
        }
    }

    /// Closes the open groups whose run has ended: their cooldown starts when the run ended
    /// (in the process that acts on groups).
    async fn close_ended(&self) {
        if !self.engine.leads() {
            return;
        }
        let groups = match self.store.groups_with_ended_runs().await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!("cannot read the alert groups whose run ended: {e}");
                return;
            }
        };
        for (mut g, finished) in groups {
            let now = self.clock.now_ms();
            g.state = "ended".into();
            g.ended_at = Some(finished.unwrap_or(now));
            g.updated_at = now;
            if let Err(e) = self.store.put_group(&g, false).await {
                tracing::warn!(group = %g.id, "cannot close an alert group whose run ended: {e}");
            }
        }
    }

    async fn act(&self, mut g: GroupRow) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let rules = self.rules.get();
        let Some(rule) = rules.get(&g.rule) else {
            g.state = "failed".into();
            g.act_at = None;
            g.error = Some(format!("rule `{}` no longer exists", g.rule));
            g.updated_at = now;
            return self.store.put_group(&g, false).await;
        };
        let alerts = self.store.group_alerts(&g.id, false).await?;
        let waiting: Vec<&(MatchRow, AlertRow)> = alerts
            .iter()
            .filter(|(m, _)| m.outcome == "waiting")
            .collect();
        if g.firing.is_empty() || waiting.is_empty() {
            g.state = "ended".into();
            g.act_at = None;
            g.ended_at = Some(now);
            g.updated_at = now;
            return self.store.put_group(&g, false).await;
        }
        if let Some((count, within)) = rule.min_occurrences {
            let since = now.saturating_sub(ms(within));
            let seen = waiting
                .iter()
                .filter(|(m, _)| m.firing && m.received_at >= since)
                .count();
            if seen < count as usize {
                // Not yet: the next alert of the group looks again.
                g.act_at = None;
                g.updated_at = now;
                return self.store.put_group(&g, false).await;
            }
        }
        let first = &waiting[0].1.alert;
        let scope_json = json!({
            "id": g.id,
            "rule": g.rule,
            "labels": g.key.iter().filter(|(k, _)| !k.starts_with('@')).collect::<BTreeMap<_, _>>(),
            "tenant": g.tenant,
            "count": g.firing.len(),
            "alerts": waiting.iter().take(GROUP_ALERTS_IN_SCOPE).map(|(_, a)| a.alert.scope()).collect::<Vec<_>>(),
        });
        let scope = RulePlan::scope(first, &scope_json);
        let tenant = g.tenant.clone().unwrap_or_else(|| PROVIDER.to_string());
        let result = self.carry_out(rule, &mut g, &scope, &tenant).await;
        g.updated_at = self.clock.now_ms();
        match result {
            Ok(()) => {
                self.metrics.add("acted", &g.rule, 1);
                g.act_at = None;
                g.acted_at = Some(now);
                g.state = "active".into();
                tracing::info!(rule = %g.rule, group = %g.id, run = ?g.run_id, incident = ?g.incident_id, "an alert group acted");
                self.store.put_group(&g, true).await
            }
            Err(Trouble::Later(e)) => {
                tracing::warn!(rule = %g.rule, group = %g.id, "an alert group's action will be tried again: {e}");
                g.act_at = Some(now.saturating_add(ms(RETRY)));
                self.store.put_group(&g, false).await
            }
            Err(Trouble::Fatal(e)) => {
                tracing::error!(rule = %g.rule, group = %g.id, "an alert group's action failed: {e}");
                self.metrics.add("rule_errors", &g.rule, 1);
                g.act_at = None;
                g.state = "failed".into();
                g.error = Some(e);
                g.ended_at = Some(now);
                self.store.put_group(&g, false).await
            }
        }
    }

    /// Opens the incident, starts the run and sends the messages of a rule for a group; each
    /// is done at most once, so a retry after a crash picks up where it stopped.
    async fn carry_out(
        &self,
        rule: &RulePlan,
        g: &mut GroupRow,
        scope: &handlebars::Context,
        tenant: &str,
    ) -> Result<(), Trouble> {
        let now = self.clock.now_ms();
        let render = |t: &crate::template::Template, what: &str| {
            t.render(scope)
                .map(|v| match v {
                    Json::String(s) => s,
                    other => other.to_string(),
                })
                .map_err(|e| Trouble::Fatal(format!("rule `{}`: {what}: {}", rule.name, e.message)))
        };
        if let Some(inc) = &rule.incident
            && g.incident_id.is_none()
        {
            let row = IncidentRow {
                id: new_id("inc"),
                run_id: None,
                tenant: tenant.to_string(),
                title: render(&inc.title, "the incident's title")?,
                severity: inc.severity.clone(),
                service: inc
                    .service
                    .as_ref()
                    .map(|s| render(s, "the incident's service"))
                    .transpose()?,
                status: crate::incidents::TRIGGERED.into(),
                timeline: json!([crate::incidents::opened(
                    now,
                    &format!("rule {}", rule.name),
                    &format!("opened for alert group {}", g.id),
                    &inc.severity
                )]),
                details: json!({}),
                created_at: now,
                updated_at: now,
                // Where the engine puts it.
                partition: 0,
            };
            let link = AlertLink::IncidentOpened {
                group_id: g.id.clone(),
                incident_id: row.id.clone(),
            };
            let opened = self
                .engine
                .open_incident(row, vec![link])
                .await
                .map_err(trouble)?;
            g.incident_id = Some(opened.id);
        }
        if rule.incident.is_some()
            && let Some(id) = g.incident_id.clone()
        {
            self.escalate(rule, g, &id, tenant).await;
        }
        if let Some((workflow, inputs)) = &rule.workflow
            && g.run_id.is_none()
        {
            let inputs = inputs.render(scope).map_err(|e| {
                Trouble::Fatal(format!(
                    "rule `{}`: the workflow's inputs: {}",
                    rule.name, e.message
                ))
            })?;
            g.run_id = Some(
                self.start(
                    rule,
                    g,
                    &workflow.name,
                    workflow.version,
                    inputs,
                    tenant,
                    "run",
                    None,
                )
                .await?,
            );
        }
        for (i, (channel, text)) in rule.notify.iter().enumerate() {
            let inputs =
                json!({ "channel": channel, "text": render(text, "the notify action's text")? });
            if let Err(e) = self
                .start(
                    rule,
                    g,
                    NOTIFY_WORKFLOW,
                    None,
                    inputs,
                    tenant,
                    &format!("notify-{i}"),
                    None,
                )
                .await
            {
                let (Trouble::Later(e) | Trouble::Fatal(e)) = e;
                tracing::warn!(rule = %rule.name, group = %g.id, "a notify action could not start: {e}");
                self.metrics.add("rule_errors", &rule.name, 1);
            }
        }
        Ok(())
    }

    /// Starts, once, the escalation of the incident a rule opened, when an escalation policy
    /// of `oncall/` covers its service: a run of the shipped workflow `escalate`. A failure to
    /// start it is logged and counted; the group goes on.
    async fn escalate(&self, rule: &RulePlan, g: &GroupRow, incident: &str, tenant: &str) {
        let row = match self.store.incident(incident).await {
            Ok(Some(row)) => row,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(rule = %rule.name, %incident, "the incident's escalation could not start: {e}");
                self.metrics.add("rule_errors", &rule.name, 1);
                return;
            }
        };
        let covered = row
            .service
            .as_deref()
            .is_some_and(|s| self.engine.oncall().policy_for(s).is_some());
        if !covered || row.status == crate::incidents::RESOLVED {
            return;
        }
        let inputs = json!({ "incident": incident });
        if let Err(e) = self
            .start(
                rule,
                g,
                ESCALATE_WORKFLOW,
                None,
                inputs,
                tenant,
                "escalate",
                // It lives with its incident, which hears of acknowledgements in process.
                Some(row.partition),
            )
            .await
        {
            let (Trouble::Later(e) | Trouble::Fatal(e)) = e;
            tracing::warn!(rule = %rule.name, group = %g.id, %incident, "the incident's escalation could not start: {e}");
            self.metrics.add("rule_errors", &rule.name, 1);
        }
    }

    /// Starts a run for a group once: its Idempotency-Key is the group and the action.
    #[allow(clippy::too_many_arguments)]
    async fn start(
        &self,
        rule: &RulePlan,
        g: &GroupRow,
        workflow: &str,
        version: Option<u32>,
        inputs: Json,
        tenant: &str,
        what: &str,
        partition: Option<i64>,
    ) -> Result<String, Trouble> {
        let requester = format!("rule:{}", rule.name);
        let key = format!("alert-group:{}:{what}", g.id);
        if let Some((run, _)) = self.store.run_by_key(&requester, &key).await? {
            return Ok(run);
        }
        let labels = BTreeMap::from([
            ("rule".to_string(), rule.name.clone()),
            ("alert-group".to_string(), g.id.clone()),
        ]);
        self.engine
            .submit_with(
                NewRun {
                    workflow: workflow.to_string(),
                    version,
                    inputs,
                    tenant: tenant.to_string(),
                    requester: Some(requester.clone()),
                    partition,
                },
                Submission {
                    labels,
                    key: Some(RunKey {
                        requester,
                        key,
                        body_hash: String::new(),
                    }),
                    audit: None,
                },
            )
            .await
            .map_err(trouble)
    }

    /// Hands a group's pending alerts to its run (and its incident) in arrival order.
    async fn deliver(&self, mut g: GroupRow) -> Result<(), StoreError> {
        if g.state == "waiting" {
            return Ok(());
        }
        let pending = self.store.group_alerts(&g.id, true).await?;
        let labels: BTreeMap<&String, &String> =
            g.key.iter().filter(|(k, _)| !k.starts_with('@')).collect();
        let now = self.clock.now_ms();
        for (m, a) in pending {
            let Some(signal) = m.signal.clone() else {
                continue;
            };
            {
                let mut queued = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
                queued.retain(|_, until| *until > now);
                if queued.contains_key(&m.alert_id) {
                    // Its signal waits in the inbox of the run's process.
                    return Ok(());
                }
            }
            let delivered = AlertLink::Delivered {
                alert_id: m.alert_id.clone(),
                group_id: g.id.clone(),
            };
            if let Some(incident) = &g.incident_id {
                let (action, note) = if signal == "resolved" {
                    (
                        crate::runtime::IncidentSteer::Resolve,
                        "every alert of the group resolved".to_string(),
                    )
                } else {
                    (
                        crate::runtime::IncidentSteer::Note { public: false },
                        format!(
                            "alert {} is {}",
                            a.alert.fingerprint,
                            a.alert.status.as_str()
                        ),
                    )
                };
                match self
                    .engine
                    .steer_incident(
                        incident,
                        action,
                        &format!("rule {}", g.rule),
                        Some(note),
                        None,
                    )
                    .await
                {
                    // Unanswered: it waits in the incident holder's inbox and is applied there.
                    Ok(_)
                    | Err(
                        EngineError::Conflict(_)
                        | EngineError::UnknownIncident(_)
                        | EngineError::Unanswered(_),
                    ) => {}
                    Err(e) => {
                        tracing::warn!(group = %g.id, "the group's incident could not be updated; trying again: {e}");
                        return Ok(());
                    }
                }
            }
            let payload = json!({
                "alert": a.alert.scope(),
                "group": { "id": g.id, "rule": g.rule, "labels": labels, "firing": g.firing.len() },
            });
            match &g.run_id {
                Some(run) => match self
                    .engine
                    .signal_with(run, &signal, payload, vec![delivered])
                    .await
                {
                    Ok(()) => {}
                    Err(EngineError::Unanswered(_)) => {
                        // Queued in the run's process, with the mark that it was delivered:
                        // not sent again meanwhile.
                        self.queued
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(m.alert_id.clone(), now.saturating_add(ms(QUEUED_FOR)));
                        return Ok(());
                    }
                    Err(EngineError::Conflict(_) | EngineError::UnknownRun(_)) => {
                        // The run ended: the group is over, what was pending is dropped.
                        g.state = "ended".into();
                        g.ended_at = Some(self.clock.now_ms());
                        g.updated_at = self.clock.now_ms();
                        return self.store.put_group(&g, false).await;
                    }
                    Err(e) => {
                        tracing::warn!(group = %g.id, run = %run, "a signal could not reach the group's run; trying again: {e}");
                        return Ok(());
                    }
                },
                None => {
                    self.store.mark_delivered(&m.alert_id, &g.id).await?;
                    if signal == "resolved" {
                        g.state = "ended".into();
                        g.ended_at = Some(self.clock.now_ms());
                        g.updated_at = self.clock.now_ms();
                        self.store.put_group(&g, false).await?;
                    }
                }
            }
        }
        Ok(())
    }
}
