//! Escalation as authored: the `escalation_policies:` of an on-call file, and a workflow's
//! `escalate:` step that follows one.
//!
//! Checks shapes, names and durations; whether the people, schedules and teams a level names
//! exist (perhaps in another file) is `oncall::plan`'s job, and which policy a step follows is
//! known only when it starts.

use std::time::Duration;

use marked_yaml::types::Node;

use super::workflow::duration;
use super::yaml::{self, Fields, Spanned};
use crate::diag::{Diagnostic, Diagnostics, Span};

/// How many times a policy may run again after its last level (PagerDuty's limit too).
pub const MAX_REPEATS: i64 = 9;

/// A policy as written.
#[derive(Debug, Clone)]
pub struct PolicyDef {
    /// `[a-z0-9-]+`.
    pub id: Spanned<String>,
    /// The services whose incidents follow it.
    pub services: Vec<Spanned<String>>,
    /// How many times it starts over after its last level.
    pub repeat: u32,
    /// In order.
    pub levels: Vec<LevelDef>,
}

/// One level as written.
#[derive(Debug, Clone)]
pub struct LevelDef {
    /// How long the level has to acknowledge before the next one is paged.
    pub delay: Duration,
    /// Who it pages.
    pub targets: Vec<TargetDef>,
    /// Page one of its people at a time instead of all of them.
    pub round_robin: bool,
}

/// Who a level pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// One person.
    User,
    /// Whoever a schedule names at the moment of paging.
    Schedule,
    /// Every member of a team.
    Team,
}

impl TargetKind {
    /// As written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Schedule => "schedule",
            Self::Team => "team",
        }
    }
}

/// A target as written.
#[derive(Debug, Clone)]
pub struct TargetDef {
    /// User, schedule or team.
    pub kind: TargetKind,
    /// Its id.
    pub id: Spanned<String>,
}

/// A workflow's `escalate:` step.
#[derive(Debug, Clone)]
pub struct EscalateSpec {
    /// Where the mapping starts.
    pub span: Span,
    /// The incident (a template, usually an earlier step's output id).
    pub incident: Spanned<String>,
    /// The policy; the one covering the incident's service when absent.
    pub policy: Option<Spanned<String>>,
    /// The workflow each page runs (`page` when absent).
    pub page: Option<Spanned<String>>,
}

const POLICY_KEYS: &[&str] = &["id", "services", "repeat", "levels"];
const LEVEL_KEYS: &[&str] = &["delay", "targets", "round_robin"];
const TARGET_KEYS: &[&str] = &["user", "schedule", "team"];
const STEP_KEYS: &[&str] = &["incident", "policy", "page"];

/// Decodes the `escalation_policies:` list of an on-call file.
pub(super) fn policies(node: &Node, diags: &mut Diagnostics) -> Vec<PolicyDef> {
    let Some(items) = node.as_sequence() else {
        diags.push(Diagnostic::new(
            "wrong-type",
            yaml::span_of(node),
            format!(
                "`escalation_policies` must be a list, found {}",
                yaml::shape(node)
            ),
        ));
        return Vec::new();
    };
    items.iter().filter_map(|p| policy(p, diags)).collect()
}

fn policy(node: &Node, diags: &mut Diagnostics) -> Option<PolicyDef> {
    let f = Fields::read(node, "escalation policy", POLICY_KEYS, diags)?;
    let id = match f.get("id") {
        Some(n) => yaml::string(n, "policy id", diags)
            .and_then(|s| super::valid_name(s, "policy id", diags)),
        None => {
            f.missing("id", "escalation policy", "add `id: a-name`", diags);
            None
        }
    };
    let services = f
        .get("services")
        .map(|n| yaml::strings(n, "`services`", diags))
        .unwrap_or_default();
    let repeat = f
        .get("repeat")
        .and_then(|n| yaml::integer(n, "`repeat`", 0, MAX_REPEATS, diags))
        .map_or(0, |r| u32::try_from(r.value).unwrap_or(0));
    let mut levels = Vec::new();
    match f.get("levels") {
        Some(n) => {
            yaml::empty_list(
                n,
                "`levels`",
                "give at least one level: `levels: [{ delay: 15m, targets: [{ schedule: primary }] }]`",
                diags,
            );
            for l in n.as_sequence().map(|s| s.iter().collect()).unwrap_or_else(|| {
                diags.push(Diagnostic::new(
                    "wrong-type",
                    yaml::span_of(n),
                    format!("`levels` must be a list, found {}", yaml::shape(n)),
                ));
                Vec::new()
            }) {
                if let Some(level) = level(l, diags) {
                    levels.push(level);
                }
            }
        }
        None => f.missing(
            "levels",
            "escalation policy",
            "say who is paged, in order: `levels: [{ delay: 15m, targets: [{ schedule: primary }] }]`",
            diags,
        ),
    }
    Some(PolicyDef {
        id: id?,
        services,
        repeat,
        levels,
    })
}

fn level(node: &Node, diags: &mut Diagnostics) -> Option<LevelDef> {
    let f = Fields::read(node, "escalation level", LEVEL_KEYS, diags)?;
    let delay = match f.get("delay") {
        Some(n) => duration(n, "`delay`", diags).map(|d| d.value),
        None => {
            f.missing(
                "delay",
                "escalation level",
                "say how long it has to acknowledge: `delay: 15m`",
                diags,
            );
            None
        }
    };
    let round_robin = f
        .get("round_robin")
        .and_then(|n| yaml::boolean(n, "`round_robin`", diags))
        .unwrap_or(false);
    let mut targets = Vec::new();
    match f.get("targets") {
        Some(n) => {
            yaml::empty_list(
                n,
                "`targets`",
                "name who is paged: `targets: [{ user: alice }, { schedule: primary }]`",
                diags,
            );
            for t in n
                .as_sequence()
                .map(|s| s.iter().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                if let Some(target) = target(t, diags) {
                    targets.push(target);
                }
            }
        }
        None => f.missing(
            "targets",
            "escalation level",
            "name who is paged: `targets: [{ user: alice }, { schedule: primary }]`",
            diags,
        ),
    }
    Some(LevelDef {
        delay: delay?,
        targets,
        round_robin,
    })
}

fn target(node: &Node, diags: &mut Diagnostics) -> Option<TargetDef> {
    let f = Fields::read(node, "escalation target", TARGET_KEYS, diags)?;
    let present: Vec<&str> = f.keys().filter(|k| TARGET_KEYS.contains(k)).collect();
    let [key] = present.as_slice() else {
        diags.push(
            Diagnostic::new(
                "invalid-target",
                f.span(),
                "an escalation target names exactly one of `user`, `schedule` or `team`",
            )
            .help("write one target per entry: `- { user: alice }`"),
        );
        return None;
    };
    let kind = match *key {
        "user" => TargetKind::User,
        "schedule" => TargetKind::Schedule,
        _ => TargetKind::Team,
    };
    let id = f
        .get(key)
        .and_then(|n| yaml::string(n, &format!("`{key}`"), diags))?;
    Some(TargetDef { kind, id })
}

/// Decodes a step's `escalate:` mapping.
pub(super) fn step(node: &Node, diags: &mut Diagnostics) -> Option<EscalateSpec> {
    let f = Fields::read(node, "`escalate`", STEP_KEYS, diags)?;
    let text = |key: &str, diags: &mut Diagnostics| {
        f.get(key)
            .and_then(|n| yaml::string(n, &format!("`escalate.{key}`"), diags))
    };
    let incident = text("incident", diags);
    let policy = text("policy", diags);
    let page = text("page", diags);
    if incident.is_none() && f.get("incident").is_none() {
        f.missing(
            "incident",
            "`escalate`",
            "say which incident: `incident: \"{{ steps.open.output.id }}\"`",
            diags,
        );
    }
    for name in [&policy, &page].into_iter().flatten() {
        if !super::is_valid_name(&name.value) {
            diags.push(
                Diagnostic::new(
                    "invalid-name",
                    name.span,
                    format!("`{}` is not a valid name ([a-z0-9-]+)", name.value),
                )
                .help("name a policy of oncall/ or a workflow, in lower case"),
            );
        }
    }
    Some(EscalateSpec {
        span: f.span(),
        incident: incident?,
        policy,
        page,
    })
}
