//! Response measures: mean time to acknowledge (MTTA) and to resolve (MTTR) of the incidents
//! opened in a window, overall and per service, team and severity, from the timestamps of
//! their timelines.
//!
//! An incident's time to acknowledge runs from its opening to its first acknowledgement; its
//! time to resolve from its opening to its last resolution (a reopened incident counts until
//! it is resolved again). Incidents not yet acknowledged (or resolved) count in `incidents`
//! but not in the times. Percentiles are nearest-rank: the p-th of n sorted values is the
//! `ceil(p/100 × n)`-th.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{acknowledged_at, resolved_at};
use crate::store::IncidentRow;

/// Mean and percentiles of durations, in seconds; absent when there are none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Durations {
    /// How many durations.
    pub count: usize,
    /// Their mean.
    pub mean_s: Option<f64>,
    /// Their median.
    pub p50_s: Option<f64>,
    /// Their 90th percentile.
    pub p90_s: Option<f64>,
}

/// The measures of one set of incidents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Measures {
    /// What the set shares: a service, team or severity (`all` overall).
    pub key: String,
    /// Incidents opened in the window.
    pub incidents: usize,
    /// Time to acknowledge.
    pub mtta: Durations,
    /// Time to resolve.
    pub mttr: Durations,
}

/// Every measure of a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// All incidents of the window.
    pub overall: Measures,
    /// Per affected service (an incident counts for each).
    pub by_service: Vec<Measures>,
    /// Per team responsible (the teams its service's escalation policy names).
    pub by_team: Vec<Measures>,
    /// Per severity now.
    pub by_severity: Vec<Measures>,
}

/// The nearest-rank `p`-th percentile of sorted `v` (not empty).
fn percentile(v: &[f64], p: f64) -> f64 {
    let n = v.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    v[rank.clamp(1, n) - 1]
}

fn durations(mut v: Vec<f64>) -> Durations {
    if v.is_empty() {
        return Durations::default();
    }
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    Durations {
        count: v.len(),
        mean_s: Some(mean),
        p50_s: Some(percentile(&v, 50.0)),
        p90_s: Some(percentile(&v, 90.0)),
    }
}

fn measures(key: &str, rows: &[&IncidentRow]) -> Measures {
    let secs = |t: i64, from: i64| (t - from).max(0) as f64 / 1000.0;
    Measures {
        key: key.into(),
        incidents: rows.len(),
        mtta: durations(
            rows.iter()
                .filter_map(|r| acknowledged_at(r).map(|t| secs(t, r.created_at)))
                .collect(),
        ),
        mttr: durations(
            rows.iter()
                .filter_map(|r| resolved_at(r).map(|t| secs(t, r.created_at)))
                .collect(),
        ),
    }
}

fn grouped<'a>(
    rows: &[&'a IncidentRow],
    keys: impl Fn(&IncidentRow) -> Vec<String>,
) -> Vec<Measures> {
    let mut groups: BTreeMap<String, Vec<&'a IncidentRow>> = BTreeMap::new();
    for r in rows {
        let mut ks = keys(r);
        ks.sort();
        ks.dedup();
        for k in ks {
            groups.entry(k).or_default().push(r);
        }
    }
    groups.iter().map(|(k, rs)| measures(k, rs)).collect()
}

/// The measures of `rows` (the incidents of the window); `teams` names the teams responsible
/// for an incident.
pub fn report(rows: &[IncidentRow], teams: impl Fn(&IncidentRow) -> Vec<String>) -> Report {
    let all: Vec<&IncidentRow> = rows.iter().collect();
    Report {
        overall: measures("all", &all),
        by_service: grouped(&all, |r| {
            let mut s = super::Details::of(r).services;
            s.extend(r.service.clone());
            s
        }),
        by_team: grouped(&all, teams),
        by_severity: grouped(&all, |r| vec![r.severity.clone()]),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::incidents::entry;

    const MIN: i64 = 60_000;

    /// An incident opened at `open` minutes, acknowledged and resolved after the given
    /// minutes (when given).
    fn incident(
        id: &str,
        service: &str,
        sev: &str,
        ack: Option<i64>,
        res: Option<i64>,
    ) -> IncidentRow {
        let open = 0;
        let mut timeline = vec![entry(open, "r", "opened", "opened", true)];
        if let Some(a) = ack {
            timeline.push(entry(open + a * MIN, "lee", "acknowledged", "on it", true));
        }
        if let Some(r) = res {
            timeline.push(entry(open + r * MIN, "lee", "resolved", "fixed", true));
        }
        IncidentRow {
            id: id.into(),
            run_id: None,
            tenant: "acme".into(),
            title: id.into(),
            severity: sev.into(),
            service: Some(service.into()),
            status: if res.is_some() {
                "resolved"
            } else if ack.is_some() {
                "acknowledged"
            } else {
                "triggered"
            }
            .into(),
            timeline: json!(timeline),
            details: json!({}),
            created_at: open,
            updated_at: open,
            partition: 0,
        }
    }

    #[test]
    fn the_measures_of_a_fixture_set_equal_those_computed_by_hand() {
        let rows = vec![
            incident("a", "shop", "sev1", Some(2), Some(30)),
            incident("b", "shop", "sev2", Some(4), Some(60)),
            incident("c", "shop", "sev2", Some(10), None),
            incident("d", "db", "sev1", Some(1), Some(20)),
            incident("e", "db", "sev3", None, None),
        ];
        let r = report(&rows, |i| {
            vec![
                if i.service.as_deref() == Some("db") {
                    "data"
                } else {
                    "web"
                }
                .to_string(),
            ]
        });
        // Acknowledged after 2, 4, 10 and 1 minutes: sorted 1, 2, 4, 10 (seconds ×60).
        assert_eq!(r.overall.incidents, 5);
        assert_eq!(
            r.overall.mtta,
            Durations {
                count: 4,
                mean_s: Some(255.0),
                p50_s: Some(120.0),
                p90_s: Some(600.0)
            }
        );
        // Resolved after 30, 60 and 20 minutes: sorted 20, 30, 60.
        assert_eq!(
            r.overall.mttr,
            Durations {
                count: 3,
                mean_s: Some(2200.0),
                p50_s: Some(1800.0),
                p90_s: Some(3600.0)
            }
        );
        let shop = &r.by_service[1];
        assert_eq!((shop.key.as_str(), shop.incidents), ("shop", 3));
        assert_eq!(shop.mtta.mean_s, Some(320.0), "(2 + 4 + 10) / 3 minutes");
        assert_eq!(shop.mttr.p50_s, Some(1800.0), "nearest rank of 30, 60");
        let db = &r.by_service[0];
        assert_eq!((db.key.as_str(), db.incidents, db.mtta.count), ("db", 2, 1));
        assert_eq!(
            r.by_team.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
            ["data", "web"]
        );
        let sev1 = &r.by_severity[0];
        assert_eq!(
            (sev1.key.as_str(), sev1.mtta.mean_s, sev1.mttr.mean_s),
            ("sev1", Some(90.0), Some(1500.0))
        );
        assert_eq!(
            r.by_severity[2].mtta,
            Durations::default(),
            "sev3: never acknowledged"
        );
    }
}
