//! Validated catalog entries.

use std::sync::Arc;
use std::time::Duration;

use crate::diag::{Diagnostic, Diagnostics, nearest};
use crate::dsl::{self, CatalogEntry, ValueKind};

use super::schema::{compile_located, compile_schema, locate_pointer};
use super::{CompiledSchema, WorkflowNames};

/// A catalog entry that passed validation.
#[derive(Debug, Clone)]
pub struct CatalogPlan {
    /// What clients order.
    pub id: String,
    /// Short title.
    pub title: String,
    /// Longer description.
    pub description: Option<String>,
    /// The delivering workflow.
    pub workflow: String,
    /// Its pinned version, or the latest.
    pub workflow_version: Option<u32>,
    /// Schema of what clients submit.
    pub inputs: Option<Arc<CompiledSchema>>,
    /// Values used where the client gave none (a JSON object).
    pub defaults: serde_json::Value,
    /// Tenants allowed to order (`*` = all).
    pub tenants: Vec<String>,
    /// Roles that must approve before the run starts (empty = no gate).
    pub approval_roles: Vec<String>,
    /// SLA: fulfilment deadline after submission.
    pub fulfil_within: Option<Duration>,
    /// The availability objective of its requests.
    pub slo: Option<crate::slo::Objective>,
}

impl CatalogPlan {
    /// Whether clients of `tenant` may see and order this entry.
    pub fn allows_tenant(&self, tenant: &str) -> bool {
        self.tenants.iter().any(|t| t == "*" || t == tenant)
    }
}

/// Decodes and validates a catalog entry file.
pub fn validate_catalog(
    bytes: &[u8],
    workflows: Option<&WorkflowNames>,
) -> Result<CatalogPlan, Vec<Diagnostic>> {
    let mut diags = Diagnostics::default();
    let Some(entry) = dsl::decode_catalog_entry(bytes, &mut diags) else {
        return Err(diags.into_sorted());
    };
    build_catalog(&entry, workflows, diags)
}

/// Validates a decoded catalog entry; `diags` carries the decoder's problems.
pub fn build_catalog(
    entry: &CatalogEntry,
    workflows: Option<&WorkflowNames>,
    mut diags: Diagnostics,
) -> Result<CatalogPlan, Vec<Diagnostic>> {
    let wf = &entry.workflow;
    if let Some(known) = workflows {
        match known.get(&wf.value.name) {
            None => {
                let mut d = Diagnostic::new(
                    "unknown-workflow",
                    wf.span,
                    format!("workflow `{}` does not exist", wf.value.name),
                );
                d = match nearest(&wf.value.name, known.keys().map(String::as_str)) {
                    Some(n) => d.help(format!("did you mean `{n}`?")),
                    None => d.help("validate the catalog together with its workflows: `csmp validate workflows/ catalog/`"),
                };
                diags.push(d);
            }
            Some(versions) => {
                if let Some(v) = wf.value.version
                    && !versions.contains(&v)
                {
                    diags.push(Diagnostic::new(
                        "unknown-workflow",
                        wf.span,
                        format!("workflow `{}` has no version {v}", wf.value.name),
                    ));
                }
            }
        }
    }
    let inputs = entry
        .inputs
        .as_ref()
        .and_then(|v| compile_located(v, "`inputs`", &mut diags));
    let defaults = entry
        .defaults
        .as_ref()
        .map_or(serde_json::json!({}), dsl::Value::to_json);
    if let (Some(schema), Some(dv)) = (&inputs, &entry.defaults)
        && let ValueKind::Map(entries) = &dv.kind
    {
        let props = schema.json.get("properties").and_then(|p| p.as_object());
        for (k, v) in entries {
            let Some(sub) = props.and_then(|p| p.get(&k.value)) else {
                let mut d = Diagnostic::new(
                    "unknown-input",
                    k.span,
                    format!("default `{}` is not an input of this entry", k.value),
                );
                if let Some(n) = props.and_then(|p| nearest(&k.value, p.keys().map(String::as_str)))
                {
                    d = d.help(format!("did you mean `{n}`?"));
                }
                diags.push(d);
                continue;
            };
            if let Ok(one) = compile_schema(sub.clone()) {
                for viol in one.violations(&v.to_json()) {
                    diags.push(
                        Diagnostic::new(
                            "invalid-default",
                            locate_pointer(v, &viol.pointer),
                            format!(
                                "default `{}` does not match its schema: {}",
                                k.value, viol.message
                            ),
                        )
                        .help("make the default a value clients could submit"),
                    );
                }
            }
        }
    }
    for t in &entry.tenants {
        if t.value != "*" && !dsl::is_valid_name(&t.value) {
            diags.push(
                Diagnostic::new(
                    "invalid-name",
                    t.span,
                    format!("tenant `{}` is not a valid tenant id", t.value),
                )
                .help("use `*` for every tenant, or tenant ids ([a-z0-9-]+)"),
            );
        }
    }
    if !diags.is_empty() {
        return Err(diags.into_sorted());
    }
    Ok(CatalogPlan {
        id: entry.id.value.clone(),
        title: entry.title.clone(),
        description: entry.description.clone(),
        workflow: wf.value.name.clone(),
        workflow_version: wf.value.version,
        inputs,
        defaults,
        tenants: entry.tenants.iter().map(|t| t.value.clone()).collect(),
        approval_roles: entry
            .approval_roles
            .iter()
            .map(|r| r.value.clone())
            .collect(),
        fulfil_within: entry.fulfil_within.as_ref().map(|d| d.value),
        slo: entry.slo.map(|(percent, window)| crate::slo::Objective {
            percent,
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
        }),
    })
}
