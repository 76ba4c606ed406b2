//! An alert rule as authored (`rules/*.yaml`), and its decoder.
//!
//! Checks shapes only; whether a matcher's regex compiles, whether templates read only `alert`
//! and `group`, and whether the workflow exists is `alerts::rules`' job.

use std::time::Duration;

use marked_yaml::types::Node;

use super::duration::parse_duration;
use super::workflow::{SEVERITIES, WorkflowRef};
use super::yaml::{self, Fields, Spanned, Value, span_of};
use crate::diag::{Diagnostic, Diagnostics, Span};

/// One rule: which alerts, how they are grouped, what is done for each group.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `[a-z0-9-]+`, unique.
    pub name: Spanned<String>,
    /// What it is for.
    pub description: Option<String>,
    /// Sources it listens to; empty = every source.
    pub sources: Vec<Spanned<String>>,
    /// Label matchers: label → `value`, `!=value`, `=~regex`, `!~regex`.
    pub labels: Vec<(Spanned<String>, Spanned<String>)>,
    /// Severities it listens to; empty = any.
    pub severities: Vec<Spanned<String>>,
    /// An optional template over `alert` that must render truthy.
    pub when: Option<Spanned<String>>,
    /// Labels whose values make a group (empty: one group for the rule).
    pub group_by: Vec<Spanned<String>>,
    /// How long a new group gathers alerts before its actions run.
    pub group_wait: Duration,
    /// Act only after this many firing alerts within a window.
    pub min_occurrences: Option<(u32, Duration)>,
    /// After a group's run ends, how long its new alerts are only counted.
    pub cooldown: Duration,
    /// What is done for a group.
    pub then: Vec<Action>,
    /// Where `then:` starts.
    pub then_span: Span,
}

/// What a rule does for a group.
#[derive(Debug, Clone)]
pub enum Action {
    /// Start the group's run (at most one per rule): later alerts reach it as signals.
    Workflow {
        /// The workflow.
        workflow: Spanned<WorkflowRef>,
        /// Its inputs, templated from `alert` and `group`.
        inputs: Option<Value>,
    },
    /// Open an incident for the group, noted on each later alert, resolved with the group.
    Incident {
        /// Where it is written.
        span: Span,
        /// `sev1` .. `sev4`.
        severity: Spanned<String>,
        /// Its title (a template).
        title: Spanned<String>,
        /// The affected service (a template).
        service: Option<Spanned<String>>,
    },
    /// Send a message through the `notify` workflow.
    Notify {
        /// Where it is written.
        span: Span,
        /// The channel (a secret `notify_<channel>` holds its webhook).
        channel: Spanned<String>,
        /// The text (a template).
        text: Spanned<String>,
    },
}

const KEYS: &[&str] = &[
    "name",
    "description",
    "match",
    "group_by",
    "group_wait",
    "min_occurrences",
    "cooldown",
    "then",
];
const MATCH_KEYS: &[&str] = &["source", "labels", "severity", "when"];
const OCCURRENCE_KEYS: &[&str] = &["count", "within"];
const WORKFLOW_KEYS: &[&str] = &["workflow", "inputs"];
const INCIDENT_KEYS: &[&str] = &["severity", "title", "service"];
const NOTIFY_KEYS: &[&str] = &["channel", "text"];
/// The kinds of action, for messages.
pub const ACTION_KINDS: &[&str] = &["workflow", "incident", "notify"];

/// Decodes a rule file; `None` when nothing usable could be read.
pub fn decode_rule(bytes: &[u8], diags: &mut Diagnostics) -> Option<Rule> {
    let node = yaml::parse(bytes, diags)?;
    decode_node(&node, diags)
}

/// Whether a parsed file looks like a rule (it has `match:` or `then:` and no `steps:`).
pub(super) fn looks_like_rule(node: &Node) -> bool {
    node.as_mapping().is_some_and(|m| {
        (m.get_node("then").is_some() || m.get_node("match").is_some())
            && m.get_node("steps").is_none()
    })
}

fn duration_or_zero(node: &Node, what: &str, diags: &mut Diagnostics) -> Option<Duration> {
    let s = yaml::string(node, what, diags)?;
    match parse_duration(&s.value) {
        Ok(d) => Some(d),
        Err(e) => {
            diags.push(
                Diagnostic::new("invalid-duration", s.span, format!("{what}: {e}"))
                    .help("write a number with a unit: `0s`, `30s`, `5m`, `1h`"),
            );
            None
        }
    }
}

fn one_or_many(node: &Node, what: &str, diags: &mut Diagnostics) -> Vec<Spanned<String>> {
    if node.as_sequence().is_some() {
        yaml::strings(node, what, diags)
    } else {
        yaml::string(node, what, diags).into_iter().collect()
    }
}

pub(super) fn decode_node(node: &Node, diags: &mut Diagnostics) -> Option<Rule> {
    let f = Fields::read(node, "rule", KEYS, diags)?;
    let name = match f.get("name") {
        Some(n) => {
            yaml::string(n, "`name`", diags).and_then(|s| super::valid_name(s, "rule name", diags))
        }
        None => {
            f.missing("name", "rule", "add `name: my-rule`", diags);
            None
        }
    };
    let description = f
        .get("description")
        .and_then(|n| yaml::string(n, "`description`", diags))
        .map(|s| s.value);
    let (mut sources, mut labels, mut severities, mut when) =
        (Vec::new(), Vec::new(), Vec::new(), None);
    match f.get("match") {
        Some(m) => {
            if let Some(mf) = Fields::read(m, "`match`", MATCH_KEYS, diags) {
                if let Some(n) = mf.get("source") {
                    sources = one_or_many(n, "`match.source`", diags);
                    for s in &sources {
                        if !crate::alerts::SOURCES.contains(&s.value.as_str()) {
                            let mut d = Diagnostic::new(
                                "invalid-value",
                                s.span,
                                format!("unknown alert source `{}`", s.value),
                            );
                            d = match crate::diag::nearest(
                                &s.value,
                                crate::alerts::SOURCES.iter().copied(),
                            ) {
                                Some(n) => d.help(format!("did you mean `{n}`?")),
                                None => d.help(format!(
                                    "sources: {}",
                                    crate::alerts::SOURCES.join(", ")
                                )),
                            };
                            diags.push(d);
                        }
                    }
                }
                if let Some(n) = mf.get("labels") {
                    match n.as_mapping() {
                        Some(map) => {
                            for (k, v) in map.iter() {
                                let key = Spanned::new(k.as_str().to_string(), yaml::scalar_span(k));
                                if let Some(v) = yaml::string(v, &format!("label matcher `{}`", k.as_str()), diags) {
                                    labels.push((key, v));
                                }
                            }
                        }
                        None => diags.push(Diagnostic::new(
                            "wrong-type",
                            span_of(n),
                            format!("`match.labels` must be a mapping of label to matcher, found {}", yaml::shape(n)),
                        ).help("write e.g. `labels: { alertname: HighCPU, env: \"=~prod|staging\" }`")),
                    }
                }
                if let Some(n) = mf.get("severity") {
                    severities = one_or_many(n, "`match.severity`", diags);
                }
                when = mf
                    .get("when")
                    .and_then(|n| yaml::string(n, "`match.when`", diags));
            }
        }
        None => f.missing(
            "match",
            "rule",
            "say which alerts it is for: `match: { labels: { alertname: HighCPU } }`",
            diags,
        ),
    }
    let group_by = f
        .get("group_by")
        .map(|n| one_or_many(n, "`group_by`", diags))
        .unwrap_or_default();
    let group_wait = f
        .get("group_wait")
        .and_then(|n| duration_or_zero(n, "`group_wait`", diags))
        .unwrap_or_default();
    let cooldown = f
        .get("cooldown")
        .and_then(|n| duration_or_zero(n, "`cooldown`", diags))
        .unwrap_or_default();
    let min_occurrences = f.get("min_occurrences").and_then(|n| {
        let of = Fields::read(n, "`min_occurrences`", OCCURRENCE_KEYS, diags)?;
        let count = match of.get("count") {
            Some(c) => yaml::integer(c, "`min_occurrences.count`", 1, 100_000, diags),
            None => {
                of.missing("count", "`min_occurrences`", "add `count: 3`", diags);
                None
            }
        };
        let within = match of.get("within") {
            Some(w) => duration_or_zero(w, "`min_occurrences.within`", diags).and_then(|d| {
                if d.is_zero() {
                    diags.push(
                        Diagnostic::new(
                            "invalid-duration",
                            span_of(w),
                            "`min_occurrences.within` must be longer than zero",
                        )
                        .help("write e.g. `10m`"),
                    );
                    None
                } else {
                    Some(d)
                }
            }),
            None => {
                of.missing("within", "`min_occurrences`", "add `within: 10m`", diags);
                None
            }
        };
        Some((u32::try_from(count?.value).ok()?, within?))
    });
    let then_span = f.key_span("then").unwrap_or_else(|| f.span());
    let then = match f.get("then") {
        Some(n) => match n.as_sequence() {
            Some(items) if items.is_empty() => {
                yaml::empty_list(n, "`then`", "add an action: `- workflow: NAME`", diags);
                Vec::new()
            }
            Some(items) => items.iter().filter_map(|i| action(i, diags)).collect(),
            None => {
                diags.push(
                    Diagnostic::new(
                        "wrong-type",
                        span_of(n),
                        format!("`then` must be a list of actions, found {}", yaml::shape(n)),
                    )
                    .help("write `then:` and below it `- workflow: NAME`"),
                );
                Vec::new()
            }
        },
        None => {
            f.missing(
                "then",
                "rule",
                "say what to do: `then: [{ workflow: NAME }]`",
                diags,
            );
            Vec::new()
        }
    };
    let workflows = then
        .iter()
        .filter(|a| matches!(a, Action::Workflow { .. }))
        .count();
    if workflows > 1 {
        diags.push(
            Diagnostic::new("two-workflows", then_span, "a rule starts at most one workflow per group")
                .help("a group has one durable run that later alerts reach as signals; start other work from that workflow"),
        );
    }
    // A bad name is reported above; the rest is still planned, so every problem shows at once.
    let span = f.span();
    Some(Rule {
        name: name.unwrap_or_else(|| Spanned::new(String::new(), span)),
        description,
        sources,
        labels,
        severities,
        when,
        group_by,
        group_wait,
        min_occurrences,
        cooldown,
        then,
        then_span,
    })
}

fn action(node: &Node, diags: &mut Diagnostics) -> Option<Action> {
    let Some(map) = node.as_mapping() else {
        diags.push(Diagnostic::new(
            "wrong-type",
            span_of(node),
            format!("an action must be a mapping, found {}", yaml::shape(node)),
        ));
        return None;
    };
    let kinds: Vec<&str> = map
        .keys()
        .map(marked_yaml::types::MarkedScalarNode::as_str)
        .filter(|k| ACTION_KINDS.contains(k))
        .collect();
    match kinds.as_slice() {
        ["workflow"] => {
            let f = Fields::read(node, "`workflow` action", WORKFLOW_KEYS, diags)?;
            let s = yaml::string(f.get("workflow")?, "`workflow`", diags)?;
            let workflow = match WorkflowRef::parse(&s.value) {
                Ok(r) => Spanned::new(r, s.span),
                Err(e) => {
                    diags.push(
                        Diagnostic::new("invalid-workflow-ref", s.span, e)
                            .help("write `workflow: NAME` or `workflow: NAME@VERSION`"),
                    );
                    return None;
                }
            };
            let inputs = f.get("inputs").map(|n| {
                if n.as_mapping().is_none() {
                    diags.push(Diagnostic::new(
                        "wrong-type",
                        span_of(n),
                        format!(
                            "`inputs` must be a mapping of input to value, found {}",
                            yaml::shape(n)
                        ),
                    ));
                }
                yaml::value(n, diags)
            });
            Some(Action::Workflow { workflow, inputs })
        }
        ["incident"] => {
            let outer = Fields::read(node, "`incident` action", &["incident"], diags)?;
            let inner = outer.get("incident")?;
            let f = Fields::read(inner, "`incident`", INCIDENT_KEYS, diags)?;
            let text = |key: &str, diags: &mut Diagnostics| {
                f.get(key)
                    .and_then(|n| yaml::string(n, &format!("`incident.{key}`"), diags))
            };
            let severity = text("severity", diags);
            if let Some(s) = &severity
                && !SEVERITIES.contains(&s.value.as_str())
            {
                diags.push(
                    Diagnostic::new(
                        "invalid-value",
                        s.span,
                        format!("unknown severity `{}`", s.value),
                    )
                    .help("use `sev1` (worst), `sev2`, `sev3` or `sev4`"),
                );
            }
            let title = text("title", diags);
            if title.is_none() && f.get("title").is_none() {
                f.missing("title", "`incident`", "give the incident a `title:`", diags);
            }
            if severity.is_none() && f.get("severity").is_none() {
                f.missing("severity", "`incident`", "add `severity: sev3`", diags);
            }
            Some(Action::Incident {
                span: f.span(),
                severity: severity?,
                title: title?,
                service: text("service", diags),
            })
        }
        ["notify"] => {
            let outer = Fields::read(node, "`notify` action", &["notify"], diags)?;
            let f = Fields::read(outer.get("notify")?, "`notify`", NOTIFY_KEYS, diags)?;
            let text = |key: &str, diags: &mut Diagnostics| {
                f.get(key)
                    .and_then(|n| yaml::string(n, &format!("`notify.{key}`"), diags))
            };
            let channel = text("channel", diags);
            let body = text("text", diags);
            if f.get("channel").is_none() {
                f.missing("channel", "`notify`", "add `channel: oncall`", diags);
            }
            if f.get("text").is_none() {
                f.missing(
                    "text",
                    "`notify`",
                    "add the message: `text: \"{{ group.labels.service }} is down\"`",
                    diags,
                );
            }
            Some(Action::Notify {
                span: f.span(),
                channel: channel?,
                text: body?,
            })
        }
        [] => {
            let f = Fields::read(node, "action", ACTION_KINDS, diags)?;
            diags.push(
                Diagnostic::new("missing-kind", f.span(), "the action does nothing: it has none of `workflow`, `incident`, `notify`")
                    .help("write `- workflow: NAME`, `- incident: { severity: sev3, title: … }` or `- notify: { channel: …, text: … }`"),
            );
            None
        }
        _ => {
            diags.push(
                Diagnostic::new(
                    "two-kinds",
                    yaml::span_of(node),
                    format!(
                        "an action does one thing; this one has {}",
                        kinds.join(" and ")
                    ),
                )
                .help("write each as its own `- ` item of `then:`"),
            );
            None
        }
    }
}
