//! Label matchers, as Alertmanager writes them: `value` or `=value` (equal), `!=value`,
//! `=~regex` (the whole value matches), `!~regex`.

use std::collections::BTreeMap;

use regex::Regex;

/// How a matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatcherOp {
    /// `=`: equal.
    Eq,
    /// `!=`: not equal.
    Ne,
    /// `=~`: the whole value matches the regex.
    Re,
    /// `!~`: the whole value does not match.
    NotRe,
}

/// One label condition.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label.
    pub name: String,
    /// The comparison.
    pub op: MatcherOp,
    /// The value or regex as written (without the operator).
    pub value: String,
    /// The anchored regex, for `=~` and `!~`.
    regex: Option<Regex>,
}

impl Matcher {
    /// Reads `spec` (`web`, `=web`, `!=web`, `=~web|api`, `!~web.*`) for label `name`.
    pub fn parse(name: &str, spec: &str) -> Result<Self, String> {
        let (op, value) = if let Some(v) = spec.strip_prefix("=~") {
            (MatcherOp::Re, v)
        } else if let Some(v) = spec.strip_prefix("!~") {
            (MatcherOp::NotRe, v)
        } else if let Some(v) = spec.strip_prefix("!=") {
            (MatcherOp::Ne, v)
        } else if let Some(v) = spec.strip_prefix('=') {
            (MatcherOp::Eq, v)
        } else {
            (MatcherOp::Eq, spec)
        };
        let regex = match op {
            MatcherOp::Re | MatcherOp::NotRe => Some(
                regex::RegexBuilder::new(&format!("^(?:{value})$"))
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| {
                        format!(
                            "`{value}` is not a valid regex: {}",
                            e.to_string()
                                .lines()
                                .last()
                                .unwrap_or("")
                                .trim()
                                .trim_start_matches("error: ")
                        )
                    })?,
            ),
            _ => None,
        };
        Ok(Self {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    /// Whether the labels satisfy it; a missing label is the empty string, as in Alertmanager.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.name).map_or("", String::as_str);
        match (self.op, &self.regex) {
            (MatcherOp::Eq, _) => v == self.value,
            (MatcherOp::Ne, _) => v != self.value,
            (MatcherOp::Re, Some(r)) => r.is_match(v),
            (MatcherOp::NotRe, Some(r)) => !r.is_match(v),
            (MatcherOp::Re | MatcherOp::NotRe, None) => false,
        }
    }

    /// The matcher as written: `name=~value`.
    pub fn display(&self) -> String {
        let op = match self.op {
            MatcherOp::Eq => "=",
            MatcherOp::Ne => "!=",
            MatcherOp::Re => "=~",
            MatcherOp::NotRe => "!~",
        };
        format!("{}{op}{}", self.name, self.value)
    }

    /// The value with its operator (`=~web|api`), as a rule or silence writes it.
    pub fn spec(&self) -> String {
        match self.op {
            MatcherOp::Eq => self.value.clone(),
            MatcherOp::Ne => format!("!={}", self.value),
            MatcherOp::Re => format!("=~{}", self.value),
            MatcherOp::NotRe => format!("!~{}", self.value),
        }
    }
}

/// Whether every matcher holds.
pub fn all_match(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn the_four_operators_and_anchoring() {
        let l = labels(&[("env", "prod"), ("service", "web")]);
        assert!(Matcher::parse("env", "prod").expect("accepted").matches(&l));
        assert!(
            Matcher::parse("env", "=prod")
                .expect("accepted")
                .matches(&l)
        );
        assert!(
            !Matcher::parse("env", "!=prod")
                .expect("accepted")
                .matches(&l)
        );
        assert!(
            Matcher::parse("env", "=~prod|staging")
                .expect("accepted")
                .matches(&l)
        );
        assert!(
            !Matcher::parse("env", "=~pro")
                .expect("accepted")
                .matches(&l),
            "anchored"
        );
        assert!(
            Matcher::parse("service", "!~db.*")
                .expect("accepted")
                .matches(&l)
        );
        assert!(
            Matcher::parse("team", "").expect("accepted").matches(&l),
            "a missing label is empty"
        );
        assert!(Matcher::parse("env", "=~(").is_err());
        assert_eq!(
            Matcher::parse("env", "=~a|b").expect("accepted").display(),
            "env=~a|b"
        );
    }
}
