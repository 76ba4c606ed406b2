//! The template scope of a step: `inputs`, `steps`, `run`, `secrets`, and `item`, `index`,
//! `output` where they apply.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value as Json, json};

use crate::plan::Plan;
use crate::store::{RunRow, StepRow};

/// What a unit adds to the run's scope.
#[derive(Debug, Default, Clone)]
pub(crate) struct Extra {
    /// The fan-out item and its position.
    pub(crate) item: Option<(usize, Json)>,
    /// The compensated unit's output.
    pub(crate) output: Option<Json>,
}

/// Builds the scope templates render against.
pub(crate) fn build(
    run: &RunRow,
    plan: &Plan,
    steps: &HashMap<String, StepRow>,
    secrets: &BTreeMap<String, String>,
    extra: &Extra,
) -> handlebars::Context {
    let mut by_id = Map::new();
    let ids = plan
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.id.clone()))
        .chain(
            plan.on_failure
                .iter()
                .map(|s| (s.id.as_str(), format!("!{}", s.id))),
        );
    for (id, key) in ids {
        if let Some(row) = steps.get(&key) {
            by_id.insert(
                id.to_string(),
                json!({
                    "status": row.status.as_str(),
                    "output": row.output.clone().unwrap_or(Json::Null),
                    "error": row.error.clone().unwrap_or_default(),
                }),
            );
        }
    }
    let mut scope = json!({
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
    if let Some(obj) = scope.as_object_mut() {
        if let Some((index, item)) = &extra.item {
            obj.insert("item".into(), item.clone());
            obj.insert("index".into(), Json::from(*index));
        }
        if let Some(output) = &extra.output {
            obj.insert("output".into(), output.clone());
        }
    }
    crate::template::context(scope)
}
