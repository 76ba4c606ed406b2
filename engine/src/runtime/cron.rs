//! Cron triggers: which instant of each trigger the executor handles next.
//!
//! Schedule arithmetic over the plans' triggers, in each trigger's time zone, and the per-trigger
//! bookkeeping the executor keeps. Knows no SQL and does no I/O: the executor fires (through
//! the store, which makes each instant unique) and applies the overlap policy.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

use super::Definitions;
use crate::plan::{Plan, PlanTrigger};
use crate::store::CronFire;

/// The tenant cron-started runs belong to: they are the provider's own work.
pub(crate) const CRON_TENANT: &str = super::PROVIDER;
/// The requester recorded on cron-started runs.
pub(crate) const CRON_REQUESTER: &str = "cron";

/// One trigger of the newest version of a workflow.
#[derive(Debug)]
pub(crate) struct CronTrigger {
    /// The plan whose trigger it is (the newest version of its workflow).
    pub(crate) plan: Arc<Plan>,
    /// Its position in `plan.triggers`.
    pub(crate) index: u32,
    /// The next scheduled instant to handle (ms); `None` when the schedule has no more.
    pub(crate) next: Option<i64>,
    /// When to look at `next` again after a storage error (ms); `next` itself otherwise.
    pub(crate) retry_at: Option<i64>,
    /// The run the latest fire started, for the overlap policy.
    pub(crate) last_run: Option<String>,
}

impl CronTrigger {
    /// The trigger's definition.
    pub(crate) fn spec(&self) -> Option<&PlanTrigger> {
        self.plan.triggers().get(self.index as usize)
    }

    /// When the executor must next wake for this trigger.
    pub(crate) fn wake_at(&self) -> Option<i64> {
        let next = self.next?;
        Some(self.retry_at.map_or(next, |r| r.max(next)))
    }
}

/// The triggers of the newest version of every workflow, each armed against its last fire: a
/// trigger that fired before resumes with the first instant it missed within `catch_up` of
/// `now` (a failover's gap: those fire in order), else with the most recent instant it missed
/// (so longer downtime costs one catch-up fire per trigger, no storm); one that never fired
/// with the first instant after `now`.
pub(crate) fn arm(
    defs: &Definitions,
    last: &[CronFire],
    now: i64,
    catch_up: i64,
) -> Vec<CronTrigger> {
    let last: HashMap<(&str, u32), &CronFire> = last
        .iter()
        .map(|f| ((f.workflow.as_str(), f.trigger), f))
        .collect();
    let mut names: Vec<&str> = defs.plans().map(|p| p.name()).collect();
    names.sort_unstable();
    let mut seen = HashSet::new();
    let mut triggers = Vec::new();
    for name in names {
        if !seen.insert(name) {
            continue;
        }
        let Some(plan) = defs.get(name, None) else {
            continue;
        };
        for (i, spec) in plan.triggers().iter().enumerate() {
            let Ok(index) = u32::try_from(i) else {
                continue;
            };
            let previous = last.get(&(name, index));
            let next = previous
                .and_then(|f| missed(spec, f.scheduled_at, now, catch_up))
                .or_else(|| next_after(spec, now));
            triggers.push(CronTrigger {
                plan: Arc::clone(plan),
                index,
                next,
                retry_at: None,
                last_run: previous.and_then(|f| f.run_id.clone()),
            });
        }
    }
    triggers
}

/// The triggers of a version just defined as its workflow's newest: each fires the instants
/// after `now` (a new definition catches up on nothing), keeping the run the trigger at the
/// same position last started, for the overlap policy.
pub(crate) fn arm_defined(
    plan: &Arc<Plan>,
    previous: &[CronTrigger],
    now: i64,
) -> Vec<CronTrigger> {
    plan.triggers()
        .iter()
        .enumerate()
        .filter_map(|(i, spec)| {
            let index = u32::try_from(i).ok()?;
            let last_run = previous
                .iter()
                .find(|t| t.plan.name() == plan.name() && t.index == index)
                .and_then(|t| t.last_run.clone());
            Some(CronTrigger {
                plan: Arc::clone(plan),
                index,
                next: next_after(spec, now),
                retry_at: None,
                last_run,
            })
        })
        .collect()
}

fn at<Z: TimeZone>(ms: i64, zone: &Z) -> Option<DateTime<Z>> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(|t| t.with_timezone(zone))
}

/// The first instant of `t` strictly after `ms`.
pub(crate) fn next_after(t: &PlanTrigger, ms: i64) -> Option<i64> {
    let from = at(ms, &t.timezone)?;
    t.schedule.after(&from).next().map(|d| d.timestamp_millis())
}

/// The instant to fire next of `t`, whose last handled instant is `last`, at `now`: the
/// first missed one no older than `catch_up`, else the most recent missed one; `None` when
/// none was missed.
pub(crate) fn missed(t: &PlanTrigger, last: i64, now: i64, catch_up: i64) -> Option<i64> {
    let floor = now.saturating_sub(catch_up);
    match next_after(t, last.max(floor.saturating_sub(1))) {
        Some(first) if first <= now => Some(first),
        _ => latest_in(t, last, now),
    }
}

/// The latest instant of `t` after `after` and at or before `upto`, if there is one.
pub(crate) fn latest_in(t: &PlanTrigger, after: i64, upto: i64) -> Option<i64> {
    // The schedule's iterator walks backwards from a point; step past `upto` by a millisecond
    // so an instant exactly at `upto` counts.
    let from = at(upto.checked_add(1)?, &t.timezone)?;
    let latest = t.schedule.after(&from).next_back()?.timestamp_millis();
    (latest > after && latest <= upto).then_some(latest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::Overlap;

    fn trigger(expr: &str, tz: chrono_tz::Tz) -> PlanTrigger {
        PlanTrigger {
            schedule: expr.parse().expect("valid cron"),
            expression: expr.into(),
            timezone: tz,
            overlap: Overlap::Skip,
            inputs: serde_json::json!({}),
        }
    }

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("valid time")
            .timestamp_millis()
    }

    #[test]
    fn next_instants_are_strictly_later() {
        let hourly = trigger("0 0 * * * *", chrono_tz::UTC);
        let cases = [
            ("2030-01-01T00:00:00Z", "2030-01-01T01:00:00Z"),
            ("2030-01-01T00:00:00.001Z", "2030-01-01T01:00:00Z"),
            ("2030-01-01T00:59:59.999Z", "2030-01-01T01:00:00Z"),
        ];
        for (from, want) in cases {
            assert_eq!(
                next_after(&hourly, ms(from)),
                Some(ms(want)),
                "after {from}"
            );
        }
    }

    #[test]
    fn the_latest_instant_in_a_window_counts_its_upper_end() {
        let hourly = trigger("0 0 * * * *", chrono_tz::UTC);
        let t = ms("2030-01-01T00:00:00Z");
        let h = 3_600_000;
        let cases = [
            // (after, upto, latest)
            (t, t + 3 * h, Some(t + 3 * h)),
            (t, t + 3 * h - 1, Some(t + 2 * h)),
            (t, t + h - 1, None),
            (t - 1, t, Some(t)),
            (t, t, None),
            (t, t + 30 * 24 * h + 5, Some(t + 30 * 24 * h)),
        ];
        for (after, upto, want) in cases {
            assert_eq!(latest_in(&hourly, after, upto), want, "({after}, {upto}]");
        }
    }

    #[test]
    fn time_zones_move_the_instants() {
        let nine_paris = trigger("0 0 9 * * *", chrono_tz::Europe::Paris);
        // Winter: Paris is UTC+1; summer: UTC+2.
        assert_eq!(
            next_after(&nine_paris, ms("2030-01-15T00:00:00Z")),
            Some(ms("2030-01-15T08:00:00Z"))
        );
        assert_eq!(
            next_after(&nine_paris, ms("2030-07-15T00:00:00Z")),
            Some(ms("2030-07-15T07:00:00Z"))
        );
    }
}
