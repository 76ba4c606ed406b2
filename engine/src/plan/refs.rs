//! Static checks of what templates read: every `steps.X` upstream, every root in scope.
//!
//! Knows the scope rules of templates; knows nothing about rendering.

use crate::diag::{Diagnostic, Diagnostics, Span, nearest};
use crate::dsl::Value;
use crate::template::Template;

use super::graph::Dag;
use super::{ROOTS, RUN_FIELDS, STEP_FIELDS};

/// Which part of the workflow a template sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    /// A main step.
    Main,
    /// An `on_failure` step.
    OnFailure,
    /// The workflow's `outputs`.
    Outputs,
}

/// Where a template sits, which decides what it may read.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    /// The section.
    pub(crate) section: Section,
    /// Written index of the step in its section, if in a step.
    pub(crate) step: Option<usize>,
    /// `item` and `index` are in scope (inside a `for_each` step, not its `for_each` itself).
    pub(crate) fan_out: bool,
    /// `output` (the compensated step's output) is in scope.
    pub(crate) compensate: bool,
    /// `secrets.NAME` may be read: only in `with:` of a `uses:` step or of its `compensate:`,
    /// which goes to a plugin and is never stored.
    pub(crate) secrets: bool,
}

impl Site {
    pub(crate) fn step(section: Section, i: usize, fan_out: bool) -> Self {
        Self {
            section,
            step: Some(i),
            fan_out,
            compensate: false,
            secrets: false,
        }
    }

    /// The same site, inside a plugin's `with:`.
    pub(crate) fn plugin_input(&self) -> Self {
        Self {
            secrets: true,
            ..self.clone()
        }
    }

    pub(crate) fn outputs() -> Self {
        Self {
            section: Section::Outputs,
            step: None,
            fan_out: false,
            compensate: false,
            secrets: false,
        }
    }
}

/// What the checks consult.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    /// The workflow's inputs schema, to check `inputs.X` names.
    pub(crate) inputs_schema: Option<&'a serde_json::Value>,
    /// The main steps' DAG.
    pub(crate) main: &'a Dag,
    /// The `on_failure` steps' DAG.
    pub(crate) on_failure: &'a Dag,
}

impl Ctx<'_> {
    /// Checks every template inside `value`, each located at its string (recompiled here:
    /// the compiled tree keeps no positions, and this runs only at validation).
    pub(crate) fn check_value(&self, value: &Value, site: &Site, diags: &mut Diagnostics) {
        value.for_each_str(&mut |s, span| {
            if s.contains("{{")
                && let Ok(t) = Template::compile(s)
            {
                self.check_template(&t, span, site, diags);
            }
        });
    }

    /// Checks every reference of one template.
    pub(crate) fn check_template(
        &self,
        t: &Template,
        span: Span,
        site: &Site,
        diags: &mut Diagnostics,
    ) {
        for r in t.references() {
            if let Some(d) = self.check_path(&r.path, span, site) {
                diags.push(d);
            }
        }
    }

    fn own_dag(&self, site: &Site) -> &Dag {
        match site.section {
            Section::OnFailure => self.on_failure,
            _ => self.main,
        }
    }

    fn check_path(&self, path: &[String], span: Span, site: &Site) -> Option<Diagnostic> {
        let root = path.first()?.as_str();
        let shown = path.join(".");
        let err = |code: &'static str, msg: String| Some(Diagnostic::new(code, span, msg));
        match root {
            "inputs" => self.check_input(path, span),
            "steps" => self.check_step_ref(path, span, site),
            "run" => {
                let field = path.get(1).map(String::as_str);
                match field {
                    None => None,
                    Some("error") if site.section != Section::OnFailure => err(
                        "out-of-scope",
                        format!("`{shown}` is only set in `on_failure` steps"),
                    )
                    .map(|d| d.help("read a step's error with `{{ steps.ID.error }}`")),
                    Some(f) if RUN_FIELDS.contains(&f) => None,
                    Some(f) => {
                        let mut d = Diagnostic::new(
                            "unknown-variable",
                            span,
                            format!("`run` has no field `{f}`"),
                        );
                        d = match nearest(f, RUN_FIELDS.iter().copied()) {
                            Some(n) => d.help(format!("did you mean `run.{n}`?")),
                            None => d.help(format!("`run` fields: {}", RUN_FIELDS.join(", "))),
                        };
                        Some(d)
                    }
                }
            }
            "item" | "index" if site.fan_out => None,
            "item" | "index" => err(
                "out-of-scope",
                format!("`{root}` is only in scope in a step with `for_each`"),
            )
            .map(|d| d.help("add `for_each:` to the step, or read the value another way")),
            "secrets" if !site.secrets => err(
                "secret-out-of-place",
                format!(
                    "`{shown}` may only be read in `with:` of a `uses:` step or of its `compensate:`; anywhere else its value would be stored"
                ),
            )
            .map(|d| {
                d.help(
                    "hand the secret to the plugin that needs it in that step's `with:` (what the plugin returns is masked)",
                )
            }),
            "secrets" if path.len() >= 2 => None,
            "secrets" => err(
                "unknown-variable",
                "`secrets` must name a secret: `secrets.NAME`".into(),
            ),
            "output" if site.compensate => None,
            "output" => err(
                "out-of-scope",
                "`output` is only in scope in `compensate`".into(),
            )
            .map(|d| d.help("read a step's output with `{{ steps.ID.output }}`")),
            other => {
                let mut d = Diagnostic::new(
                    "unknown-variable",
                    span,
                    format!("unknown variable `{shown}`"),
                );
                d = match nearest(other, ROOTS.iter().copied()) {
                    Some(n) => d.help(format!(
                        "did you mean `{n}`? templates read {}",
                        ROOTS.join(", ")
                    )),
                    None => d.help(format!("templates read {}", ROOTS.join(", "))),
                };
                Some(d)
            }
        }
    }

    fn check_input(&self, path: &[String], span: Span) -> Option<Diagnostic> {
        let name = path.get(1)?;
        let schema = self.inputs_schema?;
        let props = schema.get("properties")?.as_object()?;
        let open = schema
            .get("additionalProperties")
            .is_none_or(|a| a != &serde_json::Value::Bool(false));
        if props.contains_key(name) || (open && schema.get("additionalProperties").is_some()) {
            return None;
        }
        let mut d = Diagnostic::new(
            "unknown-input",
            span,
            format!("`inputs.{name}` is not declared in the workflow's `inputs` schema"),
        );
        d = match nearest(name, props.keys().map(String::as_str)) {
            Some(n) => d.help(format!("did you mean `inputs.{n}`?")),
            None => d.help("declare it under `inputs.properties`"),
        };
        Some(d)
    }

    fn check_step_ref(&self, path: &[String], span: Span, site: &Site) -> Option<Diagnostic> {
        let Some(id) = path.get(1) else {
            return Some(
                Diagnostic::new(
                    "unknown-variable",
                    span,
                    "`steps` must name a step: `steps.ID.output`",
                )
                .help("write `{{ steps.ID.output }}`"),
            );
        };
        if let Some(field) = path.get(2)
            && !STEP_FIELDS.contains(&field.as_str())
        {
            let mut d = Diagnostic::new(
                "unknown-variable",
                span,
                format!("`steps.{id}` has no field `{field}`"),
            );
            d = match nearest(field, STEP_FIELDS.iter().copied()) {
                Some(n) => d.help(format!("did you mean `steps.{id}.{n}`?")),
                None => d.help("a step has `output`, `status` and `error`"),
            };
            return Some(d);
        }
        let own = self.own_dag(site);
        let in_main = self.main.position(id);
        let in_own = own.position(id);
        // Reading a main step from `on_failure` or `outputs` is always fine: they run after.
        if site.section != Section::Main && in_main.is_some() {
            return None;
        }
        let Some(target) = in_own else {
            let all = self
                .main
                .ids()
                .iter()
                .chain(self.on_failure.ids())
                .map(String::as_str);
            let mut d = Diagnostic::new(
                "unknown-step",
                span,
                format!("template reads `steps.{id}`, but there is no step `{id}`"),
            );
            if let Some(n) = nearest(id, all) {
                d = d.help(format!("did you mean `{n}`?"));
            }
            return Some(d);
        };
        let me = site.step?;
        let my_id = &own.ids()[me];
        if target == me {
            return Some(
                Diagnostic::new(
                    "not-upstream",
                    span,
                    format!("step `{my_id}` reads its own result `steps.{id}`"),
                )
                .help(if site.compensate {
                    "in `compensate`, read the step's output as `{{ output }}`"
                } else {
                    "a step can only read steps that finished before it"
                }),
            );
        }
        if own.is_upstream(target, me) {
            return None;
        }
        Some(
            Diagnostic::new(
                "not-upstream",
                span,
                format!(
                    "step `{my_id}` reads `steps.{id}`, but `{id}` is not upstream of `{my_id}`"
                ),
            )
            .help(format!("add `{id}` to the `needs` of `{my_id}`")),
        )
    }
}
