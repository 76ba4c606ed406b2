//! Who is on call at an instant: a schedule's layers (each a rotation of people handing off at
//! a local time, optionally restricted to some hours of some days) and its overrides.
//!
//! Pure: no I/O, no clock. Time is wall-clock time in the schedule's IANA zone, as on-call
//! people live it: a weekly rotation handing off on Monday at 09:00 hands off at 09:00 local
//! time on both sides of a daylight-saving change (PagerDuty's and Grafana OnCall's rule).
//! Layers are ordered; a later layer, where it has someone on call, takes precedence over the
//! earlier ones, and an override over every layer.

use chrono::{DateTime, Datelike, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// A schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// `[a-z0-9-]+`.
    pub name: String,
    /// The zone its layers' times are written in.
    pub time_zone: Tz,
    /// Lowest precedence first.
    pub layers: Vec<Layer>,
    /// Someone standing in for whoever the layers name, for a while.
    pub overrides: Vec<Override>,
}

/// One rotation.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Its name, for answers.
    pub name: String,
    /// When the first person's first turn starts (local time): also the handoff time.
    pub start: NaiveDateTime,
    /// How long a turn lasts, in wall-clock time.
    pub rotation: chrono::Duration,
    /// Who takes turns, in order.
    pub users: Vec<String>,
    /// When the layer covers (empty: always).
    pub restrictions: Vec<Restriction>,
}

/// A window the layer covers: on these days (empty: every day), from one local time to another
/// (a window ending at or before its start runs past midnight into the next day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    /// Days the window starts on.
    pub days: Vec<Weekday>,
    /// Local start.
    pub from: NaiveTime,
    /// Local end.
    pub to: NaiveTime,
}

/// One person on call instead of the layers, from an instant to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// Who.
    pub user: String,
    /// From (inclusive).
    pub from: DateTime<Utc>,
    /// Until (exclusive).
    pub to: DateTime<Utc>,
}

/// Who is on call, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnCall {
    /// The person.
    pub user: String,
    /// The layer that names them; `None` for an override.
    pub layer: Option<String>,
}

impl Restriction {
    fn covers(&self, local: NaiveDateTime) -> bool {
        let (day, time) = (local.date().weekday(), local.time());
        let starts_on = |d: Weekday| self.days.is_empty() || self.days.contains(&d);
        if self.from < self.to {
            starts_on(day) && self.from <= time && time < self.to
        } else {
            // Past midnight: today's part from `from`, or yesterday's window running into today.
            (starts_on(day) && time >= self.from) || (starts_on(day.pred()) && time < self.to)
        }
    }
}

impl Layer {
    /// The person this layer names at local time `local`, if it covers it.
    pub fn at(&self, local: NaiveDateTime) -> Option<&str> {
        if self.users.is_empty() || local < self.start || self.rotation <= chrono::Duration::zero()
        {
            return None;
        }
        if !self.restrictions.is_empty() && !self.restrictions.iter().any(|r| r.covers(local)) {
            return None;
        }
        let elapsed = (local - self.start).num_seconds();
        let turn = elapsed.checked_div(self.rotation.num_seconds())?;
        let n = i64::try_from(self.users.len()).ok()?;
        let i = usize::try_from(turn.rem_euclid(n)).ok()?;
        self.users.get(i).map(String::as_str)
    }
}

impl Schedule {
    /// Who is on call at `at`: an override's person, else the highest layer's that covers it.
    pub fn on_call(&self, at: DateTime<Utc>) -> Option<OnCall> {
        if let Some(o) = self
            .overrides
            .iter()
            .rev()
            .find(|o| o.from <= at && at < o.to)
        {
            return Some(OnCall {
                user: o.user.clone(),
                layer: None,
            });
        }
        let local = self
            .time_zone
            .from_utc_datetime(&at.naive_utc())
            .naive_local();
        self.layers.iter().rev().find_map(|l| {
            l.at(local).map(|u| OnCall {
                user: u.to_string(),
                layer: Some(l.name.clone()),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("a local time")
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("an RFC 3339 time")
            .with_timezone(&Utc)
    }

    /// Weekly primary rotation (alice, bob, carol) handing off on Mondays at 09:00 Berlin time;
    /// a business-hours layer (dave) Tuesday to Friday 09:00–17:00 above it; an override for erin.
    fn schedule() -> Schedule {
        Schedule {
            name: "platform".into(),
            time_zone: chrono_tz::Europe::Berlin,
            layers: vec![
                Layer {
                    name: "primary".into(),
                    start: local("2026-03-02 09:00"),
                    rotation: chrono::Duration::days(7),
                    users: vec!["alice".into(), "bob".into(), "carol".into()],
                    restrictions: vec![],
                },
                Layer {
                    name: "office".into(),
                    start: local("2026-03-02 00:00"),
                    rotation: chrono::Duration::days(7),
                    users: vec!["dave".into()],
                    restrictions: vec![Restriction {
                        days: vec![Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri],
                        from: NaiveTime::from_hms_opt(9, 0, 0).expect("09:00"),
                        to: NaiveTime::from_hms_opt(17, 0, 0).expect("17:00"),
                    }],
                },
            ],
            overrides: vec![Override {
                user: "erin".into(),
                from: utc("2026-04-04T10:00:00Z"),
                to: utc("2026-04-05T10:00:00Z"),
            }],
        }
    }

    #[test]
    fn ten_instants_across_a_rotation_an_override_restrictions_and_a_dst_change() {
        let s = schedule();
        // Berlin is UTC+1 until 2026-03-29 02:00 local, UTC+2 after.
        let cases = [
            // 08:59 local: before the first turn.
            ("2026-03-02T07:59:00Z", None, ""),
            // Monday 09:00: alice's first week.
            ("2026-03-02T08:00:00Z", Some("alice"), "primary"),
            // Tuesday 09:00: the office layer is on top.
            ("2026-03-03T08:00:00Z", Some("dave"), "office"),
            // Tuesday 17:00: office hours are over.
            ("2026-03-03T16:00:00Z", Some("alice"), "primary"),
            // Saturday.
            ("2026-03-07T12:00:00Z", Some("alice"), "primary"),
            // Monday 08:59: still alice's week; 09:00: bob's.
            ("2026-03-09T07:59:00Z", Some("alice"), "primary"),
            ("2026-03-09T08:00:00Z", Some("bob"), "primary"),
            // After the change to summer time the handoff stays at 09:00 local (07:00 UTC): at
            // 09:30 CEST it is bob's week, where counting in UTC would still say alice.
            ("2026-03-30T07:30:00Z", Some("bob"), "primary"),
            // The override.
            ("2026-04-04T12:00:00Z", Some("erin"), ""),
            // The override has ended: bob's week goes on.
            ("2026-04-05T10:00:00Z", Some("bob"), "primary"),
        ];
        for (at, who, layer) in cases {
            let got = s.on_call(utc(at));
            assert_eq!(
                got.as_ref().map(|o| o.user.as_str()),
                who,
                "at {at}: {got:?}"
            );
            if let Some(o) = got {
                assert_eq!(o.layer.as_deref().unwrap_or(""), layer, "at {at}");
            }
        }
    }

    #[test]
    fn a_window_past_midnight_covers_the_next_morning() {
        let r = Restriction {
            days: vec![Weekday::Fri],
            from: NaiveTime::from_hms_opt(22, 0, 0).expect("22:00"),
            to: NaiveTime::from_hms_opt(6, 0, 0).expect("06:00"),
        };
        assert!(r.covers(local("2026-03-06 23:00"))); // Friday night
        assert!(r.covers(local("2026-03-07 05:59"))); // Saturday morning
        assert!(!r.covers(local("2026-03-07 06:00")));
        assert!(!r.covers(local("2026-03-07 23:00"))); // Saturday night: not a Friday window
    }
}
