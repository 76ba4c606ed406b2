//! What a client may read of the definitions: the workflows its tenant's catalog entries start
//! (and the child workflows those start, transitively) and the plugins their steps use.
//! Nothing else of the operator's configuration is a tenant's to read.

use std::collections::BTreeSet;
use std::sync::PoisonError;

use super::AppState;
use super::auth::{Principal, Role};
use crate::plan::{PlanKind, PlanStep};

/// The definitions one caller may read; `None` fields mean "everything" (operators, admins).
#[derive(Debug, Default)]
pub(super) struct Reach {
    workflows: Option<BTreeSet<String>>,
    plugins: Option<BTreeSet<(String, semver::Version)>>,
}

impl Reach {
    /// What `who` may read.
    pub(super) fn of(state: &AppState, who: &Principal) -> Self {
        let Some(tenant) = who.scope().filter(|_| who.role == Role::Client) else {
            return Self::default();
        };
        let mut todo: Vec<String> = state
            .catalog()
            .values()
            .filter(|e| e.allows_tenant(tenant))
            .map(|e| e.workflow.clone())
            .collect();
        let mut workflows = BTreeSet::new();
        let mut plugins = BTreeSet::new();
        let defs = state.defs.read().unwrap_or_else(PoisonError::into_inner);
        while let Some(name) = todo.pop() {
            if !workflows.insert(name.clone()) {
                continue;
            }
            for plan in defs.plans().filter(|p| p.name() == name) {
                for step in plan.steps().iter().chain(plan.on_failure()) {
                    uses(step, &mut plugins, &mut todo);
                }
            }
        }
        Self {
            workflows: Some(workflows),
            plugins: Some(plugins),
        }
    }

    /// Whether the caller may read workflow `name`.
    pub(super) fn workflow(&self, name: &str) -> bool {
        self.workflows.as_ref().is_none_or(|w| w.contains(name))
    }

    /// Whether the caller may read plugin `name` at `version`.
    pub(super) fn plugin(&self, name: &str, version: &semver::Version) -> bool {
        self.plugins
            .as_ref()
            .is_none_or(|p| p.contains(&(name.to_string(), version.clone())))
    }
}

/// Records the plugins a step calls and the workflow it starts.
fn uses(
    step: &PlanStep,
    plugins: &mut BTreeSet<(String, semver::Version)>,
    todo: &mut Vec<String>,
) {
    match &step.kind {
        PlanKind::Uses {
            plugin, version, ..
        } => {
            plugins.insert((plugin.clone(), version.clone()));
        }
        PlanKind::Workflow { name, .. } => todo.push(name.clone()),
        PlanKind::Escalate(e) => todo.push(e.page.clone()),
        _ => {}
    }
    if let Some(c) = &step.compensate {
        plugins.insert((c.plugin.clone(), c.version.clone()));
    }
}
