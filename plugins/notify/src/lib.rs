//! The `notify` built-in plugin: a Slack-compatible webhook message, a PagerDuty Events v2
//! event, or a generic JSON webhook, all sent through the host's HTTP.
//!
//! Where to send comes from `url` (and `routing_key` for PagerDuty) or, when they are omitted,
//! from the secret `notify_<channel>` the operator set and granted, so a workflow can say just
//! `channel: ops`. Knows nothing about the host beyond the SDK.

use csmp_sdk::schemars::JsonSchema;
use csmp_sdk::serde::{Deserialize, Serialize};
use csmp_sdk::serde_json::{Map, Value, json};
use csmp_sdk::{Context, PluginError, Request};

/// The PagerDuty Events API v2 endpoint, used when `url` is omitted.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// What kind of receiver the message goes to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", rename_all = "snake_case")]
#[schemars(crate = "csmp_sdk::schemars")]
pub enum Kind {
    /// A Slack (or Mattermost, or any Slack-compatible) incoming webhook.
    #[default]
    Slack,
    /// PagerDuty Events API v2.
    Pagerduty,
    /// Any endpoint accepting a JSON `POST`.
    Webhook,
}

/// PagerDuty event severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", rename_all = "snake_case")]
#[schemars(crate = "csmp_sdk::schemars")]
pub enum Severity {
    /// `critical`.
    Critical,
    /// `error` (the default).
    #[default]
    Error,
    /// `warning`.
    Warning,
    /// `info`.
    Info,
}

/// PagerDuty event action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", rename_all = "snake_case")]
#[schemars(crate = "csmp_sdk::schemars")]
pub enum Action {
    /// Open (or re-open) an incident (the default).
    #[default]
    Trigger,
    /// Acknowledge it.
    Acknowledge,
    /// Resolve it.
    Resolve,
}

/// The step's `with:`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Input {
    /// The receiver kind; `slack` when omitted.
    #[serde(default)]
    pub kind: Kind,
    /// A logical channel such as `ops` or `oncall`. Without `url`, the destination is read
    /// from the secret `notify_<channel>`.
    #[serde(default)]
    pub channel: Option<String>,
    /// The message (the event summary for PagerDuty).
    pub text: String,
    /// The webhook URL; for PagerDuty, the Events API URL (defaults to PagerDuty's).
    #[serde(default)]
    pub url: Option<String>,
    /// PagerDuty integration key; without it, read from the secret `notify_<channel>`.
    #[serde(default)]
    pub routing_key: Option<String>,
    /// PagerDuty severity.
    #[serde(default)]
    pub severity: Severity,
    /// PagerDuty action.
    #[serde(default)]
    pub action: Action,
    /// PagerDuty deduplication key; the step's idempotency key when omitted, so retries and
    /// a later `resolve` from the same step address the same incident.
    #[serde(default)]
    pub dedup_key: Option<String>,
    /// PagerDuty `source` (the affected system); `csmp` when omitted.
    #[serde(default)]
    pub source: Option<String>,
    /// Structured details: PagerDuty `custom_details`, a webhook's `details`.
    #[serde(default)]
    pub details: Option<Value>,
}

/// The step's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Output {
    /// Always true: a failed delivery is an error, not an output.
    pub delivered: bool,
    /// The receiver's HTTP status.
    pub status: u16,
    /// For PagerDuty: the incident's deduplication key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
}

/// Builds the request for `input` (pure: reads secrets through `ctx`, sends nothing).
pub fn build_request(
    ctx: &Context,
    input: &Input,
) -> Result<(Request, Option<String>), PluginError> {
    let from_channel = || -> Result<String, PluginError> {
        let channel = input.channel.as_deref().ok_or_else(|| {
            PluginError::permanent("give `url` (or `routing_key` for pagerduty) or a `channel`")
        })?;
        ctx.require_secret(&format!("notify_{channel}"))
    };
    match input.kind {
        Kind::Slack => {
            let url = input.url.clone().map_or_else(from_channel, Ok)?;
            let mut body = Map::new();
            body.insert("text".into(), Value::String(input.text.clone()));
            if let Some(channel) = &input.channel {
                body.insert("channel".into(), Value::String(channel.clone()));
            }
            Ok((Request::post(url).json(&body)?, None))
        }
        Kind::Webhook => {
            let url = input.url.clone().map_or_else(from_channel, Ok)?;
            let body = json!({
                "channel": input.channel,
                "text": input.text,
                "details": input.details,
                "idempotency_key": ctx.idempotency_key(),
            });
            let request = Request::post(url)
                .header("idempotency-key", ctx.idempotency_key())
                .json(&body)?;
            Ok((request, None))
        }
        Kind::Pagerduty => {
            let routing_key = input.routing_key.clone().map_or_else(from_channel, Ok)?;
            let dedup_key = input
                .dedup_key
                .clone()
                .unwrap_or_else(|| ctx.idempotency_key().to_owned());
            let mut payload = json!({
                "summary": input.text,
                "source": input.source.as_deref().unwrap_or("csmp"),
                "severity": input.severity,
            });
            if let Some(details) = &input.details {
                payload["custom_details"] = details.clone();
            }
            let body = json!({
                "routing_key": routing_key,
                "event_action": input.action,
                "dedup_key": dedup_key,
                "payload": payload,
            });
            let url = input.url.as_deref().unwrap_or(PAGERDUTY_EVENTS_URL);
            Ok((Request::post(url).json(&body)?, Some(dedup_key)))
        }
    }
}

/// Sends the notification.
pub fn run(ctx: &Context, input: Input) -> Result<Output, PluginError> {
    let (request, dedup_key) = build_request(ctx, &input)?;
    let response = ctx.http(request)?.error_for_status()?;
    ctx.info(format!(
        "notification delivered ({:?}, status {})",
        input.kind, response.status
    ));
    Ok(Output {
        delivered: true,
        status: response.status,
        dedup_key,
    })
}

csmp_sdk::plugin! {
    name: "notify",
    version: env!("CARGO_PKG_VERSION"),
    description: "Sends a Slack-compatible message, a PagerDuty Events v2 event or a JSON webhook",
    capabilities: csmp_sdk::Capabilities::none()
        .http_host("hooks.slack.com")
        .http_host("events.pagerduty.com")
        .http_host("*")
        .secret("notify_*"),
    run: run,
}

#[cfg(test)]
mod tests {
    use super::*;
    use csmp_sdk::serde_json;
    use csmp_sdk::testing::MockHost;
    use csmp_sdk::{HttpError, Response};

    fn input(v: Value) -> Input {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("bad fixture: {e}"))
    }

    fn answering(status: u16) -> MockHost {
        MockHost::new()
            .with_idempotency_key("run-7/page")
            .with_secret("notify_ops", "https://hooks.slack.example.invalid/T/B/x")
            .with_secret("notify_oncall", "pd-routing-key")
            .with_http(move |_| {
                Response::json(status, &json!({"status": "ok"}))
                    .map_err(|e| HttpError::Transport(e.to_string()))
            })
    }

    #[test]
    fn slack_by_channel_reads_the_webhook_from_a_secret() -> Result<(), PluginError> {
        let host = answering(200);
        let out = run(
            &host.context(),
            input(json!({"channel": "ops", "text": "3 ready"})),
        )?;
        assert!(out.delivered);
        let sent = host.requests();
        assert_eq!(sent[0].url, "https://hooks.slack.example.invalid/T/B/x");
        let body: Value = sent[0].json_body()?;
        assert_eq!(body, json!({"text": "3 ready", "channel": "ops"}));
        Ok(())
    }

    #[test]
    fn pagerduty_builds_an_events_v2_payload() -> Result<(), PluginError> {
        let host = answering(202);
        let out = run(
            &host.context(),
            input(json!({
                "kind": "pagerduty",
                "channel": "oncall",
                "text": "provision-vms failed",
                "severity": "critical",
                "details": {"run": "r-1"},
            })),
        )?;
        assert_eq!(out.dedup_key.as_deref(), Some("run-7/page"));
        let sent = host.requests();
        assert_eq!(sent[0].url, PAGERDUTY_EVENTS_URL);
        let body: Value = sent[0].json_body()?;
        assert_eq!(
            body,
            json!({
                "routing_key": "pd-routing-key",
                "event_action": "trigger",
                "dedup_key": "run-7/page",
                "payload": {
                    "summary": "provision-vms failed",
                    "source": "csmp",
                    "severity": "critical",
                    "custom_details": {"run": "r-1"},
                },
            })
        );
        Ok(())
    }

    #[test]
    fn webhook_posts_text_details_and_key() -> Result<(), PluginError> {
        let host = answering(204);
        run(
            &host.context(),
            input(json!({
                "kind": "webhook",
                "url": "https://hooks.example.invalid/csmp",
                "text": "hi",
                "details": {"n": 1},
            })),
        )?;
        let sent = host.requests();
        assert_eq!(sent[0].header_value("idempotency-key"), Some("run-7/page"));
        let body: Value = sent[0].json_body()?;
        assert_eq!(body["details"], json!({"n": 1}));
        assert_eq!(body["text"], "hi");
        Ok(())
    }

    #[test]
    fn failures_are_classified() {
        let retry = run(
            &answering(503).context(),
            input(json!({"channel": "ops", "text": "t"})),
        );
        assert!(matches!(retry, Err(PluginError::Retryable(_))));
        let perm = run(
            &answering(400).context(),
            input(json!({"channel": "ops", "text": "t"})),
        );
        assert!(matches!(perm, Err(PluginError::Permanent(_))));
    }

    #[test]
    fn a_missing_destination_says_what_to_give() {
        let err = run(&answering(200).context(), input(json!({"text": "t"})));
        assert!(matches!(err, Err(PluginError::Permanent(m)) if m.contains("channel")));
        let err = run(
            &answering(200).context(),
            input(json!({"channel": "nope", "text": "t"})),
        );
        assert!(matches!(err, Err(PluginError::Permanent(m)) if m.contains("notify_nope")));
    }
}
