//! The plugin against answers recorded from moto (`fixtures/`), through the SDK's mock host.

use std::sync::{Arc, Mutex};

use csmp_sdk::aws::query::decode_form;
use csmp_sdk::aws::time::system_time;
use csmp_sdk::serde_json::{self, Value, json};
use csmp_sdk::testing::MockHost;
use csmp_sdk::{HttpError, Request, Response};

use super::*;

/// Three hourly points of `csmp/test Load` (13, 12, 11 from oldest to newest).
const STATISTICS: &str = include_str!("../fixtures/cw-get-metric-statistics.xml");
/// The same points through `GetMetricData`, newest first.
const DATA: &str = include_str!("../fixtures/cw-get-metric-data.xml");
const ALARMS: &str = include_str!("../fixtures/cw-describe-alarms.xml");
const PUT: &str = include_str!("../fixtures/cw-put-metric-data.xml");

/// 2026-12-01T20:00:00Z.
const NOW: i64 = 1_796_155_200;

/// Decoded form bodies, one per request.
type Forms = Arc<Mutex<Vec<Form>>>;

/// One decoded form body.
type Form = Vec<(String, String)>;

fn value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn run_with(answer: &'static str, with: Value) -> (Result<Output, PluginError>, Vec<Form>) {
    let forms: Forms = Arc::default();
    let seen = Arc::clone(&forms);
    let host = MockHost::new()
        .with_secret("aws_access_key_id", "AKIDEXAMPLE")
        .with_secret("aws_secret_access_key", "secret")
        .with_now(system_time(NOW))
        .with_http(move |req: &Request| {
            let form = decode_form(req.body.as_deref().unwrap_or_default());
            seen.lock()
                .map_err(|e| HttpError::Transport(e.to_string()))?
                .push(form);
            Ok(Response {
                status: 200,
                headers: vec![],
                body: answer.as_bytes().to_vec(),
            })
        });
    let result = serde_json::from_value::<Input>(with)
        .map_err(PluginError::from)
        .and_then(|input| run(&host.context(), input));
    let sent = forms.lock().map(|f| f.clone()).unwrap_or_default();
    (result, sent)
}

#[test]
fn statistics_come_back_oldest_first_with_summaries() {
    let (out, forms) = run_with(
        STATISTICS,
        json!({
            "action": "get_metric_statistics",
            "namespace": "csmp/test",
            "metric": "Load",
            "dimensions": {"AutoScalingGroupName": "web"},
            "statistics": ["Average", "Maximum"],
            "period": 3600,
            "since": "5h",
        }),
    );
    let Ok(Output::Statistics(s)) = out else {
        panic!("{out:?}")
    };
    assert_eq!(s.values, [13.0, 12.0, 11.0]);
    assert_eq!(
        (s.latest, s.peak, s.mean),
        (Some(11.0), Some(13.0), Some(12.0))
    );
    assert_eq!(s.datapoints[0].maximum, Some(13.0));
    assert_eq!(s.datapoints[0].unit.as_deref(), Some("Count"));
    assert_eq!(
        (s.start_time.as_str(), s.end_time.as_str()),
        ("2026-12-01T15:00:00Z", "2026-12-01T20:00:00Z")
    );

    let sent = &forms[0];
    assert_eq!(value(sent, "Action"), Some("GetMetricStatistics"));
    assert_eq!(value(sent, "Version"), Some("2010-08-01"));
    assert_eq!(
        value(sent, "Dimensions.member.1.Name"),
        Some("AutoScalingGroupName")
    );
    assert_eq!(value(sent, "Dimensions.member.1.Value"), Some("web"));
    assert_eq!(value(sent, "Statistics.member.2"), Some("Maximum"));
    assert_eq!(value(sent, "StartTime"), Some("2026-12-01T15:00:00Z"));
    assert_eq!(value(sent, "Period"), Some("3600"));
}

#[test]
fn no_data_is_retryable_unless_allowed() {
    const EMPTY: &str = "<GetMetricStatisticsResponse><GetMetricStatisticsResult><Label>Load</Label><Datapoints/></GetMetricStatisticsResult></GetMetricStatisticsResponse>";
    let with = json!({"action": "get_metric_statistics", "namespace": "AWS/EC2", "metric": "CPUUtilization", "since": "10m"});
    let (out, _) = run_with(EMPTY, with.clone());
    assert!(
        matches!(&out, Err(PluginError::Retryable(m)) if m.contains("no Average data for AWS/EC2/CPUUtilization")),
        "{out:?}"
    );
    let mut allowed = with;
    allowed["require_data"] = json!(false);
    let (out, _) = run_with(EMPTY, allowed);
    assert!(matches!(out, Ok(Output::Statistics(s)) if s.values.is_empty() && s.latest.is_none()));
}

#[test]
fn metric_data_is_sorted_oldest_first() {
    let (out, forms) = run_with(
        DATA,
        json!({
            "action": "get_metric_data",
            "queries": [{"id": "load", "namespace": "csmp/test", "metric": "Load", "dimensions": {"AutoScalingGroupName": "web"}, "period": 3600}],
            "start_time": "2026-12-01T15:00:00Z",
            "end_time": "2026-12-01T20:00:00Z",
        }),
    );
    let Ok(Output::Data(d)) = out else {
        panic!("{out:?}")
    };
    let load = &d.results["load"];
    assert_eq!(load.values, [13.0, 12.0, 11.0]);
    assert_eq!(load.timestamps[0], "2026-12-01T17:00:00Z");
    assert_eq!(load.status, "Complete");
    let sent = &forms[0];
    assert_eq!(
        value(
            sent,
            "MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Value"
        ),
        Some("web")
    );
    assert_eq!(
        value(sent, "MetricDataQueries.member.1.MetricStat.Stat"),
        Some("Average")
    );
}

#[test]
fn put_metric_data_sends_every_point() {
    let (out, forms) = run_with(
        PUT,
        json!({
            "action": "put_metric_data",
            "namespace": "csmp/test",
            "data": [
                {"metric": "Load", "value": 5.5, "unit": "Count", "dimensions": {"AutoScalingGroupName": "web"}, "timestamp": "2026-12-01T19:00:00Z"},
                {"metric": "Load", "value": 7},
            ],
        }),
    );
    assert!(
        matches!(out, Ok(Output::Put(Put { published: 2, .. }))),
        "{out:?}"
    );
    let sent = &forms[0];
    assert_eq!(value(sent, "MetricData.member.1.Value"), Some("5.5"));
    assert_eq!(
        value(sent, "MetricData.member.1.Timestamp"),
        Some("2026-12-01T19:00:00Z")
    );
    assert_eq!(
        value(sent, "MetricData.member.1.Dimensions.member.1.Name"),
        Some("AutoScalingGroupName")
    );
    assert_eq!(
        value(sent, "MetricData.member.2.Timestamp"),
        Some("2026-12-01T20:00:00Z"),
        "now by the host's clock"
    );
}

#[test]
fn alarms_are_described() {
    let (out, forms) = run_with(
        ALARMS,
        json!({"action": "describe_alarms", "prefix": "web-"}),
    );
    let Ok(Output::Alarms(a)) = out else {
        panic!("{out:?}")
    };
    assert_eq!(a.firing, 0);
    let alarm = &a.alarms[0];
    assert_eq!(
        (alarm.name.as_str(), alarm.state.as_str()),
        ("web-cpu-high", "OK")
    );
    assert_eq!(alarm.threshold, Some(80.0));
    assert!(alarm.arn.starts_with("arn:aws:cloudwatch:"));
    assert_eq!(value(&forms[0], "AlarmNamePrefix"), Some("web-"));
}

#[test]
fn windows_and_durations_are_checked() {
    assert_eq!(duration_secs("90s").ok(), Some(90));
    assert_eq!(duration_secs("1h30m").ok(), Some(5400));
    assert_eq!(duration_secs("3d").ok(), Some(259_200));
    for bad in ["", "10", "h", "3x", "0m"] {
        assert!(duration_secs(bad).is_err(), "{bad}");
    }
    let (out, _) = run_with(
        STATISTICS,
        json!({"action": "get_metric_statistics", "namespace": "n", "metric": "m", "start_time": "2026-12-02T00:00:00Z"}),
    );
    assert!(
        matches!(&out, Err(PluginError::Permanent(m)) if m.contains("the start must come first")),
        "{out:?}"
    );
    let (out, _) = run_with(
        STATISTICS,
        json!({"action": "get_metric_statistics", "namespace": "n", "metric": "m", "end_time": "tomorrow"}),
    );
    assert!(
        matches!(&out, Err(PluginError::Permanent(m)) if m.contains("not an RFC 3339 time")),
        "{out:?}"
    );
}

#[test]
fn describes_itself_and_refuses_unknown_fields() {
    let d = csmp_descriptor();
    assert_eq!(d.name, "aws-cloudwatch");
    let schema = d.input_schema.to_string();
    for action in [
        "get_metric_statistics",
        "get_metric_data",
        "put_metric_data",
        "describe_alarms",
    ] {
        assert!(schema.contains(action), "{action}");
    }
    let typo =
        json!({"action": "get_metric_statistics", "namespace": "n", "metric": "m", "sinse": "1h"});
    assert!(serde_json::from_value::<Input>(typo).is_err());
}
