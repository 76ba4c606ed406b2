//! Synthetic availability checks: a check's conditions (`[STATUS] == 200`, `[BODY].status ==
//! UP`, `[RESPONSE_TIME] < 500`) judged on a probe's answer, the thresholds that turn passes
//! and failures into up and down, and uptime over a window of results.
//!
//! Pure: a probe's observation in, a verdict out. The probing and what a change of state
//! raises are `api/check_watch.rs`'s.

use std::time::Duration;

use serde_json::Value as Json;

use crate::diag::{Diagnostic, Diagnostics};
use crate::dsl::check::CheckDef;
pub use crate::dsl::check::{Condition, Op, Subject, parse};

/// A check that passed validation.
#[derive(Debug, Clone)]
pub struct CheckPlan {
    /// Its name.
    pub name: String,
    /// The service it watches.
    pub service: String,
    /// The tenant whose status page shows it too.
    pub tenant: Option<String>,
    /// What to ask.
    pub url: String,
    /// `GET` or `HEAD`.
    pub method: String,
    /// How often.
    pub interval: Duration,
    /// How long one probe may take.
    pub timeout: Duration,
    /// Each must hold for a probe to pass.
    pub conditions: Vec<Condition>,
    /// Failed probes in a row that make it down.
    pub failure_threshold: u32,
    /// Passed probes in a row that make it up again.
    pub success_threshold: u32,
    /// The severity of the incident opened when no rule takes its alert.
    pub severity: String,
    /// The availability objective of its probes (its service's, as far as it sees it).
    pub slo: Option<crate::slo::Objective>,
}

/// What one probe saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The status, when an answer came.
    pub status: Option<u16>,
    /// The body.
    pub body: Vec<u8>,
    /// Milliseconds taken.
    pub latency_ms: u64,
    /// Why no answer came.
    pub error: Option<String>,
    /// Milliseconds left until the server's certificate expires, when it was read.
    pub certificate_left_ms: Option<i64>,
}

fn compare(op: Op, got: &str, want: &str) -> bool {
    if let (Ok(g), Ok(w)) = (got.parse::<f64>(), want.parse::<f64>()) {
        return match op {
            Op::Eq => g == w,
            Op::Ne => g != w,
            Op::Lt => g < w,
            Op::Le => g <= w,
            Op::Gt => g > w,
            Op::Ge => g >= w,
        };
    }
    match op {
        Op::Eq => got == want,
        Op::Ne => got != want,
        // Text has no order a probe could mean.
        _ => false,
    }
}

impl CheckPlan {
    /// Whether a probe must read the server's certificate.
    pub fn reads_certificate(&self) -> bool {
        self.conditions
            .iter()
            .any(|c| c.subject == Subject::CertificateExpiration)
    }
}

impl Condition {
    /// Whether the observation satisfies it (a probe without an answer satisfies none).
    pub fn holds(&self, o: &Observation) -> bool {
        if o.error.is_some() {
            return false;
        }
        let got = match &self.subject {
            Subject::Status => o.status.map(|s| s.to_string()),
            Subject::ResponseTime => Some(o.latency_ms.to_string()),
            Subject::CertificateExpiration => o.certificate_left_ms.map(|m| m.to_string()),
            Subject::Body(path) if path.is_empty() => {
                Some(String::from_utf8_lossy(&o.body).trim().to_string())
            }
            Subject::Body(path) => serde_json::from_slice::<Json>(&o.body).ok().and_then(|v| {
                let mut cur = &v;
                for key in path {
                    cur = match cur {
                        Json::Object(m) => m.get(key)?,
                        Json::Array(a) => a.get(key.parse::<usize>().ok()?)?,
                        _ => return None,
                    };
                }
                Some(match cur {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                })
            }),
        };
        got.is_some_and(|g| compare(self.op, &g, &self.value))
    }
}

/// Whether a probe passed, and if not, why (the first condition that failed, or the error).
pub fn judge(plan: &CheckPlan, o: &Observation) -> Result<(), String> {
    if let Some(e) = &o.error {
        return Err(e.clone());
    }
    match plan.conditions.iter().find(|c| !c.holds(o)) {
        Some(c) => Err(format!("`{}` does not hold", c.text)),
        None => Ok(()),
    }
}

/// Validates a decoded check (`diags` holds the decoder's problems).
pub fn build(def: &CheckDef, diags: Diagnostics) -> Result<CheckPlan, Vec<Diagnostic>> {
    if !diags.is_empty() {
        return Err(diags.into_sorted());
    }
    Ok(CheckPlan {
        name: def.name.value.clone(),
        service: def.service.value.clone(),
        tenant: def.tenant.as_ref().map(|t| t.value.clone()),
        url: def.url.value.clone(),
        method: def.method.clone(),
        interval: def.interval,
        timeout: def.timeout,
        conditions: def.conditions.clone(),
        failure_threshold: def.failure_threshold,
        success_threshold: def.success_threshold,
        severity: def.severity.clone(),
        slo: def.slo.map(|(percent, window)| crate::slo::Objective {
            percent,
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
        }),
    })
}

/// Decodes and validates a check file.
pub fn validate_check(bytes: &[u8]) -> Result<CheckPlan, Vec<Diagnostic>> {
    let mut diags = Diagnostics::default();
    let Some(def) = crate::dsl::check::decode_check(bytes, &mut diags) else {
        return Err(diags.into_sorted());
    };
    build(&def, diags)
}

/// Where a check stands between probes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    /// Up, down, or not known yet (`None`).
    pub up: Option<bool>,
    /// Failed probes in a row.
    pub fails: u32,
    /// Passed probes in a row.
    pub passes: u32,
}

/// What a probe changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It failed its threshold: it is down now.
    Down,
    /// It passed its threshold again: it is up now.
    Up,
    /// Nothing to tell.
    Same,
}

/// Counts one probe into `s`. A check not known yet is up at its first pass and down only once
/// it fails `failure_threshold` times in a row, like one that was up.
pub fn record(plan: &CheckPlan, s: &mut Standing, passed: bool) -> Change {
    if passed {
        s.passes = s.passes.saturating_add(1);
        s.fails = 0;
        match s.up {
            None => {
                s.up = Some(true);
                Change::Same
            }
            Some(false) if s.passes >= plan.success_threshold => {
                s.up = Some(true);
                Change::Up
            }
            _ => Change::Same,
        }
    } else {
        s.fails = s.fails.saturating_add(1);
        s.passes = 0;
        if s.up != Some(false) && s.fails >= plan.failure_threshold {
            s.up = Some(false);
            Change::Down
        } else {
            Change::Same
        }
    }
}

/// Percent of passed probes among `results` (`(at, passed)`) at or after `since`; `None`
/// without any.
pub fn uptime(results: &[(i64, bool)], since: i64) -> Option<f64> {
    let window: Vec<bool> = results
        .iter()
        .filter(|(t, _)| *t >= since)
        .map(|(_, p)| *p)
        .collect();
    (!window.is_empty())
        .then(|| 100.0 * window.iter().filter(|p| **p).count() as f64 / window.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(conditions: &[&str]) -> CheckPlan {
        CheckPlan {
            name: "shop".into(),
            service: "shop".into(),
            tenant: None,
            url: "http://127.0.0.1/health".into(),
            method: "GET".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            conditions: conditions
                .iter()
                .map(|c| parse(c).expect("a condition"))
                .collect(),
            failure_threshold: 3,
            success_threshold: 2,
            severity: "sev2".into(),
            slo: None,
        }
    }

    fn seen(status: u16, body: &str, ms: u64) -> Observation {
        Observation {
            status: Some(status),
            body: body.as_bytes().to_vec(),
            latency_ms: ms,
            error: None,
            certificate_left_ms: None,
        }
    }

    #[test]
    fn conditions_read_the_status_the_body_and_the_time() {
        let p = plan(&[
            "[STATUS] == 200",
            "[BODY].status == UP",
            "[BODY].db.replicas >= 2",
            "[RESPONSE_TIME] < 500",
        ]);
        assert_eq!(
            judge(
                &p,
                &seen(200, r#"{"status":"UP","db":{"replicas":3}}"#, 120)
            ),
            Ok(())
        );
        assert_eq!(
            judge(
                &p,
                &seen(200, r#"{"status":"DOWN","db":{"replicas":3}}"#, 120)
            ),
            Err("`[BODY].status == UP` does not hold".into())
        );
        assert!(
            judge(
                &p,
                &seen(200, r#"{"status":"UP","db":{"replicas":3}}"#, 900)
            )
            .is_err()
        );
        assert!(judge(&p, &seen(503, "", 5)).is_err());
        let failed = Observation {
            status: None,
            body: Vec::new(),
            latency_ms: 0,
            error: Some("connection refused".into()),
            certificate_left_ms: None,
        };
        assert_eq!(judge(&p, &failed), Err("connection refused".into()));
        let items = plan(&["[BODY].items.0.name != broken", "[BODY] != maintenance"]);
        assert_eq!(
            judge(&items, &seen(200, r#"{"items":[{"name":"ok"}]}"#, 1)),
            Ok(())
        );
    }

    #[test]
    fn a_certificate_condition_compares_the_time_left_with_a_duration() {
        let p = plan(&["[CERTIFICATE_EXPIRATION] > 48h"]);
        let day = 24 * 3600 * 1000;
        let with = |left: Option<i64>| Observation {
            certificate_left_ms: left,
            ..seen(200, "", 1)
        };
        assert_eq!(judge(&p, &with(Some(3 * day))), Ok(()));
        assert!(
            judge(&p, &with(Some(day))).is_err(),
            "a day left is under 48 h"
        );
        assert!(
            judge(&p, &with(None)).is_err(),
            "no certificate read, no pass"
        );
        assert!(p.reads_certificate());
    }

    #[test]
    fn a_bad_condition_says_what_is_wrong() {
        let err = |c: &str| parse(c).expect_err(c);
        assert!(err("STATUS == 200").contains("starts with"));
        assert!(err("[STATUS] = 200").contains("one of =="));
        assert!(err("[STATUS] == ok").contains("not a number"));
        assert!(err("[HEADERS] == x").contains("not a placeholder"));
        assert!(err("[CERTIFICATE_EXPIRATION] > soon").contains("not a duration"));
        assert!(err("[STATUS] ==").contains("compares with nothing"));
    }

    #[test]
    fn three_failures_make_it_down_and_two_passes_up_again() {
        let p = plan(&["[STATUS] == 200"]);
        let mut s = Standing::default();
        let run: Vec<Change> = [
            true, false, false, true, false, false, false, false, true, true, true,
        ]
        .iter()
        .map(|ok| record(&p, &mut s, *ok))
        .collect();
        use Change::{Down, Same, Up};
        assert_eq!(
            run,
            [
                Same, Same, Same, Same, Same, Same, Down, Same, Same, Up, Same
            ]
        );
        let mut fresh = Standing::default();
        let first: Vec<Change> = [false, false, false]
            .iter()
            .map(|ok| record(&p, &mut fresh, *ok))
            .collect();
        assert_eq!(
            first,
            [Same, Same, Down],
            "not known yet, then down at its threshold"
        );
    }

    #[test]
    fn uptime_is_the_share_of_passed_probes_in_the_window() {
        let results = [(0, true), (10, false), (20, true), (30, true)];
        assert_eq!(uptime(&results, 0), Some(75.0));
        assert_eq!(uptime(&results, 15), Some(100.0));
        assert_eq!(uptime(&results, 40), None);
    }
}
