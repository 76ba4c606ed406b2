//! The `aws-cloudwatch` built-in plugin: Amazon CloudWatch over its Query API — metric
//! statistics and metric data for a time window ending now (by the host's clock), publishing
//! metric data, and describing alarms — on AWS or a CloudWatch-compatible endpoint.
//!
//! Series come back oldest first with their values also as a plain list (`values`) and
//! summarised (`latest`, `peak`, `mean`), so a workflow can compare them in a `when:` or
//! hand them to the `forecast` plugin. Credentials, region and endpoint: see `csmp_sdk::aws`
//! (secrets `aws_*`; CloudWatch signs as `monitoring`). Knows nothing about the host beyond
//! the SDK.

pub mod metrics;

use std::collections::BTreeMap;

use csmp_sdk::aws::time::{UtcTime, parse_rfc3339};
use csmp_sdk::aws::{self, Client, Params, Target};
use csmp_sdk::schemars::JsonSchema;
use csmp_sdk::serde::{Deserialize, Serialize};
use csmp_sdk::{Context, PluginError};

pub use metrics::{Alarm, Datapoint, Series};

/// The step's `with:`: one action.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", tag = "action", rename_all = "snake_case")]
#[schemars(crate = "csmp_sdk::schemars", transform = csmp_sdk::dispatch_on_action)]
pub enum Input {
    /// Statistics of one metric per period (`GetMetricStatistics`).
    GetMetricStatistics(GetMetricStatistics),
    /// Several metrics at once (`GetMetricData`).
    GetMetricData(GetMetricData),
    /// Publish data points (`PutMetricData`).
    PutMetricData(PutMetricData),
    /// Alarms and their states (`DescribeAlarms`).
    DescribeAlarms(DescribeAlarms),
}

/// The time window of a query, as its `since`, `start_time` and `end_time` give it.
#[derive(Debug, Clone, Copy)]
struct Window<'a> {
    since: Option<&'a String>,
    start_time: Option<&'a String>,
    end_time: Option<&'a String>,
}

/// `get_metric_statistics`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct GetMetricStatistics {
    /// `AWS/EC2`, `AWS/ApplicationELB`, or your own.
    pub namespace: String,
    /// `CPUUtilization`, ...
    pub metric: String,
    /// Dimensions by name, such as `{AutoScalingGroupName: web}`.
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    /// Which statistics; `values` and the summaries use the first. `[Average]` when omitted.
    #[serde(default = "average")]
    pub statistics: Vec<Statistic>,
    /// Seconds per data point (60 or a multiple of it); 300 when omitted.
    #[serde(default = "five_minutes")]
    #[schemars(range(min = 1))]
    pub period: u32,
    /// A unit to ask for (`Percent`, `Count`, ...).
    #[serde(default)]
    pub unit: Option<String>,
    /// How far back from the end: `90s`, `10m`, `3h`, `7d`, `1h30m`; 1 hour when neither this
    /// nor `start_time` is given.
    #[serde(default)]
    pub since: Option<String>,
    /// The start of the window (RFC 3339).
    #[serde(default)]
    pub start_time: Option<String>,
    /// The end of the window (RFC 3339); now when omitted.
    #[serde(default)]
    pub end_time: Option<String>,
    /// Fail (retryably) when there is no data point in the window; true when omitted.
    #[serde(default = "yes")]
    pub require_data: bool,
    /// Where and as whom to call CloudWatch.
    #[serde(default)]
    pub aws: Target,
}

/// A CloudWatch statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub enum Statistic {
    /// The mean of the period's samples.
    Average,
    /// Their sum.
    Sum,
    /// The smallest.
    Minimum,
    /// The largest.
    Maximum,
    /// How many there were.
    SampleCount,
}

impl Statistic {
    fn as_str(self) -> &'static str {
        match self {
            Self::Average => "Average",
            Self::Sum => "Sum",
            Self::Minimum => "Minimum",
            Self::Maximum => "Maximum",
            Self::SampleCount => "SampleCount",
        }
    }
}

fn average() -> Vec<Statistic> {
    vec![Statistic::Average]
}

fn five_minutes() -> u32 {
    300
}

fn yes() -> bool {
    true
}

/// `get_metric_data`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct GetMetricData {
    /// The metrics to read.
    #[schemars(length(min = 1, max = 500))]
    pub queries: Vec<MetricQuery>,
    /// How far back from the end: `90s`, `10m`, `3h`, `7d`, `1h30m`; 1 hour when neither this
    /// nor `start_time` is given.
    #[serde(default)]
    pub since: Option<String>,
    /// The start of the window (RFC 3339).
    #[serde(default)]
    pub start_time: Option<String>,
    /// The end of the window (RFC 3339); now when omitted.
    #[serde(default)]
    pub end_time: Option<String>,
    /// Where and as whom to call CloudWatch.
    #[serde(default)]
    pub aws: Target,
}

/// One metric of a `get_metric_data`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct MetricQuery {
    /// Names the result: starts with a lower-case letter; letters, digits and `_`.
    pub id: String,
    /// The metric's namespace.
    pub namespace: String,
    /// The metric's name.
    pub metric: String,
    /// Its dimensions.
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    /// `Average`, `Sum`, `Maximum`, `p99`, ...; `Average` when omitted.
    #[serde(default)]
    pub stat: Option<String>,
    /// Seconds per data point; 300 when omitted.
    #[serde(default = "five_minutes")]
    pub period: u32,
}

/// `put_metric_data`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct PutMetricData {
    /// The namespace (not `AWS/…`).
    pub namespace: String,
    /// The data points.
    #[schemars(length(min = 1, max = 1000))]
    pub data: Vec<MetricDatum>,
    /// Where and as whom to call CloudWatch.
    #[serde(default)]
    pub aws: Target,
}

/// One data point to publish.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct MetricDatum {
    /// The metric's name.
    pub metric: String,
    /// The value.
    pub value: f64,
    /// Its unit (`Count`, `Percent`, ...).
    #[serde(default)]
    pub unit: Option<String>,
    /// Its dimensions.
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    /// When it was measured (RFC 3339); now when omitted.
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// `describe_alarms`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct DescribeAlarms {
    /// Alarm names; every alarm when empty.
    #[serde(default)]
    pub names: Vec<String>,
    /// Only alarms whose name starts with this.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Only alarms in this state: `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    #[serde(default)]
    pub state: Option<String>,
    /// Where and as whom to call CloudWatch.
    #[serde(default)]
    pub aws: Target,
}

/// The step's output: which shape depends on the action.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", untagged)]
#[schemars(crate = "csmp_sdk::schemars")]
pub enum Output {
    /// `get_metric_statistics`.
    Statistics(Statistics),
    /// `get_metric_data`.
    Data(Data),
    /// `put_metric_data`.
    Put(Put),
    /// `describe_alarms`.
    Alarms(Alarms),
}

/// What `get_metric_statistics` returns.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Statistics {
    /// The metric's label.
    pub label: String,
    /// The window asked for.
    pub start_time: String,
    /// See `start_time`.
    pub end_time: String,
    /// Seconds per data point.
    pub period: u32,
    /// The first statistic asked for, which `values` and the summaries use.
    pub statistic: Statistic,
    /// The data points, oldest first.
    pub datapoints: Vec<Datapoint>,
    /// The first statistic of each data point, oldest first.
    pub values: Vec<f64>,
    /// The newest value.
    pub latest: Option<f64>,
    /// The largest value.
    pub peak: Option<f64>,
    /// The mean of the values.
    pub mean: Option<f64>,
}

/// What `get_metric_data` returns.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Data {
    /// One series per query, by id.
    pub results: BTreeMap<String, Series>,
}

/// What `put_metric_data` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Put {
    /// The namespace.
    pub namespace: String,
    /// How many data points were published.
    pub published: usize,
}

/// What `describe_alarms` returns.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Alarms {
    /// The alarms.
    pub alarms: Vec<Alarm>,
    /// How many are in state `ALARM`.
    pub firing: usize,
}

/// Runs one action.
pub fn run(ctx: &Context, input: Input) -> Result<Output, PluginError> {
    match input {
        Input::GetMetricStatistics(i) => statistics(ctx, i).map(Output::Statistics),
        Input::GetMetricData(i) => data(ctx, i).map(Output::Data),
        Input::PutMetricData(i) => put(ctx, i).map(Output::Put),
        Input::DescribeAlarms(i) => alarms(ctx, i).map(Output::Alarms),
    }
}

/// `(start, end)` in seconds since the epoch.
fn window(ctx: &Context, window: Window<'_>) -> Result<(i64, i64), PluginError> {
    let instant = |field: &str, text: &str| {
        parse_rfc3339(text).ok_or_else(|| {
            PluginError::permanent(format!(
                "`{field}` is `{text}`, not an RFC 3339 time such as 2026-12-01T10:00:00Z"
            ))
        })
    };
    let end = match window.end_time {
        Some(t) => instant("end_time", t)?,
        None => UtcTime::from_system(ctx.now()).unix,
    };
    let start = match (window.start_time, window.since) {
        (Some(t), _) => instant("start_time", t)?,
        (None, Some(since)) => end - duration_secs(since)?,
        (None, None) => end - 3600,
    };
    if start >= end {
        return Err(PluginError::permanent(format!(
            "the window starts at {} and ends at {}; the start must come first",
            UtcTime::from_unix(start).rfc3339(),
            UtcTime::from_unix(end).rfc3339()
        )));
    }
    Ok((start, end))
}

/// `90s`, `10m`, `3h`, `7d`, `1h30m` in seconds.
pub fn duration_secs(text: &str) -> Result<i64, PluginError> {
    let bad = || {
        PluginError::permanent(format!(
            "`{text}` is not a duration; write it like 90s, 10m, 3h, 7d or 1h30m"
        ))
    };
    let mut total: i64 = 0;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: i64 = number.parse().map_err(|_| bad())?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() || total <= 0 {
        return Err(bad());
    }
    Ok(total)
}

fn dimensions_params(params: Params, prefix: &str, dims: &BTreeMap<String, String>) -> Params {
    params.structs(
        prefix,
        dims.iter().map(|(k, v)| {
            vec![
                ("Name".to_string(), k.clone()),
                ("Value".to_string(), v.clone()),
            ]
        }),
    )
}

fn statistics(ctx: &Context, input: GetMetricStatistics) -> Result<Statistics, PluginError> {
    let client = Client::connect(ctx, aws::CLOUDWATCH, &input.aws)?;
    let (start, end) = window(
        ctx,
        Window {
            since: input.since.as_ref(),
            start_time: input.start_time.as_ref(),
            end_time: input.end_time.as_ref(),
        },
    )?;
    let first = input
        .statistics
        .first()
        .copied()
        .unwrap_or(Statistic::Average);
    let params = dimensions_params(
        Params::new()
            .set("Namespace", &input.namespace)
            .set("MetricName", &input.metric),
        "Dimensions.member",
        &input.dimensions,
    )
    .set("StartTime", UtcTime::from_unix(start).rfc3339())
    .set("EndTime", UtcTime::from_unix(end).rfc3339())
    .set("Period", input.period)
    .list(
        "Statistics.member",
        input.statistics.iter().map(|s| s.as_str()),
    )
    .set_opt("Unit", input.unit.as_ref());
    let answer = client.query("GetMetricStatistics", &params)?;
    let (label, datapoints) = metrics::statistics(&answer.text)?;
    let values: Vec<f64> = datapoints.iter().filter_map(|d| d.get(first)).collect();
    if input.require_data && values.is_empty() {
        return Err(PluginError::retryable(format!(
            "no {} data for {}/{} {:?} between {} and {}; the step's retry policy asks again",
            first.as_str(),
            input.namespace,
            input.metric,
            input.dimensions,
            UtcTime::from_unix(start).rfc3339(),
            UtcTime::from_unix(end).rfc3339()
        )));
    }
    ctx.info(format!(
        "{}/{}: {} data points",
        input.namespace,
        input.metric,
        values.len()
    ));
    Ok(Statistics {
        label,
        start_time: UtcTime::from_unix(start).rfc3339(),
        end_time: UtcTime::from_unix(end).rfc3339(),
        period: input.period,
        statistic: first,
        latest: values.last().copied(),
        peak: values.iter().copied().reduce(f64::max),
        mean: (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64),
        values,
        datapoints,
    })
}

fn data(ctx: &Context, input: GetMetricData) -> Result<Data, PluginError> {
    let client = Client::connect(ctx, aws::CLOUDWATCH, &input.aws)?;
    let (start, end) = window(
        ctx,
        Window {
            since: input.since.as_ref(),
            start_time: input.start_time.as_ref(),
            end_time: input.end_time.as_ref(),
        },
    )?;
    let mut params = Params::new()
        .set("StartTime", UtcTime::from_unix(start).rfc3339())
        .set("EndTime", UtcTime::from_unix(end).rfc3339())
        .set("ScanBy", "TimestampAscending");
    for (i, q) in input.queries.iter().enumerate() {
        let p = format!("MetricDataQueries.member.{}", i + 1);
        params = params
            .set(format!("{p}.Id"), &q.id)
            .set(format!("{p}.MetricStat.Metric.Namespace"), &q.namespace)
            .set(format!("{p}.MetricStat.Metric.MetricName"), &q.metric)
            .set(format!("{p}.MetricStat.Period"), q.period)
            .set(
                format!("{p}.MetricStat.Stat"),
                q.stat.as_deref().unwrap_or("Average"),
            );
        params = dimensions_params(
            params,
            &format!("{p}.MetricStat.Metric.Dimensions.member"),
            &q.dimensions,
        );
    }
    let mut results = BTreeMap::new();
    let mut token: Option<String> = None;
    for _ in 0..20 {
        let answer = client.query(
            "GetMetricData",
            &params.clone().set_opt("NextToken", token.as_ref()),
        )?;
        let (page, next) = metrics::data(&answer.text)?;
        for series in page {
            merge(&mut results, series);
        }
        token = next;
        if token.is_none() {
            break;
        }
    }
    Ok(Data { results })
}

/// Adds a page's series to the results (a series may span pages), keeping oldest first.
fn merge(results: &mut BTreeMap<String, Series>, series: Series) {
    let entry = results.entry(series.id.clone()).or_insert_with(|| Series {
        values: Vec::new(),
        timestamps: Vec::new(),
        ..series.clone()
    });
    entry.timestamps.extend(series.timestamps);
    entry.values.extend(series.values);
    entry.status = series.status;
    entry.sort();
}

fn put(ctx: &Context, input: PutMetricData) -> Result<Put, PluginError> {
    let client = Client::connect(ctx, aws::CLOUDWATCH, &input.aws)?;
    let mut params = Params::new().set("Namespace", &input.namespace);
    for (i, d) in input.data.iter().enumerate() {
        if !d.value.is_finite() {
            return Err(PluginError::permanent(format!(
                "data point {} of {} is not a finite number",
                i + 1,
                d.metric
            )));
        }
        let p = format!("MetricData.member.{}", i + 1);
        let timestamp = match &d.timestamp {
            Some(t) => parse_rfc3339(t).ok_or_else(|| {
                PluginError::permanent(format!(
                    "timestamp `{t}` of data point {} is not RFC 3339",
                    i + 1
                ))
            })?,
            None => UtcTime::from_system(ctx.now()).unix,
        };
        params = params
            .set(format!("{p}.MetricName"), &d.metric)
            .set(format!("{p}.Value"), d.value)
            .set(
                format!("{p}.Timestamp"),
                UtcTime::from_unix(timestamp).rfc3339(),
            )
            .set_opt(&format!("{p}.Unit"), d.unit.as_ref());
        params = dimensions_params(params, &format!("{p}.Dimensions.member"), &d.dimensions);
    }
    client.query("PutMetricData", &params)?;
    ctx.info(format!(
        "published {} data points to {}",
        input.data.len(),
        input.namespace
    ));
    Ok(Put {
        namespace: input.namespace,
        published: input.data.len(),
    })
}

fn alarms(ctx: &Context, input: DescribeAlarms) -> Result<Alarms, PluginError> {
    let client = Client::connect(ctx, aws::CLOUDWATCH, &input.aws)?;
    let mut alarms = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..20 {
        let params = Params::new()
            .list("AlarmNames.member", &input.names)
            .set_opt("AlarmNamePrefix", input.prefix.as_ref())
            .set_opt("StateValue", input.state.as_ref())
            .set_opt("NextToken", token.as_ref());
        let answer = client.query("DescribeAlarms", &params)?;
        let (page, next) = metrics::alarms(&answer.text)?;
        alarms.extend(page);
        token = next;
        if token.is_none() {
            break;
        }
    }
    let firing = alarms.iter().filter(|a| a.state == "ALARM").count();
    Ok(Alarms { alarms, firing })
}

csmp_sdk::plugin! {
    name: "aws-cloudwatch",
    version: env!("CARGO_PKG_VERSION"),
    description: "Amazon CloudWatch (metric statistics and data, put metric data, alarms) over the CloudWatch Query API",
    capabilities: csmp_sdk::Capabilities::none()
        .http_host("*.amazonaws.com")
        .secret("aws_*"),
    run: run,
}

#[cfg(test)]
mod tests;
