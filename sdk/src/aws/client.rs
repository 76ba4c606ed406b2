//! A signed client for one AWS service in one region: Query actions (form body in, XML out)
//! and JSON-protocol operations, every request signed with SigV4 at the host's current time,
//! every error answer turned into a retryable or permanent [`PluginError`].

use std::time::Duration;

use serde_json::Value;

use super::error::AwsError;
use super::query::Params;
use super::sigv4::Signer;
use super::{Credentials, Service, Target};
use crate::{Context, PluginError, Request};

/// Longest a single AWS call may take (the host clamps it to the step's remaining time).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Calls one service as one set of credentials.
#[derive(Debug)]
pub struct Client<'a> {
    /// Sends the requests and gives the time.
    ctx: &'a Context,
    /// Which API.
    service: Service,
    /// The signing region.
    region: String,
    /// The base URL requests go to.
    endpoint: String,
    /// Who signs.
    credentials: Credentials,
}

/// The XML of a successful Query action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResponse {
    /// `<service> <Action>`, for messages.
    pub what: String,
    /// The body.
    pub text: String,
}

impl QueryResponse {
    /// The body parsed.
    pub fn document(&self) -> Result<roxmltree::Document<'_>, PluginError> {
        super::xml::parse(&self.text, &self.what)
    }
}

impl<'a> Client<'a> {
    /// A client for `service` at `target`: reads the credentials (and, where `target` leaves
    /// them out, the region and endpoint) from the plugin's secrets.
    pub fn connect(
        ctx: &'a Context,
        service: Service,
        target: &Target,
    ) -> Result<Self, PluginError> {
        let credentials = Credentials::from_secrets(ctx, target)?;
        let setting = |given: &Option<String>, what: &str| {
            given.clone().filter(|v| !v.is_empty()).or_else(|| {
                ctx.secret(&target.secret_name(what))
                    .filter(|v| !v.is_empty())
            })
        };
        let region = setting(&target.region, "region").unwrap_or_else(|| "us-east-1".into());
        let endpoint = match setting(&target.endpoint, "endpoint") {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => default_endpoint(service, &region),
        };
        Ok(Self::new(ctx, service, region, endpoint, credentials))
    }

    /// A client with everything given.
    pub fn new(
        ctx: &'a Context,
        service: Service,
        region: String,
        endpoint: String,
        credentials: Credentials,
    ) -> Self {
        Self {
            ctx,
            service,
            region,
            endpoint,
            credentials,
        }
    }

    /// The signing region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The base URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Runs Query action `action` with `params`; the XML answer on success.
    pub fn query(&self, action: &str, params: &Params) -> Result<QueryResponse, PluginError> {
        let body = params.form(action, self.service.api_version);
        let request = Request::post(format!("{}/", self.endpoint))
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body.into_bytes());
        let response = self.send(action, request)?;
        Ok(QueryResponse {
            what: format!("{} {action}", self.service.name),
            text: response.text(),
        })
    }

    /// Runs JSON-protocol operation `operation` (JSON 1.0) with `body`; the JSON answer.
    pub fn json(&self, operation: &str, body: &Value) -> Result<Value, PluginError> {
        let prefix = self.service.json_target.ok_or_else(|| {
            PluginError::permanent(format!(
                "{} does not speak the JSON protocol; use its Query actions",
                self.service.name
            ))
        })?;
        let request = Request::post(format!("{}/", self.endpoint))
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", format!("{prefix}.{operation}"))
            .body(serde_json::to_vec(body)?);
        let response = self.send(operation, request)?;
        if response.body.is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        response.json_body()
    }

    fn send(&self, action: &str, request: Request) -> Result<crate::Response, PluginError> {
        let mut request = request.timeout(CALL_TIMEOUT);
        let signer = Signer {
            credentials: &self.credentials,
            region: &self.region,
            service: self.service.signing_name,
        };
        signer.sign(&mut request, self.ctx.now())?;
        self.ctx.debug(format!(
            "{} {action} at {}",
            self.service.name, self.endpoint
        ));
        let response = self.ctx.http(request).map_err(|e| {
            let failure = PluginError::from(e);
            let message = format!(
                "{} {action} at {}: {}",
                self.service.name,
                self.endpoint,
                failure.message()
            );
            if failure.is_retryable() {
                PluginError::retryable(message)
            } else {
                PluginError::permanent(message)
            }
        })?;
        if response.is_success() {
            return Ok(response);
        }
        let error = AwsError::from_response(
            self.service.name,
            action,
            response.status,
            &response.headers,
            &response.body,
        );
        self.ctx.warn(format!(
            "{} {action} answered {} {}",
            self.service.name, response.status, error.code
        ));
        Err(error.into())
    }
}

/// `https://<prefix>.<region>.amazonaws.com` (`.amazonaws.com.cn` in the China regions).
pub fn default_endpoint(service: Service, region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{}.{region}.{suffix}", service.endpoint_prefix)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::aws::{CLOUDWATCH, EC2, query};
    use crate::testing::MockHost;
    use crate::{HttpError, Response};

    fn host() -> MockHost {
        MockHost::new()
            .with_secret("aws_access_key_id", "AKIDEXAMPLE")
            .with_secret("aws_secret_access_key", "secret")
            .with_now(crate::aws::time::system_time(1_440_938_160))
    }

    fn xml(status: u16, body: &str) -> Result<Response, HttpError> {
        Ok(Response {
            status,
            headers: vec![("content-type".into(), "text/xml".into())],
            body: body.as_bytes().to_vec(),
        })
    }

    #[test]
    fn query_posts_a_signed_form_to_the_regional_endpoint() -> Result<(), PluginError> {
        let host = host().with_http(|_| xml(200, "<DescribeRegionsResponse/>"));
        let ctx = host.context();
        let target = Target {
            region: Some("eu-west-3".into()),
            ..Target::default()
        };
        let client = Client::connect(&ctx, EC2, &target)?;
        let answer = client.query("DescribeRegions", &Params::new().set("AllRegions", true))?;
        assert_eq!(
            answer.document()?.root_element().tag_name().name(),
            "DescribeRegionsResponse"
        );

        let sent = &host.requests()[0];
        assert_eq!(sent.url, "https://ec2.eu-west-3.amazonaws.com/");
        assert_eq!(sent.method, "POST");
        let form = query::decode_form(sent.body.as_deref().unwrap_or_default());
        assert_eq!(form[0], ("Action".into(), "DescribeRegions".into()));
        assert_eq!(form[1], ("Version".into(), "2016-11-15".into()));
        assert_eq!(form[2], ("AllRegions".into(), "true".into()));
        let auth = sent.header_value("authorization").unwrap_or_default();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-3/ec2/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, Signature="
            ),
            "{auth}"
        );
        assert_eq!(
            sent.header_value("host"),
            Some("ec2.eu-west-3.amazonaws.com")
        );
        Ok(())
    }

    #[test]
    fn endpoint_and_region_fall_back_to_secrets() -> Result<(), PluginError> {
        let host = host()
            .with_secret("aws_endpoint", "http://127.0.0.1:5000/")
            .with_secret("aws_region", "ap-south-1")
            .with_http(|_| xml(200, "<PutMetricDataResponse/>"));
        let ctx = host.context();
        let client = Client::connect(&ctx, CLOUDWATCH, &Target::default())?;
        assert_eq!(client.endpoint(), "http://127.0.0.1:5000");
        client.query("PutMetricData", &Params::new())?;
        let sent = &host.requests()[0];
        assert_eq!(sent.url, "http://127.0.0.1:5000/");
        let auth = sent.header_value("authorization").unwrap_or_default();
        assert!(
            auth.contains("/ap-south-1/monitoring/aws4_request"),
            "{auth}"
        );
        assert_eq!(
            default_endpoint(EC2, "cn-north-1"),
            "https://ec2.cn-north-1.amazonaws.com.cn"
        );
        Ok(())
    }

    #[test]
    fn json_protocol_sets_the_target_and_reads_json() -> Result<(), PluginError> {
        let host = host().with_http(|_| {
            Response::json(200, &serde_json::json!({"MetricDataResults": []}))
                .map_err(|e| HttpError::Transport(e.to_string()))
        });
        let ctx = host.context();
        let client = Client::connect(&ctx, CLOUDWATCH, &Target::default())?;
        let out = client.json(
            "GetMetricData",
            &serde_json::json!({"MetricDataQueries": []}),
        )?;
        assert_eq!(out["MetricDataResults"], serde_json::json!([]));
        let sent = &host.requests()[0];
        assert_eq!(
            sent.header_value("x-amz-target"),
            Some("GraniteServiceVersion20100801.GetMetricData")
        );
        let auth = sent.header_value("authorization").unwrap_or_default();
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-target"),
            "{auth}"
        );
        let ec2 = Client::connect(&ctx, EC2, &Target::default())?;
        assert!(ec2.json("X", &Value::Null).is_err());
        Ok(())
    }

    #[test]
    fn failures_are_classified_and_transport_errors_say_where() -> Result<(), PluginError> {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        let host = host().with_http(move |_| {
            match seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => xml(
                    400,
                    "<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>",
                ),
                1 => xml(400, "<Response><Errors><Error><Code>InvalidAMIID.NotFound</Code><Message>no ami</Message></Error></Errors></Response>"),
                _ => Err(HttpError::Transport("connection refused".into())),
            }
        });
        let ctx = host.context();
        let client = Client::connect(&ctx, EC2, &Target::default())?;
        let throttled = client.query("RunInstances", &Params::new()).err();
        assert!(
            matches!(&throttled, Some(PluginError::Retryable(m)) if m.contains("Throttling")),
            "{throttled:?}"
        );
        let missing = client.query("RunInstances", &Params::new()).err();
        assert!(
            matches!(&missing, Some(PluginError::Permanent(m)) if m.contains("InvalidAMIID.NotFound: no ami")),
            "{missing:?}"
        );
        let refused = client.query("RunInstances", &Params::new()).err();
        assert!(
            matches!(&refused, Some(PluginError::Retryable(m)) if m.contains("https://ec2.us-east-1.amazonaws.com") && m.contains("connection refused")),
            "{refused:?}"
        );
        Ok(())
    }
}
