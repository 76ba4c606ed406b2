//! Service levels of catalog entries, from the outcomes of their requests: each request is
//! good (its run succeeded within the entry's SLA), bad (its run failed or was cancelled,
//! ended after the deadline, or the deadline passed unfinished) or not decided yet; an
//! availability objective (99.9 % over 30 days, say) gives an error budget and burn rates, and
//! the multi-window burn-rate rules of the Google SRE workbook say when to alert.
//!
//! Pure: facts about requests in, outcomes, budgets, burn rates and firing rules out.

pub mod report;

use std::time::Duration;

use serde::Serialize;

/// An availability objective.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Objective {
    /// Percent of requests that must be good (`99.9`).
    pub percent: f64,
    /// Over how long (ms), counted back from now.
    pub window_ms: i64,
}

impl Objective {
    /// The fraction of requests that may be bad (`0.001` for 99.9 %).
    pub fn budget(&self) -> f64 {
        (100.0 - self.percent) / 100.0
    }
}

/// What is known of one request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Facts {
    /// Its id.
    pub id: String,
    /// The entry ordered.
    pub catalog_id: String,
    /// Who ordered.
    pub tenant: String,
    /// Submitted (ms).
    pub created_at: i64,
    /// `submitted`, `awaiting_approval`, `rejected` or `started`.
    pub status: String,
    /// The SLA deadline (ms), when the entry has one.
    pub deadline: Option<i64>,
    /// Its run's status, once it has one.
    pub run_status: Option<String>,
    /// When its run ended (ms).
    pub finished_at: Option<i64>,
}

/// A request's outcome against its entry's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Fulfilled in time, known from `at`.
    Good {
        /// When it became known (ms).
        at: i64,
    },
    /// Not fulfilled, or late, known from `at`.
    Bad {
        /// When it became known (ms).
        at: i64,
    },
    /// Not decided yet (in progress before its deadline), or not the service's to answer
    /// for (rejected by an approver).
    Open,
}

/// The outcome of `r` as of `now`.
pub fn outcome(r: &Facts, now: i64) -> Outcome {
    if r.status == "rejected" {
        return Outcome::Open;
    }
    match (r.run_status.as_deref(), r.finished_at) {
        (Some("succeeded"), Some(t)) => match r.deadline {
            Some(d) if t > d => Outcome::Bad { at: t },
            _ => Outcome::Good { at: t },
        },
        (Some("failed" | "cancelled"), Some(t)) => Outcome::Bad {
            at: r.deadline.map_or(t, |d| t.min(d.max(r.created_at))),
        },
        _ => match r.deadline {
            Some(d) if d <= now => Outcome::Bad { at: d },
            _ => Outcome::Open,
        },
    }
}

/// Good and bad outcomes decided in `(from, to]`.
pub fn count(outcomes: &[Outcome], from: i64, to: i64) -> (u64, u64) {
    let mut good = 0;
    let mut bad = 0;
    for o in outcomes {
        match *o {
            Outcome::Good { at } if at > from && at <= to => good += 1,
            Outcome::Bad { at } if at > from && at <= to => bad += 1,
            _ => {}
        }
    }
    (good, bad)
}

/// How fast the budget burns over `(now - window, now]`: the bad fraction over the allowed
/// one; `None` with no decided request in the window.
pub fn burn_rate(
    outcomes: &[Outcome],
    objective: &Objective,
    now: i64,
    window: Duration,
) -> Option<f64> {
    let w = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let (good, bad) = count(outcomes, now.saturating_sub(w), now);
    let total = good + bad;
    (total > 0).then(|| (bad as f64 / total as f64) / objective.budget())
}

/// A multi-window burn-rate rule: it holds while both windows burn faster than `factor`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BurnRule {
    /// The long window, as written (`1h`).
    pub long: &'static str,
    /// The short window that confirms it is still burning (`5m`).
    pub short: &'static str,
    /// The burn rate both must exceed.
    pub factor: f64,
    /// `critical` (page) or `warning` (ticket).
    pub severity: &'static str,
}

/// The SRE workbook's defaults: 2 % of a 30-day budget in an hour, 5 % in six hours, 10 % in
/// three days.
pub const BURN_RULES: [BurnRule; 3] = [
    BurnRule {
        long: "1h",
        short: "5m",
        factor: 14.4,
        severity: "critical",
    },
    BurnRule {
        long: "6h",
        short: "30m",
        factor: 6.0,
        severity: "critical",
    },
    BurnRule {
        long: "3d",
        short: "6h",
        factor: 1.0,
        severity: "warning",
    },
];

fn window(text: &str) -> Duration {
    crate::dsl::parse_duration(text).unwrap_or_default()
}

/// The rules that hold at `now`, with their two burn rates.
pub fn burning(outcomes: &[Outcome], objective: &Objective, now: i64) -> Vec<(BurnRule, f64, f64)> {
    BURN_RULES
        .iter()
        .filter_map(|rule| {
            let long = burn_rate(outcomes, objective, now, window(rule.long))?;
            let short = burn_rate(outcomes, objective, now, window(rule.short))?;
            (long > rule.factor && short > rule.factor).then_some((*rule, long, short))
        })
        .collect()
}

/// The error budget over the objective's window ending at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Budget {
    /// Requests decided in the window.
    pub decided: u64,
    /// Of those, bad.
    pub bad: u64,
    /// Good over decided, in percent; absent with none decided.
    pub availability: Option<f64>,
    /// Bad requests the objective allows over the window's decided ones.
    pub allowed_bad: f64,
    /// The part of the budget left (1 untouched, 0 spent, below 0 overspent).
    pub remaining: f64,
}

/// The budget of `outcomes` against `objective` at `now`.
pub fn budget(outcomes: &[Outcome], objective: &Objective, now: i64) -> Budget {
    let (good, bad) = count(outcomes, now.saturating_sub(objective.window_ms), now);
    let decided = good + bad;
    let allowed_bad = decided as f64 * objective.budget();
    Budget {
        decided,
        bad,
        availability: (decided > 0).then(|| 100.0 * good as f64 / decided as f64),
        allowed_bad,
        // Nothing decided allows nothing and spends nothing.
        remaining: if allowed_bad > 0.0 {
            1.0 - bad as f64 / allowed_bad
        } else {
            1.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn facts(
        created: i64,
        run: Option<&str>,
        finished: Option<i64>,
        deadline: Option<i64>,
    ) -> Facts {
        Facts {
            id: format!("req-{created}"),
            catalog_id: "vm".into(),
            tenant: "acme".into(),
            created_at: created,
            status: "started".into(),
            deadline,
            run_status: run.map(String::from),
            finished_at: finished,
        }
    }

    #[test]
    fn a_request_is_good_in_time_bad_late_failed_or_overdue_and_open_otherwise() {
        let now = 100 * MIN;
        let o = |f: Facts| outcome(&f, now);
        assert_eq!(
            o(facts(0, Some("succeeded"), Some(5 * MIN), Some(10 * MIN))),
            Outcome::Good { at: 5 * MIN }
        );
        assert_eq!(
            o(facts(0, Some("succeeded"), Some(15 * MIN), Some(10 * MIN))),
            Outcome::Bad { at: 15 * MIN }
        );
        assert_eq!(
            o(facts(0, Some("failed"), Some(3 * MIN), Some(10 * MIN))),
            Outcome::Bad { at: 3 * MIN }
        );
        assert_eq!(
            o(facts(0, Some("running"), None, Some(10 * MIN))),
            Outcome::Bad { at: 10 * MIN }
        );
        assert_eq!(
            o(facts(95 * MIN, Some("running"), None, Some(105 * MIN))),
            Outcome::Open
        );
        assert_eq!(
            o(facts(0, Some("succeeded"), Some(50 * MIN), None)),
            Outcome::Good { at: 50 * MIN }
        );
        let mut rejected = facts(0, None, None, Some(10 * MIN));
        rejected.status = "rejected".into();
        assert_eq!(
            o(rejected),
            Outcome::Open,
            "an approver's no is not the service's failure"
        );
    }

    #[test]
    fn the_budget_of_99_9_allows_one_bad_request_in_a_thousand() {
        let obj = Objective {
            percent: 99.9,
            window_ms: 30 * 24 * 60 * MIN,
        };
        let mut outcomes: Vec<Outcome> = (0..2000).map(|i| Outcome::Good { at: i }).collect();
        outcomes.push(Outcome::Bad { at: 2000 });
        let b = budget(&outcomes, &obj, 3000);
        assert_eq!((b.decided, b.bad), (2001, 1));
        assert!((b.allowed_bad - 2.001).abs() < 1e-9);
        assert!((b.remaining - (1.0 - 1.0 / 2.001)).abs() < 1e-9, "{b:?}");
        assert!((b.availability.unwrap_or_default() - 99.950_024_987_506_25).abs() < 1e-9);
    }

    /// A steady stream of one request a minute, every one good, then every one bad from
    /// minute 600 on: against 99.9 %, a bad minute burns at 1000×. The 1 h rule needs more
    /// than 1.44 % of the last hour bad — one bad request of the 60 is 1.67 % — and its 5 m
    /// window burning too: it fires at the first bad minute. The 6 h rule needs more than
    /// 0.6 % of 360: the third bad minute (3/360 = 0.83 %; 2/360 = 0.56 % is not enough).
    /// The 3 d rule needs more than 0.1 % of the last 3 days (the stream is younger: 1/600 =
    /// 0.17 %) and its 6 h window above 1× (1/360 = 2.8×): the first bad minute too.
    #[test]
    fn a_synthetic_error_stream_fires_each_rule_at_its_documented_moment() {
        let obj = Objective {
            percent: 99.9,
            window_ms: 30 * 24 * 60 * MIN,
        };
        let stream = |minutes: i64| -> Vec<Outcome> {
            (1..=minutes)
                .map(|m| {
                    if m < 600 {
                        Outcome::Good { at: m * MIN }
                    } else {
                        Outcome::Bad { at: m * MIN }
                    }
                })
                .collect()
        };
        let firing = |m: i64| -> Vec<&'static str> {
            burning(&stream(m), &obj, m * MIN)
                .iter()
                .map(|(r, _, _)| r.long)
                .collect()
        };
        assert!(firing(599).is_empty(), "all good so far");
        assert_eq!(
            firing(600),
            ["1h", "3d"],
            "the first bad minute: 1/60 of the hour"
        );
        assert_eq!(
            firing(601),
            ["1h", "3d"],
            "6 h: 2/360 = 0.56 % is under 0.6 %"
        );
        assert_eq!(firing(602), ["1h", "6h", "3d"], "6 h: 3/360 = 0.83 %");
    }
}
