//! One workload's figures, their targets, and how they print: a table for people, one JSON
//! line for tools.

use serde_json::{Map, Value as Json};

/// What a figure must reach.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// At least this much.
    AtLeast(f64),
    /// At most this much.
    AtMost(f64),
}

impl Target {
    fn met(self, v: f64) -> bool {
        match self {
            Target::AtLeast(t) => v >= t,
            Target::AtMost(t) => v <= t,
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Its key in the JSON line (`steps_per_s`, …).
    pub key: &'static str,
    /// The value.
    pub value: f64,
    /// Its unit, for the table.
    pub unit: &'static str,
    /// The target, if there is one.
    pub target: Option<Target>,
}

/// A workload's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The workload's name (`disk` for the probe).
    pub workload: &'static str,
    /// One line saying what was measured.
    pub what: String,
    /// The figures, in print order.
    pub metrics: Vec<Metric>,
}

impl Report {
    /// An empty report.
    pub fn new(workload: &'static str, what: impl Into<String>) -> Self {
        Self {
            workload,
            what: what.into(),
            metrics: Vec::new(),
        }
    }

    /// Adds a figure without a target.
    pub fn add(&mut self, key: &'static str, value: f64, unit: &'static str) -> &mut Self {
        self.metrics.push(Metric {
            key,
            value,
            unit,
            target: None,
        });
        self
    }

    /// Adds a figure with a target.
    pub fn check(
        &mut self,
        key: &'static str,
        value: f64,
        unit: &'static str,
        target: Target,
    ) -> &mut Self {
        self.metrics.push(Metric {
            key,
            value,
            unit,
            target: Some(target),
        });
        self
    }

    /// Whether every target was met.
    pub fn met(&self) -> bool {
        self.metrics
            .iter()
            .all(|m| m.target.is_none_or(|t| t.met(m.value)))
    }

    /// `workload.key` of every figure that missed its target.
    pub fn missed(&self) -> Vec<String> {
        self.metrics
            .iter()
            .filter(|m| m.target.is_some_and(|t| !t.met(m.value)))
            .map(|m| format!("{}.{}", self.workload, m.key))
            .collect()
    }

    /// The table for people.
    pub fn table(&self) -> String {
        let mut out = format!("\n== {} — {}\n", self.workload, self.what);
        for m in &self.metrics {
            let value = format!("{} {}", number(m.value), m.unit);
            let target = match m.target {
                None => String::new(),
                Some(t) => {
                    let (op, v) = match t {
                        Target::AtLeast(v) => ("≥", v),
                        Target::AtMost(v) => ("≤", v),
                    };
                    format!(
                        "target {op} {} {}  {}",
                        number(v),
                        m.unit,
                        if t.met(m.value) { "met" } else { "MISSED" }
                    )
                }
            };
            out.push_str(&format!("  {:<30} {:>16}   {}\n", m.key, value, target));
        }
        out
    }

    /// One JSON line: `{"workload": …, "<key>": value, …, "targets_met": bool}`.
    pub fn json(&self) -> String {
        let mut map = Map::new();
        map.insert("workload".into(), Json::from(self.workload));
        for m in &self.metrics {
            let rounded = (m.value * 1000.0).round() / 1000.0;
            map.insert(m.key.into(), Json::from(rounded));
        }
        map.insert("targets_met".into(), Json::from(self.met()));
        Json::Object(map).to_string()
    }
}

/// A figure with a sensible number of digits.
fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The `p`-quantile (0..=1) of `sorted`, nearest rank; 0 for an empty list.
pub(super) fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_json() {
        let mut r = Report::new("chain", "test");
        r.check("steps_per_s", 12.5, "steps/s", Target::AtLeast(10.0))
            .check("p50_ms", 3.0, "ms", Target::AtMost(2.0))
            .add("commits", 4.0, "");
        assert!(!r.met());
        let v: Json = serde_json::from_str(&r.json()).expect("json");
        assert_eq!(v["workload"], "chain");
        assert_eq!(v["steps_per_s"], 12.5);
        assert_eq!(v["targets_met"], false);
        assert!(r.table().contains("MISSED"));
    }

    #[test]
    fn quantiles() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.99), 5.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
