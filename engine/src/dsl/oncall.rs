//! People, teams and on-call schedules as authored (`oncall/*.yaml`), and their decoder.
//!
//! Checks shapes, names, zones, times and durations; whether the people a team or a schedule
//! names exist (perhaps in another file) is `oncall::plan`'s job.

use chrono::{NaiveDateTime, NaiveTime, Weekday};
use marked_yaml::types::Node;

use super::duration::parse_duration;
use super::yaml::{self, Fields, Spanned, span_of};
use crate::diag::{Diagnostic, Diagnostics, nearest};

/// One file of people, teams and schedules.
#[derive(Debug, Clone, Default)]
pub struct OnCallFile {
    /// People.
    pub users: Vec<User>,
    /// Teams.
    pub teams: Vec<Team>,
    /// Schedules.
    pub schedules: Vec<ScheduleDef>,
    /// Escalation policies.
    pub policies: Vec<super::escalation::PolicyDef>,
}

/// A person who can be paged.
#[derive(Debug, Clone)]
pub struct User {
    /// `[a-z0-9-]+`.
    pub id: Spanned<String>,
    /// Their name.
    pub name: Option<String>,
    /// How to reach them.
    pub contacts: Vec<Contact>,
}

/// A way to reach someone: the kind, and the secret holding the address (a webhook URL or a
/// PagerDuty routing key), so no address is written in the file.
#[derive(Debug, Clone)]
pub struct Contact {
    /// `slack` (a Slack-compatible webhook), `pagerduty` (a routing key) or `webhook`.
    pub kind: Spanned<String>,
    /// The secret's name.
    pub secret: Spanned<String>,
}

/// What every contact's secret is named with: pages go through the `notify` plugin, whose
/// `channel` names the secret `notify_<channel>`.
pub const PAGE_SECRET_PREFIX: &str = "notify_";

/// The kinds of contact.
pub const CONTACT_KINDS: &[&str] = &["slack", "pagerduty", "webhook"];

/// A team.
#[derive(Debug, Clone)]
pub struct Team {
    /// `[a-z0-9-]+`.
    pub id: Spanned<String>,
    /// Its people.
    pub members: Vec<Spanned<String>>,
}

/// A schedule as written.
#[derive(Debug, Clone)]
pub struct ScheduleDef {
    /// `[a-z0-9-]+`.
    pub id: Spanned<String>,
    /// The IANA zone of its times.
    pub time_zone: chrono_tz::Tz,
    /// Lowest precedence first.
    pub layers: Vec<LayerDef>,
    /// Stand-ins.
    pub overrides: Vec<OverrideDef>,
}

/// A layer as written.
#[derive(Debug, Clone)]
pub struct LayerDef {
    /// Its name.
    pub name: String,
    /// First handoff, local time.
    pub start: NaiveDateTime,
    /// Turn length.
    pub rotation: chrono::Duration,
    /// Who takes turns.
    pub users: Vec<Spanned<String>>,
    /// When it covers.
    pub restrictions: Vec<crate::oncall::schedule::Restriction>,
}

/// An override as written.
#[derive(Debug, Clone)]
pub struct OverrideDef {
    /// Who.
    pub user: Spanned<String>,
    /// From.
    pub from: chrono::DateTime<chrono::Utc>,
    /// Until.
    pub to: chrono::DateTime<chrono::Utc>,
}

const KEYS: &[&str] = &["users", "teams", "schedules", "escalation_policies"];
const USER_KEYS: &[&str] = &["id", "name", "contacts"];
const CONTACT_KEYS: &[&str] = &["type", "secret"];
const TEAM_KEYS: &[&str] = &["id", "members"];
const SCHEDULE_KEYS: &[&str] = &["id", "time_zone", "layers", "overrides"];
const LAYER_KEYS: &[&str] = &["name", "start", "rotation", "users", "restrictions"];
const RESTRICTION_KEYS: &[&str] = &["days", "from", "to"];
const OVERRIDE_KEYS: &[&str] = &["user", "from", "to"];
const DAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Whether a parsed file is an on-call file (it has `users:`, `teams:`, `schedules:` or
/// `escalation_policies:`).
pub(super) fn looks_like_oncall(node: &Node) -> bool {
    node.as_mapping().is_some_and(|m| {
        m.get_node("steps").is_none() && KEYS.iter().any(|k| m.get_node(k).is_some())
    })
}

fn name(node: &Node, what: &str, diags: &mut Diagnostics) -> Option<Spanned<String>> {
    let s = yaml::string(node, what, diags)?;
    super::valid_name(s, what, diags)
}

fn list<'a>(node: Option<&'a Node>, what: &str, diags: &mut Diagnostics) -> Vec<&'a Node> {
    match node {
        None => Vec::new(),
        Some(n) => match n.as_sequence() {
            Some(items) => items.iter().collect(),
            None => {
                diags.push(Diagnostic::new(
                    "wrong-type",
                    span_of(n),
                    format!("{what} must be a list, found {}", yaml::shape(n)),
                ));
                Vec::new()
            }
        },
    }
}

fn id_of(f: &Fields<'_>, what: &str, diags: &mut Diagnostics) -> Option<Spanned<String>> {
    match f.get("id") {
        Some(n) => name(n, &format!("{what} id"), diags),
        None => {
            f.missing("id", what, "add `id: a-name`", diags);
            None
        }
    }
}

/// Decodes an on-call file; `None` when nothing usable could be read.
pub fn decode_oncall(bytes: &[u8], diags: &mut Diagnostics) -> Option<OnCallFile> {
    let node = yaml::parse(bytes, diags)?;
    decode_node(&node, diags)
}

pub(super) fn decode_node(node: &Node, diags: &mut Diagnostics) -> Option<OnCallFile> {
    let f = Fields::read(node, "on-call file", KEYS, diags)?;
    let mut out = OnCallFile::default();
    for u in list(f.get("users"), "`users`", diags) {
        let Some(uf) = Fields::read(u, "user", USER_KEYS, diags) else {
            continue;
        };
        let id = id_of(&uf, "user", diags);
        let name = uf
            .get("name")
            .and_then(|n| yaml::string(n, "`name`", diags))
            .map(|s| s.value);
        let mut contacts = Vec::new();
        for c in list(uf.get("contacts"), "`contacts`", diags) {
            let Some(cf) = Fields::read(c, "contact", CONTACT_KEYS, diags) else {
                continue;
            };
            let kind = match cf.get("type") {
                Some(n) => yaml::string(n, "`type`", diags).and_then(|k| {
                    if CONTACT_KINDS.contains(&k.value.as_str()) {
                        Some(k)
                    } else {
                        let mut d = Diagnostic::new(
                            "invalid-value",
                            k.span,
                            format!("unknown contact type `{}`", k.value),
                        );
                        d = match nearest(&k.value, CONTACT_KINDS.iter().copied()) {
                            Some(n) => d.help(format!("did you mean `{n}`?")),
                            None => d.help(format!("use one of {}", CONTACT_KINDS.join(", "))),
                        };
                        diags.push(d);
                        None
                    }
                }),
                None => {
                    cf.missing(
                        "type",
                        "contact",
                        "add `type: slack`, `pagerduty` or `webhook`",
                        diags,
                    );
                    None
                }
            };
            let secret = match cf.get("secret") {
                Some(n) => yaml::string(n, "`secret`", diags).and_then(|s| {
                    match s.value.strip_prefix(PAGE_SECRET_PREFIX) {
                        Some(rest) if !rest.is_empty() => Some(s),
                        _ => {
                            diags.push(
                                Diagnostic::new(
                                    "invalid-value",
                                    s.span,
                                    format!(
                                        "contact secret `{}` does not start with `{PAGE_SECRET_PREFIX}`",
                                        s.value
                                    ),
                                )
                                .help(format!(
                                    "pages go through the `notify` plugin, which reads only secrets named `{PAGE_SECRET_PREFIX}…`: rename it, e.g. `{PAGE_SECRET_PREFIX}{}`",
                                    s.value.trim_start_matches('_')
                                )),
                            );
                            None
                        }
                    }
                }),
                None => {
                    cf.missing(
                        "secret",
                        "contact",
                        "name the secret holding the webhook URL or routing key",
                        diags,
                    );
                    None
                }
            };
            if let (Some(kind), Some(secret)) = (kind, secret) {
                contacts.push(Contact { kind, secret });
            }
        }
        if let Some(id) = id {
            out.users.push(User { id, name, contacts });
        }
    }
    for t in list(f.get("teams"), "`teams`", diags) {
        let Some(tf) = Fields::read(t, "team", TEAM_KEYS, diags) else {
            continue;
        };
        let id = id_of(&tf, "team", diags);
        let members = tf
            .get("members")
            .map(|n| yaml::strings(n, "`members`", diags))
            .unwrap_or_default();
        if let Some(id) = id {
            out.teams.push(Team { id, members });
        }
    }
    for s in list(f.get("schedules"), "`schedules`", diags) {
        if let Some(def) = schedule(s, diags) {
            out.schedules.push(def);
        }
    }
    if let Some(n) = f.get("escalation_policies") {
        out.policies = super::escalation::policies(n, diags);
    }
    Some(out)
}

fn schedule(node: &Node, diags: &mut Diagnostics) -> Option<ScheduleDef> {
    let f = Fields::read(node, "schedule", SCHEDULE_KEYS, diags)?;
    let id = id_of(&f, "schedule", diags);
    let time_zone = match f.get("time_zone") {
        Some(n) => yaml::string(n, "`time_zone`", diags).and_then(|z| {
            match z.value.parse::<chrono_tz::Tz>() {
                Ok(tz) => Some(tz),
                Err(_) => {
                    let mut d = Diagnostic::new(
                        "invalid-value",
                        z.span,
                        format!("`{}` is not an IANA time zone", z.value),
                    );
                    d = match nearest(&z.value, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name())) {
                        Some(n) => d.help(format!("did you mean `{n}`?")),
                        None => d.help(
                            "write a zone such as `Europe/Berlin`, `America/New_York` or `UTC`",
                        ),
                    };
                    diags.push(d);
                    None
                }
            }
        }),
        None => {
            f.missing(
                "time_zone",
                "schedule",
                "add `time_zone: Europe/Berlin` (an IANA zone)",
                diags,
            );
            None
        }
    };
    let mut layers = Vec::new();
    let layer_nodes = list(f.get("layers"), "`layers`", diags);
    if f.get("layers").is_none() {
        f.missing("layers", "schedule", "add at least one layer: `layers: [{ name: primary, start: …, rotation: 7d, users: [...] }]`", diags);
    }
    for l in layer_nodes {
        if let Some(layer) = layer(l, diags) {
            layers.push(layer);
        }
    }
    let mut overrides = Vec::new();
    for o in list(f.get("overrides"), "`overrides`", diags) {
        let Some(of) = Fields::read(o, "override", OVERRIDE_KEYS, diags) else {
            continue;
        };
        let user = match of.get("user") {
            Some(n) => yaml::string(n, "`user`", diags),
            None => {
                of.missing(
                    "user",
                    "override",
                    "say who stands in: `user: alice`",
                    diags,
                );
                None
            }
        };
        let at = |key: &str, diags: &mut Diagnostics| -> Option<chrono::DateTime<chrono::Utc>> {
            let Some(n) = of.get(key) else {
                of.missing(
                    key,
                    "override",
                    "give it as an RFC 3339 time: `2026-12-24T00:00:00Z`",
                    diags,
                );
                return None;
            };
            let s = yaml::string(n, &format!("`{key}`"), diags)?;
            match chrono::DateTime::parse_from_rfc3339(&s.value) {
                Ok(t) => Some(t.with_timezone(&chrono::Utc)),
                Err(e) => {
                    diags.push(
                        Diagnostic::new(
                            "invalid-time",
                            s.span,
                            format!("`{}` is not an RFC 3339 time: {e}", s.value),
                        )
                        .help("write e.g. `2026-12-24T00:00:00+01:00`"),
                    );
                    None
                }
            }
        };
        let (from, to) = (at("from", diags), at("to", diags));
        if let (Some(from), Some(to)) = (from, to)
            && to <= from
        {
            diags.push(
                Diagnostic::new(
                    "invalid-value",
                    of.span(),
                    "the override ends before it starts",
                )
                .help("`to` must come after `from`"),
            );
            continue;
        }
        if let (Some(user), Some(from), Some(to)) = (user, from, to) {
            overrides.push(OverrideDef { user, from, to });
        }
    }
    Some(ScheduleDef {
        id: id?,
        time_zone: time_zone?,
        layers,
        overrides,
    })
}

fn local_time(node: &Node, what: &str, diags: &mut Diagnostics) -> Option<NaiveTime> {
    let s = yaml::string(node, what, diags)?;
    match NaiveTime::parse_from_str(&s.value, "%H:%M") {
        Ok(t) => Some(t),
        Err(_) => {
            diags.push(
                Diagnostic::new(
                    "invalid-time",
                    s.span,
                    format!("{what} `{}` is not a time of day", s.value),
                )
                .help("write `HH:MM`, e.g. `09:00`"),
            );
            None
        }
    }
}

fn layer(node: &Node, diags: &mut Diagnostics) -> Option<LayerDef> {
    let f = Fields::read(node, "layer", LAYER_KEYS, diags)?;
    let name = f
        .get("name")
        .and_then(|n| yaml::string(n, "`name`", diags))
        .map(|s| s.value);
    let start = match f.get("start") {
        Some(n) => yaml::string(n, "`start`", diags).and_then(|s| {
            match NaiveDateTime::parse_from_str(&s.value, "%Y-%m-%d %H:%M")
                .or_else(|_| NaiveDateTime::parse_from_str(&s.value, "%Y-%m-%dT%H:%M"))
            {
                Ok(t) => Some(t),
                Err(_) => {
                    diags.push(
                        Diagnostic::new(
                            "invalid-time",
                            s.span,
                            format!("`start: {}` is not a local date and time", s.value),
                        )
                        .help("write the first handoff in the schedule's zone: `2026-03-02 09:00`"),
                    );
                    None
                }
            }
        }),
        None => {
            f.missing(
                "start",
                "layer",
                "add the first handoff: `start: \"2026-03-02 09:00\"`",
                diags,
            );
            None
        }
    };
    let rotation = match f.get("rotation") {
        Some(n) => {
            yaml::string(n, "`rotation`", diags).and_then(|s| match parse_duration(&s.value) {
                Ok(d) if !d.is_zero() => chrono::Duration::from_std(d).ok(),
                Ok(_) => {
                    diags.push(
                        Diagnostic::new(
                            "invalid-duration",
                            s.span,
                            "`rotation` must be longer than zero",
                        )
                        .help("write e.g. `1d` or `7d`"),
                    );
                    None
                }
                Err(e) => {
                    diags.push(
                        Diagnostic::new("invalid-duration", s.span, format!("`rotation`: {e}"))
                            .help("write e.g. `12h`, `1d` or `7d`"),
                    );
                    None
                }
            })
        }
        None => {
            f.missing(
                "rotation",
                "layer",
                "add how long a turn lasts: `rotation: 7d`",
                diags,
            );
            None
        }
    };
    let users = match f.get("users") {
        Some(n) => {
            yaml::empty_list(
                n,
                "`users`",
                "name who takes turns: `users: [alice, bob]`",
                diags,
            );
            yaml::strings(n, "`users`", diags)
        }
        None => {
            f.missing(
                "users",
                "layer",
                "name who takes turns: `users: [alice, bob]`",
                diags,
            );
            Vec::new()
        }
    };
    let mut restrictions = Vec::new();
    for r in list(f.get("restrictions"), "`restrictions`", diags) {
        let Some(rf) = Fields::read(r, "restriction", RESTRICTION_KEYS, diags) else {
            continue;
        };
        let mut days = Vec::new();
        if let Some(n) = rf.get("days") {
            for d in yaml::strings(n, "`days`", diags) {
                match DAYS.iter().position(|x| *x == d.value) {
                    Some(i) => days.push(
                        Weekday::try_from(u8::try_from(i).unwrap_or(0)).unwrap_or(Weekday::Mon),
                    ),
                    None => {
                        let mut diag = Diagnostic::new(
                            "invalid-value",
                            d.span,
                            format!("unknown day `{}`", d.value),
                        );
                        diag = match nearest(&d.value, DAYS.iter().copied()) {
                            Some(n) => diag.help(format!("did you mean `{n}`?")),
                            None => diag.help(format!("days are {}", DAYS.join(", "))),
                        };
                        diags.push(diag);
                    }
                }
            }
        }
        let from = match rf.get("from") {
            Some(n) => local_time(n, "`from`", diags),
            None => {
                rf.missing("from", "restriction", "add `from: \"09:00\"`", diags);
                None
            }
        };
        let to = match rf.get("to") {
            Some(n) => local_time(n, "`to`", diags),
            None => {
                rf.missing("to", "restriction", "add `to: \"17:00\"`", diags);
                None
            }
        };
        if let (Some(from), Some(to)) = (from, to) {
            restrictions.push(crate::oncall::schedule::Restriction { days, from, to });
        }
    }
    Some(LayerDef {
        name: name.unwrap_or_else(|| "layer".into()),
        start: start?,
        rotation: rotation?,
        users,
        restrictions,
    })
}
