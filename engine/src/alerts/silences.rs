//! Silences and maintenance windows: alerts their matchers select (while they last) are
//! stored and counted, never acted on.

use std::collections::BTreeMap;

use super::Alert;
use super::matcher::{Matcher, all_match};
use crate::store::SilenceRow;

/// A silence with its matchers compiled.
#[derive(Debug, Clone)]
pub struct Silence {
    /// As stored.
    pub row: SilenceRow,
    matchers: Vec<Matcher>,
}

/// Compiles label → matcher specs; every bad one as (label, message).
pub fn compile_matchers(
    specs: &BTreeMap<String, String>,
) -> Result<Vec<Matcher>, Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (name, spec) in specs {
        match Matcher::parse(name, spec) {
            Ok(m) => out.push(m),
            Err(e) => errors.push((name.clone(), e)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

impl Silence {
    /// Compiles a stored silence; one whose matchers no longer compile silences nothing and is
    /// reported by the caller.
    pub fn of(row: SilenceRow) -> Result<Self, String> {
        let matchers = compile_matchers(&row.matchers).map_err(|e| {
            e.into_iter()
                .map(|(l, m)| format!("{l}: {m}"))
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        Ok(Self { row, matchers })
    }

    /// Whether it silences `alert` at `now`.
    pub fn silences(&self, alert: &Alert, now: i64) -> bool {
        self.row.starts_at <= now
            && now < self.row.ends_at
            // A tenant's silence holds its own alerts and the provider's (no tenant), never
            // another tenant's.
            && self
                .row
                .tenant
                .as_ref()
                .is_none_or(|t| alert.tenant.as_ref().is_none_or(|a| a == t))
            && all_match(&self.matchers, &alert.labels)
    }
}

/// The first of `silences` that silences `alert` at `now`.
pub fn silencing<'a>(silences: &'a [Silence], alert: &Alert, now: i64) -> Option<&'a Silence> {
    silences.iter().find(|s| s.silences(alert, now))
}
