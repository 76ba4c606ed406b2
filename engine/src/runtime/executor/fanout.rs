//! Fan-out: the items of a `for_each` step, started up to `max_parallel` at a time, and the
//! fan-in that completes the step with the list of their outputs.
//!
//! A fan-out's progress costs what changed, not its width: each active fan-out keeps its items
//! and counters in memory ([`FanOut`]), and a turn looks only at the items touched in it (a
//! range of the turn's touched units). Only the fan-in reads every item, once.

use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::{Executor, failed};
use crate::plan::{PlanStep, UnitKey};
use crate::runtime::scope::Extra;
use crate::store::{StepRow, StepStatus};
use crate::template::TemplateError;

/// An active fan-out's items and counters.
#[derive(Debug)]
pub(super) struct FanOut {
    /// The rendered list (also stored in the parent unit's state, written once).
    items: Arc<Vec<Json>>,
    /// The first item not started yet (items start in order).
    next: usize,
    /// Items started and not final.
    active: usize,
    /// Items final.
    finished: usize,
    /// Whether item i's end was counted (a unit may be touched again after it ended).
    counted: Vec<bool>,
    /// The failed item with the lowest index, and its error.
    first_error: Option<(usize, String)>,
}

impl FanOut {
    fn new(items: Arc<Vec<Json>>) -> Self {
        let n = items.len();
        Self {
            items,
            next: 0,
            active: 0,
            finished: 0,
            counted: vec![false; n],
            first_error: None,
        }
    }

    /// Counts item `i`'s unit if it just ended.
    fn note(&mut self, i: usize, unit: &StepRow) {
        if !unit.status.is_final() || self.counted.get(i).is_none_or(|c| *c) {
            return;
        }
        self.counted[i] = true;
        self.active = self.active.saturating_sub(1);
        self.finished += 1;
        if unit.status == StepStatus::Failed
            && self.first_error.as_ref().is_none_or(|(j, _)| i < *j)
        {
            self.first_error = Some((i, unit.error.clone().unwrap_or_default()));
        }
    }

    /// Rebuilds the counters of a fan-out recovered after a restart (reads every item once).
    fn recovered(
        items: Arc<Vec<Json>>,
        step: &str,
        units: &std::collections::HashMap<UnitKey, StepRow>,
    ) -> Self {
        let mut f = Self::new(items);
        for i in 0..f.items.len() {
            let Some(unit) = units.get(&UnitKey::Item(step.to_string(), i)) else {
                break; // items start in order: none after this one has started
            };
            f.next = i + 1;
            f.active += 1;
            f.note(i, unit);
        }
        f
    }
}

impl Executor {
    /// Starts a `for_each` step whose list rendered to `rendered`: the parent unit waits
    /// holding the items, and the first items start.
    pub(super) fn start_fan_out(
        &mut self,
        run_id: &str,
        step: &PlanStep,
        mut row: StepRow,
        rendered: Result<Json, TemplateError>,
    ) {
        let now = self.clock.now_ms();
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
        if let Some(run) = self.runs.get_mut(run_id) {
            run.fanouts
                .insert(step.id.clone(), FanOut::new(Arc::new(items)));
        }
        self.progress_fan_out(run_id, step);
    }

    /// Takes the ends of items touched this turn, starts items up to `max_parallel`, and
    /// completes the step when all are done. Returns whether anything changed.
    pub(super) fn progress_fan_out(&mut self, run_id: &str, step: &PlanStep) -> bool {
        let now = self.clock.now_ms();
        let Some(run) = self.runs.get_mut(run_id) else {
            return false;
        };
        if !run.fanouts.contains_key(&step.id) {
            // Recovered after a restart: rebuild the counters from the stored units.
            let items: Vec<Json> = run
                .units
                .get(&UnitKey::Step(step.id.clone()))
                .and_then(|u| u.state.as_ref()?.get("items")?.as_array().cloned())
                .unwrap_or_default();
            let f = FanOut::recovered(Arc::new(items), &step.id, &run.units);
            run.fanouts.insert(step.id.clone(), f);
        }
        let Some(fan) = run.fanouts.get_mut(&step.id) else {
            return false;
        };
        let run_key = run_id.to_string();
        let touched = (run_key.clone(), UnitKey::Item(step.id.clone(), 0))
            ..=(run_key, UnitKey::Item(step.id.clone(), usize::MAX));
        for (_, key) in self.touched_units.range(touched) {
            if let (Some(i), Some(unit)) = (key.item(), run.units.get(key)) {
                fan.note(i, unit);
            }
        }
        let limit = step.max_parallel.map_or(usize::MAX, |m| m as usize);
        let mut to_start = Vec::new();
        while fan.next < fan.items.len() && fan.active < limit {
            to_start.push((fan.next, fan.items[fan.next].clone()));
            fan.next += 1;
            fan.active += 1;
        }
        let all_final = fan.finished == fan.items.len();
        let changed = !to_start.is_empty() || all_final;
        for (i, item) in to_start {
            let row = self.blank(run_id, UnitKey::Item(step.id.clone(), i), now);
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
            self.fan_in(run_id, step, now);
        }
        changed
    }

    /// Completes a fan-out step whose items are all final: its output is the list of their
    /// outputs in item order, or it fails with its first failed item's error.
    fn fan_in(&mut self, run_id: &str, step: &PlanStep, now: i64) {
        let Some(run) = self.runs.get_mut(run_id) else {
            return;
        };
        let Some(fan) = run.fanouts.remove(&step.id) else {
            return;
        };
        let outputs: Vec<Json> = (0..fan.items.len())
            .map(|i| {
                run.units
                    .get(&UnitKey::Item(step.id.clone(), i))
                    .and_then(|u| u.output.clone())
                    .unwrap_or(Json::Null)
            })
            .collect();
        let parent_key = UnitKey::Step(step.id.clone());
        let Some(parent) = run.units.get_mut(&parent_key) else {
            return;
        };
        parent.finished_at = Some(now);
        match fan.first_error {
            Some((i, e)) if !step.continue_on_error => {
                parent.status = StepStatus::Failed;
                parent.error = Some(format!("item {i}: {e}"));
            }
            _ => {
                parent.status = StepStatus::Succeeded;
                parent.output = Some(Json::Array(outputs));
            }
        }
        self.mark(run_id, parent_key);
    }
}
