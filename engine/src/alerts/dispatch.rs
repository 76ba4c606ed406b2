//! The dispatcher: the one writer of alert groups. It stores each notification's alerts with
//! what they did (deduplicated, silenced, grouped), acts for a group once its `group_wait`
//! ends (a durable timer: the group row's `act_at`), and hands later alerts and the group's
//! resolution to the group's run as the signals `alert` and `resolved`, each marked delivered
//! in the commit that buffers it — so a restart at any point starts no second run and sends
//! no signal twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value as Json, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::rules::{NOTIFY_WORKFLOW, RulePlan};
use super::silences::{Silence, silencing};
use super::{Alert, Status};
use crate::runtime::{Clock, Engine, EngineError, NewRun, PROVIDER, Submission};
use crate::store::{
    AlertLink, AlertRow, AuditRow, EventRow, GroupRow, IncidentRow, IntakeWrite, MatchRow, RunKey,
    Store, StoreError, Write,
};

/// Most alerts of a group listed in its run's inputs (`group.alerts`).
const GROUP_ALERTS_IN_SCOPE: usize = 100;
/// How long a transient failure waits before the dispatcher tries again.
const RETRY: Duration = Duration::from_secs(2);
/// How often open groups are checked for runs that ended.
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
    fn add(&self, what: &'static str, label: &str, n: u64) {
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

/// What one alert did, for the answer and for `POST /v1/rules/test`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Decision {
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// `duplicate`, `silenced`, `unmatched`, `matched` or `ignored`.
    pub outcome: String,
    /// The silence that holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silence: Option<String>,
    /// What each rule does with it.
    pub rules: Vec<RuleDecision>,
}

/// What one rule does with one alert.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleDecision {
    /// The rule.
    pub rule: String,
    /// The group's values.
    pub group: BTreeMap<String, String>,
    /// The group's id (a new group's id is made when it is stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// `open a group`, `wait`, `signal alert`, `signal resolved`, `count (cooldown)`, …
    pub action: String,
    /// The run it reaches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Why it does nothing, when its `when` failed to render.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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

fn new_id(prefix: &str) -> String {
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

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The key of the group an alert falls in: the rule's `group_by` values, and the tenant.
fn group_key(rule: &RulePlan, alert: &Alert) -> BTreeMap<String, String> {
    let mut key = rule.group_key(alert);
    if let Some(t) = &alert.tenant {
        key.insert("@tenant".into(), t.clone());
    }
    key
}

/// Decides what each alert does against the stored groups; returns the writes (when `event`
/// is given) and the decisions. Reads only.
async fn decide(
    store: &Store,
    rules: &BTreeMap<String, RulePlan>,
    silences: &[Silence],
    alerts: &[Alert],
    now: i64,
    event: Option<&EventRow>,
    dedup: bool,
) -> Result<(IntakeWrite, Vec<Decision>), StoreError> {
    let mut w = IntakeWrite {
        event: event.cloned(),
        ..IntakeWrite::default()
    };
    let mut decisions = Vec::new();
    let mut latest: HashMap<(String, String), (Status, Option<i64>)> = HashMap::new();
    let mut groups: HashMap<(String, String), Option<GroupRow>> = HashMap::new();
    let mut ended_runs: HashMap<String, Option<(String, Option<i64>)>> = HashMap::new();
    for alert in alerts {
        let id = new_id("alr");
        let mut d = Decision {
            fingerprint: alert.fingerprint.clone(),
            status: alert.status.as_str().into(),
            outcome: String::new(),
            silence: None,
            rules: Vec::new(),
        };
        let fp = (alert.source.clone(), alert.fingerprint.clone());
        let prev = match latest.get(&fp) {
            Some(p) => Some(*p),
            None if !dedup => None,
            None => store
                .latest_alert(&alert.source, &alert.fingerprint)
                .await?
                .map(|r| (r.alert.status, r.alert.starts_at)),
        };
        latest.insert(fp, (alert.status, alert.starts_at));
        let duplicate = prev.is_some_and(|(status, starts)| {
            status == alert.status
                && (alert.status == Status::Resolved || starts == alert.starts_at)
        });
        if duplicate {
            d.outcome = "duplicate".into();
        } else if let Some(s) = silencing(silences, alert, now) {
            d.outcome = "silenced".into();
            d.silence = Some(s.row.id.clone());
        } else {
            for rule in rules.values() {
                let matched = match rule.matches(alert) {
                    Ok(m) => m,
                    Err(e) => {
                        d.rules.push(RuleDecision {
                            rule: rule.name.clone(),
                            group: BTreeMap::new(),
                            group_id: None,
                            action: "nothing: its `when` could not be rendered".into(),
                            run_id: None,
                            error: Some(e),
                        });
                        continue;
                    }
                };
                if !matched {
                    continue;
                }
                let key = group_key(rule, alert);
                let slot = (rule.name.clone(), crate::store::key_text(&key));
                if !groups.contains_key(&slot) {
                    let g = store.current_group(&rule.name, &key).await?;
                    groups.insert(slot.clone(), g);
                }
                let current = groups.get(&slot).cloned().flatten();
                let (group, m, action) = place(
                    store,
                    rule,
                    current,
                    alert,
                    &id,
                    key.clone(),
                    now,
                    &mut ended_runs,
                )
                .await?;
                d.rules.push(RuleDecision {
                    rule: rule.name.clone(),
                    group: key
                        .into_iter()
                        .filter(|(k, _)| !k.starts_with('@'))
                        .collect(),
                    group_id: group.as_ref().map(|g| g.id.clone()),
                    action,
                    run_id: group.as_ref().and_then(|g| g.run_id.clone()),
                    error: None,
                });
                if let Some(g) = group {
                    w.groups.retain(|x| x.id != g.id);
                    w.groups.push(g.clone());
                    groups.insert(slot, Some(g));
                }
                if let Some(m) = m {
                    w.matches.push(m);
                }
            }
            let matched = w.matches.iter().any(|m| m.alert_id == id);
            d.outcome = if matched {
                "matched".into()
            } else if d.rules.is_empty() {
                "unmatched".into()
            } else {
                "ignored".into()
            };
        }
        w.alerts.push(AlertRow {
            id,
            event_id: event.map(|e| e.id.clone()),
            alert: alert.clone(),
            received_at: now,
            outcome: d.outcome.clone(),
            silence_id: d.silence.clone(),
        });
        decisions.push(d);
    }
    Ok((w, decisions))
}

/// Where an alert goes in its rule's group: the group as it becomes, the alert's place in it,
/// and what that means in words.
#[allow(clippy::too_many_arguments)]
async fn place(
    store: &Store,
    rule: &RulePlan,
    current: Option<GroupRow>,
    alert: &Alert,
    alert_id: &str,
    key: BTreeMap<String, String>,
    now: i64,
    ended_runs: &mut HashMap<String, Option<(String, Option<i64>)>>,
) -> Result<(Option<GroupRow>, Option<MatchRow>, String), StoreError> {
    let firing = alert.status == Status::Firing;
    let row_for = |g: &GroupRow, outcome: &str, signal: Option<&str>| MatchRow {
        alert_id: alert_id.to_string(),
        group_id: g.id.clone(),
        rule: rule.name.clone(),
        received_at: now,
        firing,
        outcome: outcome.into(),
        signal: signal.map(String::from),
    };
    let mut g = current;
    // An open group whose run has ended is over: its cooldown starts when the run ended.
    if let Some(group) = &mut g
        && matches!(group.state.as_str(), "active" | "resolved")
    {
        let end = match &group.run_id {
            Some(run) => {
                if !ended_runs.contains_key(run) {
                    let e = store.run_end(run).await?;
                    ended_runs.insert(run.clone(), e);
                }
                ended_runs.get(run).cloned().flatten()
            }
            None => None,
        };
        if let Some((status, finished)) = end
            && matches!(status.as_str(), "succeeded" | "failed" | "cancelled")
        {
            group.state = "ended".into();
            group.ended_at = Some(finished.unwrap_or(now));
            group.updated_at = now;
        }
    }
    match g {
        Some(mut group) if group.state == "waiting" => {
            if firing {
                group.firing.insert(alert.fingerprint.clone());
            } else {
                group.firing.remove(&alert.fingerprint);
            }
            let action = if group.firing.is_empty() {
                group.state = "ended".into();
                group.act_at = None;
                group.ended_at = Some(now);
                "close the group: every alert resolved before it acted".to_string()
            } else {
                if group.act_at.is_none() {
                    // Waited out `group_wait` short of `min_occurrences`: look again now.
                    group.act_at = Some(now);
                }
                "wait: the group gathers alerts until group_wait ends".to_string()
            };
            group.updated_at = now;
            let m = row_for(
                &group,
                if group.state == "ended" {
                    "dropped"
                } else {
                    "waiting"
                },
                None,
            );
            Ok((Some(group), Some(m), action))
        }
        Some(mut group) if matches!(group.state.as_str(), "active" | "resolved") => {
            if firing {
                group.firing.insert(alert.fingerprint.clone());
                group.state = "active".into();
            } else {
                group.firing.remove(&alert.fingerprint);
            }
            let signal = if group.firing.is_empty() {
                group.state = "resolved".into();
                "resolved"
            } else {
                "alert"
            };
            group.updated_at = now;
            let m = row_for(&group, "pending", Some(signal));
            let action = match &group.run_id {
                Some(run) => format!("signal `{signal}` to run {run}"),
                None if signal == "resolved" => "resolve the group's incident".into(),
                None => "note it on the group's incident".into(),
            };
            Ok((Some(group), Some(m), action))
        }
        Some(group)
            if group.state == "ended"
                && group
                    .ended_at
                    .unwrap_or(0)
                    .saturating_add(ms(rule.cooldown))
                    > now =>
        {
            let m = row_for(&group, "counted", None);
            let until = super::iso(
                group
                    .ended_at
                    .unwrap_or(0)
                    .saturating_add(ms(rule.cooldown)),
            );
            Ok((
                Some(group),
                Some(m),
                format!("count only: the group cools down until {until}"),
            ))
        }
        previous => {
            if !firing {
                return Ok((None, None, "nothing: no open group to resolve".into()));
            }
            let generation = previous.as_ref().map_or(1, |p| p.generation + 1);
            let group = GroupRow {
                id: new_id("grp"),
                rule: rule.name.clone(),
                tenant: alert.tenant.clone(),
                key,
                generation,
                state: "waiting".into(),
                opened_at: now,
                act_at: Some(now.saturating_add(ms(rule.group_wait))),
                acted_at: None,
                run_id: None,
                incident_id: None,
                firing: std::iter::once(alert.fingerprint.clone()).collect(),
                error: None,
                ended_at: None,
                updated_at: now,
            };
            let m = row_for(&group, "waiting", None);
            let action = if rule.group_wait.is_zero() {
                "open a group and act".to_string()
            } else {
                format!(
                    "open a group; act after group_wait ({})",
                    crate::dsl::format_duration(rule.group_wait)
                )
            };
            Ok((Some(group), Some(m), action))
        }
    }
}

struct Worker {
    engine: Engine,
    store: Store,
    rules: Rules,
    clock: Arc<dyn Clock>,
    metrics: Arc<AlertMetrics>,
}

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
                            self.work().await;
                        }
                    }
                    Some(JobBox(Job::Wake)) => self.work().await,
                },
                () = due => self.work().await,
                _ = sweep.tick() => self.work().await,
            }
        }
    }

    async fn intake(&self, intake: Intake) -> Result<Option<Vec<Decision>>, DispatchError> {
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

    /// Acts for due groups, delivers what is pending, and closes groups whose run ended.
    async fn work(&self) {
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
                status: "open".into(),
                timeline: json!([{ "at": now, "by": format!("rule {}", rule.name), "note": format!("opened for alert group {}", g.id) }]),
                created_at: now,
                updated_at: now,
            };
            let link = Write::AlertLink {
                link: AlertLink::IncidentOpened {
                    group_id: g.id.clone(),
                    incident_id: row.id.clone(),
                },
                run: None,
            };
            let opened = self
                .engine
                .open_incident(row, vec![link])
                .await
                .map_err(trouble)?;
            g.incident_id = Some(opened.id);
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
        for (m, a) in pending {
            let Some(signal) = m.signal.clone() else {
                continue;
            };
            let delivered = Write::AlertLink {
                link: AlertLink::Delivered {
                    alert_id: m.alert_id.clone(),
                    group_id: g.id.clone(),
                },
                run: g.run_id.clone(),
            };
            if let Some(incident) = &g.incident_id {
                let (action, note) = if signal == "resolved" {
                    (
                        crate::runtime::IncidentSteer::Resolve,
                        "every alert of the group resolved".to_string(),
                    )
                } else {
                    (
                        crate::runtime::IncidentSteer::Note,
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
                    Ok(_) | Err(EngineError::Conflict(_) | EngineError::UnknownIncident(_)) => {}
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
