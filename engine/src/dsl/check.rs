//! A synthetic availability check as authored (`checks/*.yaml`, the shape of Gatus): an HTTP
//! probe with an interval, a timeout, conditions and thresholds.
//!
//! Checks shapes, names, durations and numbers; the conditions' grammar is `checks`' job.

use std::time::Duration;

use marked_yaml::types::Node;

use super::workflow::duration;
use super::yaml::{self, Fields, Spanned};
use crate::diag::{Diagnostic, Diagnostics};

/// One check as written.
#[derive(Debug, Clone)]
pub struct CheckDef {
    /// `[a-z0-9-]+`.
    pub name: Spanned<String>,
    /// The service it watches.
    pub service: Spanned<String>,
    /// The tenant whose status page shows it too (every page shows provider checks).
    pub tenant: Option<Spanned<String>>,
    /// What to ask.
    pub url: Spanned<String>,
    /// `GET` (default) or `HEAD`.
    pub method: String,
    /// How often.
    pub interval: Duration,
    /// How long one probe may take.
    pub timeout: Duration,
    /// Each must hold for a probe to pass.
    pub conditions: Vec<Condition>,
    /// Failed probes in a row that make it down.
    pub failure_threshold: u32,
    /// Passed probes in a row that make it up again.
    pub success_threshold: u32,
    /// The severity of the incident opened when no rule takes its alert.
    pub severity: String,
    /// The availability objective of its probes: percent passed, over a window.
    pub slo: Option<(f64, Duration)>,
}

const KEYS: &[&str] = &[
    "name",
    "service",
    "tenant",
    "url",
    "method",
    "interval",
    "timeout",
    "conditions",
    "failure_threshold",
    "success_threshold",
    "severity",
    "slo",
];

/// Shortest interval.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Whether a parsed file is a check (it has `url:` and `conditions:`).
pub(super) fn looks_like_check(node: &Node) -> bool {
    node.as_mapping()
        .is_some_and(|m| m.get_node("url").is_some() && m.get_node("conditions").is_some())
}

/// Decodes a check file; `None` when nothing usable could be read.
pub fn decode_check(bytes: &[u8], diags: &mut Diagnostics) -> Option<CheckDef> {
    let node = yaml::parse(bytes, diags)?;
    decode_node(&node, diags)
}

pub(super) fn decode_node(node: &Node, diags: &mut Diagnostics) -> Option<CheckDef> {
    let f = Fields::read(node, "check", KEYS, diags)?;
    let required = |key: &str, help: &str, diags: &mut Diagnostics| match f.get(key) {
        Some(n) => yaml::string(n, &format!("`{key}`"), diags),
        None => {
            f.missing(key, "check", help, diags);
            None
        }
    };
    let name = required("name", "add `name: shop-home`", diags)
        .and_then(|s| super::valid_name(s, "check name", diags));
    let service = required(
        "service",
        "say which service it watches: `service: shop`",
        diags,
    )
    .and_then(|s| super::valid_name(s, "service", diags));
    let tenant = f
        .get("tenant")
        .and_then(|n| yaml::string(n, "`tenant`", diags))
        .and_then(|s| super::valid_name(s, "tenant", diags));
    let url = required(
        "url",
        "add the URL to probe: `url: https://shop.example.com/health`",
        diags,
    )
    .and_then(|u| {
        if u.value.starts_with("http://") || u.value.starts_with("https://") {
            Some(u)
        } else {
            diags.push(
                Diagnostic::new(
                    "invalid-value",
                    u.span,
                    format!("`{}` is not an http(s) URL", u.value),
                )
                .help("write an absolute URL: `https://shop.example.com/health`"),
            );
            None
        }
    });
    let method = match f
        .get("method")
        .and_then(|n| yaml::string(n, "`method`", diags))
    {
        None => "GET".to_string(),
        Some(m) if ["GET", "HEAD"].contains(&m.value.as_str()) => m.value,
        Some(m) => {
            diags.push(
                Diagnostic::new(
                    "invalid-value",
                    m.span,
                    format!("method `{}` is not one a probe sends", m.value),
                )
                .help("use `GET` or `HEAD`"),
            );
            "GET".to_string()
        }
    };
    let interval = match f.get("interval") {
        Some(n) => duration(n, "`interval`", diags).and_then(|d| {
            if d.value < MIN_INTERVAL {
                diags.push(
                    Diagnostic::new("invalid-duration", d.span, "`interval` must be at least 1s")
                        .help("write e.g. `30s` or `1m`"),
                );
                None
            } else {
                Some(d.value)
            }
        }),
        None => Some(Duration::from_secs(60)),
    };
    let timeout = match f.get("timeout") {
        Some(n) => duration(n, "`timeout`", diags).map(|d| d.value),
        None => Some(Duration::from_secs(10)),
    };
    let mut conditions = Vec::new();
    match f.get("conditions") {
        Some(n) => {
            yaml::empty_list(
                n,
                "`conditions`",
                "say what a passing probe looks like: `conditions: [\"[STATUS] == 200\"]`",
                diags,
            );
            for c in yaml::strings(n, "`conditions`", diags) {
                match parse(&c.value) {
                    Ok(cond) => conditions.push(cond),
                    Err(e) => diags.push(
                        Diagnostic::new("invalid-condition", c.span, e).help(
                            "write e.g. `[STATUS] == 200`, `[BODY].status == UP`, `[RESPONSE_TIME] < 500`",
                        ),
                    ),
                }
            }
        }
        None => f.missing(
            "conditions",
            "check",
            "add `conditions: [\"[STATUS] == 200\"]`",
            diags,
        ),
    }
    if let Some(u) = &url
        && !u.value.starts_with("https://")
        && conditions
            .iter()
            .any(|c| c.subject == Subject::CertificateExpiration)
    {
        diags.push(
            Diagnostic::new(
                "invalid-condition",
                u.span,
                "`[CERTIFICATE_EXPIRATION]` needs an `https://` URL",
            )
            .help("probe the service over https, or drop the certificate condition"),
        );
    }
    let threshold = |key: &str, default: u32, diags: &mut Diagnostics| {
        f.get(key)
            .and_then(|n| yaml::integer(n, &format!("`{key}`"), 1, 100, diags))
            .map_or(default, |v| u32::try_from(v.value).unwrap_or(default))
    };
    let failure_threshold = threshold("failure_threshold", 3, diags);
    let success_threshold = threshold("success_threshold", 2, diags);
    let severity = match f
        .get("severity")
        .and_then(|n| yaml::string(n, "`severity`", diags))
    {
        None => "sev2".to_string(),
        Some(s) if super::workflow::SEVERITIES.contains(&s.value.as_str()) => s.value,
        Some(s) => {
            diags.push(
                Diagnostic::new(
                    "invalid-value",
                    s.span,
                    format!("unknown severity `{}`", s.value),
                )
                .help("use `sev1` (worst), `sev2`, `sev3` or `sev4`"),
            );
            "sev2".to_string()
        }
    };
    if let (Some(i), Some(t)) = (interval, timeout)
        && t > i
    {
        diags.push(
            Diagnostic::new(
                "invalid-duration",
                f.span(),
                "the `timeout` is longer than the `interval`",
            )
            .help("a probe must end before the next one starts: shorten `timeout`"),
        );
    }
    let slo = f.get("slo").and_then(|n| super::catalog::slo(n, diags));
    Some(CheckDef {
        name: name?,
        service: service?,
        tenant,
        url: url?,
        method,
        interval: interval?,
        timeout: timeout?,
        conditions,
        failure_threshold,
        success_threshold,
        severity,
        slo,
    })
}

/// What a condition reads of the answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    /// The HTTP status.
    Status,
    /// The body, or (with a path) a value of it as JSON.
    Body(Vec<String>),
    /// Milliseconds from sending to the whole answer.
    ResponseTime,
    /// Milliseconds left until the server's certificate expires (`https` only).
    CertificateExpiration,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// One condition, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// As written.
    pub text: String,
    /// What it reads.
    pub subject: Subject,
    /// How it compares.
    pub op: Op,
    /// With what.
    pub value: String,
}

const OPS: [(&str, Op); 6] = [
    ("==", Op::Eq),
    ("!=", Op::Ne),
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("<", Op::Lt),
    (">", Op::Gt),
];

/// Parses `[SUBJECT](.path) OP value`.
pub fn parse(text: &str) -> Result<Condition, String> {
    let t = text.trim();
    let (placeholder, rest) = t
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .ok_or("a condition starts with `[STATUS]`, `[BODY]` or `[RESPONSE_TIME]`")?;
    let (path, rest) = match rest.strip_prefix('.') {
        Some(r) => {
            let end = r.find(char::is_whitespace).unwrap_or(r.len());
            (Some(&r[..end]), &r[end..])
        }
        None => (None, rest),
    };
    let rest = rest.trim_start();
    let (op, value) = OPS
        .iter()
        .find_map(|(s, op)| rest.strip_prefix(s).map(|v| (*op, v.trim())))
        .ok_or("after the placeholder comes one of ==, !=, <, <=, >, >=")?;
    if value.is_empty() {
        return Err("the condition compares with nothing: add a value after the operator".into());
    }
    let subject = match (placeholder, path) {
        ("STATUS", None) => Subject::Status,
        ("RESPONSE_TIME", None) => Subject::ResponseTime,
        ("BODY", None) => Subject::Body(Vec::new()),
        ("BODY", Some(p)) => Subject::Body(p.split('.').map(String::from).collect()),
        ("CERTIFICATE_EXPIRATION", None) => Subject::CertificateExpiration,
        (other, _) => {
            return Err(format!(
                "`[{other}]` is not a placeholder: use [STATUS], [BODY] (with a path: [BODY].a.b), [RESPONSE_TIME] or [CERTIFICATE_EXPIRATION]"
            ));
        }
    };
    let numeric = matches!(subject, Subject::Status | Subject::ResponseTime);
    if numeric && value.parse::<f64>().is_err() {
        return Err(format!("`{value}` is not a number"));
    }
    // A certificate's time left is compared in milliseconds, written as a duration.
    let value = if subject == Subject::CertificateExpiration {
        let d = super::parse_duration(value)
            .map_err(|e| format!("`{value}` is not a duration like `48h` or `14d`: {e}"))?;
        d.as_millis().to_string()
    } else {
        value.to_string()
    };
    Ok(Condition {
        text: t.to_string(),
        subject,
        op,
        value,
    })
}
