//! Definitions follow the database. Several processes share one: what another one stored or
//! deleted — a workflow version, a catalog entry, a rule, an on-call file, an uploaded plugin,
//! a secret — is taken here too, within a moment. Each change is announced after its commit
//! (`NOTIFY csmp_definitions`), and every process also looks every 30 seconds. Only on
//! PostgreSQL: a SQLite file has one `serve`.
//!
//! Taking a change here is what the call that made it did in its own process: a workflow
//! version is planned and made runnable (its blocked runs go on), a deleted workflow is
//! forgotten, catalog entries, rules and on-call files are read again from their directories
//! with the database's laid on top, a plugin is loaded, a secret is handed to attempts and
//! masked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::PoisonError;
use std::time::Duration;

use super::AppState;

/// How often the database is looked at without an announcement.
const EVERY: Duration = Duration::from_secs(30);

/// The directories definitions were read from at start, read again with each change.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `catalog/`.
    pub catalog: Option<PathBuf>,
    /// `rules/`.
    pub rules: Option<PathBuf>,
    /// `oncall/`.
    pub oncall: Option<PathBuf>,
}

/// What this process has taken already.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// Stored secrets by name, and when each was set.
    secrets: std::sync::Mutex<Option<BTreeMap<String, i64>>>,
}

/// Tells the other processes that definitions changed (after the change's commit).
pub(crate) fn announce(state: &AppState) {
    state.engine.announce_definitions();
}

/// Keeps this process's definitions in step with the database until shutdown.
pub(crate) fn start(state: AppState) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = state.engine.definitions_changed_elsewhere() => {}
                () = state.shutdown.cancelled() => return,
            }
            take(&state).await;
        }
    });
}

/// Takes what changed in the database; each kind of definition on its own, so one that fails
/// (logged) does not keep the others back.
pub(crate) async fn take(state: &AppState) {
    let _one_at_a_time = state.uploads.lock().await;
    let plugins = take_plugins(state).await;
    let workflows = take_workflows(state).await;
    if plugins || workflows {
        state.replan_unplanned().await;
    }
    take_catalog(state).await;
    take_rules(state).await;
    take_oncall(state).await;
    take_secrets(state).await;
}

/// Loads the plugins uploaded through other processes; whether any was.
async fn take_plugins(state: &AppState) -> bool {
    let stored = match state.store.plugin_versions().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot read the uploaded plugins: {e}");
            return false;
        }
    };
    let index = state.host.index();
    let mut loaded = false;
    for (name, version) in stored {
        if index
            .versions(&name)
            .iter()
            .any(|d| d.version.to_string() == version)
        {
            continue;
        }
        let row = match state.store.plugin(&name, &version).await {
            Ok(Some(row)) => row,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("cannot read plugin {name}@{version}: {e}");
                continue;
            }
        };
        let host = state.host.clone();
        match tokio::task::spawn_blocking(move || host.load(&row.wasm)).await {
            Ok(Ok(_)) => {
                tracing::info!(plugin = %name, %version, "plugin {name}@{version} uploaded through another process is loaded");
                loaded = true;
            }
            Ok(Err(e)) => {
                tracing::warn!(plugin = %name, %version, "plugin {name}@{version} uploaded through another process does not load here: {e}");
            }
            Err(e) => tracing::warn!("loading plugin {name}@{version} stopped: {e}"),
        }
    }
    loaded
}

/// Makes the workflow versions stored through other processes runnable, and forgets those
/// deleted; whether anything changed.
async fn take_workflows(state: &AppState) -> bool {
    let stored = match state.store.workflow_versions().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot read the stored workflow versions: {e}");
            return false;
        }
    };
    let (known, names): (BTreeSet<(String, u32)>, BTreeSet<String>) = {
        let defs = state.defs.read().unwrap_or_else(PoisonError::into_inner);
        let known = defs
            .plans()
            .map(|p| (p.name().to_string(), p.version()))
            .chain(defs.every_unplanned().map(|(n, v, _)| (n.to_string(), v)))
            .collect();
        let names = defs
            .plans()
            .map(|p| p.name().to_string())
            .chain(defs.every_unplanned().map(|(n, _, _)| n.to_string()))
            .collect();
        (known, names)
    };
    let mut changed = false;
    let new: Vec<&(String, u32)> = stored.iter().filter(|w| !known.contains(*w)).collect();
    if !new.is_empty() {
        match state.store.workflows().await {
            Ok(rows) => {
                for row in rows
                    .iter()
                    .filter(|r| new.contains(&&(r.name.clone(), r.version)))
                {
                    changed |= define(state, &row.name, row.version, &row.source).await;
                }
            }
            Err(e) => tracing::warn!("cannot read the stored workflows: {e}"),
        }
    }
    let stored_names: BTreeSet<&str> = stored.iter().map(|(n, _)| n.as_str()).collect();
    for gone in names.iter().filter(|n| !stored_names.contains(n.as_str())) {
        match state.engine.undefine(gone).await {
            Ok(()) => {
                state
                    .defs
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(gone);
                tracing::info!(workflow = %gone, "workflow deleted through another process");
                changed = true;
            }
            Err(e) => {
                tracing::warn!(workflow = %gone, "workflow deleted through another process stays runnable here: {e}");
            }
        }
    }
    changed
}

/// Plans a stored version and makes it runnable (or keeps it, with why it does not plan);
/// whether it became runnable.
async fn define(state: &AppState, name: &str, version: u32, source: &str) -> bool {
    let names = state.workflow_names();
    let index = state.host.index();
    let planned = crate::plan::validate_workflow(
        source.as_bytes(),
        crate::plan::Env {
            plugins: &index,
            workflows: Some(&names),
        },
    );
    match planned {
        Ok(plan) => {
            if let Err(e) = state.engine.define(plan.clone()).await {
                tracing::warn!(workflow = %name, version, "cannot make {name}@{version} runnable: {e}");
                return false;
            }
            state
                .defs
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(plan);
            tracing::info!(workflow = %name, version, "workflow {name}@{version} stored through another process is runnable here");
            true
        }
        Err(d) => {
            let reason = crate::plan::summarize(&d);
            tracing::warn!(workflow = %name, version, "workflow {name}@{version} stored through another process does not plan here: {reason}");
            state
                .defs
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert_unplanned(
                    name,
                    version,
                    crate::runtime::Unplanned {
                        source: source.into(),
                        reason,
                    },
                );
            false
        }
    }
}

/// Reads the catalog directory again with the entries set over the API on top (when the
/// catalog came from a directory: a state built without one keeps what it was given).
async fn take_catalog(state: &AppState) {
    let Some(dir) = &state.config.sources.catalog else {
        return;
    };
    let names = state.workflow_names();
    let defs = state
        .defs
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mut entries = match crate::cli::run::load_catalog(dir, &defs) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("the catalog is not read again: {e:#}");
            return;
        }
    };
    if let Err(e) = super::overlay_catalog(&state.store, &mut entries, &names).await {
        tracing::warn!("the catalog set over the API is not read again: {e}");
        return;
    }
    state.set_catalog(entries);
}

/// Reads the rules again: the directory's, with those set over the API on top.
async fn take_rules(state: &AppState) {
    let Some(dir) = &state.config.sources.rules else {
        return;
    };
    let names = state.workflow_names();
    match super::load_rules(&state.store, Some(dir), &names).await {
        Ok(rules) => {
            state.alerts.rules.set(rules);
            state.alerts.wake();
        }
        Err(e) => tracing::warn!("the rules are not read again: {e:#}"),
    }
}

/// Reads the on-call files again, when they changed.
async fn take_oncall(state: &AppState) {
    let Some(dir) = &state.config.sources.oncall else {
        return;
    };
    match super::load_oncall(&state.store, Some(dir)).await {
        Ok((set, sources)) => {
            if *state.oncall_sources() != sources {
                state.set_oncall_files(set, sources);
                tracing::info!("on-call files changed through another process are in force here");
            }
        }
        Err(e) => tracing::warn!("the on-call files are not read again: {e:#}"),
    }
}

/// Hands the secrets set through other processes to attempts (and masks them).
async fn take_secrets(state: &AppState) {
    let Some(key) = &state.config.master_key else {
        return;
    };
    let rows = match state.store.sealed_secrets().await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!("cannot read the stored secrets: {e}");
            return;
        }
    };
    let now: BTreeMap<String, i64> = rows.iter().map(|r| (r.name.clone(), r.set_at)).collect();
    let before = state
        .seen
        .secrets
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .replace(now.clone());
    // The first look only learns what start-up already handed over.
    let Some(before) = before else {
        return;
    };
    for row in rows
        .iter()
        .filter(|r| before.get(&r.name) != Some(&r.set_at))
    {
        match key.open(row) {
            Ok(value) => {
                if let Err(e) = state.engine.set_secret(&row.name, &value).await {
                    tracing::warn!(secret = %row.name, "cannot hand over a secret set through another process: {e}");
                }
            }
            Err(e) => {
                tracing::warn!(secret = %row.name, "a secret set through another process does not open with this process's master key (give every process the same CSMP_MASTER_KEY): {e}");
            }
        }
    }
}
