//! The template scope of a step: `inputs`, `steps`, `run`, `secrets`, and `item`, `index`,
//! `output` where they apply.
//!
//! Each run keeps its scope between renders ([`ScopeCache`]): taking it refreshes only the
//! `steps.<id>` entries of units that changed since (the executor invalidates each unit it
//! changes), each checked against a [`Stamp`] of the unit, so starting a step costs what
//! changed, not a look at every step of the plan.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Deref;

use serde_json::{Map, Value as Json, json};

use crate::plan::{Plan, UnitKey};
use crate::store::{RunRow, StepRow, StepStatus};

/// What a unit adds to the run's scope.
#[derive(Debug, Default, Clone)]
pub(crate) struct Extra {
    /// The fan-out item and its position.
    pub(crate) item: Option<(usize, Json)>,
    /// The compensated unit's output.
    pub(crate) output: Option<Json>,
}

/// What the scope's entry of a unit was built from. The executor changes a unit's `output`
/// or `error` only together with its status, attempt or end time, and the lengths catch
/// anything else, so an equal stamp means an entry that is still true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    status: StepStatus,
    attempt: u32,
    finished_at: Option<i64>,
    output: bool,
    error_len: Option<usize>,
}

impl Stamp {
    fn of(row: &StepRow) -> Self {
        Self {
            status: row.status,
            attempt: row.attempt,
            finished_at: row.finished_at,
            output: row.output.is_some(),
            error_len: row.error.as_ref().map(String::len),
        }
    }
}

/// A run's scope as last built.
#[derive(Debug, Clone)]
struct Built {
    /// `{inputs, steps, run, secrets}`.
    ctx: handlebars::Context,
    /// Unit key → the stamp its `steps` entry was built from.
    stamps: HashMap<UnitKey, Stamp>,
    /// The run error `run.error` was built from.
    run_error: Option<String>,
}

/// A run's scope between renders. Empty until first taken.
#[derive(Debug, Default)]
pub(crate) struct ScopeCache {
    /// The scope as last built, when kept.
    built: Option<Built>,
    /// Units changed since the scope was last refreshed (the executor says so of every unit
    /// it changes, also while the scope is taken out), so a refresh looks at those only.
    stale: BTreeSet<UnitKey>,
}

/// A scope taken out of a run's cache to render with; hand it back with
/// [`ScopeCache::give_back`] to keep the work (a scope not handed back is rebuilt next time).
#[derive(Debug)]
pub(crate) struct Scope {
    built: Built,
    /// Whether `item`/`index`/`output` were added and must come out again.
    extras: bool,
}

impl Deref for Scope {
    type Target = handlebars::Context;

    fn deref(&self) -> &handlebars::Context {
        &self.built.ctx
    }
}

fn entry(row: &StepRow) -> Json {
    json!({
        "status": row.status.as_str(),
        "output": row.output.clone().unwrap_or(Json::Null),
        "error": row.error.clone().unwrap_or_default(),
    })
}

/// The plan's steps as (scope name, unit key): main steps, then `on_failure` steps (`!id`).
fn ids(plan: &Plan) -> impl Iterator<Item = (&str, UnitKey)> {
    plan.steps()
        .iter()
        .map(|s| (s.id.as_str(), UnitKey::Step(s.id.clone())))
        .chain(
            plan.on_failure()
                .iter()
                .map(|s| (s.id.as_str(), UnitKey::OnFailure(s.id.clone()))),
        )
}

fn build(
    run: &RunRow,
    plan: &Plan,
    steps: &HashMap<UnitKey, StepRow>,
    secrets: &BTreeMap<String, String>,
) -> Built {
    let mut by_id = Map::new();
    let mut stamps = HashMap::new();
    for (id, key) in ids(plan) {
        if let Some(row) = steps.get(&key) {
            by_id.insert(id.to_string(), entry(row));
            stamps.insert(key, Stamp::of(row));
        }
    }
    let scope = json!({
        "inputs": run.inputs,
        "steps": by_id,
        "run": {
            "id": run.id,
            "tenant": run.tenant,
            "workflow": run.workflow,
            "version": run.version,
            "requester": run.requester.clone().unwrap_or_default(),
            "request_id": "",
            "started_at": run.created_at,
            "error": run.error.clone().unwrap_or_default(),
        },
        "secrets": secrets,
    });
    Built {
        ctx: crate::template::context(scope),
        stamps,
        run_error: run.error.clone(),
    }
}

impl Built {
    /// Brings the entries of the units `changed` (and `run.error`) up to date.
    fn refresh<'k>(
        &mut self,
        run: &RunRow,
        steps: &HashMap<UnitKey, StepRow>,
        changed: impl IntoIterator<Item = &'k UnitKey>,
    ) {
        let data = self.ctx.data_mut();
        for key in changed {
            let id = match key {
                UnitKey::Step(id) | UnitKey::OnFailure(id) => id,
                UnitKey::Item(..) | UnitKey::Compensation(..) => continue,
            };
            let Some(row) = steps.get(key) else { continue };
            let stamp = Stamp::of(row);
            if self.stamps.get(key) == Some(&stamp) {
                continue;
            }
            if let Some(by_id) = data.get_mut("steps").and_then(Json::as_object_mut) {
                by_id.insert(id.clone(), entry(row));
            }
            self.stamps.insert(key.clone(), stamp);
        }
        if self.run_error != run.error {
            if let Some(r) = data.get_mut("run").and_then(Json::as_object_mut) {
                r.insert(
                    "error".into(),
                    Json::from(run.error.clone().unwrap_or_default()),
                );
            }
            self.run_error.clone_from(&run.error);
        }
    }
}

impl ScopeCache {
    /// Notes that a unit changed: its entry is refreshed at the next take.
    pub(crate) fn invalidate(&mut self, key: &UnitKey) {
        if matches!(key, UnitKey::Step(_) | UnitKey::OnFailure(_)) {
            self.stale.insert(key.clone());
        }
    }

    /// The scope templates of a unit render against, up to date with `steps` (refreshing the
    /// entries of the units [`invalidate`]d since the last take, or built whole the first time).
    ///
    /// [`invalidate`]: ScopeCache::invalidate
    pub(crate) fn take(
        &mut self,
        run: &RunRow,
        plan: &Plan,
        steps: &HashMap<UnitKey, StepRow>,
        secrets: &BTreeMap<String, String>,
        extra: &Extra,
    ) -> Scope {
        let stale = std::mem::take(&mut self.stale);
        let mut built = match self.built.take() {
            Some(mut b) => {
                b.refresh(run, steps, &stale);
                b
            }
            None => build(run, plan, steps, secrets),
        };
        let mut extras = false;
        if let Some(obj) = built.ctx.data_mut().as_object_mut() {
            if let Some((index, item)) = &extra.item {
                obj.insert("item".into(), item.clone());
                obj.insert("index".into(), Json::from(*index));
                extras = true;
            }
            if let Some(output) = &extra.output {
                obj.insert("output".into(), output.clone());
                extras = true;
            }
        }
        Scope { built, extras }
    }

    /// Keeps a scope taken from this cache for the next render.
    pub(crate) fn give_back(&mut self, scope: Scope) {
        let Scope { mut built, extras } = scope;
        if extras && let Some(obj) = built.ctx.data_mut().as_object_mut() {
            obj.remove("item");
            obj.remove("index");
            obj.remove("output");
        }
        self.built = Some(built);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RunStatus;

    fn plan() -> Plan {
        let yaml = "name: s\nversion: 1\nsteps:\n  - id: a\n    wait: 1s\n  - id: b\n    needs: [a]\n    wait: 1s\non_failure:\n  - id: c\n    wait: 1s\n";
        crate::plan::validate_workflow(
            yaml.as_bytes(),
            crate::plan::Env {
                plugins: &crate::plugin::PluginIndex::default(),
                workflows: None,
            },
        )
        .expect("valid")
    }

    fn run() -> RunRow {
        RunRow {
            id: "r".into(),
            workflow: "s".into(),
            version: 1,
            tenant: "t".into(),
            requester: None,
            inputs: json!({"n": 1}),
            status: RunStatus::Running,
            outputs: None,
            error: None,
            parent_run: None,
            parent_step: None,
            created_at: 0,
            updated_at: 0,
            finished_at: None,
            partition: 0,
            blocked: None,
            cancel_compensates: true,
            paused_at: None,
        }
    }

    fn unit(key: &str, status: StepStatus) -> StepRow {
        StepRow {
            run_id: "r".into(),
            key: key.parse().expect("a unit key"),
            position: 0,
            status,
            attempt: 0,
            output: None,
            error: None,
            state: None,
            wake_at: None,
            started_at: Some(0),
            finished_at: None,
        }
    }

    fn key(text: &str) -> UnitKey {
        text.parse().expect("a unit key")
    }

    /// Whatever happens between takes, a cached scope equals one built from scratch.
    #[test]
    fn a_kept_scope_matches_a_fresh_one() {
        let plan = plan();
        let mut run = run();
        let secrets = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let mut steps = HashMap::new();
        let mut cache = ScopeCache::default();
        let mut check = |run: &RunRow, steps: &HashMap<UnitKey, StepRow>, extra: &Extra| {
            // Every unit counts as changed since the last take, as the executor would say.
            for key in steps.keys() {
                cache.invalidate(key);
            }
            let kept = cache.take(run, &plan, steps, &secrets, extra);
            let fresh = ScopeCache::default().take(run, &plan, steps, &secrets, extra);
            assert_eq!(kept.data(), fresh.data());
            cache.give_back(kept);
        };
        check(&run, &steps, &Extra::default());
        steps.insert(key("a"), unit("a", StepStatus::Waiting));
        check(&run, &steps, &Extra::default());
        let a = steps.get_mut(&key("a")).expect("a");
        a.status = StepStatus::Succeeded;
        a.output = Some(json!({"waited_ms": 5}));
        a.finished_at = Some(5);
        let item = Extra {
            item: Some((2, json!("x"))),
            output: Some(json!(1)),
        };
        check(&run, &steps, &item);
        check(&run, &steps, &Extra::default());
        steps.insert(key("b"), unit("b", StepStatus::Failed));
        steps.get_mut(&key("b")).expect("b").error = Some("boom".into());
        run.error = Some("step `b` failed: boom".into());
        steps.insert(key("!c"), unit("!c", StepStatus::Running));
        check(&run, &steps, &Extra::default());
        let c = steps.get_mut(&key("!c")).expect("c");
        c.status = StepStatus::Retrying;
        c.error = Some("try again".into());
        check(&run, &steps, &Extra::default());
    }
}
