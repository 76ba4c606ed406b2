//! Starting and advancing units: readiness, each step kind's start, plugin attempts and their
//! results, timers, signals and incident actions.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value as Json, json};

use super::{Executor, InFlight, failed, ms, new_id, random_u64};
use crate::dsl::parse_duration;
use crate::plan::{Plan, PlanKind, PlanStep, RetryPolicy, UnitKey, WaitPlan};
use crate::plugin::{CancellationToken, FailureKind, Invocation, StepFailure};
use crate::runtime::NewRun;
use crate::runtime::scope::{Extra, Scope};
use crate::runtime::workers::{Done, Job};
use crate::store::{AttemptOutcome, AttemptRow, RunStatus, StepRow, StepStatus, Write};

/// Which list of the plan a step is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Main,
    OnFailure,
}

impl Section {
    /// The key of step `id`'s unit in this section.
    pub(super) fn key(self, id: &str) -> UnitKey {
        match self {
            Section::Main => UnitKey::Step(id.to_string()),
            Section::OnFailure => UnitKey::OnFailure(id.to_string()),
        }
    }
}

impl Executor {
    pub(super) fn advance(&mut self, run_id: &str) {
        let Some((status, paused)) = self
            .runs
            .get(run_id)
            .map(|r| (r.row.status, r.row.paused_at.is_some()))
        else {
            return;
        };
        match status {
            // Paused: what runs finishes and is recorded; nothing new starts until it resumes.
            RunStatus::Running if paused => {}
            RunStatus::Running => self.advance_running(run_id),
            RunStatus::Failing | RunStatus::Cancelling => self.advance_ending(run_id),
            _ => {}
        }
        // A run with no attempt in flight is parked (on a timer, an approval, a signal, a
        // child run): it keeps no scope, so parked runs stay small; waking rebuilds it. (Every
        // attempt in flight holds a cancellation handle, so this costs nothing per unit.)
        if let Some(run) = self.runs.get_mut(run_id)
            && run.cancels.is_empty()
        {
            run.scope = Default::default();
        }
    }

    /// A running run: a step that failed fails it, fan-outs in progress take their items'
    /// ends, steps whose needs are final start, and when every main step is final the run
    /// succeeds. Costs what changed this turn: it looks at the main steps touched in it, the
    /// fan-outs in progress and the steps not started yet — after a restart, at every step once.
    fn advance_running(&mut self, run_id: &str) {
        let Some(run) = self.runs.get_mut(run_id) else {
            return;
        };
        let plan = Arc::clone(&run.plan);
        let mut first_look = false;
        if run.unstarted.is_none() {
            first_look = true;
            run.unstarted = Some(
                (0..plan.steps().len())
                    .filter(|&i| {
                        !run.units
                            .contains_key(&Section::Main.key(&plan.steps()[i].id))
                    })
                    .collect(),
            );
        }
        let mut ended_main = first_look;
        loop {
            let Some(run) = self.runs.get(run_id) else {
                return;
            };
            // Main steps to look at: those touched this turn (all, on a first look).
            let looked: Vec<usize> = if first_look {
                (0..plan.steps().len()).collect()
            } else {
                let from = (run_id.to_string(), UnitKey::Step(String::new()));
                let to = (run_id.to_string(), UnitKey::Item(String::new(), 0));
                self.touched_units
                    .range(from..to)
                    .filter_map(|(_, k)| plan.position(k.step_id()))
                    .collect()
            };
            let mut fan_outs: Vec<usize> = run
                .fanouts
                .keys()
                .filter_map(|id| plan.position(id))
                .collect();
            for &i in &looked {
                let step = &plan.steps()[i];
                let Some(unit) = run.units.get(&Section::Main.key(&step.id)) else {
                    continue;
                };
                if unit.status.is_final() {
                    ended_main = true;
                }
                match unit.status {
                    StepStatus::Failed if !step.continue_on_error => {
                        let error = unit.error.clone().unwrap_or_default();
                        self.begin_failing(run_id, format!("step `{}` failed: {error}", step.id));
                        return;
                    }
                    // A fan-out recovered after a restart: its counters are rebuilt.
                    StepStatus::Waiting if first_look && step.for_each.is_some() => {
                        fan_outs.push(i);
                    }
                    _ => {}
                }
            }
            first_look = false;
            let mut progressed = false;
            fan_outs.sort_unstable();
            fan_outs.dedup();
            for i in fan_outs {
                progressed |= self.progress_fan_out(run_id, &plan.steps()[i]);
            }
            let unstarted: Vec<usize> = self
                .runs
                .get(run_id)
                .and_then(|r| r.unstarted.as_ref())
                .map(|u| u.iter().copied().collect())
                .unwrap_or_default();
            for i in unstarted {
                if let Some(start) = self.readiness(run_id, plan.steps(), i, Section::Main) {
                    if let Some(u) = self.runs.get_mut(run_id).and_then(|r| r.unstarted.as_mut()) {
                        u.remove(&i);
                    }
                    self.start_step(run_id, &plan.steps()[i], Section::Main, start);
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        // Every main step final can only become true in a turn in which one of them ended.
        let Some(run) = self.runs.get(run_id) else {
            return;
        };
        if !ended_main || run.unstarted.as_ref().is_some_and(|u| !u.is_empty()) {
            return;
        }
        let all_final = plan.steps().iter().all(|s| {
            run.units
                .get(&Section::Main.key(&s.id))
                .is_some_and(|u| u.status.is_final())
        });
        if all_final {
            self.finish_success(run_id);
        }
    }

    /// Whether step `i` of `steps` can start now: `Some(true)` to run it, `Some(false)` to
    /// skip it (every step it needs was skipped), `None` to keep waiting.
    pub(super) fn readiness(
        &self,
        run_id: &str,
        steps: &[PlanStep],
        i: usize,
        section: Section,
    ) -> Option<bool> {
        let run = self.runs.get(run_id)?;
        let mut all_skipped = !steps[i].needs.is_empty();
        for &n in &steps[i].needs {
            let u = run.units.get(&section.key(&steps[n].id))?;
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

    pub(super) fn start_step(
        &mut self,
        run_id: &str,
        step: &PlanStep,
        section: Section,
        run_it: bool,
    ) {
        let now = self.clock.now_ms();
        let mut row = self.blank(run_id, section.key(&step.id), now);
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
            self.start_fan_out(run_id, step, row, rendered);
            return;
        }
        self.start_unit_with(run_id, step, row, scope);
    }

    /// Starts one unit (a step, or one fan-out item) according to its kind.
    pub(super) fn start_unit(&mut self, run_id: &str, step: &PlanStep, row: StepRow, extra: Extra) {
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
                        let at = now.saturating_add(ms(d));
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
                    let at = now.saturating_add(ms(*t));
                    row.wake_at = Some(at);
                    self.timers.insert((at, run_id.into(), row.key.clone()));
                }
                self.put(run_id, row);
            }
            PlanKind::Signal { name, timeout } => {
                row.status = StepStatus::Waiting;
                if let Some(t) = timeout {
                    let at = now.saturating_add(ms(*t));
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
                    let new = NewRun {
                        workflow: name.clone(),
                        version: *version,
                        inputs,
                        tenant: run.row.tenant.clone(),
                        requester: run.row.requester.clone(),
                        partition: None,
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
            PlanKind::Silence(spec) => match self.silence(run_id, spec, &scope, now) {
                Ok(out) => {
                    row.status = StepStatus::Succeeded;
                    row.output = Some(out);
                    row.finished_at = Some(now);
                    self.put(run_id, row);
                }
                Err(e) => self.put(run_id, failed(row, format!("`silence`: {e}"), now)),
            },
            PlanKind::Escalate(spec) => self.start_escalation(run_id, spec, &scope, row),
            PlanKind::Incident(spec) => match self.incident(run_id, spec, &scope, now) {
                Ok(out) => {
                    row.status = StepStatus::Succeeded;
                    row.output = Some(out);
                    row.finished_at = Some(now);
                    self.put(run_id, row);
                }
                Err(e) => self.put(run_id, failed(row, e, now)),
            },
        }
        self.give_back(run_id, scope);
    }

    /// Hands a buffered signal to each waiting `signal:` unit of the run that wants it.
    pub(super) fn take_signals(&mut self, run_id: &str) {
        let now = self.clock.now_ms();
        let Some(run) = self.runs.get_mut(run_id) else {
            return;
        };
        let mut waiting: Vec<(UnitKey, String)> = run
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
                run_id: run_id.to_string(),
                id: signal.id,
                by: key.to_string(),
            });
            // (`run` is borrowed: the same as `touch`, field by field.)
            run.scope.invalidate(&key);
            self.touched_units.insert((run_id.into(), key));
            self.dirty.insert(run_id.into());
        }
    }

    /// Opens a silence in the turn's commit; the step's output is the silence.
    fn silence(
        &mut self,
        run_id: &str,
        spec: &crate::plan::SilencePlan,
        scope: &handlebars::Context,
        now: i64,
    ) -> Result<Json, String> {
        let text = |t: &crate::template::Template| -> Result<String, String> {
            Ok(match t.render(scope).map_err(|e| e.message)? {
                Json::String(s) => s,
                other => other.to_string(),
            })
        };
        let mut matchers = std::collections::BTreeMap::new();
        for (label, t) in &spec.matchers {
            let v = text(t)?;
            crate::alerts::Matcher::parse(label, &v)
                .map_err(|e| format!("matcher `{label}`: {e}"))?;
            matchers.insert(label.clone(), v);
        }
        let d = match &spec.duration {
            WaitPlan::Fixed(d) => *d,
            WaitPlan::Template(t) => {
                parse_duration(&text(t)?).map_err(|e| format!("`for`: {e}"))?
            }
        };
        let comment = match &spec.comment {
            Some(c) => text(c)?,
            None => format!("opened by run {run_id}"),
        };
        let tenant = self
            .runs
            .get(run_id)
            .map(|r| r.row.tenant.clone())
            .filter(|t| t != crate::runtime::PROVIDER);
        let row = crate::store::SilenceRow {
            id: new_id("sil"),
            matchers,
            starts_at: now,
            ends_at: now.saturating_add(ms(d)),
            created_by: format!("run {run_id}"),
            comment,
            tenant,
            run_id: Some(run_id.to_string()),
            created_at: now,
        };
        let out = json!({
            "id": row.id,
            "matchers": row.matchers,
            "ends_at": crate::alerts::iso(row.ends_at),
        });
        self.request_writes.push(Write::AlertLink {
            link: crate::store::AlertLink::Silence(Box::new(row)),
            run: Some(run_id.to_string()),
        });
        Ok(out)
    }

    /// Queues attempt `attempt` of a plugin unit, to be dispatched after the turn's commit.
    pub(super) fn send_attempt(
        &mut self,
        run_id: &str,
        key: &UnitKey,
        step: &PlanStep,
        input: Json,
        attempt: u32,
    ) {
        let (plugin, version) = match (&step.kind, key.is_compensation()) {
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
            run.cancels.insert(
                key.clone(),
                InFlight {
                    attempt,
                    cancel: cancel.clone(),
                    started_at: self.clock.now_ms(),
                },
            );
            // The host's deadline is real time; a clock that does not follow real time gets
            // the step timeout enforced here, in clock time (`fire_timers`).
            if !self.clock.follows_real_time()
                && let Some(unit) = run.units.get_mut(key)
            {
                let at = self.clock.now_ms().saturating_add(ms(timeout));
                unit.wake_at = Some(at);
                self.timers.insert((at, run_id.into(), key.clone()));
            }
        }
        self.dispatch.push(Job {
            run_id: run_id.into(),
            key: key.clone(),
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
    pub(super) fn redispatch(&mut self, run_id: &str, key: &UnitKey) {
        let Some(run) = self.runs.get(run_id) else {
            return;
        };
        let Some(step) = run.plan.step_of(key).cloned() else {
            return;
        };
        let Some(unit) = run.units.get(key) else {
            return;
        };
        let attempt = unit.attempt + 1;
        let extra = self.extra_of(run_id, key);
        let with = if key.is_compensation() {
            step.compensate.as_ref().map(|c| c.with.clone())
        } else if let PlanKind::Uses { with, .. } = &step.kind {
            Some(with.clone())
        } else {
            None
        };
        let Some(with) = with else { return };
        let Some(scope) = self.scope(run_id, &extra) else {
            return;
        };
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
                self.mark(run_id, key.clone());
                self.send_attempt(run_id, key, &step, input, attempt);
            }
            Err(e) => {
                if let Some(u) = self.runs.get_mut(run_id).and_then(|r| r.units.get_mut(key)) {
                    u.status = StepStatus::Failed;
                    u.error = Some(format!("`with`: {e}"));
                    u.finished_at = Some(now);
                }
                self.touch(run_id, key.clone());
            }
        }
    }

    /// The item (and, for a compensation, the output) a unit's templates see.
    pub(super) fn extra_of(&self, run_id: &str, key: &UnitKey) -> Extra {
        let Some(run) = self.runs.get(run_id) else {
            return Extra::default();
        };
        let item = key.item().and_then(|n| {
            let items = run
                .units
                .get(&UnitKey::Step(key.step_id().to_string()))?
                .state
                .as_ref()?
                .get("items")?
                .as_array()?;
            Some((n, items.get(n)?.clone()))
        });
        let output = key.compensated().map(|target| {
            run.units
                .get(&target)
                .and_then(|u| u.output.clone())
                .unwrap_or(Json::Null)
        });
        Extra { item, output }
    }

    /// Takes the result of a plugin attempt.
    pub(super) fn done(&mut self, d: Done) {
        let now = self.clock.now_ms();
        let Some(run) = self.runs.get_mut(&d.run_id) else {
            return;
        };
        // Only this attempt's handle goes: a late answer of an earlier attempt leaves the
        // current attempt cancellable.
        let in_flight = match run.cancels.get(&d.key) {
            Some(f) if f.attempt == d.attempt => run.cancels.remove(&d.key),
            _ => None,
        };
        let Some(unit) = run.units.get_mut(&d.key) else {
            return;
        };
        if unit.status != StepStatus::Running || unit.attempt != d.attempt {
            return; // a late answer to an abandoned attempt
        }
        unit.wake_at = None; // the attempt's deadline, when the executor enforces it
        let retry = policy_of(&run.plan, &d.key);
        let mut history = AttemptRow {
            run_id: d.run_id.clone(),
            key: d.key.clone(),
            attempt: d.attempt,
            started_at: in_flight.map_or(now, |f| f.started_at),
            finished_at: now,
            outcome: AttemptOutcome::Failed,
            kind: None,
            error: None,
            log: String::new(),
        };
        if let Err(f) = &d.result {
            history.kind = Some(f.kind.as_str().to_string());
            history.error = Some(f.message.clone());
        }
        match d.result {
            Ok(out) => {
                history.outcome = AttemptOutcome::Succeeded;
                history.log = out.log;
                unit.status = StepStatus::Succeeded;
                unit.output = Some(out.output);
                unit.error = None;
                unit.finished_at = Some(now);
            }
            Err(f) if f.kind == FailureKind::Cancelled => {
                history.outcome = AttemptOutcome::Cancelled;
                history.log = f.log;
                unit.status = StepStatus::Cancelled;
                unit.error = Some(f.message);
                unit.finished_at = Some(now);
            }
            Err(f) if f.kind.is_retryable() && unit.attempt < retry.max_attempts => {
                history.log = f.log;
                let base = retry.delay_before(unit.attempt + 1);
                // Jitter: 80% to 120% of the delay, so retries of many runs spread out.
                let factor = 0.8 + (random_u64() % 401) as f64 / 1000.0;
                let at = now.saturating_add(ms(base.mul_f64(factor)));
                unit.status = StepStatus::Retrying;
                unit.error = Some(f.message);
                unit.wake_at = Some(at);
                self.timers.insert((at, d.run_id.clone(), d.key.clone()));
            }
            Err(f) => {
                history.log = f.log;
                unit.status = StepStatus::Failed;
                unit.error = Some(if unit.attempt > 1 {
                    format!("{} (after {} attempts)", f.message, unit.attempt)
                } else {
                    f.message
                });
                unit.finished_at = Some(now);
            }
        }
        // A first attempt that succeeded without a word is all in the unit's own row (its
        // start, end and output): no history row, so the common step stays one statement.
        let said_nothing = history.attempt == 1
            && history.outcome == AttemptOutcome::Succeeded
            && history.log.is_empty();
        if !said_nothing {
            self.attempt_writes.push(Write::Attempt(history));
        }
        self.touch(&d.run_id, d.key);
    }

    /// Fires every timer that is due: waits end, retries start, timeouts fail their unit.
    pub(super) fn fire_timers(&mut self) {
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
            // A paused run keeps its timers (a running attempt's deadline excepted) until
            // it resumes: a wait ends, a retry starts, a timeout fails then.
            if run.row.paused_at.is_some()
                && run.row.status == RunStatus::Running
                && unit.status != StepStatus::Running
            {
                run.held.push((t, key));
                continue;
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
                    let timeout = run.plan.step_of(&key).map(|s| timeout_of(s, &key));
                    let failure = match run.cancels.get(&key).map(|f| &f.cancel) {
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
                    let kind = run.plan.step_of(&key).map(|s| &s.kind);
                    if super::escalate::is_escalation(kind) {
                        self.escalation_due(&run_id, key);
                        continue;
                    }
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
            self.touch(&run_id, key);
        }
    }
}

/// The time budget of one attempt of a plugin unit (a step, or its compensation).
pub(super) fn timeout_of(step: &PlanStep, key: &UnitKey) -> Duration {
    if key.is_compensation() {
        step.compensate.as_ref().map_or(step.timeout, |c| c.timeout)
    } else {
        step.timeout
    }
}

/// The retry policy that applies to a unit.
fn policy_of(plan: &Plan, key: &UnitKey) -> RetryPolicy {
    match plan.step_of(key) {
        Some(s) if key.is_compensation() => s.compensate.as_ref().map_or(s.retry, |c| c.retry),
        Some(s) => s.retry,
        None => RetryPolicy::NONE,
    }
}
