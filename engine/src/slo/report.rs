//! The SLA report of a window: per tenant and catalog entry, the requests made (usage), how
//! many were fulfilled, fulfilled within their SLA, breached or failed, fulfilment times, and
//! availability against the entry's objective — as rows for JSON and CSV.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Facts, Objective, Outcome, outcome};

/// One tenant's use of one entry over the window.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Row {
    /// The tenant.
    pub tenant: String,
    /// The entry.
    pub catalog_id: String,
    /// Requests submitted in the window.
    pub requests: u64,
    /// Of those, rejected by an approver.
    pub rejected: u64,
    /// Fulfilled (their run succeeded), in time or not.
    pub fulfilled: u64,
    /// Fulfilled before their SLA deadline (all fulfilled ones when the entry has no SLA).
    pub within_sla: u64,
    /// SLA breaches: fulfilled late, or still unfinished past the deadline.
    pub breached: u64,
    /// Runs that failed or were cancelled.
    pub failed: u64,
    /// Neither decided nor overdue yet.
    pub in_progress: u64,
    /// Median seconds from submission to fulfilment.
    pub fulfilment_p50_s: Option<f64>,
    /// 90th percentile of the same.
    pub fulfilment_p90_s: Option<f64>,
    /// Good over decided requests, in percent.
    pub availability: Option<f64>,
    /// The entry's objective, in percent, when it has one.
    pub objective: Option<f64>,
    /// Whether availability meets the objective (absent without one, or with nothing decided).
    pub met: Option<bool>,
}

fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The rows of `requests` (those submitted in the window), as of `now`; `objective` gives an
/// entry's objective.
pub fn rows(
    requests: &[Facts],
    now: i64,
    objective: impl Fn(&str) -> Option<Objective>,
) -> Vec<Row> {
    let mut groups: BTreeMap<(String, String), Vec<&Facts>> = BTreeMap::new();
    for r in requests {
        groups
            .entry((r.tenant.clone(), r.catalog_id.clone()))
            .or_default()
            .push(r);
    }
    groups
        .into_iter()
        .map(|((tenant, catalog_id), rs)| {
            let mut row = Row {
                tenant,
                objective: objective(&catalog_id).map(|o| o.percent),
                catalog_id,
                requests: rs.len() as u64,
                rejected: 0,
                fulfilled: 0,
                within_sla: 0,
                breached: 0,
                failed: 0,
                in_progress: 0,
                fulfilment_p50_s: None,
                fulfilment_p90_s: None,
                availability: None,
                met: None,
            };
            let mut times = Vec::new();
            let (mut good, mut bad) = (0u64, 0u64);
            for r in rs {
                let succeeded = r.run_status.as_deref() == Some("succeeded");
                if r.status == "rejected" {
                    row.rejected += 1;
                } else if matches!(r.run_status.as_deref(), Some("failed" | "cancelled")) {
                    row.failed += 1;
                }
                if succeeded && let Some(t) = r.finished_at {
                    row.fulfilled += 1;
                    times.push((t - r.created_at).max(0) as f64 / 1000.0);
                }
                match outcome(r, now) {
                    Outcome::Good { .. } => {
                        good += 1;
                        row.within_sla += 1;
                    }
                    Outcome::Bad { .. } => {
                        bad += 1;
                        if !matches!(r.run_status.as_deref(), Some("failed" | "cancelled")) {
                            row.breached += 1;
                        }
                    }
                    Outcome::Open if r.status != "rejected" => row.in_progress += 1,
                    Outcome::Open => {}
                }
            }
            times.sort_by(f64::total_cmp);
            row.fulfilment_p50_s = nearest_rank(&times, 50.0);
            row.fulfilment_p90_s = nearest_rank(&times, 90.0);
            let decided = good + bad;
            row.availability = (decided > 0).then(|| 100.0 * good as f64 / decided as f64);
            row.met = match (row.availability, row.objective) {
                (Some(a), Some(o)) => Some(a >= o),
                _ => None,
            };
            row
        })
        .collect()
}

/// The rows as CSV, a header first.
pub fn csv(rows: &[Row]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "tenant",
        "catalog_id",
        "requests",
        "rejected",
        "fulfilled",
        "within_sla",
        "breached",
        "failed",
        "in_progress",
        "fulfilment_p50_s",
        "fulfilment_p90_s",
        "availability",
        "objective",
        "met",
    ])?;
    let opt = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_default();
    for r in rows {
        w.write_record([
            r.tenant.clone(),
            r.catalog_id.clone(),
            r.requests.to_string(),
            r.rejected.to_string(),
            r.fulfilled.to_string(),
            r.within_sla.to_string(),
            r.breached.to_string(),
            r.failed.to_string(),
            r.in_progress.to_string(),
            opt(r.fulfilment_p50_s),
            opt(r.fulfilment_p90_s),
            opt(r.availability),
            opt(r.objective),
            r.met.map(|m| m.to_string()).unwrap_or_default(),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn req(id: &str, entry: &str, status: &str, run: Option<&str>, done: Option<i64>) -> Facts {
        Facts {
            id: id.into(),
            catalog_id: entry.into(),
            tenant: "acme".into(),
            created_at: 0,
            status: status.into(),
            deadline: Some(60 * MIN),
            run_status: run.map(String::from),
            finished_at: done,
        }
    }

    #[test]
    fn a_tenants_requests_count_as_fulfilled_in_time_breached_failed_or_in_progress() {
        let requests = [
            req("a", "vm", "started", Some("succeeded"), Some(10 * MIN)),
            req("b", "vm", "started", Some("succeeded"), Some(30 * MIN)),
            req("c", "vm", "started", Some("succeeded"), Some(90 * MIN)),
            req("d", "vm", "started", Some("failed"), Some(5 * MIN)),
            req("e", "vm", "started", Some("running"), None),
            req("f", "vm", "rejected", None, None),
            req("g", "db", "started", Some("running"), None),
        ];
        let objective = |id: &str| {
            (id == "vm").then_some(Objective {
                percent: 99.0,
                window_ms: 30 * 24 * 60 * MIN,
            })
        };
        let rows = rows(&requests, 120 * MIN, objective);
        let vm = &rows[1];
        assert_eq!(
            (
                vm.requests,
                vm.rejected,
                vm.fulfilled,
                vm.within_sla,
                vm.breached,
                vm.failed,
                vm.in_progress
            ),
            (6, 1, 3, 2, 2, 1, 0),
            "c was late and e is overdue: two breaches"
        );
        assert_eq!(vm.fulfilment_p50_s, Some(1800.0));
        assert_eq!(vm.fulfilment_p90_s, Some(5400.0));
        assert_eq!(vm.availability, Some(40.0), "2 good of 5 decided");
        assert_eq!(vm.met, Some(false));
        let db = &rows[0];
        assert_eq!(
            (db.catalog_id.as_str(), db.breached, db.objective, db.met),
            ("db", 1, None, None)
        );
        let text = csv(&rows).expect("csv");
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                "tenant,catalog_id,requests,rejected,fulfilled,within_sla,breached,failed,in_progress,fulfilment_p50_s,fulfilment_p90_s,availability,objective,met"
            )
        );
        assert_eq!(
            lines.nth(1),
            Some("acme,vm,6,1,3,2,2,1,0,1800,5400,40,99,false")
        );
    }
}
