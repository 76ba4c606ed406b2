//! CloudWatch's XML answers read into plain records: data points of `GetMetricStatistics`,
//! series of `GetMetricData`, alarms of `DescribeAlarms` — each series oldest first.
//!
//! Pure XML reading; knows nothing about requests or the plugin's input.

use csmp_sdk::PluginError;
use csmp_sdk::aws::time::parse_rfc3339;
use csmp_sdk::aws::xml;
use csmp_sdk::schemars::JsonSchema;
use csmp_sdk::serde::Serialize;

use crate::Statistic;

/// One period of a metric.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Datapoint {
    /// The start of the period (RFC 3339).
    pub timestamp: String,
    /// The statistics asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average: Option<f64>,
    /// See `average`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    /// See `average`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    /// See `average`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    /// See `average`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_count: Option<f64>,
    /// The unit CloudWatch reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

impl Datapoint {
    /// The value of statistic `s`.
    pub fn get(&self, s: Statistic) -> Option<f64> {
        match s {
            Statistic::Average => self.average,
            Statistic::Sum => self.sum,
            Statistic::Minimum => self.minimum,
            Statistic::Maximum => self.maximum,
            Statistic::SampleCount => self.sample_count,
        }
    }
}

/// One result of `GetMetricData`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Series {
    /// The query's id.
    pub id: String,
    /// CloudWatch's label for it.
    pub label: String,
    /// `Complete`, `PartialData` (more pages) or `InternalError`.
    pub status: String,
    /// The periods, oldest first (RFC 3339).
    pub timestamps: Vec<String>,
    /// The values, in the same order.
    pub values: Vec<f64>,
}

impl Series {
    /// Orders the points oldest first (CloudWatch may answer newest first).
    pub fn sort(&mut self) {
        let mut points: Vec<(i64, String, f64)> = self
            .timestamps
            .drain(..)
            .zip(self.values.drain(..))
            .map(|(t, v)| (parse_rfc3339(&t).unwrap_or(i64::MIN), t, v))
            .collect();
        points.sort_by_key(|(unix, _, _)| *unix);
        for (_, t, v) in points {
            self.timestamps.push(t);
            self.values.push(v);
        }
    }
}

/// One alarm.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Alarm {
    /// Its name.
    pub name: String,
    /// Its ARN (what an SNS notification names it by).
    pub arn: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
    /// Why it is in that state.
    pub reason: String,
    /// The metric it watches (empty for metric-math alarms).
    pub namespace: String,
    /// See `namespace`.
    pub metric: String,
    /// The threshold.
    pub threshold: Option<f64>,
    /// `GreaterThanThreshold`, ...
    pub comparison: String,
    /// When its state last changed.
    pub state_updated: String,
}

/// The label and data points (oldest first) of a `GetMetricStatistics` answer.
pub fn statistics(text: &str) -> Result<(String, Vec<Datapoint>), PluginError> {
    let doc = xml::parse(text, "cloudwatch GetMetricStatistics")?;
    let result = result(doc.root_element(), "GetMetricStatisticsResult")?;
    let mut points: Vec<(i64, Datapoint)> = xml::list(result, &["Datapoints"])
        .into_iter()
        .map(|m| {
            let timestamp = xml::string(m, &["Timestamp"]).unwrap_or_default();
            let point = Datapoint {
                average: xml::number(m, &["Average"]),
                sum: xml::number(m, &["Sum"]),
                minimum: xml::number(m, &["Minimum"]),
                maximum: xml::number(m, &["Maximum"]),
                sample_count: xml::number(m, &["SampleCount"]),
                unit: xml::string(m, &["Unit"]),
                timestamp,
            };
            (parse_rfc3339(&point.timestamp).unwrap_or(i64::MIN), point)
        })
        .collect();
    points.sort_by_key(|(unix, _)| *unix);
    let label = xml::string(result, &["Label"]).unwrap_or_default();
    Ok((label, points.into_iter().map(|(_, p)| p).collect()))
}

/// The series (each oldest first) of a `GetMetricData` answer and its `NextToken`.
pub fn data(text: &str) -> Result<(Vec<Series>, Option<String>), PluginError> {
    let doc = xml::parse(text, "cloudwatch GetMetricData")?;
    let result = result(doc.root_element(), "GetMetricDataResult")?;
    let series = xml::list(result, &["MetricDataResults"])
        .into_iter()
        .map(|m| {
            let mut s = Series {
                id: xml::string(m, &["Id"]).unwrap_or_default(),
                label: xml::string(m, &["Label"]).unwrap_or_default(),
                status: xml::string(m, &["StatusCode"]).unwrap_or_default(),
                timestamps: xml::list(m, &["Timestamps"])
                    .into_iter()
                    .filter_map(|t| t.text().map(|t| t.trim().to_string()))
                    .collect(),
                values: xml::list(m, &["Values"])
                    .into_iter()
                    .filter_map(|v| v.text().and_then(|t| t.trim().parse().ok()))
                    .collect(),
            };
            if s.timestamps.len() != s.values.len() {
                return Err(PluginError::permanent(format!(
                    "cloudwatch answered {} timestamps and {} values for `{}`",
                    s.timestamps.len(),
                    s.values.len(),
                    s.id
                )));
            }
            s.sort();
            Ok(s)
        })
        .collect::<Result<_, _>>()?;
    Ok((series, xml::string(result, &["NextToken"])))
}

/// The metric alarms of a `DescribeAlarms` answer and its `NextToken`.
pub fn alarms(text: &str) -> Result<(Vec<Alarm>, Option<String>), PluginError> {
    let doc = xml::parse(text, "cloudwatch DescribeAlarms")?;
    let result = result(doc.root_element(), "DescribeAlarmsResult")?;
    let alarms = xml::list(result, &["MetricAlarms"])
        .into_iter()
        .map(|m| {
            let s = |f: &str| xml::string(m, &[f]).unwrap_or_default();
            Alarm {
                name: s("AlarmName"),
                arn: s("AlarmArn"),
                state: s("StateValue"),
                reason: s("StateReason"),
                namespace: s("Namespace"),
                metric: s("MetricName"),
                threshold: xml::number(m, &["Threshold"]),
                comparison: s("ComparisonOperator"),
                state_updated: s("StateUpdatedTimestamp"),
            }
        })
        .collect();
    Ok((alarms, xml::string(result, &["NextToken"])))
}

fn result<'a, 'i>(
    root: xml::roxmltree::Node<'a, 'i>,
    name: &str,
) -> Result<xml::roxmltree::Node<'a, 'i>, PluginError> {
    xml::child(root, name).ok_or_else(|| {
        PluginError::permanent(format!(
            "cloudwatch answered without a {name}; check that the endpoint speaks the CloudWatch Query API"
        ))
    })
}
