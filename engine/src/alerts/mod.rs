//! Alerts in, rules, groups and silences: the loop from monitoring to remediation.
//!
//! Every source's payload is mapped by a small adapter (`intake.rs`, `sns.rs` for CloudWatch
//! through SNS) into one [`Alert`]. Rules (`rules.rs`, planned from `dsl::rule`) decide which
//! alerts matter; `decide.rs` says what each alert does, and the dispatcher (`dispatch.rs`)
//! keeps one group per rule and label values,
//! starts one durable run per group and hands it later alerts and the group's resolution as
//! signals. Silences (`silences.rs`) keep alerts from being acted on. The state lives in the
//! store (`store/alerts.rs`); nothing here knows HTTP.

mod decide;
pub mod dispatch;
pub mod intake;
pub mod matcher;
pub mod rules;
pub mod silences;
pub mod sns;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

pub use matcher::{Matcher, MatcherOp};

/// Where an alert may come from.
pub const SOURCES: &[&str] = &[
    "alertmanager",
    "grafana",
    "cloudwatch",
    "pagerduty",
    "webhook",
    "slo",
];

/// Whether an alert is firing or has resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The condition holds.
    Firing,
    /// The condition no longer holds.
    Resolved,
}

impl Status {
    /// `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }

    /// Reads `firing` or `resolved`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "firing" => Some(Status::Firing),
            "resolved" => Some(Status::Resolved),
            _ => None,
        }
    }
}

/// One alert, whatever sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// `alertmanager`, `grafana`, `cloudwatch`, `pagerduty` or `webhook`.
    pub source: String,
    /// What identifies the condition across notifications (the dedup key).
    pub fingerprint: String,
    /// Firing or resolved.
    pub status: Status,
    /// As the source says it (`critical`, `warning`, …), if it does.
    pub severity: Option<String>,
    /// Identifying labels.
    pub labels: BTreeMap<String, String>,
    /// Descriptive annotations.
    pub annotations: BTreeMap<String, String>,
    /// When the condition began (ms since the epoch).
    pub starts_at: Option<i64>,
    /// When it ended (ms), for resolved alerts.
    pub ends_at: Option<i64>,
    /// The tenant of the integration token that sent it.
    pub tenant: Option<String>,
    /// This alert's part of the payload, as received.
    pub raw: Json,
}

impl Alert {
    /// An alert the service raises itself (a check, a burn rate) at `now`: its raw form is
    /// the alert as it is read back.
    #[allow(clippy::too_many_arguments)]
    pub fn raised(
        source: &str,
        fingerprint: String,
        status: Status,
        severity: &str,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
        tenant: Option<String>,
        now: i64,
    ) -> Self {
        let raw = serde_json::json!({ "fingerprint": fingerprint, "status": status.as_str(), "labels": labels, "annotations": annotations });
        Self {
            source: source.to_string(),
            fingerprint,
            status,
            severity: Some(severity.to_string()),
            labels,
            annotations,
            starts_at: Some(now),
            ends_at: (status == Status::Resolved).then_some(now),
            tenant,
            raw,
        }
    }

    /// The alert as templates see it (`alert.labels.service`, `alert.status`, …).
    pub fn scope(&self) -> Json {
        serde_json::json!({
            "source": self.source,
            "fingerprint": self.fingerprint,
            "status": self.status.as_str(),
            "severity": self.severity,
            "labels": self.labels,
            "annotations": self.annotations,
            "starts_at": self.starts_at.map(iso),
            "ends_at": self.ends_at.map(iso),
            "tenant": self.tenant,
        })
    }
}

/// A fingerprint for alerts whose source gives none: a hash of the source and labels.
pub fn fingerprint_of(source: &str, labels: &BTreeMap<String, String>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    for (k, v) in labels {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([1]);
        h.update(v.as_bytes());
    }
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Milliseconds since the epoch as RFC 3339.
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// RFC 3339 to milliseconds since the epoch; Go's zero time (`0001-01-01T00:00:00Z`, which
/// Alertmanager sends for "not ended") is `None`.
pub fn parse_time(text: &str) -> Result<Option<i64>, String> {
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(t) if t.timestamp() <= 0 => Ok(None),
        Ok(t) => Ok(Some(t.timestamp_millis())),
        Err(e) => Err(format!("`{text}` is not an RFC 3339 time: {e}")),
    }
}
