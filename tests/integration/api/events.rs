//! Alerts in: Alertmanager and Grafana webhook payloads, checked, stored and listed.

use serde_json::{Value, json};

use super::harness::{App, ids, s};

/// Alertmanager's webhook payload, as in its documentation (version 4).
fn alertmanager() -> Value {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"HighCPU\"}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "csmp",
        "groupLabels": { "alertname": "HighCPU" },
        "commonLabels": { "alertname": "HighCPU", "severity": "warning" },
        "commonAnnotations": { "summary": "CPU above 90%" },
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": { "alertname": "HighCPU", "instance": "web-1:9100", "severity": "warning" },
                "annotations": { "summary": "CPU above 90% on web-1" },
                "startsAt": "2026-01-01T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example:9090/graph?g0.expr=cpu",
                "fingerprint": "a1b2c3d4e5f60718"
            },
            {
                "status": "firing",
                "labels": { "alertname": "HighCPU", "instance": "web-2:9100", "severity": "warning" },
                "annotations": { "summary": "CPU above 90% on web-2" },
                "startsAt": "2026-01-01T10:01:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example:9090/graph?g0.expr=cpu",
                "fingerprint": "b1b2c3d4e5f60718"
            }
        ]
    })
}

/// Grafana unified alerting's webhook payload, as in its documentation.
fn grafana() -> Value {
    json!({
        "receiver": "csmp",
        "status": "resolved",
        "orgId": 1,
        "alerts": [
            {
                "status": "resolved",
                "labels": { "alertname": "DiskFull", "team": "ops", "zone": "eu-1" },
                "annotations": { "description": "disk usage back under 80%" },
                "startsAt": "2026-01-01T09:00:00Z",
                "endsAt": "2026-01-01T09:30:00Z",
                "generatorURL": "https://grafana.example/alerting/grafana/abc/view",
                "fingerprint": "c1b2c3d4e5f60718",
                "silenceURL": "https://grafana.example/alerting/silence/new",
                "dashboardURL": "https://grafana.example/d/xyz",
                "panelURL": "https://grafana.example/d/xyz?viewPanel=1",
                "values": { "B": 78.5, "C": 0 },
                "valueString": "[ var='B' labels={} value=78.5 ]"
            }
        ],
        "groupLabels": { "alertname": "DiskFull" },
        "commonLabels": { "alertname": "DiskFull", "team": "ops", "zone": "eu-1" },
        "commonAnnotations": {},
        "externalURL": "https://grafana.example/",
        "version": "1",
        "groupKey": "{}:{alertname=\"DiskFull\"}",
        "truncatedAlerts": 0,
        "title": "[RESOLVED] DiskFull",
        "state": "ok",
        "message": "**Resolved**"
    })
}

#[test]
fn alert_notifications_are_checked_stored_and_listed() {
    let app = App::start();
    let send = |source: &str, payload: &Value| {
        app.post(&format!("/v1/events/{source}"))
            .auth(&app.integration)
            .json(payload)
            .send()
    };
    let am = send("alertmanager", &alertmanager()).expect(202);
    assert_eq!(am["source"], "alertmanager");
    assert_eq!(am["alerts"], 2);
    let gf = send("grafana", &grafana()).expect(202);
    assert_eq!(gf["source"], "grafana");
    assert_eq!(gf["alerts"], 1);
    // Grafana's legacy format is one alert.
    let legacy = send(
        "grafana",
        &json!({ "title": "[Alerting] CPU", "ruleId": 1, "ruleName": "CPU", "state": "alerting", "message": "hot" }),
    )
    .expect(202);
    assert_eq!(legacy["alerts"], 1);
    // Admins may send too.
    app.post("/v1/events/alertmanager")
        .auth(&app.admin)
        .json(&json!({ "status": "resolved", "alerts": [] }))
        .send()
        .expect(202);

    // Malformed notifications: every problem, located.
    let reply = send(
        "alertmanager",
        &json!({
            "status": "burning",
            "alerts": [
                { "labels": { "alertname": "x", "count": 3 } },
                { "status": 1 },
                { "labels": { "ok": "yes" } }
            ]
        }),
    );
    assert_eq!(
        reply.invalid(),
        vec![
            "/alerts/0/labels/count",
            "/alerts/1/labels",
            "/alerts/1/status",
            "/status"
        ]
    );
    assert_eq!(
        send("grafana", &json!({ "receiver": "csmp" })).invalid(),
        vec!["/alerts", "/status"]
    );
    assert_eq!(
        send("grafana", &json!({ "state": 3 })).invalid(),
        vec!["/ruleName", "/state"]
    );
    assert_eq!(send("alertmanager", &json!([1, 2])).invalid(), vec![""]);
    assert_eq!(
        send("alertmanager", &json!({ "status": "firing", "alerts": {} })).invalid(),
        vec!["/alerts"]
    );
    app.post("/v1/events/alertmanager")
        .auth(&app.integration)
        .body("application/json", "{\"status\": ")
        .send()
        .problem(400, "malformed-json");
    app.post("/v1/events/alertmanager")
        .auth(&app.integration)
        .body("application/x-www-form-urlencoded", "status=firing")
        .send()
        .problem(415, "unsupported-media-type");
    // Unknown sources, and roles that do not send alerts.
    send("nagios", &alertmanager()).problem(404, "not-found");
    for token in [&app.operator, &app.client_a] {
        app.post("/v1/events/alertmanager")
            .auth(token)
            .json(&alertmanager())
            .send()
            .problem(403, "forbidden");
    }

    // Only the accepted ones are stored.
    let list = app.get("/v1/events").auth(&app.operator).send().expect(200);
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 4, "{list}");
    let by_id = |id: &str| {
        items
            .iter()
            .find(|e| e["id"] == id)
            .unwrap_or_else(|| panic!("event {id} listed: {list}"))
    };
    let first = by_id(&s(&am, "id"));
    assert_eq!(first["source"], "alertmanager");
    assert_eq!(first["alerts"], 2);
    assert_eq!(first["status"], "firing");
    assert_eq!(first["received_by"], app.integration.id.as_str());
    assert!(first["received_at"].is_string());
    let second = by_id(&s(&gf, "id"));
    assert_eq!(second["source"], "grafana");
    assert_eq!(second["status"], "resolved");
    assert_eq!(by_id(&s(&legacy, "id"))["status"], "alerting");
    let times: Vec<String> = items.iter().map(|e| s(e, "received_at")).collect();
    let newest_first = {
        let mut sorted = times.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        sorted
    };
    assert_eq!(times, newest_first, "newest first");
    let page = app
        .get("/v1/events?limit=3")
        .auth(&app.admin)
        .send()
        .expect(200);
    assert_eq!(ids(&page).len(), 3);
    let rest = app
        .get(&format!(
            "/v1/events?limit=3&cursor={}",
            s(&page, "next_cursor")
        ))
        .auth(&app.admin)
        .send()
        .expect(200);
    assert_eq!(ids(&rest).len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);
    let mut paged: Vec<String> = ids(&page).into_iter().chain(ids(&rest)).collect();
    paged.sort();
    let mut all = ids(&list);
    all.sort();
    assert_eq!(paged, all, "the pages hold every event once");
}
