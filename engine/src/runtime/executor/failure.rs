//! How runs end: failing and cancelling (compensations newest first, then `on_failure`),
//! and finishing with outputs; a child run's end completes its parent's `workflow:` step.
//!
//! The compensation queue is built once, when the run's interrupted attempts have reported,
//! and worked through one compensation at a time, so undoing a wide fan-out costs one pass.

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::Value as Json;

use super::units::Section;
use super::{Executor, RunState, failed};
use crate::plan::UnitKey;
use crate::runtime::scope::Extra;
use crate::store::{RunStatus, StepRow, StepStatus};

impl Executor {
    pub(super) fn begin_failing(&mut self, run_id: &str, error: String) {
        let now = self.clock.now_ms();
        let Some(run) = self.runs.get_mut(run_id) else {
            return;
        };
        run.row.status = RunStatus::Failing;
        run.row.error = Some(error);
        run.row.updated_at = now;
        self.touched_runs.insert(run_id.into());
        self.stop_open_units(run_id, "the run failed", true);
        self.dirty.insert(run_id.into());
    }

    /// Interrupts attempts in flight and ends waiting units of the main steps; child runs are
    /// cancelled (compensating or not, as `compensate` says).
    fn stop_open_units(&mut self, run_id: &str, why: &str, compensate: bool) {
        let now = self.clock.now_ms();
        let Some(run) = self.runs.get_mut(run_id) else {
            return;
        };
        for f in run.cancels.values() {
            f.cancel.cancel();
        }
        let mut children = Vec::new();
        let mut stopped = Vec::new();
        for u in run.units.values_mut() {
            if u.key.is_main() && matches!(u.status, StepStatus::Waiting | StepStatus::Retrying) {
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
                stopped.push(u.key.clone());
            }
        }
        for key in stopped {
            self.mark(run_id, key);
        }
        for child in children {
            self.cancel_run(&child, compensate);
        }
    }

    /// A failing or cancelling run: once its interrupted attempts have reported, the
    /// compensations of what it completed run one at a time, newest first, then its
    /// `on_failure` steps (a cancel with `compensate: false` skips both); then it ends.
    pub(super) fn advance_ending(&mut self, run_id: &str) {
        let Some(run) = self.runs.get_mut(run_id) else {
            return;
        };
        if run.cancels.keys().any(UnitKey::is_main) {
            return; // wait for interrupted attempts to report
        }
        let (status, end) = match run.row.status {
            RunStatus::Failing => (RunStatus::Failing, RunStatus::Failed),
            _ => (RunStatus::Cancelling, RunStatus::Cancelled),
        };
        let undo = status == RunStatus::Failing || run.row.cancel_compensates;
        let plan = Arc::clone(&run.plan);
        if undo {
            if run.undo.is_none() {
                run.undo = Some(undo_queue(run));
            }
            if !self.advance_undo(run_id) {
                return; // a compensation is running
            }
            // Then the on_failure steps, as a DAG of their own.
            loop {
                let mut progressed = false;
                for (i, step) in plan.on_failure().iter().enumerate() {
                    let key = Section::OnFailure.key(&step.id);
                    let exists = self
                        .runs
                        .get(run_id)
                        .is_some_and(|r| r.units.contains_key(&key));
                    if !exists
                        && let Some(start) =
                            self.readiness(run_id, plan.on_failure(), i, Section::OnFailure)
                    {
                        self.start_step(run_id, step, Section::OnFailure, start);
                        progressed = true;
                    }
                }
                if !progressed {
                    break;
                }
            }
        }
        let Some(run) = self.runs.get(run_id) else {
            return;
        };
        let on_failure_done = !undo
            || plan.on_failure().iter().all(|s| {
                run.units
                    .get(&Section::OnFailure.key(&s.id))
                    .is_some_and(|u| u.status.is_final())
            });
        if run.cancels.is_empty() && on_failure_done {
            self.end_run(run_id, end, None);
        }
    }

    /// Works through the compensation queue: skips what is done, starts the next one.
    /// Returns whether the queue is finished.
    fn advance_undo(&mut self, run_id: &str) -> bool {
        let now = self.clock.now_ms();
        loop {
            let Some(run) = self.runs.get_mut(run_id) else {
                return false;
            };
            let Some(key) = run.undo.as_ref().and_then(|q| q.front()).cloned() else {
                return true;
            };
            let Some(comp_key) = key.compensation() else {
                run.undo.as_mut().map(VecDeque::pop_front);
                continue;
            };
            match run.units.get(&comp_key).map(|u| u.status) {
                Some(s) if s.is_final() => {
                    run.undo.as_mut().map(VecDeque::pop_front);
                    continue;
                }
                Some(_) => return false, // in progress
                None => {}
            }
            let plan = Arc::clone(&run.plan);
            let Some(step) = plan.step_of(&key).cloned() else {
                run.undo.as_mut().map(VecDeque::pop_front);
                continue;
            };
            let Some(c) = &step.compensate else {
                run.undo.as_mut().map(VecDeque::pop_front);
                continue;
            };
            let extra = self.extra_of(run_id, &comp_key);
            let Some(scope) = self.scope(run_id, &extra) else {
                return false;
            };
            let mut row = self.blank(run_id, comp_key.clone(), now);
            let rendered = c.with.render(&scope);
            self.give_back(run_id, scope);
            match rendered {
                Ok(input) => {
                    row.status = StepStatus::Running;
                    row.attempt = 1;
                    self.put(run_id, row);
                    self.send_attempt(run_id, &comp_key, &step, input, 1);
                    return false;
                }
                Err(e) => {
                    self.put(run_id, failed(row, format!("`compensate.with`: {e}"), now));
                }
            }
        }
    }

    pub(super) fn cancel_run(&mut self, run_id: &str, compensate: bool) {
        let now = self.clock.now_ms();
        let Some(run) = self.runs.get_mut(run_id) else {
            return;
        };
        if run.row.status.is_final() || run.row.status == RunStatus::Cancelling {
            return;
        }
        run.row.status = RunStatus::Cancelling;
        // Cancelling overrides a pause: the run stops now.
        run.row.paused_at = None;
        let held = std::mem::take(&mut run.held);
        run.row.error = Some("cancelled".into());
        run.row.cancel_compensates = compensate;
        run.row.updated_at = now;
        self.touched_runs.insert(run_id.into());
        for (t, key) in held {
            self.timers.insert((t, run_id.to_string(), key));
        }
        self.stop_open_units(run_id, "the run was cancelled", compensate);
        self.dirty.insert(run_id.into());
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

    pub(super) fn finish_success(&mut self, run_id: &str) {
        let (Some(scope), Some(run)) =
            (self.scope(run_id, &Extra::default()), self.runs.get(run_id))
        else {
            return;
        };
        let mut outputs = serde_json::Map::new();
        let mut error = None;
        for (name, tv) in run.plan.outputs() {
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

    /// Completes the parent's `workflow:` step when a child run ends; returns the parent's
    /// unit when it changed.
    pub(super) fn notify_parent(&mut self, child_id: &str) -> Option<(String, UnitKey)> {
        let now = self.clock.now_ms();
        let child = self.runs.get(child_id)?;
        let (Some(parent), Some(key)) =
            (child.row.parent_run.clone(), child.row.parent_step.clone())
        else {
            return None;
        };
        let status = child.row.status;
        let outputs = child.row.outputs.clone();
        let error = child.row.error.clone();
        let unit = self
            .runs
            .get_mut(&parent)
            .and_then(|r| r.units.get_mut(&key))?;
        if unit.status != StepStatus::Waiting {
            return None;
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
        self.touch(&parent, key.clone());
        Some((parent, key))
    }
}

/// What a failing or cancelling run undoes, newest completion first: every completed main
/// unit whose step has a `compensate` (a fan-out's parent is undone item by item).
/// Completions in the same millisecond (or under a clock that stands still) go by plan order,
/// which puts a step after what it needs, then by item.
fn undo_queue(run: &RunState) -> VecDeque<UnitKey> {
    let plan = &run.plan;
    let mut done: Vec<&StepRow> = run
        .units
        .values()
        .filter(|u| u.status == StepStatus::Succeeded && u.key.is_main())
        .filter(|u| {
            plan.step_of(&u.key).is_some_and(|s| {
                s.compensate.is_some()
                    && !(matches!(u.key, UnitKey::Step(_)) && s.for_each.is_some())
            })
        })
        .collect();
    done.sort_by_key(|u| {
        std::cmp::Reverse((u.finished_at, plan.position(u.key.step_id()), u.key.item()))
    });
    done.into_iter().map(|u| u.key.clone()).collect()
}
