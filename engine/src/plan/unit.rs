//! The name of one unit of a run: a step, one item of a fan-out, an `on_failure` step, or the
//! compensation of a step or item.
//!
//! Units are stored as text (`id`, `id#N`, `!id`, `~id`, `~id#N`) in the steps table and in
//! the idempotency key a plugin sees; the text is parsed once, where it is read, and the rest
//! of the engine matches on the variants. Step ids are `[a-z][a-z0-9_-]*`, so the markers
//! never collide with an id. Pure data: knows nothing of runs or storage.

use std::fmt;

/// One unit of a run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnitKey {
    /// A main step (`id`). For a fan-out step this is the parent that collects its items.
    Step(String),
    /// Item N of a fan-out step (`id#N`).
    Item(String, usize),
    /// A step of `on_failure` (`!id`).
    OnFailure(String),
    /// The compensation of a main step, or of one of its items (`~id`, `~id#N`).
    Compensation(String, Option<usize>),
}

impl UnitKey {
    /// The id of the workflow step the unit belongs to.
    pub fn step_id(&self) -> &str {
        match self {
            UnitKey::Step(id)
            | UnitKey::Item(id, _)
            | UnitKey::OnFailure(id)
            | UnitKey::Compensation(id, _) => id,
        }
    }

    /// The fan-out item, for an item or its compensation.
    pub fn item(&self) -> Option<usize> {
        match self {
            UnitKey::Item(_, n) => Some(*n),
            UnitKey::Compensation(_, n) => *n,
            UnitKey::Step(_) | UnitKey::OnFailure(_) => None,
        }
    }

    /// Whether the unit is part of the main DAG (a step or an item), as opposed to an
    /// `on_failure` step or a compensation.
    pub fn is_main(&self) -> bool {
        matches!(self, UnitKey::Step(_) | UnitKey::Item(..))
    }

    /// Whether the unit is a compensation.
    pub fn is_compensation(&self) -> bool {
        matches!(self, UnitKey::Compensation(..))
    }

    /// The compensation of this unit (a main step or item); `None` for other units.
    pub fn compensation(&self) -> Option<UnitKey> {
        match self {
            UnitKey::Step(id) => Some(UnitKey::Compensation(id.clone(), None)),
            UnitKey::Item(id, n) => Some(UnitKey::Compensation(id.clone(), Some(*n))),
            UnitKey::OnFailure(_) | UnitKey::Compensation(..) => None,
        }
    }

    /// The unit a compensation undoes; `None` for other units.
    pub fn compensated(&self) -> Option<UnitKey> {
        match self {
            UnitKey::Compensation(id, None) => Some(UnitKey::Step(id.clone())),
            UnitKey::Compensation(id, Some(n)) => Some(UnitKey::Item(id.clone(), *n)),
            _ => None,
        }
    }

    /// Reads the stored text form; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        fn id(s: &str) -> Option<String> {
            let mut chars = s.chars();
            let first = chars.next()?;
            (first.is_ascii_lowercase()
                && chars
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'))
            .then(|| s.to_string())
        }
        fn item(s: &str) -> Option<usize> {
            // No sign, no leading zeros: one spelling per number.
            if s.is_empty() || (s.len() > 1 && s.starts_with('0')) {
                return None;
            }
            s.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| s.parse().ok())?
        }
        if let Some(rest) = text.strip_prefix('!') {
            return id(rest).map(UnitKey::OnFailure);
        }
        if let Some(rest) = text.strip_prefix('~') {
            return match rest.split_once('#') {
                Some((s, n)) => Some(UnitKey::Compensation(id(s)?, Some(item(n)?))),
                None => Some(UnitKey::Compensation(id(rest)?, None)),
            };
        }
        match text.split_once('#') {
            Some((s, n)) => Some(UnitKey::Item(id(s)?, item(n)?)),
            None => id(text).map(UnitKey::Step),
        }
    }
}

impl fmt::Display for UnitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnitKey::Step(id) => f.write_str(id),
            UnitKey::Item(id, n) => write!(f, "{id}#{n}"),
            UnitKey::OnFailure(id) => write!(f, "!{id}"),
            UnitKey::Compensation(id, None) => write!(f, "~{id}"),
            UnitKey::Compensation(id, Some(n)) => write!(f, "~{id}#{n}"),
        }
    }
}

impl std::str::FromStr for UnitKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UnitKey::parse(s).ok_or_else(|| {
            format!("`{s}` is not a unit key (`step`, `step#N`, `!step`, `~step` or `~step#N`)")
        })
    }
}

impl serde::Serialize for UnitKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::UnitKey;

    #[test]
    fn every_form_reads_back_as_written() {
        for text in ["a", "make-vm_2", "a#0", "a#17", "!page", "~a", "~a#3"] {
            let key = UnitKey::parse(text).unwrap_or_else(|| panic!("{text} parses"));
            assert_eq!(key.to_string(), text);
        }
    }

    #[test]
    fn malformed_keys_are_refused() {
        for text in [
            "", "A", "1a", "a#", "a#-1", "a#01", "a#x", "!", "!a#1", "~", "~!a", "~~a", "a b",
            "#1", "a#1#2",
        ] {
            assert_eq!(UnitKey::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn compensation_pairs_with_what_it_undoes() {
        let item = UnitKey::Item("create".into(), 4);
        let undo = item.compensation().expect("items compensate");
        assert_eq!(undo.to_string(), "~create#4");
        assert_eq!(undo.compensated(), Some(item.clone()));
        assert_eq!(undo.step_id(), "create");
        assert_eq!(undo.item(), Some(4));
        assert!(item.is_main() && !undo.is_main() && undo.is_compensation());
        assert_eq!(UnitKey::OnFailure("page".into()).compensation(), None);
    }
}
