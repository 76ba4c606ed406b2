//! AWS error answers: the code and message pulled out of a Query (XML) or JSON error body, and
//! the decision the engine needs — retry (throttling, a server-side fault, a 5xx) or fail now
//! (everything else: bad input, missing permissions, wrong credentials).
//!
//! Pure; the table of retryable codes is the one place to extend.

use serde_json::Value;

use crate::PluginError;

/// Error codes that mean "try again later". Any 5xx (and 429) is retryable whatever its code.
pub const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "BandwidthLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
    "InsufficientInstanceCapacity",
];

/// Codes that mean the credentials are wrong or the signature did not verify.
const CREDENTIAL_CODES: &[&str] = &[
    "AuthFailure",
    "SignatureDoesNotMatch",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "RequestExpired",
];

/// Codes that mean the caller lacks a permission.
const PERMISSION_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
];

/// One error answer, as AWS reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    /// `ec2`, `autoscaling`, `cloudwatch`.
    pub service: String,
    /// The action that failed.
    pub action: String,
    /// The HTTP status.
    pub status: u16,
    /// AWS's error code (`InvalidInstanceID.NotFound`, `Throttling`, ...), or `HTTP <status>`
    /// when the body carried none.
    pub code: String,
    /// AWS's message.
    pub message: String,
    /// The request id, for AWS support.
    pub request_id: Option<String>,
}

impl AwsError {
    /// Reads the code and message out of an XML (Query) or JSON error body.
    pub fn from_response(
        service: &str,
        action: &str,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Self {
        let text = String::from_utf8_lossy(body);
        let (code, message, request_id) = from_xml(&text)
            .or_else(|| from_json(&text, headers))
            .unwrap_or_else(|| {
                let start: String = text.trim().chars().take(200).collect();
                (format!("HTTP {status}"), start, None)
            });
        let request_id = request_id.or_else(|| {
            headers
                .iter()
                .find(|(n, _)| {
                    n.eq_ignore_ascii_case("x-amzn-requestid")
                        || n.eq_ignore_ascii_case("x-amz-request-id")
                })
                .map(|(_, v)| v.clone())
        });
        Self {
            service: service.into(),
            action: action.into(),
            status,
            code,
            message,
            request_id,
        }
    }

    /// Whether a retry may succeed.
    pub fn is_retryable(&self) -> bool {
        self.status >= 500 || self.status == 429 || RETRYABLE_CODES.contains(&self.code.as_str())
    }

    /// What the operator should do about it, when we know.
    fn hint(&self) -> Option<String> {
        let code = self.code.as_str();
        if CREDENTIAL_CODES.contains(&code) {
            return Some(
                "check the secrets aws_access_key_id and aws_secret_access_key (and \
                 aws_session_token for temporary credentials), the region, and that the \
                 host's clock is right"
                    .into(),
            );
        }
        if PERMISSION_CODES.contains(&code) {
            return Some(format!(
                "allow {}:{} in the IAM policy of these credentials",
                self.service, self.action
            ));
        }
        if self.is_retryable() {
            return Some("the step will be retried under its retry policy".into());
        }
        None
    }
}

impl From<AwsError> for PluginError {
    fn from(e: AwsError) -> Self {
        let mut message = format!(
            "{} {} failed: {}: {} (HTTP {}",
            e.service, e.action, e.code, e.message, e.status
        );
        if let Some(id) = &e.request_id {
            message.push_str(&format!(", request id {id}"));
        }
        message.push(')');
        if let Some(hint) = e.hint() {
            message.push_str("; ");
            message.push_str(&hint);
        }
        if e.is_retryable() {
            PluginError::retryable(message)
        } else {
            PluginError::permanent(message)
        }
    }
}

/// `<Response><Errors><Error><Code>` (EC2) or `<ErrorResponse><Error><Code>` (the others).
fn from_xml(text: &str) -> Option<(String, String, Option<String>)> {
    let doc = roxmltree::Document::parse(text).ok()?;
    let root = doc.root_element();
    let error = super::xml::find(root, "Error")?;
    let code = super::xml::string(error, &["Code"])?;
    let message = super::xml::string(error, &["Message"]).unwrap_or_default();
    let request_id = super::xml::find(root, "RequestID")
        .or_else(|| super::xml::find(root, "RequestId"))
        .and_then(|n| n.text())
        .map(|t| t.trim().to_string());
    Some((code, message, request_id))
}

/// `{"__type": "ns#Code", "message": "..."}` (JSON protocol), with `x-amzn-ErrorType`.
fn from_json(text: &str, headers: &[(String, String)]) -> Option<(String, String, Option<String>)> {
    let value: Value = serde_json::from_str(text).ok()?;
    let header_type = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("x-amzn-errortype"))
        .map(|(_, v)| v.as_str());
    let raw = value
        .get("__type")
        .or_else(|| value.get("code"))
        .and_then(Value::as_str)
        .or(header_type)?;
    let code = raw
        .rsplit('#')
        .next()
        .unwrap_or(raw)
        .split(':')
        .next()
        .unwrap_or(raw);
    let message = value
        .get("message")
        .or_else(|| value.get("Message"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some((code.to_string(), message.to_string(), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC2_AUTH: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the provided access credentials</Message></Error></Errors><RequestID>59dbff89-35bd-4eac-99ed-be587EXAMPLE</RequestID></Response>"#;

    const QUERY_THROTTLE: &str = r#"<ErrorResponse xmlns="https://autoscaling.amazonaws.com/doc/2011-01-01/">
  <Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>
  <RequestId>7d9d6d1e-0000-0000-0000-000000000000</RequestId>
</ErrorResponse>"#;

    fn error(status: u16, body: &str) -> AwsError {
        AwsError::from_response("ec2", "RunInstances", status, &[], body.as_bytes())
    }

    #[test]
    fn ec2_and_query_errors_are_read() {
        let auth = error(401, EC2_AUTH);
        assert_eq!(auth.code, "AuthFailure");
        assert_eq!(
            auth.request_id.as_deref(),
            Some("59dbff89-35bd-4eac-99ed-be587EXAMPLE")
        );
        let failure = PluginError::from(auth);
        assert!(!failure.is_retryable());
        assert!(
            failure
                .message()
                .starts_with("ec2 RunInstances failed: AuthFailure: AWS was not able to validate")
                && failure.message().contains("aws_secret_access_key"),
            "{failure}"
        );

        let throttle = error(400, QUERY_THROTTLE);
        assert_eq!(throttle.code, "Throttling");
        assert!(PluginError::from(throttle).is_retryable());
    }

    #[test]
    fn codes_and_statuses_decide_retryability() {
        let body = |code: &str| {
            format!(
                "<Response><Errors><Error><Code>{code}</Code><Message>m</Message></Error></Errors></Response>"
            )
        };
        for (status, code, retryable) in [
            (503, "RequestLimitExceeded", true),
            (400, "RequestLimitExceeded", true),
            (400, "Throttling", true),
            (500, "InternalError", true),
            (503, "Whatever", true),
            (400, "InvalidInstanceID.NotFound", false),
            (400, "InvalidParameterValue", false),
            (403, "UnauthorizedOperation", false),
            (400, "ValidationError", false),
        ] {
            let e = error(status, &body(code));
            assert_eq!(e.code, code);
            assert_eq!(e.is_retryable(), retryable, "{status} {code}");
        }
        let denied = PluginError::from(error(403, &body("UnauthorizedOperation")));
        assert!(
            denied.message().contains("allow ec2:RunInstances"),
            "{denied}"
        );
    }

    #[test]
    fn json_and_opaque_errors_are_read() {
        let json = AwsError::from_response(
            "cloudwatch",
            "GetMetricData",
            400,
            &[("x-amzn-RequestId".into(), "r-1".into())],
            br#"{"__type":"com.amazonaws.cloudwatch#InvalidParameterValueException","message":"bad period"}"#,
        );
        assert_eq!(json.code, "InvalidParameterValueException");
        assert_eq!(json.message, "bad period");
        assert_eq!(json.request_id.as_deref(), Some("r-1"));

        let opaque = error(502, "<html>Bad gateway</html>");
        assert_eq!(opaque.code, "HTTP 502");
        assert!(opaque.is_retryable());
    }
}
