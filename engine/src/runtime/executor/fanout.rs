//! Fan-out: the items of a `for_each` step, started up to `max_parallel` at a time, and the
//! fan-in that completes the step with the list of their outputs.

use serde_json::{Value as Json, json};

use super::{Executor, failed};
use crate::plan::{PlanStep, UnitKey};
use crate::runtime::scope::Extra;
use crate::store::{StepRow, StepStatus};
use crate::template::TemplateError;

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
        self.progress_fan_out(run_id, step);
    }

    /// Starts items of a fan-out up to `max_parallel`; completes the step when all are done.
    /// Returns whether anything changed.
    pub(super) fn progress_fan_out(&mut self, run_id: &str, step: &PlanStep) -> bool {
        let now = self.clock.now_ms();
        let Some(run) = self.runs.get(run_id) else {
            return false;
        };
        let parent_key = UnitKey::Step(step.id.clone());
        let Some(parent) = run.units.get(&parent_key) else {
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
            match run.units.get(&UnitKey::Item(step.id.clone(), i)) {
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
            let Some(parent) = self
                .runs
                .get_mut(run_id)
                .and_then(|r| r.units.get_mut(&parent_key))
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
            self.touched_units.insert((run_id.into(), parent_key));
        }
        changed
    }
}
