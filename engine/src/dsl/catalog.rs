//! A service catalog entry as authored, and its decoder.
//!
//! Checks shapes only; whether the named workflow exists is checked by `plan`.

use std::time::Duration;

use marked_yaml::types::Node;

use super::workflow::{ROLES, WorkflowRef};
use super::yaml::{self, Fields, Spanned, Value, span_of};
use crate::diag::{Diagnostic, Diagnostics, nearest};

/// One orderable service.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    /// Unique id, `[a-z0-9-]+`; what clients order.
    pub id: Spanned<String>,
    /// Short human title.
    pub title: String,
    /// What the client gets.
    pub description: Option<String>,
    /// The workflow that delivers it (latest version unless pinned).
    pub workflow: Spanned<WorkflowRef>,
    /// JSON Schema of what the client submits.
    pub inputs: Option<Value>,
    /// Values filled in where the client gave none.
    pub defaults: Option<Value>,
    /// Tenants allowed to order it; `*` for all.
    pub tenants: Vec<Spanned<String>>,
    /// Roles that must approve a request before its run starts.
    pub approval_roles: Vec<Spanned<String>>,
    /// How long fulfilment may take before the SLA is breached.
    pub fulfil_within: Option<Spanned<Duration>>,
    /// The availability objective of its requests: percent good, over a window.
    pub slo: Option<(f64, Duration)>,
}

const KEYS: &[&str] = &[
    "id",
    "title",
    "description",
    "workflow",
    "inputs",
    "defaults",
    "tenants",
    "approval",
    "sla",
    "slo",
];
const APPROVAL_KEYS: &[&str] = &["roles"];
const SLA_KEYS: &[&str] = &["fulfil_within"];
const SLO_KEYS: &[&str] = &["objective", "window"];

/// The SLO's window when it names none.
pub const DEFAULT_SLO_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

/// Reads `slo: { objective: 99.9, window: 30d }`.
pub(super) fn slo(node: &Node, diags: &mut Diagnostics) -> Option<(f64, Duration)> {
    let f = Fields::read(node, "`slo`", SLO_KEYS, diags)?;
    let objective = match f.get("objective") {
        None => {
            f.missing(
                "objective",
                "`slo`",
                "say which percent of requests must be good: `objective: 99.9`",
                diags,
            );
            None
        }
        Some(n) => {
            let text = n.as_scalar().map(|s| s.as_str().to_string());
            match text.as_deref().map(str::parse::<f64>) {
                Some(Ok(v)) if v > 0.0 && v < 100.0 => Some(v),
                _ => {
                    diags.push(
                        Diagnostic::new(
                            "invalid-value",
                            span_of(n),
                            format!(
                                "`slo.objective` must be a percent between 0 and 100, found {}",
                                text.as_deref().map_or_else(
                                    || yaml::shape(n).to_string(),
                                    |t| format!("`{t}`")
                                )
                            ),
                        )
                        .help("write e.g. `objective: 99.9` or `objective: 99.99`"),
                    );
                    None
                }
            }
        }
    };
    let window = match f.get("window") {
        None => Some(DEFAULT_SLO_WINDOW),
        Some(n) => {
            let text = yaml::string(n, "`slo.window`", diags)?;
            match super::parse_duration(&text.value) {
                Ok(d) if d >= Duration::from_secs(3600) => Some(d),
                Ok(_) => {
                    diags.push(
                        Diagnostic::new(
                            "invalid-duration",
                            text.span,
                            "`slo.window` must be at least an hour",
                        )
                        .help("write e.g. `30d` or `7d`"),
                    );
                    None
                }
                Err(e) => {
                    diags.push(
                        Diagnostic::new(
                            "invalid-duration",
                            text.span,
                            format!("`slo.window`: {e}"),
                        )
                        .help("write e.g. `30d` or `7d`"),
                    );
                    None
                }
            }
        }
    };
    Some((objective?, window?))
}

/// Decodes a catalog entry file; `None` when nothing usable could be read.
pub fn decode_catalog_entry(bytes: &[u8], diags: &mut Diagnostics) -> Option<CatalogEntry> {
    let node = yaml::parse(bytes, diags)?;
    decode_node(&node, diags)
}

pub(super) fn decode_node(node: &Node, diags: &mut Diagnostics) -> Option<CatalogEntry> {
    let f = Fields::read(node, "catalog entry", KEYS, diags)?;
    let id = match f.get("id") {
        Some(n) => {
            yaml::string(n, "`id`", diags).and_then(|s| super::valid_name(s, "catalog id", diags))
        }
        None => {
            f.missing("id", "catalog entry", "add `id: my-service`", diags);
            None
        }
    };
    let title = match f.get("title") {
        Some(n) => yaml::string(n, "`title`", diags),
        None => {
            f.missing(
                "title",
                "catalog entry",
                "add a short `title:` shown to clients",
                diags,
            );
            None
        }
    };
    let description = f
        .get("description")
        .and_then(|n| yaml::string(n, "`description`", diags));
    let workflow = match f.get("workflow") {
        Some(n) => {
            yaml::string(n, "`workflow`", diags).and_then(|s| match WorkflowRef::parse(&s.value) {
                Ok(r) => Some(Spanned::new(r, s.span)),
                Err(e) => {
                    diags.push(
                        Diagnostic::new("invalid-workflow-ref", s.span, e)
                            .help("write `workflow: NAME` or `workflow: NAME@VERSION`"),
                    );
                    None
                }
            })
        }
        None => {
            f.missing(
                "workflow",
                "catalog entry",
                "name the workflow that delivers it",
                diags,
            );
            None
        }
    };
    let inputs = f.get("inputs").map(|n| {
        if n.as_mapping().is_none() {
            diags.push(Diagnostic::new(
                "wrong-type",
                span_of(n),
                format!(
                    "`inputs` must be a JSON Schema mapping, found {}",
                    yaml::shape(n)
                ),
            ));
        }
        yaml::value(n, diags)
    });
    let defaults = f.get("defaults").map(|n| {
        if n.as_mapping().is_none() {
            diags.push(Diagnostic::new(
                "wrong-type",
                span_of(n),
                format!(
                    "`defaults` must be a mapping of input to value, found {}",
                    yaml::shape(n)
                ),
            ));
        }
        yaml::value(n, diags)
    });
    let tenants = match f.get("tenants") {
        Some(n) => yaml::strings(n, "`tenants`", diags),
        None => vec![Spanned::new("*".to_string(), f.span())],
    };
    let mut approval_roles = Vec::new();
    if let Some(n) = f.get("approval")
        && let Some(a) = Fields::read(n, "`approval`", APPROVAL_KEYS, diags)
    {
        approval_roles = a
            .get("roles")
            .map(|n| yaml::strings(n, "`approval.roles`", diags))
            .unwrap_or_default();
        match a.get("roles") {
            None => a.missing(
                "roles",
                "`approval`",
                "say who approves: `roles: [operator]`",
                diags,
            ),
            Some(n) if approval_roles.is_empty() => yaml::empty_list(
                n,
                "`approval.roles`",
                "say who approves: `roles: [operator]`",
                diags,
            ),
            Some(_) => {}
        }
        for r in &approval_roles {
            if !ROLES.contains(&r.value.as_str()) {
                let mut d = Diagnostic::new(
                    "invalid-value",
                    r.span,
                    format!("unknown role `{}`", r.value),
                );
                if let Some(n) = nearest(&r.value, ROLES.iter().copied()) {
                    d = d.help(format!("did you mean `{n}`?"));
                }
                diags.push(d);
            }
        }
    }
    let mut fulfil_within = None;
    if let Some(n) = f.get("sla")
        && let Some(s) = Fields::read(n, "`sla`", SLA_KEYS, diags)
        && let Some(n) = s.get("fulfil_within")
        && let Some(text) = yaml::string(n, "`sla.fulfil_within`", diags)
    {
        match super::parse_duration(&text.value) {
            Ok(d) if !d.is_zero() => fulfil_within = Some(Spanned::new(d, text.span)),
            Ok(_) => diags.push(Diagnostic::new(
                "invalid-duration",
                text.span,
                "`sla.fulfil_within` must be longer than zero",
            )),
            Err(e) => diags.push(
                Diagnostic::new(
                    "invalid-duration",
                    text.span,
                    format!("`sla.fulfil_within`: {e}"),
                )
                .help("write a number with a unit: `15m`, `2h`, `1d`"),
            ),
        }
    }
    let slo = f.get("slo").and_then(|n| slo(n, diags));
    Some(CatalogEntry {
        id: id?,
        title: title?.value,
        description: description.map(|d| d.value),
        workflow: workflow?,
        inputs,
        defaults,
        tenants,
        approval_roles,
        fulfil_within,
        slo,
    })
}
