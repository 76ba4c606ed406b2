//! Escalation policies: who is paged at each level, and where an escalation goes next.
//!
//! Pure: [`OnCall::paged`] says whom a level pages at an instant and [`next`] where an
//! unacknowledged escalation goes when a level's delay runs out; the executor keeps the
//! position durably and does the paging (`runtime/executor/escalate.rs`).

use std::time::Duration;

use super::{OnCall, Person};
pub use crate::dsl::escalation::TargetKind;

/// A policy's `services:` entry covering every service no other policy names.
pub const ANY_SERVICE: &str = "*";

/// A policy, checked.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Its id.
    pub id: String,
    /// The services whose incidents follow it.
    pub services: Vec<String>,
    /// How many times it starts over after its last level.
    pub repeat: u32,
    /// In order; never empty.
    pub levels: Vec<Level>,
}

/// One level.
#[derive(Debug, Clone)]
pub struct Level {
    /// How long it has to acknowledge before the next level is paged.
    pub delay: Duration,
    /// Who it pages.
    pub targets: Vec<(TargetKind, String)>,
    /// Page one of its people at a time, in turn, instead of all of them.
    pub round_robin: bool,
}

/// Where an escalation stands: a level of one pass over the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// The level, from 0.
    pub level: usize,
    /// The pass, from 0 (a policy with `repeat: 2` has passes 0, 1 and 2).
    pub pass: u32,
}

/// Where an escalation goes when the level at `at` was not acknowledged in time: the next
/// level, the first level of the next pass, or `None` when every pass is spent.
pub fn next(policy: &Policy, at: Position) -> Option<Position> {
    if at.level + 1 < policy.levels.len() {
        Some(Position {
            level: at.level + 1,
            pass: at.pass,
        })
    } else if at.pass < policy.repeat {
        Some(Position {
            level: 0,
            pass: at.pass + 1,
        })
    } else {
        None
    }
}

impl OnCall {
    /// The policy covering `service`: the one naming it, else the one naming `*`.
    pub fn policy_for(&self, service: &str) -> Option<&Policy> {
        let naming = |name: &str| {
            self.policies
                .values()
                .find(|p| p.services.iter().any(|s| s == name))
        };
        naming(service).or_else(|| naming(ANY_SERVICE))
    }

    /// The people `level` pages at `at`, each once, in the order its targets name them: a
    /// user, whoever a schedule names then (nobody in a gap), every member of a team. A
    /// round-robin level pages one of them: the `turn`-th, counting round.
    pub fn paged(
        &self,
        level: &Level,
        at: chrono::DateTime<chrono::Utc>,
        turn: usize,
    ) -> Vec<&Person> {
        let mut order: Vec<String> = Vec::new();
        for (kind, id) in &level.targets {
            let names: Vec<String> = match kind {
                TargetKind::User => vec![id.clone()],
                TargetKind::Team => self.teams.get(id).cloned().unwrap_or_default(),
                TargetKind::Schedule => match self.on_call(id, at) {
                    Some(Some(duty)) => vec![duty.user],
                    _ => Vec::new(),
                },
            };
            for n in names {
                if !order.contains(&n) {
                    order.push(n);
                }
            }
        }
        let people: Vec<&Person> = order.iter().filter_map(|id| self.people.get(id)).collect();
        if level.round_robin && !people.is_empty() {
            let i = turn % people.len();
            return vec![people[i]];
        }
        people
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Diagnostics;

    fn set(yaml: &str) -> OnCall {
        let mut diags = Diagnostics::default();
        let Some(crate::dsl::Definition::OnCall(f)) =
            crate::dsl::decode_any(yaml.as_bytes(), &mut diags)
        else {
            panic!("an on-call file: {diags:?}");
        };
        super::super::plan(vec![(f, diags)]).expect("plans")
    }

    const SET: &str = r#"
users:
  - { id: ann, contacts: [{ type: slack, secret: notify_ann }] }
  - { id: ben, contacts: [{ type: slack, secret: notify_ben }] }
  - { id: cat, contacts: [{ type: slack, secret: notify_cat }] }
teams:
  - { id: ops, members: [ben, ann, cat] }
schedules:
  - id: primary
    time_zone: UTC
    layers:
      - { name: day, start: "2026-01-05 00:00", rotation: 1d, users: [cat, ann] }
escalation_policies:
  - id: shop
    services: [shop, cart]
    repeat: 2
    levels:
      - { delay: 5m, targets: [{ schedule: primary }, { user: ann }] }
      - { delay: 10m, targets: [{ team: ops }], round_robin: true }
  - id: rest
    services: ["*"]
    levels:
      - { delay: 1m, targets: [{ team: ops }, { user: ann }] }
"#;

    fn ids(people: &[&Person]) -> Vec<String> {
        people.iter().map(|p| p.id.clone()).collect()
    }

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(s)
            .expect("a time")
            .with_timezone(&chrono::Utc)
    }

    #[test]
    fn an_unacknowledged_escalation_walks_every_level_of_every_pass() {
        let s = set(SET);
        let p = &s.policies["shop"];
        let mut walked = vec![(0, 0)];
        let mut pos = Position { level: 0, pass: 0 };
        while let Some(n) = next(p, pos) {
            walked.push((n.pass, n.level));
            pos = n;
        }
        assert_eq!(walked, [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]);
        let once = &s.policies["rest"];
        assert_eq!(next(once, Position { level: 0, pass: 0 }), None);
    }

    #[test]
    fn a_service_follows_the_policy_naming_it_else_the_catch_all() {
        let s = set(SET);
        let of = |svc: &str| s.policy_for(svc).map(|p| p.id.as_str());
        assert_eq!(of("cart"), Some("shop"));
        assert_eq!(of("billing"), Some("rest"));
    }

    #[test]
    fn a_level_pages_each_person_once_and_a_schedule_names_whoever_is_on_call_then() {
        let s = set(SET);
        let level = &s.policies["shop"].levels[0];
        // Day 0 of the rotation is cat's, day 1 ann's (who is also named as a user).
        assert_eq!(
            ids(&s.paged(level, at("2026-01-05T12:00:00Z"), 0)),
            ["cat", "ann"]
        );
        assert_eq!(ids(&s.paged(level, at("2026-01-06T12:00:00Z"), 0)), ["ann"]);
        let rest = &s.policies["rest"].levels[0];
        assert_eq!(
            ids(&s.paged(rest, at("2026-01-05T12:00:00Z"), 0)),
            ["ben", "ann", "cat"]
        );
    }

    #[test]
    fn a_round_robin_level_pages_one_person_at_a_time_in_turn() {
        let s = set(SET);
        let level = &s.policies["shop"].levels[1];
        let t = at("2026-01-05T12:00:00Z");
        let turns: Vec<Vec<String>> = (0..4).map(|turn| ids(&s.paged(level, t, turn))).collect();
        assert_eq!(turns, [vec!["ben"], vec!["ann"], vec!["cat"], vec!["ben"]]);
    }
}
