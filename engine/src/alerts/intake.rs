//! One small adapter per source, each mapping its payload into [`Alert`]s or saying every
//! problem with its JSON pointer. CloudWatch arrives inside SNS messages: `sns.rs` checks the
//! envelope, [`cloudwatch`] maps the alarm it carries.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use super::{Alert, Status, fingerprint_of, parse_time};

/// Every problem of a payload: (JSON pointer, message).
pub type Problems = Vec<(String, String)>;

fn at(p: impl Into<String>, m: impl Into<String>) -> (String, String) {
    (p.into(), m.into())
}

fn object<'a>(v: &'a Json, pointer: &str, errors: &mut Problems) -> Option<&'a Map<String, Json>> {
    match v {
        Json::Object(m) => Some(m),
        _ => {
            errors.push(at(pointer, "must be a JSON object"));
            None
        }
    }
}

/// A mapping of string values (`labels`, `annotations`); other scalars are kept as text.
fn strings(
    v: Option<&Json>,
    pointer: &str,
    required: bool,
    errors: &mut Problems,
) -> BTreeMap<String, String> {
    strings_of(v, pointer, required, false, errors)
}

/// [`strings`]; `lenient` keeps numbers and booleans as their text (a generic webhook's
/// fields), where Alertmanager's and Grafana's labels are strings only.
fn strings_of(
    v: Option<&Json>,
    pointer: &str,
    required: bool,
    lenient: bool,
    errors: &mut Problems,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match v {
        None | Some(Json::Null) if !required => {}
        None | Some(Json::Null) => {
            errors.push(at(pointer, "is required: an object of string values"))
        }
        Some(Json::Object(m)) => {
            for (k, v) in m {
                match v {
                    Json::String(s) => {
                        out.insert(k.clone(), s.clone());
                    }
                    Json::Number(n) if lenient => {
                        out.insert(k.clone(), n.to_string());
                    }
                    Json::Bool(b) if lenient => {
                        out.insert(k.clone(), b.to_string());
                    }
                    _ => errors.push(at(
                        format!("{pointer}/{}", crate::diag::pointer_token(k)),
                        "must be a string",
                    )),
                }
            }
        }
        Some(_) => errors.push(at(pointer, "must be an object of string values")),
    }
    out
}

fn time(v: Option<&Json>, pointer: &str, errors: &mut Problems) -> Option<i64> {
    match v {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) if s.is_empty() => None,
        Some(Json::String(s)) => match parse_time(s) {
            Ok(t) => t,
            Err(e) => {
                errors.push(at(pointer, e));
                None
            }
        },
        Some(_) => {
            errors.push(at(pointer, "must be an RFC 3339 time string"));
            None
        }
    }
}

fn text<'a>(m: &'a Map<String, Json>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Json::as_str)
}

/// Prometheus Alertmanager's webhook (version 4), and Grafana's unified alerting webhook,
/// which has the same shape. Grafana's legacy format (`state`, `ruleName`) is one alert.
pub fn alertmanager(source: &str, payload: &Json) -> Result<Vec<Alert>, Problems> {
    let mut errors = Vec::new();
    let Some(obj) = object(payload, "", &mut errors) else {
        return Err(errors);
    };
    if source == "grafana" && !obj.contains_key("alerts") && obj.contains_key("state") {
        return grafana_legacy(obj);
    }
    let status = match obj.get("status") {
        Some(Json::String(s)) => match Status::parse(s) {
            Some(s) => Some(s),
            None => {
                errors.push(at("/status", "must be `firing` or `resolved`"));
                None
            }
        },
        Some(_) => {
            errors.push(at("/status", "must be `firing` or `resolved`"));
            None
        }
        None => {
            errors.push(at("/status", "is required (`firing` or `resolved`)"));
            None
        }
    };
    let common = strings(obj.get("commonLabels"), "/commonLabels", false, &mut errors);
    let mut out = Vec::new();
    match obj.get("alerts") {
        Some(Json::Array(items)) => {
            for (i, a) in items.iter().enumerate() {
                let p = format!("/alerts/{i}");
                let Some(a) = object(a, &p, &mut errors) else {
                    continue;
                };
                let mut labels =
                    strings(a.get("labels"), &format!("{p}/labels"), true, &mut errors);
                for (k, v) in &common {
                    labels.entry(k.clone()).or_insert_with(|| v.clone());
                }
                let annotations = strings(
                    a.get("annotations"),
                    &format!("{p}/annotations"),
                    false,
                    &mut errors,
                );
                let one = match a.get("status") {
                    None => status,
                    Some(Json::String(s)) => {
                        let parsed = Status::parse(s);
                        if parsed.is_none() {
                            errors
                                .push(at(format!("{p}/status"), "must be `firing` or `resolved`"));
                        }
                        parsed
                    }
                    Some(_) => {
                        errors.push(at(format!("{p}/status"), "must be `firing` or `resolved`"));
                        None
                    }
                };
                let fingerprint = match a.get("fingerprint") {
                    Some(Json::String(f)) if !f.is_empty() => f.clone(),
                    None | Some(Json::Null) => fingerprint_of(source, &labels),
                    Some(_) => {
                        errors.push(at(format!("{p}/fingerprint"), "must be a non-empty string"));
                        String::new()
                    }
                };
                let starts_at = time(a.get("startsAt"), &format!("{p}/startsAt"), &mut errors);
                let ends_at = time(a.get("endsAt"), &format!("{p}/endsAt"), &mut errors);
                let Some(one) = one else { continue };
                out.push(Alert {
                    source: source.to_string(),
                    fingerprint,
                    status: one,
                    severity: labels.get("severity").cloned(),
                    labels,
                    annotations,
                    starts_at,
                    ends_at: if one == Status::Resolved {
                        ends_at
                    } else {
                        None
                    },
                    tenant: None,
                    raw: Json::Object(a.clone()),
                });
            }
        }
        Some(_) => errors.push(at("/alerts", "must be a list of alerts")),
        None => errors.push(at("/alerts", "is required: the list of alerts")),
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Grafana's legacy alerting notification: one rule and its state.
fn grafana_legacy(obj: &Map<String, Json>) -> Result<Vec<Alert>, Problems> {
    let mut errors = Vec::new();
    let status = match text(obj, "state") {
        Some("alerting") => Some(Status::Firing),
        Some("ok" | "paused" | "no_data") => Some(Status::Resolved),
        Some(_) => {
            errors.push(at(
                "/state",
                "must be `alerting`, `ok`, `paused` or `no_data`",
            ));
            None
        }
        None => {
            errors.push(at("/state", "must be a string"));
            None
        }
    };
    let Some(rule) = text(obj, "ruleName").or_else(|| text(obj, "title")) else {
        errors.push(at("/ruleName", "must be a string naming the rule"));
        return Err(errors);
    };
    let mut labels = strings(obj.get("tags"), "/tags", false, &mut errors);
    labels.insert("alertname".into(), rule.to_string());
    let mut annotations = BTreeMap::new();
    if let Some(m) = text(obj, "message") {
        annotations.insert("summary".into(), m.to_string());
    }
    match (status, errors.is_empty()) {
        (Some(status), true) => Ok(vec![Alert {
            source: "grafana".into(),
            fingerprint: obj
                .get("ruleId")
                .map(|id| format!("grafana-rule-{id}"))
                .unwrap_or_else(|| fingerprint_of("grafana", &labels)),
            status,
            severity: labels.get("severity").cloned(),
            labels,
            annotations,
            starts_at: None,
            ends_at: None,
            tenant: None,
            raw: Json::Object(obj.clone()),
        }]),
        _ => Err(errors),
    }
}

/// What a PagerDuty Events API v2 event asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagerDutyAction {
    /// `trigger`: a firing alert.
    Trigger,
    /// `acknowledge`: kept and shown; csmp's incidents are acknowledged by people.
    Acknowledge,
    /// `resolve`: a resolved alert.
    Resolve,
}

/// A PagerDuty Events API v2 event (`/v2/enqueue`): the alert, and what the event asked.
pub fn pagerduty(payload: &Json, now_ms: i64) -> Result<(Alert, PagerDutyAction), Problems> {
    let mut errors = Vec::new();
    let Some(obj) = object(payload, "", &mut errors) else {
        return Err(errors);
    };
    let action = match text(obj, "event_action") {
        Some("trigger") => Some(PagerDutyAction::Trigger),
        Some("acknowledge") => Some(PagerDutyAction::Acknowledge),
        Some("resolve") => Some(PagerDutyAction::Resolve),
        _ => {
            errors.push(at(
                "/event_action",
                "must be `trigger`, `acknowledge` or `resolve`",
            ));
            None
        }
    };
    let dedup = match obj.get("dedup_key") {
        Some(Json::String(s)) if !s.is_empty() && s.len() <= 255 => Some(s.clone()),
        None | Some(Json::Null) => None,
        Some(_) => {
            errors.push(at("/dedup_key", "must be a string of 1 to 255 characters"));
            None
        }
    };
    if dedup.is_none() && action.is_some_and(|a| a != PagerDutyAction::Trigger) {
        errors.push(at("/dedup_key", "is required to acknowledge or resolve"));
    }
    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    let mut severity = None;
    let mut starts_at = None;
    match obj.get("payload") {
        Some(Json::Object(p)) => {
            match text(p, "summary") {
                Some(s) if !s.is_empty() && s.len() <= 1024 => {
                    annotations.insert("summary".into(), s.to_string());
                }
                _ => errors.push(at(
                    "/payload/summary",
                    "is required: a string of at most 1,024 characters",
                )),
            }
            match text(p, "source") {
                Some(s) if !s.is_empty() => {
                    labels.insert("source".into(), s.to_string());
                }
                _ => errors.push(at("/payload/source", "is required: the affected system")),
            }
            match text(p, "severity") {
                Some(s @ ("critical" | "error" | "warning" | "info")) => {
                    severity = Some(s.to_string())
                }
                _ => errors.push(at(
                    "/payload/severity",
                    "must be `critical`, `error`, `warning` or `info`",
                )),
            }
            for key in ["component", "group", "class"] {
                match p.get(key) {
                    None | Some(Json::Null) => {}
                    Some(Json::String(s)) => {
                        labels.insert(key.into(), s.clone());
                    }
                    Some(_) => errors.push(at(format!("/payload/{key}"), "must be a string")),
                }
            }
            starts_at = time(p.get("timestamp"), "/payload/timestamp", &mut errors);
            if let Some(Json::Object(details)) = p.get("custom_details") {
                for (k, v) in details {
                    let value = match v {
                        Json::String(s) => s.clone(),
                        Json::Number(_) | Json::Bool(_) => v.to_string(),
                        _ => continue,
                    };
                    labels.entry(k.clone()).or_insert(value);
                }
            }
        }
        Some(_) => errors.push(at("/payload", "must be an object")),
        None if action == Some(PagerDutyAction::Trigger) => {
            errors.push(at(
                "/payload",
                "is required to trigger: summary, source and severity",
            ));
        }
        None => {}
    }
    let Some(action) = action else {
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let fingerprint = dedup.unwrap_or_else(|| {
        let mut l = labels.clone();
        l.insert(
            "summary".into(),
            annotations.get("summary").cloned().unwrap_or_default(),
        );
        l.insert("at".into(), now_ms.to_string());
        fingerprint_of("pagerduty", &l)
    });
    Ok((
        Alert {
            source: "pagerduty".into(),
            fingerprint,
            status: if action == PagerDutyAction::Resolve {
                Status::Resolved
            } else {
                Status::Firing
            },
            severity,
            labels,
            annotations,
            starts_at,
            ends_at: (action == PagerDutyAction::Resolve).then_some(now_ms),
            tenant: None,
            raw: payload.clone(),
        },
        action,
    ))
}

/// How a generic JSON webhook's fields map into alerts: JSON pointers into each item, given
/// as query parameters of the webhook's URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WebhookMapping {
    /// Pointer to the list of alerts in the body (default: the body is one alert, or a list,
    /// or has `alerts`).
    pub items: Option<String>,
    /// Pointer to the fingerprint (default `/fingerprint`; a hash of the labels if absent).
    pub fingerprint: Option<String>,
    /// Pointer to the status (default `/status`).
    pub status: Option<String>,
    /// Status values meaning firing, comma-separated (default `firing`).
    pub firing: Option<String>,
    /// Status values meaning resolved, comma-separated (default `resolved`).
    pub resolved: Option<String>,
    /// Pointer to the severity (default `/severity`).
    pub severity: Option<String>,
    /// Pointer to an object of labels (default `/labels`).
    pub labels: Option<String>,
    /// Pointer to an object of annotations (default `/annotations`).
    pub annotations: Option<String>,
    /// Pointer to a summary, kept as the annotation `summary` (default `/summary`).
    pub summary: Option<String>,
    /// Pointer to the start time (default `/starts_at`).
    pub starts_at: Option<String>,
    /// Pointer to the end time (default `/ends_at`).
    pub ends_at: Option<String>,
}

/// A generic JSON webhook, read through `mapping`.
pub fn webhook(payload: &Json, mapping: &WebhookMapping) -> Result<Vec<Alert>, Problems> {
    let mut errors = Vec::new();
    let (items, base): (Vec<&Json>, String) = match &mapping.items {
        Some(p) => match payload.pointer(p) {
            Some(Json::Array(a)) => (a.iter().collect(), p.clone()),
            _ => {
                return Err(vec![at(
                    p.clone(),
                    "must be the list of alerts (the `items` mapping points here)",
                )]);
            }
        },
        None => match payload {
            Json::Array(a) => (a.iter().collect(), String::new()),
            Json::Object(m) if matches!(m.get("alerts"), Some(Json::Array(_))) => {
                match m.get("alerts") {
                    Some(Json::Array(a)) => (a.iter().collect(), "/alerts".into()),
                    _ => (Vec::new(), String::new()),
                }
            }
            Json::Object(_) => (vec![payload], String::new()),
            _ => return Err(vec![at("", "must be a JSON object or a list of alerts")]),
        },
    };
    let split = |s: &Option<String>, default: &str| -> Vec<String> {
        s.as_deref()
            .unwrap_or(default)
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    };
    let firing = split(&mapping.firing, "firing");
    let resolved = split(&mapping.resolved, "resolved");
    let ptr = |field: &Option<String>, default: &str| {
        field.clone().unwrap_or_else(|| default.to_string())
    };
    let mut out = Vec::new();
    let one = items.len() == 1 && base.is_empty();
    for (i, item) in items.iter().enumerate() {
        let p = if one && !matches!(payload, Json::Array(_)) {
            String::new()
        } else {
            format!("{base}/{i}")
        };
        if !item.is_object() {
            errors.push(at(
                if p.is_empty() { "".into() } else { p.clone() },
                "each alert must be a JSON object",
            ));
            continue;
        }
        let get = |field: &Option<String>, default: &str| item.pointer(&ptr(field, default));
        let located = |field: &Option<String>, default: &str| format!("{p}{}", ptr(field, default));
        let mut labels = strings_of(
            get(&mapping.labels, "/labels"),
            &located(&mapping.labels, "/labels"),
            false,
            true,
            &mut errors,
        );
        let mut annotations = strings_of(
            get(&mapping.annotations, "/annotations"),
            &located(&mapping.annotations, "/annotations"),
            false,
            true,
            &mut errors,
        );
        if let Some(Json::String(s)) = get(&mapping.summary, "/summary") {
            annotations
                .entry("summary".into())
                .or_insert_with(|| s.clone());
        }
        let status = match get(&mapping.status, "/status") {
            Some(Json::String(s)) if firing.contains(s) => Some(Status::Firing),
            Some(Json::String(s)) if resolved.contains(s) => Some(Status::Resolved),
            None | Some(Json::Null) if mapping.status.is_none() => Some(Status::Firing),
            other => {
                errors.push(at(
                    located(&mapping.status, "/status"),
                    format!(
                        "must be one of {} (firing) or {} (resolved){}",
                        firing.join(", "),
                        resolved.join(", "),
                        other.map(|v| format!("; found {v}")).unwrap_or_default()
                    ),
                ));
                None
            }
        };
        let severity = match get(&mapping.severity, "/severity") {
            Some(Json::String(s)) => Some(s.clone()),
            _ => labels.get("severity").cloned(),
        };
        if labels.is_empty()
            && let Some(s) = annotations.get("summary")
        {
            labels.insert("alertname".into(), s.clone());
        }
        let fingerprint = match get(&mapping.fingerprint, "/fingerprint") {
            Some(Json::String(s)) if !s.is_empty() => s.clone(),
            Some(Json::Number(n)) => n.to_string(),
            None | Some(Json::Null) => fingerprint_of("webhook", &labels),
            Some(_) => {
                errors.push(at(
                    located(&mapping.fingerprint, "/fingerprint"),
                    "must be a string",
                ));
                String::new()
            }
        };
        if labels.is_empty() && annotations.is_empty() {
            errors.push(at(
                located(&mapping.labels, "/labels"),
                "an alert needs labels or a summary to be told apart",
            ));
        }
        let starts_at = time(
            get(&mapping.starts_at, "/starts_at"),
            &located(&mapping.starts_at, "/starts_at"),
            &mut errors,
        );
        let ends_at = time(
            get(&mapping.ends_at, "/ends_at"),
            &located(&mapping.ends_at, "/ends_at"),
            &mut errors,
        );
        labels.retain(|k, _| !k.is_empty());
        if let Some(status) = status {
            out.push(Alert {
                source: "webhook".into(),
                fingerprint,
                status,
                severity,
                labels,
                annotations,
                starts_at,
                ends_at,
                tenant: None,
                raw: (*item).clone(),
            });
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// A CloudWatch alarm state change, the JSON an SNS notification's `Message` carries:
/// `AlarmArn` is the fingerprint, `ALARM` firing and `OK` resolved; `INSUFFICIENT_DATA` says
/// nothing about the condition and maps to no alert. Pointers are into the message.
pub fn cloudwatch(message: &Json) -> Result<Option<Alert>, Problems> {
    let mut errors = Vec::new();
    let Some(m) = object(message, "/Message", &mut errors) else {
        return Err(errors);
    };
    let need = |key: &str, errors: &mut Problems| -> Option<String> {
        match m.get(key) {
            Some(Json::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => {
                errors.push(at(format!("/Message/{key}"), "is required: a string"));
                None
            }
        }
    };
    let arn = need("AlarmArn", &mut errors);
    let name = need("AlarmName", &mut errors);
    let state = need("NewStateValue", &mut errors);
    let status = match state.as_deref() {
        Some("ALARM") => Some(Status::Firing),
        Some("OK") => Some(Status::Resolved),
        Some("INSUFFICIENT_DATA") | None => None,
        Some(_) => {
            errors.push(at(
                "/Message/NewStateValue",
                "must be `ALARM`, `OK` or `INSUFFICIENT_DATA`",
            ));
            None
        }
    };
    let changed = time(
        m.get("StateChangeTime")
            .map(|v| match v {
                // CloudWatch writes `2026-01-01T00:00:00.000+0000`; RFC 3339 wants a colon.
                Json::String(s)
                    if s.len() > 5 && !s.ends_with('Z') && !s[s.len() - 5..].contains(':') =>
                {
                    Json::String(format!("{}:{}", &s[..s.len() - 2], &s[s.len() - 2..]))
                }
                other => other.clone(),
            })
            .as_ref(),
        "/Message/StateChangeTime",
        &mut errors,
    );
    let mut labels = BTreeMap::new();
    if let Some(n) = &name {
        labels.insert("alertname".into(), n.clone());
    }
    for (key, label) in [("Region", "region"), ("AWSAccountId", "account")] {
        if let Some(v) = text(m, key) {
            labels.insert(label.into(), v.to_string());
        }
    }
    if let Some(t) = m.get("Trigger")
        && let Some(t) = object(t, "/Message/Trigger", &mut errors)
    {
        for (key, label) in [("Namespace", "namespace"), ("MetricName", "metric")] {
            if let Some(v) = text(t, key) {
                labels.insert(label.into(), v.to_string());
            }
        }
        match t.get("Dimensions") {
            None | Some(Json::Null) => {}
            Some(Json::Array(dims)) => {
                for (i, d) in dims.iter().enumerate() {
                    let (Some(k), Some(v)) = (
                        d.get("name")
                            .or_else(|| d.get("Name"))
                            .and_then(Json::as_str),
                        d.get("value")
                            .or_else(|| d.get("Value"))
                            .and_then(Json::as_str),
                    ) else {
                        errors.push(at(
                            format!("/Message/Trigger/Dimensions/{i}"),
                            "must be {\"name\": …, \"value\": …} strings",
                        ));
                        continue;
                    };
                    labels.insert(k.to_string(), v.to_string());
                }
            }
            Some(_) => errors.push(at("/Message/Trigger/Dimensions", "must be a list")),
        }
    }
    let mut annotations = BTreeMap::new();
    for (key, ann) in [
        ("AlarmDescription", "description"),
        ("NewStateReason", "summary"),
    ] {
        if let Some(v) = text(m, key) {
            annotations.insert(ann.into(), v.to_string());
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let (Some(arn), Some(status)) = (arn, status) else {
        return Ok(None);
    };
    Ok(Some(Alert {
        source: "cloudwatch".into(),
        fingerprint: arn,
        status,
        severity: None,
        labels,
        annotations,
        starts_at: if status == Status::Firing {
            changed
        } else {
            None
        },
        ends_at: if status == Status::Resolved {
            changed
        } else {
            None
        },
        tenant: None,
        raw: message.clone(),
    }))
}

#[cfg(test)]
mod tests;
