//! People, teams and on-call schedules (`oncall/*.yaml`): planned as one set, so a schedule in
//! one file may name people of another; [`OnCall::on_call`] says who is on call at an instant.
//!
//! Pure: files in, a checked set or every problem out. Escalation policies (`policy`) page
//! the people these name.

pub mod files;
pub mod policy;
pub mod schedule;

use std::collections::BTreeMap;

use crate::diag::{Diagnostic, Diagnostics, nearest};
use crate::dsl::oncall::{Contact, OnCallFile};
pub use policy::{Level, Policy, Position};
pub use schedule::{Layer, OnCall as OnDuty, Override, Restriction, Schedule};

/// A person.
#[derive(Debug, Clone)]
pub struct Person {
    /// Their id.
    pub id: String,
    /// Their name.
    pub name: Option<String>,
    /// How to reach them: kind and secret.
    pub contacts: Vec<(String, String)>,
}

/// Every person, team and schedule, checked together.
#[derive(Debug, Clone, Default)]
pub struct OnCall {
    /// People by id.
    pub people: BTreeMap<String, Person>,
    /// Teams by id: their members.
    pub teams: BTreeMap<String, Vec<String>>,
    /// Schedules by id.
    pub schedules: BTreeMap<String, Schedule>,
    /// Escalation policies by id.
    pub policies: BTreeMap<String, Policy>,
}

impl OnCall {
    /// Who is on call on `schedule` at `at`; `None` when no schedule has that id.
    pub fn on_call(
        &self,
        schedule: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Option<Option<OnDuty>> {
        self.schedules.get(schedule).map(|s| s.on_call(at))
    }
}

/// Plans decoded files (each with its own diagnostics, in the same order) into one set;
/// `Err` holds every file's problems, in that order, when any has one.
pub fn plan(files: Vec<(OnCallFile, Diagnostics)>) -> Result<OnCall, Vec<Vec<Diagnostic>>> {
    let mut set = OnCall::default();
    let (files, mut all): (Vec<OnCallFile>, Vec<Diagnostics>) = files.into_iter().unzip();
    // First every person, so references may cross files.
    for (file, diags) in files.iter().zip(all.iter_mut()) {
        for u in &file.users {
            if set.people.contains_key(&u.id.value) {
                diags.push(Diagnostic::new(
                    "duplicate-id",
                    u.id.span,
                    format!("user `{}` is defined twice", u.id.value),
                ));
                continue;
            }
            set.people.insert(
                u.id.value.clone(),
                Person {
                    id: u.id.value.clone(),
                    name: u.name.clone(),
                    contacts: u
                        .contacts
                        .iter()
                        .map(|Contact { kind, secret }| (kind.value.clone(), secret.value.clone()))
                        .collect(),
                },
            );
        }
    }
    let known = |who: &crate::dsl::Spanned<String>,
                 people: &BTreeMap<String, Person>,
                 diags: &mut Diagnostics| {
        if people.contains_key(&who.value) {
            return true;
        }
        let mut d = Diagnostic::new(
            "unknown-user",
            who.span,
            format!("user `{}` is not defined", who.value),
        );
        d = match nearest(&who.value, people.keys().map(String::as_str)) {
            Some(n) => d.help(format!("did you mean `{n}`?")),
            None => d.help("define them under `users:` in a file of oncall/"),
        };
        diags.push(d);
        false
    };
    for (file, diags) in files.iter().zip(all.iter_mut()) {
        for t in &file.teams {
            let members: Vec<String> = t
                .members
                .iter()
                .filter(|m| known(m, &set.people, diags))
                .map(|m| m.value.clone())
                .collect();
            if set.teams.insert(t.id.value.clone(), members).is_some() {
                diags.push(Diagnostic::new(
                    "duplicate-id",
                    t.id.span,
                    format!("team `{}` is defined twice", t.id.value),
                ));
            }
        }
        for s in &file.schedules {
            if s.id.value == files::RESERVED {
                diags.push(
                    Diagnostic::new(
                        "reserved-name",
                        s.id.span,
                        format!("`{}` cannot name a schedule: `/v1/oncall/files` lists the on-call files", files::RESERVED),
                    )
                    .help("choose another id"),
                );
            }
            let layers = s
                .layers
                .iter()
                .map(|l| Layer {
                    name: l.name.clone(),
                    start: l.start,
                    rotation: l.rotation,
                    users: l
                        .users
                        .iter()
                        .filter(|u| known(u, &set.people, diags))
                        .map(|u| u.value.clone())
                        .collect(),
                    restrictions: l.restrictions.clone(),
                })
                .collect();
            let overrides = s
                .overrides
                .iter()
                .filter(|o| known(&o.user, &set.people, diags))
                .map(|o| Override {
                    user: o.user.value.clone(),
                    from: o.from,
                    to: o.to,
                })
                .collect();
            let schedule = Schedule {
                name: s.id.value.clone(),
                time_zone: s.time_zone,
                layers,
                overrides,
            };
            if set.schedules.insert(s.id.value.clone(), schedule).is_some() {
                diags.push(Diagnostic::new(
                    "duplicate-id",
                    s.id.span,
                    format!("schedule `{}` is defined twice", s.id.value),
                ));
            }
        }
    }
    // Policies last: their levels may name any person, schedule or team of any file.
    let mut services: BTreeMap<String, String> = BTreeMap::new();
    for (file, diags) in files.iter().zip(all.iter_mut()) {
        for p in &file.policies {
            if let Some(policy) = plan_policy(p, &set, &mut services, diags)
                && set.policies.insert(p.id.value.clone(), policy).is_some()
            {
                diags.push(Diagnostic::new(
                    "duplicate-id",
                    p.id.span,
                    format!("escalation policy `{}` is defined twice", p.id.value),
                ));
            }
        }
    }
    if all.iter().all(Diagnostics::is_empty) {
        Ok(set)
    } else {
        Err(all.into_iter().map(Diagnostics::into_sorted).collect())
    }
}

/// Checks one policy against the people, schedules and teams of the set; `services` holds
/// which policy already covers each service.
fn plan_policy(
    p: &crate::dsl::escalation::PolicyDef,
    set: &OnCall,
    services: &mut BTreeMap<String, String>,
    diags: &mut Diagnostics,
) -> Option<Policy> {
    use crate::dsl::escalation::TargetKind;
    let mut ok = true;
    for s in &p.services {
        if let Some(other) = services.insert(s.value.clone(), p.id.value.clone()) {
            diags.push(
                Diagnostic::new(
                    "duplicate-service",
                    s.span,
                    format!("service `{}` already follows policy `{other}`", s.value),
                )
                .help("a service follows one escalation policy: remove it from one of them"),
            );
            ok = false;
        }
    }
    let mut levels = Vec::new();
    for l in &p.levels {
        let mut targets = Vec::new();
        for t in &l.targets {
            let known: Vec<&str> = match t.kind {
                TargetKind::User => set.people.keys().map(String::as_str).collect(),
                TargetKind::Schedule => set.schedules.keys().map(String::as_str).collect(),
                TargetKind::Team => set.teams.keys().map(String::as_str).collect(),
            };
            if known.contains(&t.id.value.as_str()) {
                targets.push((t.kind, t.id.value.clone()));
                continue;
            }
            let what = t.kind.as_str();
            let code = match t.kind {
                TargetKind::User => "unknown-user",
                TargetKind::Schedule => "unknown-schedule",
                TargetKind::Team => "unknown-team",
            };
            let mut d = Diagnostic::new(
                code,
                t.id.span,
                format!("{what} `{}` is not defined", t.id.value),
            );
            d = match nearest(&t.id.value, known.iter().copied()) {
                Some(n) => d.help(format!("did you mean `{n}`?")),
                None => d.help(format!("define it under `{what}s:` in a file of oncall/")),
            };
            diags.push(d);
            ok = false;
        }
        levels.push(Level {
            delay: l.delay,
            targets,
            round_robin: l.round_robin,
        });
    }
    (ok && !levels.is_empty()).then(|| Policy {
        id: p.id.value.clone(),
        services: p.services.iter().map(|s| s.value.clone()).collect(),
        repeat: p.repeat,
        levels,
    })
}
