//! The `http` built-in plugin: one HTTP request with an optional JSON body, checked against the
//! expected status. 5xx, 429 and 408 are retryable errors, other unexpected statuses permanent.
//!
//! The request goes through the host, so only hosts the operator granted `http` are reachable.
//! Knows nothing about the host beyond the SDK.

use std::collections::BTreeMap;
use std::time::Duration;

use csmp_sdk::schemars::JsonSchema;
use csmp_sdk::serde::{Deserialize, Serialize};
use csmp_sdk::serde_json::Value;
use csmp_sdk::{Context, PluginError, Request};

/// HTTP methods the plugin sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", rename_all = "UPPERCASE")]
#[schemars(crate = "csmp_sdk::schemars")]
pub enum Method {
    /// `GET` (the default).
    #[default]
    #[serde(alias = "get")]
    Get,
    /// `POST`.
    #[serde(alias = "post")]
    Post,
    /// `PUT`.
    #[serde(alias = "put")]
    Put,
    /// `PATCH`.
    #[serde(alias = "patch")]
    Patch,
    /// `DELETE`.
    #[serde(alias = "delete")]
    Delete,
    /// `HEAD`.
    #[serde(alias = "head")]
    Head,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Head => "HEAD",
        }
    }
}

/// The step's `with:`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Input {
    /// The HTTP method; `GET` when omitted.
    #[serde(default)]
    pub method: Method,
    /// Absolute `http://` or `https://` URL; its host must be granted to `http`.
    pub url: String,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body, sent with `Content-Type: application/json`.
    #[serde(default)]
    pub body: Option<Value>,
    /// Statuses that count as success; any 2xx when omitted.
    #[serde(default)]
    pub expected_status: Vec<u16>,
    /// Per-request timeout in milliseconds (clamped by the host).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// The step's output.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Output {
    /// The response status.
    pub status: u16,
    /// Response headers (lower-case names; the last value wins when repeated).
    pub headers: BTreeMap<String, String>,
    /// The body: parsed JSON when it is JSON, else the text, else `null` when empty.
    pub body: Value,
}

/// Sends the request and checks the status.
pub fn run(ctx: &Context, input: Input) -> Result<Output, PluginError> {
    let mut request = Request::new(input.method.as_str(), &input.url);
    let mut has_idempotency_key = false;
    for (name, value) in &input.headers {
        has_idempotency_key |= name.eq_ignore_ascii_case("idempotency-key");
        request = request.header(name, value);
    }
    // Retried attempts of one step carry the same key, so a careful upstream can deduplicate.
    if !has_idempotency_key && !matches!(input.method, Method::Get | Method::Head) {
        request = request.header("idempotency-key", ctx.idempotency_key());
    }
    if let Some(body) = &input.body {
        request = request.json(body)?;
    }
    if let Some(ms) = input.timeout_ms {
        request = request.timeout(Duration::from_millis(ms));
    }

    ctx.debug(format!("{} {}", input.method.as_str(), input.url));
    let response = ctx.http(request)?;
    let ok = if input.expected_status.is_empty() {
        response.is_success()
    } else {
        input.expected_status.contains(&response.status)
    };
    if !ok {
        let err = response.status_error();
        ctx.warn(format!("unexpected status: {err}"));
        return Err(err);
    }

    let body = if response.body.is_empty() {
        Value::Null
    } else {
        csmp_sdk::serde_json::from_slice(&response.body)
            .unwrap_or_else(|_| Value::String(response.text()))
    };
    Ok(Output {
        status: response.status,
        headers: response
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect(),
        body,
    })
}

csmp_sdk::plugin! {
    name: "http",
    version: env!("CARGO_PKG_VERSION"),
    description: "Sends one HTTP request with an optional JSON body; 5xx is retryable, 4xx permanent",
    capabilities: csmp_sdk::Capabilities::none().http_host("*"),
    run: run,
}

#[cfg(test)]
mod tests {
    use super::*;
    use csmp_sdk::serde_json::{self, json};
    use csmp_sdk::testing::MockHost;
    use csmp_sdk::{HttpError, Response};

    fn input(v: Value) -> Input {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("bad fixture: {e}"))
    }

    fn answering(status: u16, body: Value) -> MockHost {
        MockHost::new()
            .with_idempotency_key("run-1/create")
            .with_http(move |_| {
                Response::json(status, &body).map_err(|e| HttpError::Transport(e.to_string()))
            })
    }

    #[test]
    fn posts_json_with_an_idempotency_key() -> Result<(), PluginError> {
        let host = answering(201, json!({"id": "i-1"}));
        let out = run(
            &host.context(),
            input(json!({
                "method": "POST",
                "url": "https://cloud.example.invalid/instances",
                "headers": {"authorization": "Bearer t"},
                "body": {"size": "small"},
            })),
        )?;
        assert_eq!(out.status, 201);
        assert_eq!(out.body, json!({"id": "i-1"}));

        let sent = host.requests();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].method, "POST");
        assert_eq!(
            sent[0].header_value("idempotency-key"),
            Some("run-1/create")
        );
        assert_eq!(sent[0].header_value("authorization"), Some("Bearer t"));
        let body: Value = sent[0].json_body()?;
        assert_eq!(body, json!({"size": "small"}));
        Ok(())
    }

    #[test]
    fn get_sends_no_body_and_no_key() -> Result<(), PluginError> {
        let host = answering(200, json!([1, 2]));
        let out = run(
            &host.context(),
            input(json!({"url": "https://x.example.invalid/"})),
        )?;
        assert_eq!(out.body, json!([1, 2]));
        let sent = host.requests();
        assert_eq!(sent[0].method, "GET");
        assert_eq!(sent[0].body, None);
        assert_eq!(sent[0].header_value("idempotency-key"), None);
        Ok(())
    }

    #[test]
    fn status_decides_retryability() {
        let cases = [
            (503, None, Some(true)),
            (500, None, Some(true)),
            (404, None, Some(false)),
            (400, None, Some(false)),
            (200, Some(vec![201]), Some(false)),
            (404, Some(vec![404]), None),
        ];
        for (status, expected, retryable) in cases {
            let mut with = json!({"url": "https://x.example.invalid/"});
            if let Some(e) = expected {
                with["expected_status"] = json!(e);
            }
            let result = run(&answering(status, json!({})).context(), input(with));
            assert_eq!(
                result.err().map(|e| e.is_retryable()),
                retryable,
                "status {status}"
            );
        }
    }

    #[test]
    fn transport_failures_are_retryable() {
        let host = MockHost::new().with_http(|_| Err(HttpError::Transport("refused".into())));
        let err = run(
            &host.context(),
            input(json!({"url": "https://x.example.invalid/"})),
        );
        assert!(matches!(err, Err(PluginError::Retryable(m)) if m.contains("refused")));
    }

    #[test]
    fn rejects_unknown_fields_and_methods() {
        assert!(serde_json::from_value::<Input>(json!({"url": "u", "bogus": 1})).is_err());
        assert!(serde_json::from_value::<Input>(json!({"url": "u", "method": "BREW"})).is_err());
    }

    #[test]
    fn schema_requires_url() {
        let d = csmp_descriptor();
        assert_eq!(d.name, "http");
        assert_eq!(d.input_schema["required"], json!(["url"]));
        assert_eq!(d.capabilities.http_hosts, vec!["*".to_string()]);
    }
}
