//! The workflow file as authored, and its decoder.
//!
//! Checks shapes only: keys, types, ranges, durations, cron syntax, version requirements.
//! Cross-references (`needs`, templates, plugins, cycles) are checked by `plan`.

use std::time::Duration;

use marked_yaml::types::Node;

use super::duration::parse_duration;
use super::is_valid_name;
use super::yaml::{self, Fields, Spanned, Value, span_of};
use crate::diag::{Diagnostic, Diagnostics, Span};

/// A workflow definition as written.
#[derive(Debug, Clone)]
pub struct Workflow {
    /// Unique name, `[a-z0-9-]+`.
    pub name: Spanned<String>,
    /// Integer version; a changed definition must bump it.
    pub version: Spanned<u32>,
    /// Free text for humans.
    pub description: Option<String>,
    /// JSON Schema (2020-12) of the run's inputs.
    pub inputs: Option<Value>,
    /// Step timeout applied where a step sets none.
    pub default_timeout: Option<Spanned<Duration>>,
    /// Retry policy applied where a step sets none.
    pub default_retry: Option<Retry>,
    /// Cron triggers.
    pub triggers: Vec<Trigger>,
    /// The DAG's steps, in written order.
    pub steps: Vec<Step>,
    /// Named outputs of the run: templates over the steps' outputs.
    pub outputs: Vec<(Spanned<String>, Value)>,
    /// Steps run when the run fails.
    pub on_failure: Vec<Step>,
}

/// A retry policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    /// Where the policy is written.
    pub span: Span,
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// How the delay grows between attempts.
    pub backoff: Backoff,
    /// Delay before the second attempt.
    pub initial_delay: Duration,
    /// Upper bound of any one delay.
    pub max_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            span: Span::FILE,
            max_attempts: 1,
            backoff: Backoff::Exponential,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

/// Growth of retry delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// The same delay every time.
    Fixed,
    /// Doubling delays (with jitter), capped at `max_delay`.
    Exponential,
}

/// A cron trigger.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// Where the trigger is written.
    pub span: Span,
    /// The cron expression (seconds field first, as the `cron` crate reads it).
    pub cron: Spanned<String>,
    /// IANA time zone the expression is read in; UTC by default.
    pub timezone: Option<Spanned<String>>,
    /// What to do when the previous fire's run is still going.
    pub overlap: Overlap,
    /// Inputs of the triggered runs.
    pub inputs: Option<Value>,
}

/// Overlap policy of a cron trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Skip a fire while the previous run is unfinished (the default).
    #[default]
    Skip,
    /// Start a run at every fire regardless.
    Allow,
    /// Cancel the unfinished run, then start the new one.
    CancelPrevious,
}

/// One step as written.
#[derive(Debug, Clone)]
pub struct Step {
    /// The step's id, unique in the workflow.
    pub id: Spanned<String>,
    /// Where the step's mapping starts.
    pub span: Span,
    /// What the step does.
    pub kind: StepKind,
    /// Steps that must finish first.
    pub needs: Vec<Spanned<String>>,
    /// A template; the step is skipped when it renders falsy.
    pub when: Option<Spanned<String>>,
    /// A template rendering to a list: the step runs once per item.
    pub for_each: Option<Value>,
    /// Most items of a `for_each` running at once.
    pub max_parallel: Option<Spanned<u32>>,
    /// Deadline of one attempt.
    pub timeout: Option<Spanned<Duration>>,
    /// Retry policy of the step.
    pub retry: Option<Retry>,
    /// A failure of this step does not fail the run.
    pub continue_on_error: bool,
    /// Undo action run if the run fails after this step succeeded.
    pub compensate: Option<Compensation>,
}

/// The action of a step.
#[derive(Debug, Clone)]
pub enum StepKind {
    /// Call a plugin.
    Uses {
        /// Plugin name.
        plugin: Spanned<String>,
        /// Version requirement (`*` when not written).
        req: Spanned<semver::VersionReq>,
        /// The plugin's input, with templates.
        with: Option<Value>,
    },
    /// A durable timer.
    Wait {
        /// The delay: a duration literal or a template rendering to one.
        duration: Spanned<WaitFor>,
    },
    /// A human gate resolved through the API.
    Approval {
        /// Roles allowed to decide.
        roles: Vec<Spanned<String>>,
        /// How long to wait before the step fails.
        timeout: Option<Spanned<Duration>>,
        /// Shown to the approver.
        message: Option<Spanned<String>>,
    },
    /// Wait for a named external event.
    Signal {
        /// The signal's name.
        name: Spanned<String>,
        /// How long to wait before the step fails.
        timeout: Option<Spanned<Duration>>,
    },
    /// Run another workflow as a child; its outputs become this step's output.
    Workflow {
        /// The child workflow.
        target: Spanned<WorkflowRef>,
        /// The child's inputs.
        with: Option<Value>,
    },
    /// Open, update or resolve an incident.
    Incident(IncidentSpec),
    /// Open a silence for what the run is about to touch: alerts its matchers select are
    /// kept and counted, never acted on, for the time given.
    Silence(SilenceSpec),
    /// Page an incident's responders through an escalation policy until one acknowledges.
    Escalate(super::escalation::EscalateSpec),
    /// The step's action could not be read (already reported); kept so that the rest of the
    /// file — duplicate ids, `needs` naming this step — is still checked.
    Invalid,
}

/// A wait's length.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitFor {
    /// Known when the definition is read.
    Fixed(Duration),
    /// A template rendering to a duration string, known when the step starts.
    Template(String),
}

/// `name` or `name@version` naming a workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRef {
    /// The workflow's name.
    pub name: String,
    /// A pinned version; the latest when absent.
    pub version: Option<u32>,
}

impl WorkflowRef {
    /// Parses `name` or `name@N`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, version) = match text.split_once('@') {
            Some((n, v)) => {
                let v = v.parse::<u32>().map_err(|_| {
                    format!("`{v}` is not a workflow version (an integer like `3`)")
                })?;
                (n, Some(v))
            }
            None => (text, None),
        };
        if !is_valid_name(name) {
            return Err(format!(
                "`{name}` is not a valid workflow name ([a-z0-9-]+)"
            ));
        }
        Ok(Self {
            name: name.to_string(),
            version,
        })
    }
}

impl std::fmt::Display for WorkflowRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// What an `incident:` step does.
#[derive(Debug, Clone)]
pub struct IncidentSpec {
    /// Where the step's `incident:` mapping starts.
    pub span: Span,
    /// Open, update or resolve.
    pub action: IncidentAction,
    /// Which incident to update or resolve (a template, usually an earlier step's output id).
    pub id: Option<Spanned<String>>,
    /// Title of a new incident.
    pub title: Option<Spanned<String>>,
    /// `sev1` (worst) .. `sev4`.
    pub severity: Option<Spanned<String>>,
    /// The affected service.
    pub service: Option<Spanned<String>>,
    /// A note added to the incident's timeline.
    pub note: Option<Spanned<String>>,
}

/// What a `silence:` step silences, and for how long.
#[derive(Debug, Clone)]
pub struct SilenceSpec {
    /// Where the step's `silence:` mapping starts.
    pub span: Span,
    /// Label → matcher (`value`, `!=value`, `=~regex`, `!~regex`); values may be templates.
    pub matchers: Vec<(Spanned<String>, Spanned<String>)>,
    /// How long (`15m`), or a template giving it.
    pub duration: Spanned<WaitFor>,
    /// Why (a template).
    pub comment: Option<Spanned<String>>,
}

/// The incident actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentAction {
    /// Create an incident.
    Open,
    /// Add a note, change severity.
    Update,
    /// Close it.
    Resolve,
}

/// The valid severities, worst first.
pub const SEVERITIES: &[&str] = &["sev1", "sev2", "sev3", "sev4"];

/// A step's undo action.
#[derive(Debug, Clone)]
pub struct Compensation {
    /// Where `compensate:` is written.
    pub span: Span,
    /// Plugin name.
    pub plugin: Spanned<String>,
    /// Version requirement.
    pub req: Spanned<semver::VersionReq>,
    /// The plugin's input; `output` is the compensated step's output.
    pub with: Option<Value>,
    /// Deadline of one attempt.
    pub timeout: Option<Spanned<Duration>>,
    /// Retry policy.
    pub retry: Option<Retry>,
}

const TOP_KEYS: &[&str] = &[
    "name",
    "version",
    "description",
    "inputs",
    "defaults",
    "triggers",
    "steps",
    "outputs",
    "on_failure",
];
const DEFAULTS_KEYS: &[&str] = &["timeout", "retry"];
const RETRY_KEYS: &[&str] = &["max_attempts", "backoff", "initial_delay", "max_delay"];
const TRIGGER_KEYS: &[&str] = &["cron", "timezone", "overlap", "inputs"];
/// The keys that choose a step's kind; exactly one must be present.
pub const KIND_KEYS: &[&str] = &[
    "uses", "wait", "approval", "signal", "workflow", "incident", "silence", "escalate",
];
const STEP_KEYS: &[&str] = &[
    "id",
    "description",
    "uses",
    "with",
    "wait",
    "approval",
    "signal",
    "workflow",
    "incident",
    "silence",
    "escalate",
    "needs",
    "when",
    "for_each",
    "max_parallel",
    "timeout",
    "retry",
    "continue_on_error",
    "compensate",
];
const APPROVAL_KEYS: &[&str] = &["roles", "timeout", "message"];
const SIGNAL_KEYS: &[&str] = &["name", "timeout"];
const INCIDENT_KEYS: &[&str] = &["action", "id", "title", "severity", "service", "note"];
const COMPENSATE_KEYS: &[&str] = &["uses", "with", "timeout", "retry"];
/// The roles a token may carry.
pub const ROLES: &[&str] = &["admin", "operator", "client"];

/// Decodes a workflow file. `None` when the file is not even a mapping; otherwise a workflow
/// with whatever could be read, and `diags` holding every problem found.
pub fn decode_workflow(bytes: &[u8], diags: &mut Diagnostics) -> Option<Workflow> {
    let node = yaml::parse(bytes, diags)?;
    decode_node(&node, diags)
}

pub(super) fn decode_node(node: &Node, diags: &mut Diagnostics) -> Option<Workflow> {
    let f = Fields::read(node, "workflow", TOP_KEYS, diags)?;
    let name = match f.get("name") {
        Some(n) => yaml::string(n, "`name`", diags).and_then(|s| {
            if is_valid_name(&s.value) {
                Some(s)
            } else {
                diags.push(
                    Diagnostic::new(
                        "invalid-name",
                        s.span,
                        format!("workflow name `{}` is not valid", s.value),
                    )
                    .help(
                        "use lowercase letters, digits and `-` ([a-z0-9-]+), at most 63 characters",
                    ),
                );
                None
            }
        }),
        None => {
            f.missing(
                "name",
                "workflow",
                "add `name: my-workflow` at the top",
                diags,
            );
            None
        }
    };
    let version = match f.get("version") {
        Some(n) => yaml::integer(n, "`version`", 1, i64::from(u32::MAX), diags)
            .map(|v| Spanned::new(v.value as u32, v.span)),
        None => {
            f.missing(
                "version",
                "workflow",
                "add `version: 1`; bump it on every change",
                diags,
            );
            None
        }
    };
    let description = f
        .get("description")
        .and_then(|n| yaml::string(n, "`description`", diags));
    let inputs = f.get("inputs").map(|n| {
        if n.as_mapping().is_none() {
            diags.push(
                Diagnostic::new(
                    "wrong-type",
                    span_of(n),
                    format!(
                        "`inputs` must be a JSON Schema mapping, found {}",
                        yaml::shape(n)
                    ),
                )
                .help("write e.g. `inputs: { type: object, properties: { ... } }`"),
            );
        }
        yaml::value(n, diags)
    });
    let (mut default_timeout, mut default_retry) = (None, None);
    if let Some(n) = f.get("defaults")
        && let Some(d) = Fields::read(n, "`defaults`", DEFAULTS_KEYS, diags)
    {
        default_timeout = d
            .get("timeout")
            .and_then(|n| duration(n, "`defaults.timeout`", diags));
        default_retry = d.get("retry").and_then(|n| retry(n, diags));
    }
    let triggers = f
        .get("triggers")
        .map(|n| {
            list(n, "`triggers`", diags)
                .into_iter()
                .filter_map(|t| trigger(t, diags))
                .collect()
        })
        .unwrap_or_default();
    let steps = match f.get("steps") {
        Some(n) => step_list(n, "`steps`", diags),
        None => {
            f.missing(
                "steps",
                "workflow",
                "add `steps:` with at least one step",
                diags,
            );
            Vec::new()
        }
    };
    if let Some(n) = f.get("steps")
        && steps.is_empty()
        && n.as_sequence().is_some_and(|s| s.is_empty())
    {
        diags.push(
            Diagnostic::new("no-steps", span_of(n), "workflow has no steps")
                .help("add at least one step under `steps:`"),
        );
    }
    let outputs = match f.get("outputs") {
        Some(n) if n.as_mapping().is_some() => outputs(n, diags),
        Some(n) => {
            diags.push(Diagnostic::new(
                "wrong-type",
                span_of(n),
                format!(
                    "`outputs` must be a mapping of name to value, found {}",
                    yaml::shape(n)
                ),
            ));
            Vec::new()
        }
        None => Vec::new(),
    };
    let on_failure = f
        .get("on_failure")
        .map(|n| step_list(n, "`on_failure`", diags))
        .unwrap_or_default();
    Some(Workflow {
        name: name.unwrap_or_else(|| Spanned::new(String::new(), f.span())),
        version: version.unwrap_or_else(|| Spanned::new(0, f.span())),
        description: description.map(|d| d.value),
        inputs,
        default_timeout,
        default_retry,
        triggers,
        steps,
        outputs,
        on_failure,
    })
}

fn outputs(node: &Node, diags: &mut Diagnostics) -> Vec<(Spanned<String>, Value)> {
    let Some(map) = node.as_mapping() else {
        return Vec::new();
    };
    map.iter()
        .map(|(k, v)| {
            (
                Spanned::new(k.as_str().to_string(), yaml::scalar_span(k)),
                yaml::value(v, diags),
            )
        })
        .collect()
}

fn list<'a>(node: &'a Node, what: &str, diags: &mut Diagnostics) -> Vec<&'a Node> {
    match node.as_sequence() {
        Some(items) => items.iter().collect(),
        None => {
            diags.push(
                Diagnostic::new(
                    "wrong-type",
                    span_of(node),
                    format!("{what} must be a list, found {}", yaml::shape(node)),
                )
                .help("write each item on its own line starting with `- `"),
            );
            Vec::new()
        }
    }
}

fn step_list(node: &Node, what: &str, diags: &mut Diagnostics) -> Vec<Step> {
    list(node, what, diags)
        .into_iter()
        .filter_map(|n| step(n, diags))
        .collect()
}

pub(super) fn duration(
    node: &Node,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<Spanned<Duration>> {
    let s = yaml::string(node, what, diags)?;
    match parse_duration(&s.value) {
        Ok(d) if d.is_zero() => {
            diags.push(
                Diagnostic::new(
                    "invalid-duration",
                    s.span,
                    format!("{what} must be longer than zero"),
                )
                .help("write e.g. `30s`, `5m`, `1h`"),
            );
            None
        }
        Ok(d) => Some(Spanned::new(d, s.span)),
        Err(e) => {
            diags.push(
                Diagnostic::new("invalid-duration", s.span, format!("{what}: {e}"))
                    .help("write a number with a unit: `500ms`, `30s`, `5m`, `1h`, `1h30m`, `7d`"),
            );
            None
        }
    }
}

fn retry(node: &Node, diags: &mut Diagnostics) -> Option<Retry> {
    let f = Fields::read(node, "`retry`", RETRY_KEYS, diags)?;
    let mut r = Retry {
        span: f.span(),
        ..Retry::default()
    };
    if let Some(n) = f.get("max_attempts") {
        r.max_attempts = yaml::integer(n, "`retry.max_attempts`", 1, 100, diags)
            .map_or(r.max_attempts, |v| v.value as u32);
    } else {
        r.max_attempts = 3;
    }
    if let Some(n) = f.get("backoff")
        && let Some(s) = yaml::string(n, "`retry.backoff`", diags)
    {
        match s.value.as_str() {
            "fixed" => r.backoff = Backoff::Fixed,
            "exponential" => r.backoff = Backoff::Exponential,
            other => diags.push(
                Diagnostic::new(
                    "invalid-value",
                    s.span,
                    format!("unknown backoff `{other}`"),
                )
                .help("use `fixed` or `exponential`"),
            ),
        }
    }
    if let Some(d) = f
        .get("initial_delay")
        .and_then(|n| duration(n, "`retry.initial_delay`", diags))
    {
        r.initial_delay = d.value;
    }
    if let Some(d) = f
        .get("max_delay")
        .and_then(|n| duration(n, "`retry.max_delay`", diags))
    {
        r.max_delay = d.value;
        if r.max_delay < r.initial_delay {
            diags.push(
                Diagnostic::new(
                    "invalid-value",
                    d.span,
                    "`retry.max_delay` is shorter than `retry.initial_delay`",
                )
                .help("make `max_delay` at least as long as `initial_delay`"),
            );
        }
    }
    Some(r)
}

fn trigger(node: &Node, diags: &mut Diagnostics) -> Option<Trigger> {
    let f = Fields::read(node, "trigger", TRIGGER_KEYS, diags)?;
    let Some(cron_node) = f.get("cron") else {
        f.missing(
            "cron",
            "trigger",
            "add `cron: \"0 */15 * * * *\"` (sec min hour day month weekday)",
            diags,
        );
        return None;
    };
    let cron = yaml::string(cron_node, "`cron`", diags)?;
    if let Err(e) = cron.value.parse::<cron::Schedule>() {
        let text = e.to_string();
        let reason = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty() && l.trim() != "^")
            .unwrap_or("not a cron expression");
        diags.push(
            Diagnostic::new("invalid-cron", cron.span, format!("invalid cron expression `{}`: {}", cron.value, reason.trim()))
                .help("use six or seven fields: sec min hour day-of-month month day-of-week [year], e.g. `0 */15 * * * *`"),
        );
    }
    let timezone = f
        .get("timezone")
        .and_then(|n| yaml::string(n, "`timezone`", diags));
    if let Some(tz) = &timezone
        && tz.value.parse::<chrono_tz::Tz>().is_err()
    {
        diags.push(
            Diagnostic::new(
                "invalid-timezone",
                tz.span,
                format!("unknown time zone `{}`", tz.value),
            )
            .help("use an IANA name such as `UTC`, `Europe/Paris` or `America/New_York`"),
        );
    }
    let mut overlap = Overlap::default();
    if let Some(n) = f.get("overlap")
        && let Some(s) = yaml::string(n, "`overlap`", diags)
    {
        match s.value.as_str() {
            "skip" => overlap = Overlap::Skip,
            "allow" => overlap = Overlap::Allow,
            "cancel_previous" => overlap = Overlap::CancelPrevious,
            other => diags.push(
                Diagnostic::new(
                    "invalid-value",
                    s.span,
                    format!("unknown overlap policy `{other}`"),
                )
                .help("use `skip` (default), `allow` or `cancel_previous`"),
            ),
        }
    }
    let inputs = f.get("inputs").map(|n| yaml::value(n, diags));
    Some(Trigger {
        span: f.span(),
        cron,
        timezone,
        overlap,
        inputs,
    })
}

/// Splits `name@req` into a plugin name and a semver requirement.
pub fn parse_plugin_ref(text: &str) -> Result<(String, semver::VersionReq), String> {
    let (name, req) = text.split_once('@').unwrap_or((text, "*"));
    if !is_valid_name(name) {
        return Err(format!("`{name}` is not a valid plugin name ([a-z0-9-]+)"));
    }
    let req = semver::VersionReq::parse(req)
        .map_err(|e| format!("`{req}` is not a semver requirement: {e}"))?;
    Ok((name.to_string(), req))
}

fn plugin_ref(
    node: &Node,
    diags: &mut Diagnostics,
) -> Option<(Spanned<String>, Spanned<semver::VersionReq>)> {
    let s = yaml::string(node, "`uses`", diags)?;
    if !s.value.contains('@') {
        // A bare name would take whatever version is newest, so an upload could change what
        // a defined workflow runs; the requirement is written out.
        diags.push(
            Diagnostic::new(
                "missing-version",
                s.span,
                format!("`uses: {}` says no version requirement", s.value),
            )
            .help(format!(
                "pin the major version you tested with, e.g. `uses: {}@^1`",
                s.value
            )),
        );
        return None;
    }
    match parse_plugin_ref(&s.value) {
        Ok((name, req)) => Some((Spanned::new(name, s.span), Spanned::new(req, s.span))),
        Err(e) => {
            diags.push(
                Diagnostic::new("invalid-plugin-ref", s.span, e)
                    .help("write `uses: NAME@REQ`, e.g. `uses: http@^1`"),
            );
            None
        }
    }
}

fn step(node: &Node, diags: &mut Diagnostics) -> Option<Step> {
    let f = Fields::read(node, "step", STEP_KEYS, diags)?;
    let id = match f.get("id") {
        Some(n) => yaml::string(n, "step `id`", diags).and_then(|s| {
            let ok = s
                .value
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase())
                && s.value.len() <= 63
                && s.value.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if ok {
                Some(s)
            } else {
                diags.push(
                    Diagnostic::new(
                        "invalid-name",
                        s.span,
                        format!("step id `{}` is not valid", s.value),
                    )
                    .help("start with a lowercase letter; then letters, digits, `-` or `_`"),
                );
                None
            }
        }),
        None => {
            f.missing(
                "id",
                "step",
                "give every step an `id:` unique in the workflow",
                diags,
            );
            None
        }
    };
    let present: Vec<&str> = f.keys().filter(|k| KIND_KEYS.contains(k)).collect();
    let kind = match present.as_slice() {
        [] => {
            diags.push(
                Diagnostic::new("missing-kind", f.span(), "step does nothing: it has none of `uses`, `wait`, `approval`, `signal`, `workflow`, `incident`, `silence`, `escalate`")
                    .help("add exactly one of them, e.g. `uses: echo@^1`"),
            );
            None
        }
        [one] => step_kind(one, &f, diags),
        [first, second, ..] => {
            let span = f.key_span(second).unwrap_or(f.span());
            diags.push(
                Diagnostic::new(
                    "conflicting-kind",
                    span,
                    format!("step has both `{first}` and `{second}`"),
                )
                .help("a step does one thing; split it into two steps joined by `needs`"),
            );
            None
        }
    };
    if let Some(n) = f.get("with")
        && !present.iter().any(|k| *k == "uses" || *k == "workflow")
    {
        diags.push(
            Diagnostic::new(
                "misplaced-key",
                f.key_span("with").unwrap_or(span_of(n)),
                "`with` only applies to `uses` and `workflow` steps",
            )
            .help("remove `with`, or make the step call a plugin with `uses`"),
        );
    }
    let needs = f
        .get("needs")
        .map(|n| yaml::strings(n, "`needs`", diags))
        .unwrap_or_default();
    let when = f
        .get("when")
        .and_then(|n| template_string(n, "`when`", diags));
    let when = match when {
        // A bare `true`/`false` is a literal; any other text without `{{` is a non-empty
        // string, always true, which is never what was meant.
        Some(w) if w.value != "true" && w.value != "false" && !w.value.contains("{{") => {
            diags.push(
                Diagnostic::new(
                    "not-a-template",
                    w.span,
                    format!(
                        "`when: {}` is not a template: as plain text it is always true",
                        w.value
                    ),
                )
                .help(format!(
                    "write the condition as a template: `when: \"{{{{ {} }}}}\"`",
                    as_template_call(&w.value)
                )),
            );
            None
        }
        other => other,
    };
    let for_each = f.get("for_each").map(|n| yaml::value(n, diags));
    let max_parallel = f.get("max_parallel").and_then(|n| {
        yaml::integer(n, "`max_parallel`", 1, 10_000, diags)
            .map(|v| Spanned::new(v.value as u32, v.span))
    });
    if let (Some(mp), None) = (&max_parallel, &for_each) {
        diags.push(
            Diagnostic::new(
                "misplaced-key",
                mp.span,
                "`max_parallel` only applies to steps with `for_each`",
            )
            .help("add `for_each:` or remove `max_parallel`"),
        );
    }
    let timeout = f
        .get("timeout")
        .and_then(|n| duration(n, "`timeout`", diags));
    let retry = f.get("retry").and_then(|n| retry(n, diags));
    let continue_on_error = f
        .get("continue_on_error")
        .and_then(|n| yaml::boolean(n, "`continue_on_error`", diags))
        .unwrap_or(false);
    let compensate = f.get("compensate").and_then(|n| compensation(n, diags));
    if let Some(c) = &compensate
        && !present.contains(&"uses")
        && !present.contains(&"workflow")
    {
        diags.push(
            Diagnostic::new(
                "misplaced-key",
                c.span,
                "`compensate` only applies to `uses` and `workflow` steps",
            )
            .help("only a step that changed something outside has something to undo"),
        );
    }
    Some(Step {
        id: id?,
        span: f.span(),
        kind: kind.unwrap_or(StepKind::Invalid),
        needs,
        when,
        for_each,
        max_parallel,
        timeout,
        retry,
        continue_on_error,
        compensate,
    })
}

/// `a > b` as the template helper call `gt a b` (the comparison helpers are calls, not
/// operators); anything else as written.
fn as_template_call(text: &str) -> String {
    const OPS: [(&str, &str); 6] = [
        (">=", "gte"),
        ("<=", "lte"),
        ("==", "eq"),
        ("!=", "ne"),
        (">", "gt"),
        ("<", "lt"),
    ];
    for (op, helper) in OPS {
        if let Some((a, b)) = text.split_once(op) {
            let (a, b) = (a.trim(), b.trim());
            if !a.is_empty() && !b.is_empty() && !b.starts_with(['=', '>', '<']) {
                return format!("{helper} {a} {b}");
            }
        }
    }
    text.trim().to_string()
}

fn template_string(node: &Node, what: &str, diags: &mut Diagnostics) -> Option<Spanned<String>> {
    if let Some(b) = node.as_scalar().and_then(|s| s.as_bool()) {
        return Some(Spanned::new(b.to_string(), span_of(node)));
    }
    yaml::string(node, what, diags)
}

fn step_kind(kind: &str, f: &Fields<'_>, diags: &mut Diagnostics) -> Option<StepKind> {
    let node = f.get(kind)?;
    match kind {
        "uses" => {
            let (plugin, req) = plugin_ref(node, diags)?;
            let with = f.get("with").map(|n| yaml::value(n, diags));
            Some(StepKind::Uses { plugin, req, with })
        }
        "wait" => {
            let s = yaml::string(node, "`wait`", diags)?;
            if s.value.contains("{{") {
                return Some(StepKind::Wait {
                    duration: Spanned::new(WaitFor::Template(s.value), s.span),
                });
            }
            let d = duration(node, "`wait`", diags)?;
            Some(StepKind::Wait {
                duration: Spanned::new(WaitFor::Fixed(d.value), d.span),
            })
        }
        "approval" => {
            let a = Fields::read(node, "`approval`", APPROVAL_KEYS, diags)?;
            let roles = a
                .get("roles")
                .map(|n| yaml::strings(n, "`approval.roles`", diags))
                .unwrap_or_default();
            for r in &roles {
                if !ROLES.contains(&r.value.as_str()) {
                    let mut d = Diagnostic::new(
                        "invalid-value",
                        r.span,
                        format!("unknown role `{}`", r.value),
                    );
                    d = match crate::diag::nearest(&r.value, ROLES.iter().copied()) {
                        Some(n) => d.help(format!("did you mean `{n}`?")),
                        None => d.help("roles are `admin`, `operator` and `client`"),
                    };
                    diags.push(d);
                }
            }
            match a.get("roles") {
                None => a.missing(
                    "roles",
                    "`approval`",
                    "say who may approve, e.g. `roles: [operator]`",
                    diags,
                ),
                Some(n) if roles.is_empty() => yaml::empty_list(
                    n,
                    "`approval.roles`",
                    "say who may approve, e.g. `roles: [operator]`",
                    diags,
                ),
                Some(_) => {}
            }
            let timeout = a
                .get("timeout")
                .and_then(|n| duration(n, "`approval.timeout`", diags));
            let message = a
                .get("message")
                .and_then(|n| yaml::string(n, "`approval.message`", diags));
            Some(StepKind::Approval {
                roles,
                timeout,
                message,
            })
        }
        "signal" => {
            if node.as_mapping().is_some() {
                let s = Fields::read(node, "`signal`", SIGNAL_KEYS, diags)?;
                let timeout = s
                    .get("timeout")
                    .and_then(|n| duration(n, "`signal.timeout`", diags));
                let Some(name) = s
                    .get("name")
                    .and_then(|n| yaml::string(n, "`signal.name`", diags))
                else {
                    s.missing(
                        "name",
                        "`signal`",
                        "name the event to wait for: `signal: { name: ack }`",
                        diags,
                    );
                    return None;
                };
                Some(StepKind::Signal { name, timeout })
            } else {
                let name = yaml::string(node, "`signal`", diags)?;
                Some(StepKind::Signal {
                    name,
                    timeout: None,
                })
            }
        }
        "workflow" => {
            let s = yaml::string(node, "`workflow`", diags)?;
            match WorkflowRef::parse(&s.value) {
                Ok(target) => Some(StepKind::Workflow {
                    target: Spanned::new(target, s.span),
                    with: f.get("with").map(|n| yaml::value(n, diags)),
                }),
                Err(e) => {
                    diags.push(
                        Diagnostic::new("invalid-workflow-ref", s.span, e)
                            .help("write `workflow: NAME` or `workflow: NAME@VERSION`"),
                    );
                    None
                }
            }
        }
        "incident" => incident(node, diags).map(StepKind::Incident),
        "silence" => silence(node, diags).map(StepKind::Silence),
        "escalate" => super::escalation::step(node, diags).map(StepKind::Escalate),
        _ => None,
    }
}

const SILENCE_KEYS: &[&str] = &["matchers", "for", "comment"];

fn silence(node: &Node, diags: &mut Diagnostics) -> Option<SilenceSpec> {
    let f = Fields::read(node, "`silence`", SILENCE_KEYS, diags)?;
    let mut matchers = Vec::new();
    match f.get("matchers") {
        Some(m) => match m.as_mapping() {
            Some(map) if !map.is_empty() => {
                for (k, v) in map.iter() {
                    let key = Spanned::new(k.as_str().to_string(), yaml::scalar_span(k));
                    if let Some(v) = yaml::string(v, &format!("matcher `{}`", k.as_str()), diags) {
                        matchers.push((key, v));
                    }
                }
            }
            _ => diags.push(
                Diagnostic::new(
                    "wrong-type",
                    span_of(m),
                    "`silence.matchers` must be a mapping of label to matcher, with at least one",
                )
                .help("write e.g. `matchers: { service: \"{{ inputs.service }}\" }`"),
            ),
        },
        None => f.missing(
            "matchers",
            "`silence`",
            "say what to silence: `matchers: { service: \"{{ inputs.service }}\" }`",
            diags,
        ),
    }
    let duration = match f.get("for") {
        Some(n) => {
            let s = yaml::string(n, "`silence.for`", diags)?;
            if s.value.contains("{{") {
                Spanned::new(WaitFor::Template(s.value), s.span)
            } else {
                let d = duration(n, "`silence.for`", diags)?;
                Spanned::new(WaitFor::Fixed(d.value), d.span)
            }
        }
        None => {
            f.missing("for", "`silence`", "say how long: `for: 15m`", diags);
            return None;
        }
    };
    Some(SilenceSpec {
        span: f.span(),
        matchers,
        duration,
        comment: f
            .get("comment")
            .and_then(|n| yaml::string(n, "`silence.comment`", diags)),
    })
}

fn incident(node: &Node, diags: &mut Diagnostics) -> Option<IncidentSpec> {
    let f = Fields::read(node, "`incident`", INCIDENT_KEYS, diags)?;
    let text = |key: &str, diags: &mut Diagnostics| {
        f.get(key)
            .and_then(|n| yaml::string(n, &format!("`incident.{key}`"), diags))
    };
    let action_s = text("action", diags);
    let action = match action_s.as_ref().map(|s| s.value.as_str()) {
        Some("open") => IncidentAction::Open,
        Some("update") => IncidentAction::Update,
        Some("resolve") => IncidentAction::Resolve,
        Some(other) => {
            diags.push(
                Diagnostic::new(
                    "invalid-value",
                    action_s.as_ref().map_or(f.span(), |s| s.span),
                    format!("unknown incident action `{other}`"),
                )
                .help("use `open`, `update` or `resolve`"),
            );
            return None;
        }
        None => {
            f.missing(
                "action",
                "`incident`",
                "add `action: open`, `update` or `resolve`",
                diags,
            );
            return None;
        }
    };
    let spec = IncidentSpec {
        span: f.span(),
        action,
        id: text("id", diags),
        title: text("title", diags),
        severity: text("severity", diags),
        service: text("service", diags),
        note: text("note", diags),
    };
    if let Some(sev) = &spec.severity
        && !SEVERITIES.contains(&sev.value.as_str())
        && !sev.value.contains("{{")
    {
        diags.push(
            Diagnostic::new(
                "invalid-value",
                sev.span,
                format!("unknown severity `{}`", sev.value),
            )
            .help("use `sev1` (worst), `sev2`, `sev3` or `sev4`"),
        );
    }
    match action {
        IncidentAction::Open if spec.title.is_none() => {
            f.missing(
                "title",
                "`incident` with `action: open`",
                "give the incident a `title:`",
                diags,
            );
        }
        IncidentAction::Update | IncidentAction::Resolve if spec.id.is_none() => {
            f.missing(
                "id",
                "`incident` with this action",
                "say which incident, e.g. `id: \"{{ steps.open.output.id }}\"`",
                diags,
            );
        }
        _ => {}
    }
    Some(spec)
}

fn compensation(node: &Node, diags: &mut Diagnostics) -> Option<Compensation> {
    let f = Fields::read(node, "`compensate`", COMPENSATE_KEYS, diags)?;
    let Some(uses) = f.get("uses") else {
        f.missing(
            "uses",
            "`compensate`",
            "say which plugin undoes the step: `uses: http@^1`",
            diags,
        );
        return None;
    };
    let (plugin, req) = plugin_ref(uses, diags)?;
    Some(Compensation {
        span: f.span(),
        plugin,
        req,
        with: f.get("with").map(|n| yaml::value(n, diags)),
        timeout: f
            .get("timeout")
            .and_then(|n| duration(n, "`compensate.timeout`", diags)),
        retry: f.get("retry").and_then(|n| retry(n, diags)),
    })
}
