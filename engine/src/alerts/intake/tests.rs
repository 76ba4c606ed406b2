use serde_json::json;

use super::*;

#[test]
fn an_alertmanager_notification_maps_each_alert() {
    let body = json!({
        "version": "4", "groupKey": "{}:{alertname=\"HighCPU\"}", "status": "firing",
        "commonLabels": {"alertname": "HighCPU"},
        "alerts": [
            {"status": "firing", "fingerprint": "abc", "labels": {"instance": "web-1", "severity": "critical"},
             "annotations": {"value": "95"}, "startsAt": "2026-12-01T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z"},
            {"status": "resolved", "labels": {"instance": "web-2"},
             "startsAt": "2026-12-01T10:00:00Z", "endsAt": "2026-12-01T10:05:00Z"}
        ]
    });
    let alerts = alertmanager("alertmanager", &body).expect("accepted");
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0].fingerprint, "abc");
    assert_eq!(alerts[0].status, Status::Firing);
    assert_eq!(alerts[0].severity.as_deref(), Some("critical"));
    assert_eq!(
        alerts[0].labels["alertname"], "HighCPU",
        "common labels fill in"
    );
    assert_eq!(alerts[0].ends_at, None, "Go's zero time is no end");
    assert_eq!(alerts[1].status, Status::Resolved);
    assert_eq!(alerts[1].fingerprint.len(), 16, "a hash of the labels");
    assert!(alerts[1].ends_at.is_some());
}

#[test]
fn every_problem_of_a_notification_is_located() {
    let body = json!({"status": "burning", "alerts": [{"labels": {"a": [1]}, "startsAt": "yesterday"}, 7]});
    let errors = alertmanager("alertmanager", &body).expect_err("refused");
    let pointers: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        pointers,
        [
            "/status",
            "/alerts/0/labels/a",
            "/alerts/0/startsAt",
            "/alerts/1"
        ],
        "{errors:?}"
    );
}

#[test]
fn grafana_legacy_is_one_alert() {
    let body = json!({"state": "alerting", "ruleName": "Disk full", "ruleId": 7, "tags": {"host": "db-1"}});
    let a = alertmanager("grafana", &body).expect("accepted");
    assert_eq!(a[0].fingerprint, "grafana-rule-7");
    assert_eq!(a[0].labels["alertname"], "Disk full");
    let ok = alertmanager(
        "grafana",
        &json!({"state": "ok", "ruleName": "Disk full", "ruleId": 7}),
    )
    .expect("accepted");
    assert_eq!(ok[0].status, Status::Resolved);
}

#[test]
fn pagerduty_events_map_and_need_what_pagerduty_needs() {
    let (a, action) = pagerduty(
        &json!({"routing_key": "k", "event_action": "trigger", "dedup_key": "disk-db-1",
                "payload": {"summary": "Disk 95% full", "source": "db-1", "severity": "critical",
                            "component": "postgres", "custom_details": {"free_gb": 2, "nested": {"x": 1}}}}),
        0,
    )
    .expect("accepted");
    assert_eq!(action, PagerDutyAction::Trigger);
    assert_eq!(a.fingerprint, "disk-db-1");
    assert_eq!(a.labels["source"], "db-1");
    assert_eq!(a.labels["component"], "postgres");
    assert_eq!(a.labels["free_gb"], "2");
    assert!(!a.labels.contains_key("nested"));
    assert_eq!(a.annotations["summary"], "Disk 95% full");
    let (r, _) = pagerduty(
        &json!({"event_action": "resolve", "dedup_key": "disk-db-1"}),
        5,
    )
    .expect("accepted");
    assert_eq!(r.status, Status::Resolved);
    let errors = pagerduty(
        &json!({"event_action": "resolve", "payload": {"severity": "bad"}}),
        0,
    )
    .expect_err("refused");
    let pointers: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        pointers,
        [
            "/dedup_key",
            "/payload/summary",
            "/payload/source",
            "/payload/severity"
        ]
    );
}

#[test]
fn a_generic_webhook_is_read_through_its_mapping() {
    let body = json!({"events": [{"id": 17, "state": "ALERTING", "tags": {"service": "web"}, "title": "Web down"},
                                 {"id": 18, "state": "OK", "tags": {"service": "api"}}]});
    let mapping = WebhookMapping {
        items: Some("/events".into()),
        fingerprint: Some("/id".into()),
        status: Some("/state".into()),
        firing: Some("ALERTING".into()),
        resolved: Some("OK".into()),
        labels: Some("/tags".into()),
        summary: Some("/title".into()),
        ..WebhookMapping::default()
    };
    let a = webhook(&body, &mapping).expect("accepted");
    assert_eq!(a[0].fingerprint, "17");
    assert_eq!(a[0].status, Status::Firing);
    assert_eq!(a[0].annotations["summary"], "Web down");
    assert_eq!(a[1].status, Status::Resolved);
    let bad = webhook(
        &json!({"events": [{"state": "MAYBE", "tags": {"s": "x"}}]}),
        &mapping,
    )
    .expect_err("refused");
    assert_eq!(bad[0].0, "/events/0/state");
    let plain = webhook(
        &json!({"labels": {"service": "web"}, "status": "firing"}),
        &WebhookMapping::default(),
    )
    .expect("accepted");
    assert_eq!(plain.len(), 1);
    let empty =
        webhook(&json!({"status": "firing"}), &WebhookMapping::default()).expect_err("refused");
    assert_eq!(empty[0].0, "/labels");
}

#[test]
fn a_cloudwatch_alarm_maps_arn_state_and_dimensions() {
    let msg = json!({
        "AlarmName": "web-cpu-high", "AlarmArn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:web-cpu-high",
        "NewStateValue": "ALARM", "NewStateReason": "Threshold Crossed", "StateChangeTime": "2026-12-01T10:00:00.000+0000",
        "Region": "EU (Ireland)", "AWSAccountId": "123456789012",
        "Trigger": {"MetricName": "CPUUtilization", "Namespace": "AWS/EC2",
                    "Dimensions": [{"name": "AutoScalingGroupName", "value": "web-asg"}]}
    });
    let a = cloudwatch(&msg).expect("accepted").expect("accepted");
    assert_eq!(
        a.fingerprint,
        "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:web-cpu-high"
    );
    assert_eq!(a.status, Status::Firing);
    assert_eq!(a.labels["AutoScalingGroupName"], "web-asg");
    assert_eq!(a.labels["alertname"], "web-cpu-high");
    assert!(a.starts_at.is_some());
    let mut ok = msg.clone();
    ok["NewStateValue"] = json!("OK");
    assert_eq!(
        cloudwatch(&ok).expect("accepted").expect("accepted").status,
        Status::Resolved
    );
    let mut nodata = msg.clone();
    nodata["NewStateValue"] = json!("INSUFFICIENT_DATA");
    assert!(cloudwatch(&nodata).expect("accepted").is_none());
    let errors = cloudwatch(&json!({"NewStateValue": "MAYBE"})).expect_err("refused");
    assert_eq!(errors.len(), 3, "{errors:?}");
}
