//! Talking to AWS (and AWS-compatible clouds: moto, LocalStack, other providers' EC2 APIs) from
//! a plugin: credentials read from granted secrets, Signature Version 4 (`sigv4`), the Query
//! protocol with its XML answers (`query`, `xml`), the JSON protocol, and AWS error codes
//! mapped to retryable or permanent failures (`error`).
//!
//! ```ignore
//! use csmp_sdk::aws::{self, Client, Params, Target};
//!
//! let client = Client::connect(ctx, aws::EC2, &input.target)?;
//! let answer = client.query("DescribeInstances", Params::new().list("InstanceId", &ids))?;
//! let doc = answer.document()?;
//! ```
//!
//! Where a plugin connects: [`Target`] (part of its input) names the region, the endpoint and
//! which credentials to use; what it leaves out comes from the secrets `aws_region` and
//! `aws_endpoint`, then from the defaults (`us-east-1`, the service's AWS endpoint). The time
//! that goes into each signature is the host's clock ([`crate::Context::now`]).
//!
//! Enabled by the SDK's `aws` feature. Knows nothing about EC2, Auto Scaling or CloudWatch
//! beyond their names and API versions.

mod client;
mod credentials;
pub mod error;
pub mod query;
pub mod sigv4;
pub mod time;
pub mod xml;

use schemars::JsonSchema;
use serde::Deserialize;

pub use client::{Client, QueryResponse, default_endpoint};
pub use credentials::Credentials;
pub use query::Params;

/// One AWS service as a client needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// The name in messages (`ec2`, `autoscaling`, `cloudwatch`).
    pub name: &'static str,
    /// The name in the signature's credential scope (`monitoring` for CloudWatch).
    pub signing_name: &'static str,
    /// The first label of the service's AWS endpoint host.
    pub endpoint_prefix: &'static str,
    /// The Query API's `Version` parameter.
    pub api_version: &'static str,
    /// The JSON protocol's `X-Amz-Target` prefix, for services that speak it.
    pub json_target: Option<&'static str>,
}

/// Amazon EC2 (Query protocol, EC2 dialect).
pub const EC2: Service = Service {
    name: "ec2",
    signing_name: "ec2",
    endpoint_prefix: "ec2",
    api_version: "2016-11-15",
    json_target: None,
};

/// Amazon EC2 Auto Scaling (Query protocol).
pub const AUTOSCALING: Service = Service {
    name: "autoscaling",
    signing_name: "autoscaling",
    endpoint_prefix: "autoscaling",
    api_version: "2011-01-01",
    json_target: None,
};

/// Amazon CloudWatch (Query protocol; also JSON 1.0 under `GraniteServiceVersion20100801`).
pub const CLOUDWATCH: Service = Service {
    name: "cloudwatch",
    signing_name: "monitoring",
    endpoint_prefix: "monitoring",
    api_version: "2010-08-01",
    json_target: Some("GraniteServiceVersion20100801"),
};

/// Where and as whom a plugin calls AWS: a part of each AWS plugin's input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(crate = "crate::serde", deny_unknown_fields)]
#[schemars(crate = "crate::schemars")]
pub struct Target {
    /// The region, such as `eu-west-3`; the secret `aws_region` when omitted, else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// The endpoint URL, for moto, LocalStack or an AWS-compatible cloud (for example
    /// `http://127.0.0.1:5000`); the secret `aws_endpoint` when omitted, else the service's
    /// AWS endpoint in the region. Its host must be granted to the plugin.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Which credentials to use: `prod` reads the secrets `aws_prod_access_key_id`,
    /// `aws_prod_secret_access_key` (and `aws_prod_session_token`, `aws_prod_region`,
    /// `aws_prod_endpoint`); omitted, the same names without `prod_`.
    #[serde(default)]
    pub credentials: Option<String>,
}

impl Target {
    /// The secret `aws_[<credentials>_]<what>`.
    pub fn secret_name(&self, what: &str) -> String {
        match self.credentials.as_deref().filter(|c| !c.is_empty()) {
            Some(profile) => format!("aws_{profile}_{what}"),
            None => format!("aws_{what}"),
        }
    }
}
