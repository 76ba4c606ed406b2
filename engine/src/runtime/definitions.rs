//! The workflow versions the executor knows: those that planned, and those stored that no
//! longer do (a plugin they use is gone, a grant they need was removed), with the reason.
//!
//! A run of an unplanned version is blocked, not failed: it waits, visibly, until its version
//! plans again (a plugin upload or a grant change re-plans every unplanned version) and then
//! goes on where it stopped.

use std::collections::HashMap;
use std::sync::Arc;

use crate::plan::Plan;

/// A stored workflow version that does not plan now.
#[derive(Debug, Clone)]
pub struct Unplanned {
    /// Its YAML as stored, to plan again when something changes.
    pub source: Arc<str>,
    /// Why it does not plan, for the runs it blocks.
    pub reason: String,
}

/// Every workflow version the executor can run, by name and version, and those it cannot.
#[derive(Debug, Clone, Default)]
pub struct Definitions {
    /// (name, version) → plan.
    plans: HashMap<(String, u32), Arc<Plan>>,
    /// name → newest version that plans.
    latest: HashMap<String, u32>,
    /// (name, version) → why it does not plan.
    unplanned: HashMap<(String, u32), Unplanned>,
}

impl Definitions {
    /// Adds a validated plan (a version that did not plan before no longer counts as such).
    pub fn insert(&mut self, plan: Plan) {
        let key = (plan.name().to_string(), plan.version());
        self.unplanned.remove(&key);
        let latest = self
            .latest
            .entry(plan.name().to_string())
            .or_insert(plan.version());
        *latest = (*latest).max(plan.version());
        self.plans.insert(key, Arc::new(plan));
    }

    /// Records a stored version that does not plan, and why.
    pub fn insert_unplanned(&mut self, name: &str, version: u32, unplanned: Unplanned) {
        self.unplanned
            .insert((name.to_string(), version), unplanned);
    }

    /// A plan by name and version (the newest when `version` is `None`).
    pub fn get(&self, name: &str, version: Option<u32>) -> Option<&Arc<Plan>> {
        let v = version.or_else(|| self.latest.get(name).copied())?;
        self.plans.get(&(name.to_string(), v))
    }

    /// Why a stored version does not plan, if it does not.
    pub fn unplanned(&self, name: &str, version: u32) -> Option<&Unplanned> {
        self.unplanned.get(&(name.to_string(), version))
    }

    /// Every stored version that does not plan, as (name, version, why).
    pub fn every_unplanned(&self) -> impl Iterator<Item = (&str, u32, &Unplanned)> {
        self.unplanned
            .iter()
            .map(|((name, version), u)| (name.as_str(), *version, u))
    }

    /// Forgets every version of `name`, planned or not; whether it knew any.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.plans.len() + self.unplanned.len();
        self.plans.retain(|(n, _), _| n != name);
        self.unplanned.retain(|(n, _), _| n != name);
        self.latest.remove(name);
        before != self.plans.len() + self.unplanned.len()
    }

    /// Whether any version of `name` is known, planned or not.
    pub fn knows(&self, name: &str) -> bool {
        self.latest.contains_key(name) || self.unplanned.keys().any(|(n, _)| n == name)
    }

    /// Every plan.
    pub fn plans(&self) -> impl Iterator<Item = &Arc<Plan>> {
        self.plans.values()
    }
}
