//! Rules planned from `dsl::Rule`: matchers compiled, templates compiled and checked to read
//! only `alert` and `group`, the workflow checked against those known. Holding a [`RulePlan`]
//! proves the rule is valid, as a `Plan` does for a workflow.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;

use super::Alert;
use super::matcher::{Matcher, all_match};
use crate::diag::{Diagnostic, Diagnostics, Span, nearest};
use crate::dsl::{self, Action, Spanned, WorkflowRef};
use crate::plan::WorkflowNames;
use crate::template::{self, TValue, Template};

/// The workflow a `notify` action runs (`workflows/alert-notify.yaml`).
pub const NOTIFY_WORKFLOW: &str = "alert-notify";

/// A valid rule.
#[derive(Debug, Clone)]
pub struct RulePlan {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// Sources it listens to (empty: all).
    pub sources: Vec<String>,
    /// Label matchers.
    pub matchers: Vec<Matcher>,
    /// Severities (empty: any).
    pub severities: Vec<String>,
    /// A template over `alert` that must render truthy.
    pub when: Option<Template>,
    /// Labels making a group.
    pub group_by: Vec<String>,
    /// How long a new group gathers alerts.
    pub group_wait: Duration,
    /// Act after this many firing alerts within a window.
    pub min_occurrences: Option<(u32, Duration)>,
    /// After a group's run ends, how long new alerts only count.
    pub cooldown: Duration,
    /// The group's run: the workflow and its templated inputs.
    pub workflow: Option<(WorkflowRef, TValue)>,
    /// The group's incident.
    pub incident: Option<IncidentPlan>,
    /// Messages sent when the group acts: channel and text.
    pub notify: Vec<(String, Template)>,
    /// The YAML it was planned from.
    pub source: Arc<str>,
}

/// A rule's incident.
#[derive(Debug, Clone)]
pub struct IncidentPlan {
    /// `sev1` .. `sev4`.
    pub severity: String,
    /// Its title.
    pub title: Template,
    /// The affected service.
    pub service: Option<Template>,
}

/// Checks every template reads only the roots allowed here.
fn check_roots(t: &Template, span: Span, roots: &[&str], diags: &mut Diagnostics) {
    for r in t.references() {
        let Some(root) = r.path.first() else { continue };
        if roots.contains(&root.as_str()) || root == "this" || root.starts_with('@') {
            continue;
        }
        let mut d = Diagnostic::new(
            "unknown-variable",
            span,
            format!("`{}` is not known in a rule", r.path.join(".")),
        );
        d = match nearest(root, roots.iter().copied()) {
            Some(n) => d.help(format!(
                "did you mean `{n}`? a rule's templates see {}",
                roots.join(" and ")
            )),
            None => d.help(format!("a rule's templates see {}", roots.join(" and "))),
        };
        diags.push(d);
    }
}

fn template(s: &Spanned<String>, roots: &[&str], diags: &mut Diagnostics) -> Option<Template> {
    match Template::compile(&s.value) {
        Ok(t) => {
            check_roots(&t, s.span, roots, diags);
            Some(t)
        }
        Err(e) => {
            diags.push(Diagnostic::new("template-syntax", s.span, e.message).help(
                "templates are handlebars: `{{ alert.labels.service }}`, `{{ gt group.count 3 }}`",
            ));
            None
        }
    }
}

/// Plans a decoded rule; `workflows` (when known) are checked for the workflow it starts.
pub fn plan_rule(
    rule: &dsl::Rule,
    source: &str,
    workflows: Option<&WorkflowNames>,
    mut diags: Diagnostics,
) -> Result<RulePlan, Vec<Diagnostic>> {
    let d = &mut diags;
    let mut matchers = Vec::new();
    for (name, spec) in &rule.labels {
        match Matcher::parse(&name.value, &spec.value) {
            Ok(m) => matchers.push(m),
            Err(e) => d.push(Diagnostic::new("invalid-matcher", spec.span, e).help(
                "write `value`, `!=value`, `=~regex` or `!~regex`; a regex matches the whole value",
            )),
        }
    }
    let when = rule.when.as_ref().and_then(|w| {
        if !w.value.contains("{{") {
            d.push(
                Diagnostic::new(
                    "not-a-template",
                    w.span,
                    format!(
                        "`when: {}` is not a template, so it would always hold",
                        w.value
                    ),
                )
                .help(
                    "write a condition in braces: `when: \"{{ gt alert.annotations.value 90 }}\"`",
                ),
            );
            return None;
        }
        template(w, &["alert"], d)
    });
    let known = |w: &Spanned<WorkflowRef>, d: &mut Diagnostics| {
        let Some(names) = workflows else { return };
        match names.get(&w.value.name) {
            Some(versions) => {
                if let Some(v) = w.value.version
                    && !versions.contains(&v)
                {
                    d.push(Diagnostic::new(
                        "unknown-workflow",
                        w.span,
                        format!("workflow `{}` has no version {v}", w.value.name),
                    ));
                }
            }
            None => {
                let mut diag = Diagnostic::new(
                    "unknown-workflow",
                    w.span,
                    format!("workflow `{}` is not known", w.value.name),
                );
                if let Some(n) = nearest(&w.value.name, names.keys().map(String::as_str)) {
                    diag = diag.help(format!("did you mean `{n}`?"));
                }
                d.push(diag);
            }
        }
    };
    let (mut workflow, mut incident, mut notify) = (None, None, Vec::new());
    let roots = ["alert", "group"];
    for action in &rule.then {
        match action {
            Action::Workflow {
                workflow: w,
                inputs,
            } => {
                known(w, d);
                let inputs = match inputs {
                    Some(v) => {
                        let compiled = crate::plan::compile_value(v, d);
                        // Each template is checked where it is written.
                        v.for_each_str(&mut |text, span| {
                            if text.contains("{{")
                                && let Ok(t) = Template::compile(text)
                            {
                                check_roots(&t, span, &roots, d);
                            }
                        });
                        compiled
                    }
                    None => TValue::Literal(serde_json::json!({})),
                };
                workflow = Some((w.value.clone(), inputs));
            }
            Action::Incident {
                severity,
                title,
                service,
                ..
            } => {
                let title = template(title, &roots, d);
                let service = service.as_ref().and_then(|s| template(s, &roots, d));
                if let Some(title) = title {
                    incident = Some(IncidentPlan {
                        severity: severity.value.clone(),
                        title,
                        service,
                    });
                }
            }
            Action::Notify {
                span,
                channel,
                text,
            } => {
                if let Some(names) = workflows
                    && !names.contains_key(NOTIFY_WORKFLOW)
                {
                    d.push(
                        Diagnostic::new(
                            "unknown-workflow",
                            *span,
                            format!("a `notify` action runs the workflow `{NOTIFY_WORKFLOW}`, which is not loaded"),
                        )
                        .help("keep workflows/alert-notify.yaml, or start your own workflow with `- workflow: NAME`"),
                    );
                }
                if let Some(t) = template(text, &roots, d) {
                    notify.push((channel.value.clone(), t));
                }
            }
        }
    }
    if !diags.is_empty() {
        return Err(diags.into_sorted());
    }
    Ok(RulePlan {
        name: rule.name.value.clone(),
        description: rule.description.clone(),
        sources: rule.sources.iter().map(|s| s.value.clone()).collect(),
        matchers,
        severities: rule.severities.iter().map(|s| s.value.clone()).collect(),
        when,
        group_by: rule.group_by.iter().map(|s| s.value.clone()).collect(),
        group_wait: rule.group_wait,
        min_occurrences: rule.min_occurrences,
        cooldown: rule.cooldown,
        workflow,
        incident,
        notify,
        source: Arc::from(source),
    })
}

/// Decodes and plans a rule file.
pub fn validate_rule(
    bytes: &[u8],
    workflows: Option<&WorkflowNames>,
) -> Result<RulePlan, Vec<Diagnostic>> {
    let mut diags = Diagnostics::default();
    let Some(rule) = dsl::decode_rule(bytes, &mut diags) else {
        return Err(diags.into_sorted());
    };
    let source = String::from_utf8_lossy(bytes);
    plan_rule(&rule, &source, workflows, diags)
}

impl RulePlan {
    /// Whether the rule is for this alert; `Err` when its `when` cannot be rendered for it
    /// (the alert then does not match, and the caller says why).
    pub fn matches(&self, alert: &Alert) -> Result<bool, String> {
        if !self.sources.is_empty() && !self.sources.contains(&alert.source) {
            return Ok(false);
        }
        if !self.severities.is_empty()
            && !alert
                .severity
                .as_ref()
                .is_some_and(|s| self.severities.contains(s))
        {
            return Ok(false);
        }
        if !all_match(&self.matchers, &alert.labels) {
            return Ok(false);
        }
        match &self.when {
            None => Ok(true),
            Some(t) => {
                let scope = template::context(serde_json::json!({ "alert": alert.scope() }));
                t.render(&scope).map(|v| template::truthy(&v)).map_err(|e| {
                    format!(
                        "rule `{}`: `when` could not be rendered: {}",
                        self.name, e.message
                    )
                })
            }
        }
    }

    /// The group an alert falls in: its `group_by` labels' values.
    pub fn group_key(&self, alert: &Alert) -> BTreeMap<String, String> {
        self.group_by
            .iter()
            .map(|l| (l.clone(), alert.labels.get(l).cloned().unwrap_or_default()))
            .collect()
    }

    /// What a rule's templates see: `alert` (the group's first alert) and `group`.
    pub fn scope(alert: &Alert, group: &Json) -> handlebars::Context {
        template::context(serde_json::json!({ "alert": alert.scope(), "group": group }))
    }
}
