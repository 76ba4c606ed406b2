//! Validated definitions. A [`Plan`] is a workflow whose DAG is acyclic, whose references all
//! resolve, whose templates compile and whose plugins exist; it can only be built by
//! [`build`], which reports every problem at once otherwise.
//!
//! Pure: no I/O, no async. Knows `dsl`, `template`, plugin descriptors and JSON Schema; knows
//! nothing about storage, wasmtime or HTTP.

mod catalog;
mod graph;
mod refs;
mod schema;
mod unit;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

pub use catalog::{CatalogPlan, build_catalog, validate_catalog};
pub use schema::{SchemaViolation, compile_schema, locate_pointer};
pub use unit::UnitKey;

use crate::diag::{Diagnostic, Diagnostics, Span, nearest};
use crate::dsl::{
    self, Backoff, IncidentAction, Overlap, Retry, Spanned, StepKind, Value, ValueKind, Workflow,
};
use crate::plugin::PluginIndex;
use crate::template::{TValue, Template};

/// Step timeout when neither the step nor `defaults` set one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// What validation may consult beyond the file itself.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// Every plugin that `uses:` may name.
    pub plugins: &'a PluginIndex,
    /// Workflows that `workflow:` steps and catalog entries may name, with their versions;
    /// `None` skips that check (a single file validated alone).
    pub workflows: Option<&'a WorkflowNames>,
}

/// Names and versions of the workflows known to the validator.
pub type WorkflowNames = BTreeMap<String, Vec<u32>>;

/// A validated workflow, ready to run. Only [`build`] makes one, so holding a `Plan` proves
/// the definition validated; its parts are read through the methods below.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The workflow's name.
    name: String,
    /// Its version.
    version: u32,
    /// Free text for humans.
    description: Option<String>,
    /// The inputs' JSON Schema as written (for the API) and compiled (for checking runs).
    inputs: Option<Arc<CompiledSchema>>,
    /// The DAG's steps, in a topological order: every step comes after all it needs.
    steps: Vec<PlanStep>,
    /// Steps run when the run fails, in a topological order among themselves.
    on_failure: Vec<PlanStep>,
    /// Named outputs of the run.
    outputs: Vec<(String, TValue)>,
    /// Cron triggers.
    triggers: Vec<PlanTrigger>,
    /// Step id → position in `steps` (main) or `on_failure`, so a unit finds its step in O(1).
    positions: HashMap<String, usize>,
}

impl Plan {
    /// The workflow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Free text for humans.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The inputs' schema, when the workflow declares one.
    pub fn inputs(&self) -> Option<&Arc<CompiledSchema>> {
        self.inputs.as_ref()
    }

    /// The main steps, in a topological order: every step comes after all it needs.
    pub fn steps(&self) -> &[PlanStep] {
        &self.steps
    }

    /// The `on_failure` steps, in a topological order among themselves.
    pub fn on_failure(&self) -> &[PlanStep] {
        &self.on_failure
    }

    /// Named outputs of the run, in written order.
    pub fn outputs(&self) -> &[(String, TValue)] {
        &self.outputs
    }

    /// Cron triggers, in written order.
    pub fn triggers(&self) -> &[PlanTrigger] {
        &self.triggers
    }

    /// Position of main step `id` in [`Plan::steps`].
    pub fn position(&self, id: &str) -> Option<usize> {
        self.positions
            .get(id)
            .copied()
            .filter(|&i| self.steps.get(i).is_some_and(|s| s.id == id))
    }

    /// The step a unit belongs to: its main step (also for items and compensations), or its
    /// `on_failure` step.
    pub fn step_of(&self, key: &UnitKey) -> Option<&PlanStep> {
        let list = match key {
            UnitKey::OnFailure(_) => &self.on_failure,
            _ => &self.steps,
        };
        let id = key.step_id();
        self.positions
            .get(id)
            .and_then(|&i| list.get(i))
            .filter(|s| s.id == id)
    }
}

/// A JSON Schema kept both as text and compiled.
#[derive(Debug)]
pub struct CompiledSchema {
    /// The schema as written.
    pub json: serde_json::Value,
    /// The compiled validator.
    pub validator: jsonschema::Validator,
}

impl CompiledSchema {
    /// Every violation of `instance`, each with its JSON pointer.
    pub fn violations(&self, instance: &serde_json::Value) -> Vec<SchemaViolation> {
        schema::violations(&self.validator, instance)
    }

    /// Fills in the top-level properties' `default`s that `inputs` leaves out.
    pub fn fill_defaults(&self, inputs: &mut serde_json::Map<String, serde_json::Value>) {
        let Some(serde_json::Value::Object(props)) = self.json.get("properties") else {
            return;
        };
        for (k, schema) in props {
            if let Some(d) = schema.get("default") {
                inputs.entry(k.clone()).or_insert_with(|| d.clone());
            }
        }
    }
}

/// One validated step.
#[derive(Debug, Clone)]
pub struct PlanStep {
    /// The step's id.
    pub id: String,
    /// Indices (into the same list) of the steps it needs.
    pub needs: Vec<usize>,
    /// What it does.
    pub kind: PlanKind,
    /// Skip condition.
    pub when: Option<Template>,
    /// Fan-out source: renders to a list.
    pub for_each: Option<TValue>,
    /// Most fan-out items at once (`None` = unbounded).
    pub max_parallel: Option<u32>,
    /// Deadline of one attempt.
    pub timeout: Duration,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// A failure does not fail the run.
    pub continue_on_error: bool,
    /// Undo action.
    pub compensate: Option<PlanCompensation>,
}

/// What a validated step does.
#[derive(Debug, Clone)]
pub enum PlanKind {
    /// Call a plugin; the version is the newest that satisfied the requirement at plan time.
    Uses {
        /// Plugin name.
        plugin: String,
        /// The requirement as written, re-resolved if the plugin set changes.
        req: semver::VersionReq,
        /// Resolved version.
        version: semver::Version,
        /// Input with templates.
        with: TValue,
    },
    /// Durable timer.
    Wait(WaitPlan),
    /// Human gate.
    Approval {
        /// Roles allowed to decide.
        roles: Vec<String>,
        /// When to give up.
        timeout: Option<Duration>,
        /// Shown to approvers.
        message: Option<Template>,
    },
    /// Wait for an external event.
    Signal {
        /// The event's name.
        name: String,
        /// When to give up.
        timeout: Option<Duration>,
    },
    /// Child workflow.
    Workflow {
        /// Its name.
        name: String,
        /// Pinned version, or the latest.
        version: Option<u32>,
        /// Its inputs.
        with: TValue,
    },
    /// Incident action (boxed: five templates make it the largest variant).
    Incident(Box<IncidentPlan>),
    /// A silence opened for a while.
    Silence(Box<SilencePlan>),
    /// Page an incident's responders through an escalation policy.
    Escalate(Box<EscalatePlan>),
}

/// An `escalate:` step with its template compiled.
#[derive(Debug, Clone)]
pub struct EscalatePlan {
    /// Which incident.
    pub incident: Template,
    /// The policy; the one covering the incident's service when `None`.
    pub policy: Option<String>,
    /// The workflow each page runs.
    pub page: String,
}

/// The workflow an `escalate:` step pages through when it names none.
pub const PAGE_WORKFLOW: &str = "page";

/// A `silence:` step with its templates compiled.
#[derive(Debug, Clone)]
pub struct SilencePlan {
    /// Label → matcher template.
    pub matchers: Vec<(String, Template)>,
    /// How long.
    pub duration: WaitPlan,
    /// Why.
    pub comment: Option<Template>,
}

/// A wait's length.
#[derive(Debug, Clone)]
pub enum WaitPlan {
    /// Known in advance.
    Fixed(Duration),
    /// Rendered when the step starts; must give a duration string.
    Template(Template),
}

/// An incident action with its templates compiled.
#[derive(Debug, Clone)]
pub struct IncidentPlan {
    /// Open, update or resolve.
    pub action: IncidentAction,
    /// Which incident (update/resolve).
    pub id: Option<Template>,
    /// Title (open).
    pub title: Option<Template>,
    /// Severity.
    pub severity: Option<Template>,
    /// Affected service.
    pub service: Option<Template>,
    /// Timeline note.
    pub note: Option<Template>,
}

/// Undo action of a step.
#[derive(Debug, Clone)]
pub struct PlanCompensation {
    /// Plugin name.
    pub plugin: String,
    /// Requirement as written.
    pub req: semver::VersionReq,
    /// Resolved version.
    pub version: semver::Version,
    /// Input; `output` is the compensated step's output.
    pub with: TValue,
    /// Deadline of one attempt.
    pub timeout: Duration,
    /// Retry policy.
    pub retry: RetryPolicy,
}

/// Retry policy with defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub max_attempts: u32,
    /// Delay growth.
    pub backoff: Backoff,
    /// First delay.
    pub initial_delay: Duration,
    /// Cap on any delay.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// One attempt only.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        backoff: Backoff::Fixed,
        initial_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(1),
    };

    fn from_dsl(r: &Retry) -> Self {
        Self {
            max_attempts: r.max_attempts,
            backoff: r.backoff,
            initial_delay: r.initial_delay,
            max_delay: r.max_delay,
        }
    }

    /// The delay before attempt `next_attempt` (2 = the first retry), before jitter.
    pub fn delay_before(&self, next_attempt: u32) -> Duration {
        let base = match self.backoff {
            Backoff::Fixed => self.initial_delay,
            Backoff::Exponential => {
                let factor = 2u32.saturating_pow(next_attempt.saturating_sub(2).min(30));
                self.initial_delay.saturating_mul(factor)
            }
        };
        base.min(self.max_delay)
    }
}

/// A validated cron trigger.
#[derive(Debug, Clone)]
pub struct PlanTrigger {
    /// The schedule.
    pub schedule: cron::Schedule,
    /// The expression as written.
    pub expression: String,
    /// Zone the schedule is read in.
    pub timezone: chrono_tz::Tz,
    /// Overlap policy.
    pub overlap: Overlap,
    /// Inputs of the triggered runs.
    pub inputs: serde_json::Value,
}

/// Scope roots a template may read, for messages.
const ROOTS: &[&str] = &[
    "inputs", "steps", "run", "item", "index", "secrets", "output",
];
/// Fields of `run` a template may read.
pub const RUN_FIELDS: &[&str] = &[
    "id",
    "tenant",
    "workflow",
    "version",
    "requester",
    "request_id",
    "started_at",
    "error",
];
/// Fields of `steps.<id>` a template may read.
const STEP_FIELDS: &[&str] = &["output", "status", "error"];

/// One line saying what is wrong with a definition: the first problems, and how many more.
pub fn summarize(diagnostics: &[Diagnostic]) -> String {
    let mut parts: Vec<String> = diagnostics
        .iter()
        .take(3)
        .map(|d| format!("{}:{}: {}", d.span.line, d.span.column, d.message))
        .collect();
    if diagnostics.len() > 3 {
        parts.push(format!("and {} more", diagnostics.len() - 3));
    }
    parts.join("; ")
}

/// Decodes and validates a workflow file in one go.
pub fn validate_workflow(bytes: &[u8], env: Env<'_>) -> Result<Plan, Vec<Diagnostic>> {
    let mut diags = Diagnostics::default();
    let Some(wf) = dsl::decode_workflow(bytes, &mut diags) else {
        return Err(diags.into_sorted());
    };
    build(&wf, env, diags)
}

/// Validates a decoded workflow. `diags` carries the decoder's problems so that all are
/// reported together; a plan is returned only when there are none at all.
pub fn build(wf: &Workflow, env: Env<'_>, mut diags: Diagnostics) -> Result<Plan, Vec<Diagnostic>> {
    let inputs = wf
        .inputs
        .as_ref()
        .and_then(|v| schema::compile_located(v, "`inputs`", &mut diags));

    let all: Vec<&dsl::Step> = wf.steps.iter().chain(&wf.on_failure).collect();
    let mut seen: HashMap<&str, Span> = HashMap::new();
    for s in &all {
        if let Some(first) = seen.insert(&s.id.value, s.id.span) {
            diags.push(
                Diagnostic::new(
                    "duplicate-step",
                    s.id.span,
                    format!("step id `{}` is used twice (first at {first})", s.id.value),
                )
                .help("give every step, including `on_failure` steps, a unique id"),
            );
        }
    }

    for s in &wf.on_failure {
        if let Some(fe) = &s.for_each {
            diags.push(
                Diagnostic::new(
                    "misplaced-key",
                    fe.span,
                    "`for_each` is not supported in `on_failure` steps",
                )
                .help("fan out in a main step, or send one message listing everything"),
            );
        }
    }
    let main = graph::Dag::build(&wf.steps, &[], &mut diags);
    let on_failure = graph::Dag::build(&wf.on_failure, &wf.steps, &mut diags);

    let ctx = refs::Ctx {
        inputs_schema: inputs.as_ref().map(|s| &s.json),
        main: &main,
        on_failure: &on_failure,
    };
    let default_timeout = wf
        .default_timeout
        .as_ref()
        .map_or(DEFAULT_TIMEOUT, |t| t.value);
    let default_retry = wf
        .default_retry
        .as_ref()
        .map_or(RetryPolicy::NONE, RetryPolicy::from_dsl);
    let defaults = StepDefaults {
        timeout: default_timeout,
        retry: default_retry,
    };

    let steps = plan_steps(
        &wf.steps,
        &main,
        refs::Section::Main,
        &ctx,
        env,
        defaults,
        &mut diags,
    );
    let fail_steps = plan_steps(
        &wf.on_failure,
        &on_failure,
        refs::Section::OnFailure,
        &ctx,
        env,
        defaults,
        &mut diags,
    );

    let outputs = wf
        .outputs
        .iter()
        .map(|(k, v)| {
            let tv = compile_value(v, &mut diags);
            ctx.check_value(v, &refs::Site::outputs(), &mut diags);
            (k.value.clone(), tv)
        })
        .collect();

    let triggers = wf
        .triggers
        .iter()
        .filter_map(|t| plan_trigger(t, inputs.as_deref(), &mut diags))
        .collect();

    if !diags.is_empty() {
        return Err(diags.into_sorted());
    }
    let steps: Vec<PlanStep> = steps.into_iter().flatten().collect();
    let on_failure: Vec<PlanStep> = fail_steps.into_iter().flatten().collect();
    // Step ids are unique across both lists (checked above), so one map serves both.
    let positions = steps
        .iter()
        .enumerate()
        .chain(on_failure.iter().enumerate())
        .map(|(i, s)| (s.id.clone(), i))
        .collect();
    Ok(Plan {
        name: wf.name.value.clone(),
        version: wf.version.value,
        description: wf.description.clone(),
        inputs,
        steps,
        on_failure,
        outputs,
        triggers,
        positions,
    })
}

#[derive(Debug, Clone, Copy)]
struct StepDefaults {
    timeout: Duration,
    retry: RetryPolicy,
}

fn plan_steps(
    steps: &[dsl::Step],
    dag: &graph::Dag,
    section: refs::Section,
    ctx: &refs::Ctx<'_>,
    env: Env<'_>,
    defaults: StepDefaults,
    diags: &mut Diagnostics,
) -> Vec<Option<PlanStep>> {
    // Emit in topological order so the executor can rely on it; fall back to written order
    // when there is a cycle (then no plan is returned anyway).
    let order: Vec<usize> = dag
        .topo_order()
        .unwrap_or_else(|| (0..steps.len()).collect());
    let position: HashMap<usize, usize> =
        order.iter().enumerate().map(|(pos, i)| (*i, pos)).collect();
    order
        .iter()
        .map(|&i| {
            let s = &steps[i];
            let site = refs::Site::step(section, i, s.for_each.is_some());
            let kind = plan_kind(s, &site, ctx, env, diags);
            let when = s.when.as_ref().and_then(|w| {
                let t = compile_template(&w.value, w.span, diags)?;
                ctx.check_template(&t, w.span, &site, diags);
                Some(t)
            });
            let for_each = s.for_each.as_ref().map(|v| {
                let tv = compile_value(v, diags);
                let outer = refs::Site {
                    fan_out: false,
                    ..site.clone()
                };
                ctx.check_value(v, &outer, diags);
                if let Some(lit) = tv.as_literal()
                    && !lit.is_array()
                {
                    diags.push(
                        Diagnostic::new(
                            "wrong-type",
                            v.span,
                            "`for_each` must be a list or a template giving one",
                        )
                        .help("write a list, or e.g. `for_each: \"{{ range inputs.count }}\"`"),
                    );
                }
                tv
            });
            let compensate = s.compensate.as_ref().and_then(|c| {
                let desc = resolve_plugin(&c.plugin, &c.req, env.plugins, diags)?;
                let with = c
                    .with
                    .as_ref()
                    .map(|w| compile_value(w, diags))
                    .unwrap_or(TValue::Literal(serde_json::json!({})));
                if let Some(w) = &c.with {
                    let comp_site = refs::Site {
                        compensate: true,
                        ..site.plugin_input()
                    };
                    ctx.check_value(w, &comp_site, diags);
                }
                check_with_schema(&with, c.with.as_ref(), c.span, desc, diags);
                Some(PlanCompensation {
                    plugin: desc.name.clone(),
                    req: c.req.value.clone(),
                    version: desc.version.clone(),
                    with,
                    timeout: c.timeout.as_ref().map_or(defaults.timeout, |t| t.value),
                    retry: c
                        .retry
                        .as_ref()
                        .map_or(defaults.retry, RetryPolicy::from_dsl),
                })
            });
            let needs = dag
                .needs_of(i)
                .iter()
                .filter_map(|n| position.get(n).copied())
                .collect();
            Some(PlanStep {
                id: s.id.value.clone(),
                needs,
                kind: kind?,
                when,
                for_each,
                max_parallel: s.max_parallel.as_ref().map(|m| m.value),
                timeout: s.timeout.as_ref().map_or(defaults.timeout, |t| t.value),
                retry: s
                    .retry
                    .as_ref()
                    .map_or(defaults.retry, RetryPolicy::from_dsl),
                continue_on_error: s.continue_on_error,
                compensate,
            })
        })
        .collect()
}

fn plan_kind(
    s: &dsl::Step,
    site: &refs::Site,
    ctx: &refs::Ctx<'_>,
    env: Env<'_>,
    diags: &mut Diagnostics,
) -> Option<PlanKind> {
    let template = |text: &Spanned<String>, diags: &mut Diagnostics| {
        let t = compile_template(&text.value, text.span, diags)?;
        ctx.check_template(&t, text.span, site, diags);
        Some(t)
    };
    match &s.kind {
        StepKind::Uses { plugin, req, with } => {
            let tv = with
                .as_ref()
                .map(|w| compile_value(w, diags))
                .unwrap_or(TValue::Literal(serde_json::json!({})));
            if let Some(w) = with {
                ctx.check_value(w, &site.plugin_input(), diags);
            }
            let desc = resolve_plugin(plugin, req, env.plugins, diags)?;
            check_with_schema(&tv, with.as_ref(), s.span, desc, diags);
            Some(PlanKind::Uses {
                plugin: desc.name.clone(),
                req: req.value.clone(),
                version: desc.version.clone(),
                with: tv,
            })
        }
        StepKind::Wait { duration } => match &duration.value {
            dsl::workflow::WaitFor::Fixed(d) => Some(PlanKind::Wait(WaitPlan::Fixed(*d))),
            dsl::workflow::WaitFor::Template(t) => {
                let t = template(&Spanned::new(t.clone(), duration.span), diags)?;
                Some(PlanKind::Wait(WaitPlan::Template(t)))
            }
        },
        StepKind::Approval {
            roles,
            timeout,
            message,
        } => Some(PlanKind::Approval {
            roles: roles.iter().map(|r| r.value.clone()).collect(),
            timeout: timeout.as_ref().map(|t| t.value),
            message: match message {
                Some(m) => Some(template(m, diags)?),
                None => None,
            },
        }),
        StepKind::Signal { name, timeout } => Some(PlanKind::Signal {
            name: name.value.clone(),
            timeout: timeout.as_ref().map(|t| t.value),
        }),
        StepKind::Workflow { target, with } => {
            if let Some(known) = env.workflows {
                match known.get(&target.value.name) {
                    None => {
                        let mut d = Diagnostic::new(
                            "unknown-workflow",
                            target.span,
                            format!("workflow `{}` does not exist", target.value.name),
                        );
                        if let Some(n) =
                            nearest(&target.value.name, known.keys().map(String::as_str))
                        {
                            d = d.help(format!("did you mean `{n}`?"));
                        }
                        diags.push(d);
                    }
                    Some(versions) => {
                        if let Some(v) = target.value.version
                            && !versions.contains(&v)
                        {
                            diags.push(
                                Diagnostic::new(
                                    "unknown-workflow",
                                    target.span,
                                    format!("workflow `{}` has no version {v}", target.value.name),
                                )
                                .help(format!("known versions: {}", join_nums(versions))),
                            );
                        }
                    }
                }
            }
            let tv = with
                .as_ref()
                .map(|w| compile_value(w, diags))
                .unwrap_or(TValue::Literal(serde_json::json!({})));
            if let Some(w) = with {
                ctx.check_value(w, site, diags);
            }
            Some(PlanKind::Workflow {
                name: target.value.name.clone(),
                version: target.value.version,
                with: tv,
            })
        }
        StepKind::Invalid => None,
        StepKind::Silence(spec) => {
            let mut matchers = Vec::new();
            for (k, v) in &spec.matchers {
                let t = template(v, diags)?;
                if t.is_literal()
                    && let Err(e) = crate::alerts::Matcher::parse(&k.value, &v.value)
                {
                    diags.push(Diagnostic::new("invalid-matcher", v.span, e).help(
                        "write `value`, `!=value`, `=~regex` or `!~regex`; a regex matches the whole value",
                    ));
                }
                matchers.push((k.value.clone(), t));
            }
            let duration = match &spec.duration.value {
                dsl::workflow::WaitFor::Fixed(d) => WaitPlan::Fixed(*d),
                dsl::workflow::WaitFor::Template(t) => WaitPlan::Template(template(
                    &Spanned::new(t.clone(), spec.duration.span),
                    diags,
                )?),
            };
            let comment = match &spec.comment {
                Some(c) => Some(template(c, diags)?),
                None => None,
            };
            Some(PlanKind::Silence(Box::new(SilencePlan {
                matchers,
                duration,
                comment,
            })))
        }
        StepKind::Escalate(spec) => {
            let incident = template(&spec.incident, diags)?;
            let page = spec
                .page
                .as_ref()
                .map_or(PAGE_WORKFLOW, |p| p.value.as_str());
            if let Some(known) = env.workflows
                && !known.contains_key(page)
            {
                let span = spec.page.as_ref().map_or(spec.span, |p| p.span);
                let mut d = Diagnostic::new(
                    "unknown-workflow",
                    span,
                    format!("workflow `{page}`, which pages each responder, does not exist"),
                );
                d = match nearest(page, known.keys().map(String::as_str)) {
                    Some(n) => d.help(format!("did you mean `{n}`?")),
                    None => d.help(
                        "add `workflows/page.yaml` (it ships with csmp) or name your own with `page:`",
                    ),
                };
                diags.push(d);
            }
            Some(PlanKind::Escalate(Box::new(EscalatePlan {
                incident,
                policy: spec.policy.as_ref().map(|p| p.value.clone()),
                page: page.to_string(),
            })))
        }
        StepKind::Incident(spec) => {
            let t = |o: &Option<Spanned<String>>, diags: &mut Diagnostics| {
                o.as_ref().and_then(|x| template(x, diags))
            };
            Some(PlanKind::Incident(Box::new(IncidentPlan {
                action: spec.action,
                id: t(&spec.id, diags),
                title: t(&spec.title, diags),
                severity: t(&spec.severity, diags),
                service: t(&spec.service, diags),
                note: t(&spec.note, diags),
            })))
        }
    }
}

fn join_nums(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

fn resolve_plugin<'a>(
    name: &Spanned<String>,
    req: &Spanned<semver::VersionReq>,
    plugins: &'a PluginIndex,
    diags: &mut Diagnostics,
) -> Option<&'a crate::plugin::PluginDescriptor> {
    if let Some(d) = plugins.resolve(&name.value, &req.value) {
        return Some(d);
    }
    let versions = plugins.versions(&name.value);
    if versions.is_empty() {
        let mut d = Diagnostic::new(
            "unknown-plugin",
            name.span,
            format!("plugin `{}` does not exist", name.value),
        );
        d = match nearest(&name.value, plugins.names()) {
            Some(n) => d.help(format!("did you mean `{n}`?")),
            None => d.help(format!(
                "known plugins: {}",
                plugins.names().collect::<Vec<_>>().join(", ")
            )),
        };
        diags.push(d);
    } else {
        let list: Vec<String> = versions.iter().map(|d| d.version.to_string()).collect();
        diags.push(
            Diagnostic::new(
                "no-matching-version",
                req.span,
                format!(
                    "no version of plugin `{}` satisfies `{}`",
                    name.value, req.value
                ),
            )
            .help(format!("available versions: {}", list.join(", "))),
        );
    }
    None
}

/// Checks the statically known parts of `with:` against the plugin's input schema; parts that
/// hold templates are only known at run time and are left to the host's check then.
fn check_with_schema(
    tv: &TValue,
    with: Option<&Value>,
    step_span: Span,
    desc: &crate::plugin::PluginDescriptor,
    diags: &mut Diagnostics,
) {
    let Ok(validator) = jsonschema::validator_for(&desc.input_schema) else {
        return;
    };
    let (instance, templated) = schema::partial_instance(tv);
    for v in schema::violations(&validator, &instance) {
        if templated.iter().any(|t| {
            v.pointer.starts_with(t.as_str())
                && (v.pointer.len() == t.len() || v.pointer[t.len()..].starts_with('/'))
        }) {
            continue;
        }
        let span = with.map_or(step_span, |w| v.locate(w));
        diags.push(
            Diagnostic::new(
                "plugin-input",
                span,
                format!(
                    "`with{}` does not match the input schema of plugin `{}@{}`: {}",
                    if v.pointer.is_empty() {
                        String::new()
                    } else {
                        v.pointer.replace('/', ".")
                    },
                    desc.name,
                    desc.version,
                    v.message
                ),
            )
            .help(
                v.key
                    .as_deref()
                    .and_then(|k| {
                        let props = desc.input_schema.get("properties")?.as_object()?;
                        nearest(k, props.keys().map(String::as_str))
                    })
                    .map_or_else(
                        || schema::describe_properties(&desc.input_schema),
                        |n| format!("did you mean `{n}`?"),
                    ),
            ),
        );
    }
}

fn compile_template(text: &str, span: Span, diags: &mut Diagnostics) -> Option<Template> {
    match Template::compile(text) {
        Ok(t) => Some(t),
        Err(e) => {
            diags.push(
                Diagnostic::new("template-syntax", span, e.message).help(
                    "templates are handlebars: `{{ inputs.name }}`, `{{ gt inputs.count 10 }}`",
                ),
            );
            None
        }
    }
}

/// Compiles every string of a value into a template tree; literal subtrees stay JSON.
pub(crate) fn compile_value(v: &Value, diags: &mut Diagnostics) -> TValue {
    match &v.kind {
        ValueKind::Str(s) if s.contains("{{") => match compile_template(s, v.span, diags) {
            Some(t) => TValue::Template(t),
            None => TValue::Literal(serde_json::Value::String(s.clone())),
        },
        ValueKind::List(items) => {
            let parts: Vec<TValue> = items.iter().map(|i| compile_value(i, diags)).collect();
            if parts.iter().all(|p| p.as_literal().is_some()) {
                TValue::Literal(v.to_json())
            } else {
                TValue::List(parts)
            }
        }
        ValueKind::Map(entries) => {
            let parts: Vec<(String, TValue)> = entries
                .iter()
                .map(|(k, x)| (k.value.clone(), compile_value(x, diags)))
                .collect();
            if parts.iter().all(|(_, p)| p.as_literal().is_some()) {
                TValue::Literal(v.to_json())
            } else {
                TValue::Map(parts)
            }
        }
        _ => TValue::Literal(v.to_json()),
    }
}

fn plan_trigger(
    t: &dsl::Trigger,
    inputs: Option<&CompiledSchema>,
    diags: &mut Diagnostics,
) -> Option<PlanTrigger> {
    let schedule: cron::Schedule = t.cron.value.parse().ok()?;
    let timezone = match &t.timezone {
        Some(tz) => tz.value.parse().ok()?,
        None => chrono_tz::UTC,
    };
    let values = t
        .inputs
        .as_ref()
        .map_or(serde_json::json!({}), Value::to_json);
    if let Some(schema) = inputs {
        for v in schema.violations(&values) {
            let span = t.inputs.as_ref().map_or(t.span, |i| v.locate(i));
            diags.push(
                Diagnostic::new(
                    "trigger-inputs",
                    span,
                    format!(
                        "trigger inputs do not match the workflow's `inputs` schema: {}",
                        v.message
                    ),
                )
                .help("give the trigger `inputs:` that a run of this workflow accepts"),
            );
        }
    }
    Some(PlanTrigger {
        schedule,
        expression: t.cron.value.clone(),
        timezone,
        overlap: t.overlap,
        inputs: values,
    })
}

#[cfg(test)]
mod tests;
