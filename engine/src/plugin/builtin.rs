//! The built-in plugins, embedded in the binary: `echo`, `http`, `notify`, `aws-ec2`,
//! `aws-autoscaling`, `aws-cloudwatch` and `forecast`, built from `plugins/*` to
//! `wasm32-wasip2` by `engine/build.rs`.
//!
//! Bytes only; `host` loads them like any other plugin.

/// `echo`: returns its input object.
pub const ECHO: &[u8] = include_bytes!(concat!(env!("CSMP_PLUGIN_WASM_DIR"), "/echo.wasm"));
/// `http`: one HTTP request with a JSON body.
pub const HTTP: &[u8] = include_bytes!(concat!(env!("CSMP_PLUGIN_WASM_DIR"), "/http.wasm"));
/// `notify`: Slack, PagerDuty Events v2 or a generic webhook.
pub const NOTIFY: &[u8] = include_bytes!(concat!(env!("CSMP_PLUGIN_WASM_DIR"), "/notify.wasm"));
/// `aws-ec2`: EC2 instances over the EC2 Query API.
pub const AWS_EC2: &[u8] = include_bytes!(concat!(env!("CSMP_PLUGIN_WASM_DIR"), "/aws-ec2.wasm"));
/// `aws-autoscaling`: Auto Scaling groups over the Auto Scaling Query API.
pub const AWS_AUTOSCALING: &[u8] = include_bytes!(concat!(
    env!("CSMP_PLUGIN_WASM_DIR"),
    "/aws-autoscaling.wasm"
));
/// `aws-cloudwatch`: CloudWatch metrics and alarms over the CloudWatch Query API.
pub const AWS_CLOUDWATCH: &[u8] = include_bytes!(concat!(
    env!("CSMP_PLUGIN_WASM_DIR"),
    "/aws-cloudwatch.wasm"
));
/// `forecast`: seasonal forecasts of a metric and the capacity their peak needs.
pub const FORECAST: &[u8] = include_bytes!(concat!(env!("CSMP_PLUGIN_WASM_DIR"), "/forecast.wasm"));

/// Every built-in, by name.
pub const ALL: [(&str, &[u8]); 7] = [
    ("echo", ECHO),
    ("http", HTTP),
    ("notify", NOTIFY),
    ("aws-ec2", AWS_EC2),
    ("aws-autoscaling", AWS_AUTOSCALING),
    ("aws-cloudwatch", AWS_CLOUDWATCH),
    ("forecast", FORECAST),
];
