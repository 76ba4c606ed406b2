//! The definitions as authored: workflow and catalog YAML decoded into typed values that keep
//! every position, with every shape problem reported at once.
//!
//! Pure: no I/O, no async. Knows YAML and the shapes of the files; knows nothing about plugins,
//! templates' meaning, the DAG or execution — that is `plan`'s job. A value from here may still
//! be wrong (a `needs:` naming no step, a cycle); only a `plan::Plan` is known to be valid.

pub mod catalog;
pub mod check;
pub mod duration;
pub mod escalation;
pub mod oncall;
pub mod rule;
pub mod workflow;
pub mod yaml;

pub use catalog::{CatalogEntry, decode_catalog_entry};
pub use duration::{format_duration, parse_duration};
pub use rule::{Action, Rule, decode_rule};
pub use workflow::{
    Backoff, Compensation, IncidentAction, IncidentSpec, Overlap, Retry, Step, StepKind, Trigger,
    Workflow, WorkflowRef, decode_workflow,
};
pub use yaml::{Spanned, Value, ValueKind};

use crate::diag::Diagnostics;

/// What a definition file turned out to be.
#[derive(Debug, Clone)]
pub enum Definition {
    /// A workflow (`name:` at the top).
    Workflow(Workflow),
    /// A catalog entry (`id:` at the top).
    Catalog(CatalogEntry),
    /// An alert rule (`match:` or `then:` at the top).
    Rule(Rule),
    /// People, teams and schedules (`users:`, `teams:` or `schedules:` at the top).
    OnCall(oncall::OnCallFile),
    /// A synthetic availability check (`url:` and `conditions:` at the top).
    Check(check::CheckDef),
}

/// Decodes a file that may be any kind: a top-level `id:` means a catalog entry, `match:` or
/// `then:` an alert rule, `users:`, `teams:` or `schedules:` people and on-call schedules;
/// otherwise it is read as a workflow. Returns `None` when nothing usable could be decoded; `diags` then
/// holds why.
pub fn decode_any(bytes: &[u8], diags: &mut Diagnostics) -> Option<Definition> {
    let node = yaml::parse(bytes, diags)?;
    let is_catalog = node
        .as_mapping()
        .is_some_and(|m| m.get_node("id").is_some() && m.get_node("steps").is_none());
    if is_catalog {
        catalog::decode_node(&node, diags).map(Definition::Catalog)
    } else if rule::looks_like_rule(&node) {
        rule::decode_node(&node, diags).map(Definition::Rule)
    } else if check::looks_like_check(&node) {
        check::decode_node(&node, diags).map(Definition::Check)
    } else if oncall::looks_like_oncall(&node) {
        oncall::decode_node(&node, diags).map(Definition::OnCall)
    } else {
        workflow::decode_node(&node, diags).map(Definition::Workflow)
    }
}

/// Whether `name` is a valid workflow, catalog, step or plugin name: `[a-z0-9-]+`, starting with
/// a letter or digit, at most 63 characters.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `s` if it is a valid name ([`is_valid_name`]); otherwise reports it as "{what} `…` is not
/// valid" (`what`: "rule name", "catalog id", …) and gives `None`.
pub(crate) fn valid_name(
    s: Spanned<String>,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<Spanned<String>> {
    if is_valid_name(&s.value) {
        return Some(s);
    }
    diags.push(
        crate::diag::Diagnostic::new(
            "invalid-name",
            s.span,
            format!("{what} `{}` is not valid", s.value),
        )
        .help("use lowercase letters, digits and `-` ([a-z0-9-]+)"),
    );
    None
}
