//! Secret masking: every secret value, and the forms it takes on the way out of a plugin
//! (URL-encoded, form-encoded, base64 in its standard and URL-safe alphabets, padded or not),
//! replaced by `***` in any text before it is stored, logged, streamed or returned.
//!
//! One automaton (Aho–Corasick, leftmost-longest) finds every form of every secret in one pass,
//! so masking costs the same whatever the number of secrets. Knows nothing about steps.

use std::collections::BTreeMap;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What a masked value becomes.
pub const MASK: &str = "***";

/// Values shorter than this are not masked: a two-letter secret would blank every word that
/// holds those letters, and say what the secret is by where the stars fall. The service warns
/// about such secrets at start.
pub const MIN_MASKED_LEN: usize = 4;

/// What `encodeURIComponent` leaves alone; everything else is percent-encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// Masks a fixed set of secret values.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// `None` when there is nothing to mask.
    automaton: Option<AhoCorasick>,
    /// The secret name behind each pattern.
    names: Vec<String>,
    /// Every plain value, for the prefix check at a cut.
    values: Vec<String>,
}

impl Masker {
    /// A masker for these secrets (name → value).
    pub fn new(secrets: &BTreeMap<String, String>) -> Self {
        let mut patterns: Vec<String> = Vec::new();
        let mut names = Vec::new();
        let mut values = Vec::new();
        for (name, value) in secrets {
            if value.len() < MIN_MASKED_LEN {
                continue;
            }
            values.push(value.clone());
            for form in forms(value) {
                if !patterns.contains(&form) {
                    patterns.push(form);
                    names.push(name.clone());
                }
            }
        }
        let automaton = if patterns.is_empty() {
            None
        } else {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&patterns)
                .ok()
        };
        Self {
            automaton,
            names,
            values,
        }
    }

    /// Whether some secret would be masked at all.
    pub fn is_empty(&self) -> bool {
        self.automaton.is_none()
    }

    /// `text` with every form of every secret replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        match &self.automaton {
            Some(ac) if ac.is_match(text) => {
                let mut out = String::with_capacity(text.len());
                ac.replace_all_with(text, &mut out, |_, _, dst| {
                    dst.push_str(MASK);
                    true
                });
                out
            }
            _ => text.to_string(),
        }
    }

    /// Masks `text` in place; returns whether anything changed.
    pub fn mask_in_place(&self, text: &mut String) -> bool {
        match &self.automaton {
            Some(ac) if ac.is_match(text.as_str()) => {
                *text = self.mask(text);
                true
            }
            _ => false,
        }
    }

    /// Masks `text`, which was cut at a size cap right at its end: besides whole secrets, a
    /// trailing piece that is the start of a secret (three bytes or more) is masked too, so a
    /// cut never leaves half a secret behind.
    pub fn mask_cut(&self, text: &str) -> String {
        let mut out = self.mask(text);
        let longest = self
            .values
            .iter()
            .filter_map(|v| {
                (3..v.len())
                    .rev()
                    .find(|&n| v.is_char_boundary(n) && out.ends_with(&v[..n]))
            })
            .max();
        if let Some(n) = longest {
            out.truncate(out.len() - n);
            out.push_str(MASK);
        }
        out
    }

    /// Every string inside a JSON value masked.
    pub fn mask_json(&self, value: &mut serde_json::Value) {
        if self.is_empty() {
            return;
        }
        match value {
            serde_json::Value::String(s) => {
                self.mask_in_place(s);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.mask_json(v)),
            serde_json::Value::Object(map) => {
                // Keys are strings that leave too.
                let masked: Vec<(String, serde_json::Value)> = std::mem::take(map)
                    .into_iter()
                    .map(|(k, mut v)| {
                        self.mask_json(&mut v);
                        (self.mask(&k), v)
                    })
                    .collect();
                map.extend(masked);
            }
            _ => {}
        }
    }

    /// The names of the secrets found in `text`, each once, in the order first found.
    pub fn found_in(&self, text: &str) -> Vec<&str> {
        let Some(ac) = &self.automaton else {
            return Vec::new();
        };
        let mut found: Vec<&str> = Vec::new();
        for m in ac.find_iter(text) {
            let name = self.names[m.pattern().as_usize()].as_str();
            if !found.contains(&name) {
                found.push(name);
            }
        }
        found
    }
}

/// The secrets the service log masks: every secret the process knows (the environment's at
/// start, the stored ones, those set over the API), replaced whole on each change.
static SERVICE_LOG: std::sync::RwLock<Option<std::sync::Arc<Masker>>> =
    std::sync::RwLock::new(None);

/// Makes the service log mask `secrets` (the whole set the process knows).
pub fn set_service_log_secrets(secrets: &BTreeMap<String, String>) {
    let masker = std::sync::Arc::new(Masker::new(secrets));
    *SERVICE_LOG
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(masker);
}

/// The service log's masker now.
pub fn service_log_masker() -> std::sync::Arc<Masker> {
    SERVICE_LOG
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
        .unwrap_or_default()
}

/// The forms a value takes in text: itself, URL-encoded (component and form style), and base64
/// in both alphabets with and without padding.
fn forms(value: &str) -> Vec<String> {
    let component = utf8_percent_encode(value, COMPONENT).to_string();
    let strict = utf8_percent_encode(value, NON_ALPHANUMERIC).to_string();
    let form = component.replace("%20", "+");
    let mut out = vec![value.to_string(), component, strict, form];
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        out.push(engine.encode(value));
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker(pairs: &[(&str, &str)]) -> Masker {
        Masker::new(
            &pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        )
    }

    #[test]
    fn every_form_of_a_secret_is_masked() {
        let m = masker(&[("api", "s3cr3t value/+?")]);
        let plain = "token=s3cr3t value/+? end";
        assert_eq!(m.mask(plain), "token=*** end");
        let url = "https://x.test/?k=s3cr3t%20value%2F%2B%3F&z=1";
        assert_eq!(m.mask(url), "https://x.test/?k=***&z=1");
        let form = "k=s3cr3t+value%2F%2B%3F";
        assert_eq!(m.mask(form), "k=***");
        let b64 = STANDARD.encode("s3cr3t value/+?");
        assert_eq!(m.mask(&format!("Basic {b64}")), "Basic ***");
        let b64url = URL_SAFE_NO_PAD.encode("s3cr3t value/+?");
        assert_eq!(m.mask(&format!("[{b64url}]")), "[***]");
        assert_eq!(m.found_in(plain), ["api"]);
        assert!(m.found_in("nothing here").is_empty());
    }

    #[test]
    fn json_strings_and_keys_are_masked() {
        let m = masker(&[("k", "hunter22")]);
        let mut v = serde_json::json!({
            "a": "x hunter22 y",
            "hunter22": [1, "hunter22", { "b": "aHVudGVyMjI=" }]
        });
        m.mask_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({ "a": "x *** y", "***": [1, "***", { "b": "***" }] })
        );
    }

    #[test]
    fn a_cut_never_leaves_the_start_of_a_secret() {
        let m = masker(&[("k", "hunter22")]);
        assert_eq!(m.mask_cut("log: hunt"), "log: ***");
        assert_eq!(m.mask_cut("log: hu"), "log: hu", "two bytes say nothing");
        assert_eq!(m.mask_cut("hunter22 and hunter"), "*** and ***");
    }

    #[test]
    fn short_values_are_not_masked() {
        let m = masker(&[("pin", "123")]);
        assert!(m.is_empty());
        assert_eq!(m.mask("a 123 b"), "a 123 b");
    }
}
