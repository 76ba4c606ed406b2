//! Alerts to remediation over the API: rules set over `/v1/rules`, one run per alert group
//! reached by the signals `alert` and `resolved`, deduplication, silences, the PagerDuty and
//! generic webhook sources, `GET /v1/alerts` with its links, the dry run, and the counters.

use serde_json::{Value, json};

use super::harness::{App, s, step};

/// A workflow a group's run runs: it takes one more alert, then the group's resolution.
const WATCH: &str = r#"
name: alert-watch
version: 1
inputs:
  type: object
  required: [service]
  properties:
    service: { type: string }
    count: { type: integer }
steps:
  - id: more
    signal: alert
  - id: over
    needs: [more]
    signal: resolved
outputs:
  service: "{{ inputs.service }}"
  count: "{{ inputs.count }}"
  second: "{{ steps.more.output.alert.fingerprint }}"
  firing_at_end: "{{ steps.over.output.group.firing }}"
"#;

const RULE: &str = r#"
name: watch-web
match:
  source: alertmanager
  labels: { alertname: HighCPU, env: "!=test" }
  when: "{{ ne alert.labels.instance 'ignored' }}"
group_by: [service]
cooldown: 1h
then:
  - workflow: alert-watch
    inputs: { service: "{{ group.labels.service }}", count: "{{ group.count }}" }
"#;

fn alert(fingerprint: &str, service: &str, status: &str, starts: &str) -> Value {
    json!({
        "status": status,
        "fingerprint": fingerprint,
        "labels": { "alertname": "HighCPU", "service": service, "instance": fingerprint, "severity": "critical" },
        "annotations": { "summary": "CPU above 90%" },
        "startsAt": starts,
        "endsAt": if status == "resolved" { "2026-12-01T11:00:00Z" } else { "0001-01-01T00:00:00Z" },
    })
}

fn notification(alerts: &[Value]) -> Value {
    json!({ "version": "4", "groupKey": "{}:{alertname=\"HighCPU\"}", "status": "firing", "alerts": alerts })
}

fn setup(app: &App) {
    app.put("/v1/workflows/alert-watch")
        .auth(&app.operator)
        .body("application/yaml", WATCH)
        .send()
        .expect(201);
    app.put("/v1/rules/watch-web")
        .auth(&app.operator)
        .body("application/yaml", RULE)
        .send()
        .expect(201);
}

fn send(app: &App, alerts: &[Value]) -> Value {
    app.post("/v1/events/alertmanager")
        .auth(&app.integration)
        .json(&notification(alerts))
        .send()
        .expect(202)
}

fn runs_of(app: &App, rule: &str) -> Vec<Value> {
    app.get(&format!("/v1/runs?label=rule={rule}"))
        .auth(&app.operator)
        .send()
        .expect(200)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn one_run_per_alert_group_reached_by_its_later_alerts_and_its_resolution() {
    let app = App::start();
    setup(&app);
    let first = send(
        &app,
        &[alert("web-1", "web", "firing", "2026-12-01T10:00:00Z")],
    );
    assert_eq!(first["decisions"][0]["outcome"], "matched", "{first}");
    assert_eq!(
        first["decisions"][0]["rules"][0]["action"],
        "open a group and act"
    );
    let list = app.wait_for(
        &app.operator,
        "/v1/runs?label=rule=watch-web",
        "the group's run",
        |b| b["items"].as_array().is_some_and(|i| i.len() == 1),
    );
    let run = s(&list["items"][0], "id");
    app.wait_step(&app.operator, &run, "more", "waiting");

    // The same alert again is a duplicate: nothing more reaches the run.
    let again = send(
        &app,
        &[alert("web-1", "web", "firing", "2026-12-01T10:00:00Z")],
    );
    assert_eq!(again["decisions"][0]["outcome"], "duplicate", "{again}");
    // An alert the rule's `when` or matchers leave out is unmatched.
    let ignored = send(
        &app,
        &[alert("ignored", "web", "firing", "2026-12-01T10:00:00Z")],
    );
    assert_eq!(ignored["decisions"][0]["outcome"], "unmatched", "{ignored}");

    // A second alert of the group is the signal `alert`.
    let second = send(
        &app,
        &[alert("web-2", "web", "firing", "2026-12-01T10:01:00Z")],
    );
    assert_eq!(
        second["decisions"][0]["rules"][0]["action"],
        format!("signal `alert` to run {run}")
    );
    app.wait_step(&app.operator, &run, "over", "waiting");
    // One resolves: still an `alert`; the last: `resolved`.
    let resolved = send(
        &app,
        &[
            alert("web-1", "web", "resolved", "2026-12-01T10:00:00Z"),
            alert("web-2", "web", "resolved", "2026-12-01T10:01:00Z"),
        ],
    );
    assert_eq!(
        resolved["decisions"][0]["rules"][0]["action"],
        format!("signal `alert` to run {run}")
    );
    assert_eq!(
        resolved["decisions"][1]["rules"][0]["action"],
        format!("signal `resolved` to run {run}")
    );
    let done = app.wait_run(&app.operator, &run, "succeeded");
    assert_eq!(done["outputs"]["service"], "web");
    assert_eq!(done["outputs"]["count"], 1);
    assert_eq!(done["outputs"]["second"], "web-2");
    assert_eq!(done["outputs"]["firing_at_end"], 0);
    assert_eq!(
        step(&done, "more").map(|u| u["status"].clone()),
        Some(json!("succeeded"))
    );

    // After the run, the group cools down: a new alert is only counted.
    let cooled = send(
        &app,
        &[alert("web-3", "web", "firing", "2026-12-01T10:05:00Z")],
    );
    let action = cooled["decisions"][0]["rules"][0]["action"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(action.starts_with("count only"), "{cooled}");
    assert_eq!(runs_of(&app, "watch-web").len(), 1, "one run for the group");

    // Another service is another group, with its own run.
    send(
        &app,
        &[alert("api-1", "api", "firing", "2026-12-01T10:00:00Z")],
    );
    app.wait_for(
        &app.operator,
        "/v1/runs?label=rule=watch-web",
        "the second group's run",
        |b| b["items"].as_array().is_some_and(|i| i.len() == 2),
    );

    // Every alert is listed with what it did and where it went.
    let alerts = app
        .get("/v1/alerts?rule=watch-web&source=alertmanager")
        .auth(&app.operator)
        .send()
        .expect(200);
    let items = alerts["items"].as_array().cloned().unwrap_or_default();
    assert!(
        items.iter().all(|a| a["links"][0]["rule"] == "watch-web"),
        "{alerts}"
    );
    assert!(
        items
            .iter()
            .any(|a| a["links"][0]["run_id"] == run.as_str()),
        "{alerts}"
    );
    let dup = app
        .get("/v1/alerts?status=firing")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert!(
        dup["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|a| a["outcome"] == "duplicate"))
    );
    app.get("/v1/alerts?colour=red")
        .auth(&app.operator)
        .send()
        .problem(400, "unknown-parameter");
    app.get("/v1/alerts?status=burning")
        .auth(&app.operator)
        .send()
        .expect(422);
    // A client sees only its tenant's alerts: these have none.
    let theirs = app.get("/v1/alerts").auth(&app.client_a).send().expect(200);
    assert_eq!(theirs["items"], json!([]));

    let metrics = app.get("/metrics").send().text();
    assert!(
        metrics.contains("csmp_alerts_received_total{source=\"alertmanager\"} 8"),
        "{metrics}"
    );
    assert!(
        metrics.contains("csmp_alerts_deduplicated_total{source=\"alertmanager\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("csmp_alerts_acted_total{rule=\"watch-web\"} 2"),
        "{metrics}"
    );
}

#[test]
fn rules_are_validated_listed_tried_and_deleted() {
    let app = App::start();
    setup(&app);
    let bad = app
        .put("/v1/rules/broken")
        .auth(&app.operator)
        .body(
            "application/yaml",
            "name: broken\nmatch:\n  lables: { a: b }\n  labels: { env: \"=~(\" }\nthen:\n  - workflow: alert-wach\n",
        )
        .send();
    let problem = bad.problem(400, "invalid-definition");
    let text = problem.to_string();
    for needle in [
        "lables",
        "did you mean `labels`",
        "not a valid regex",
        "alert-wach",
        "did you mean `alert-watch`",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    app.put("/v1/rules/other")
        .auth(&app.operator)
        .body("application/yaml", RULE)
        .send()
        .expect(422);
    app.put("/v1/rules/watch-web")
        .auth(&app.client_a)
        .body("application/yaml", RULE)
        .send()
        .expect(403);

    let listed = app.get("/v1/rules").auth(&app.operator).send().expect(200);
    assert_eq!(listed["items"][0]["name"], "watch-web");
    assert_eq!(listed["items"][0]["workflow"], "alert-watch");

    // The dry run says what would happen and changes nothing.
    let tried = app
        .post("/v1/rules/test")
        .auth(&app.operator)
        .json(&json!({ "alerts": [
            { "source": "alertmanager", "labels": { "alertname": "HighCPU", "service": "web", "instance": "web-1" } },
            { "source": "alertmanager", "labels": { "alertname": "DiskFull" } }
        ] }))
        .send()
        .expect(200);
    assert_eq!(
        tried["decisions"][0]["rules"][0]["action"], "open a group and act",
        "{tried}"
    );
    assert_eq!(
        tried["decisions"][0]["rules"][0]["group"],
        json!({ "service": "web" })
    );
    assert_eq!(tried["decisions"][1]["outcome"], "unmatched");
    let none = app.get("/v1/alerts").auth(&app.operator).send().expect(200);
    assert_eq!(none["items"], json!([]), "the dry run stored nothing");
    assert!(runs_of(&app, "watch-web").is_empty(), "and started nothing");
    // A rule given with the test is tried instead of the rules in force.
    let own = app
        .post("/v1/rules/test")
        .auth(&app.operator)
        .json(&json!({
            "rule": "name: disk\nmatch: { labels: { alertname: DiskFull } }\nthen:\n  - incident: { severity: sev2, title: \"Disk full\" }\n",
            "alerts": [{ "labels": { "alertname": "DiskFull" } }]
        }))
        .send()
        .expect(200);
    assert_eq!(own["decisions"][0]["rules"][0]["rule"], "disk", "{own}");
    let bad_alert = app
        .post("/v1/rules/test")
        .auth(&app.operator)
        .json(&json!({ "alerts": [{ "status": "burning", "source": "nagios" }] }))
        .send();
    assert_eq!(
        bad_alert.invalid(),
        vec!["/alerts/0/source", "/alerts/0/status"]
    );

    assert_eq!(
        app.delete("/v1/rules/watch-web")
            .auth(&app.operator)
            .send()
            .status,
        204
    );
    app.get("/v1/rules/watch-web")
        .auth(&app.operator)
        .send()
        .problem(404, "not-found");
    let after = send(
        &app,
        &[alert("web-1", "web", "firing", "2026-12-01T10:00:00Z")],
    );
    assert_eq!(after["decisions"][0]["outcome"], "unmatched");

    // Stored alerts replayed against a rule given with the test: what it would do with them.
    let replayed = app
        .post("/v1/rules/test")
        .auth(&app.operator)
        .json(&json!({ "stored": 10, "rule": RULE }))
        .send()
        .expect(200);
    assert_eq!(
        replayed["decisions"][0]["fingerprint"], "web-1",
        "{replayed}"
    );
    assert_eq!(
        replayed["decisions"][0]["rules"][0]["action"], "open a group and act",
        "a replay is not its own duplicate"
    );
    let too_many = app
        .post("/v1/rules/test")
        .auth(&app.operator)
        .json(&json!({ "stored": 501 }))
        .send();
    assert_eq!(too_many.invalid(), vec!["/stored"]);
}

#[test]
fn silences_keep_alerts_from_being_acted_on() {
    let app = App::start();
    setup(&app);
    let bad = app
        .post("/v1/silences")
        .auth(&app.operator)
        .json(&json!({ "matchers": { "env": "=~(" }, "comment": " ", "duration": "soon" }))
        .send();
    assert_eq!(
        bad.invalid(),
        vec!["/comment", "/duration", "/matchers/env"]
    );
    let silence = app
        .post("/v1/silences")
        .auth(&app.operator)
        .json(&json!({ "matchers": { "service": "web" }, "duration": "1h", "comment": "maintenance of web" }))
        .send()
        .expect(201);
    assert_eq!(silence["state"], "active");
    let held = send(
        &app,
        &[alert("web-1", "web", "firing", "2026-12-01T10:00:00Z")],
    );
    assert_eq!(held["decisions"][0]["outcome"], "silenced", "{held}");
    assert_eq!(held["decisions"][0]["silence"], silence["id"]);
    assert!(runs_of(&app, "watch-web").is_empty());
    let listed = app
        .get("/v1/silences")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(listed["items"][0]["id"], silence["id"]);
    let metrics = app.get("/metrics").send().text();
    assert!(
        metrics.contains("csmp_alerts_silenced_total{source=\"alertmanager\"} 1"),
        "{metrics}"
    );

    let id = s(&silence, "id");
    assert_eq!(
        app.delete(&format!("/v1/silences/{id}"))
            .auth(&app.operator)
            .send()
            .status,
        204
    );
    app.delete(&format!("/v1/silences/{id}"))
        .auth(&app.operator)
        .send()
        .expect(404);
    let expired = app
        .get("/v1/silences?expired=true")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(expired["items"][0]["state"], "expired");
    // With the silence over, the next notification of the alert acts.
    let acted = send(
        &app,
        &[alert("web-1", "web", "firing", "2026-12-01T10:30:00Z")],
    );
    assert_eq!(acted["decisions"][0]["outcome"], "matched", "{acted}");

    // A workflow step opens a silence for what it is about to touch.
    app.put("/v1/workflows/quiet-deploy")
        .auth(&app.operator)
        .body(
            "application/yaml",
            "name: quiet-deploy\nversion: 1\ninputs: { type: object, properties: { service: { type: string } } }\nsteps:\n  - id: quiet\n    silence:\n      matchers: { service: \"{{ inputs.service }}\" }\n      for: 30m\n      comment: \"deploying {{ inputs.service }}\"\noutputs:\n  silence: \"{{ steps.quiet.output.id }}\"\n",
        )
        .send()
        .expect(201);
    let started = app
        .post("/v1/runs")
        .auth(&app.operator)
        .json(&json!({ "workflow": "quiet-deploy", "inputs": { "service": "api" } }))
        .send()
        .expect(202);
    let done = app.wait_run(&app.operator, &s(&started, "id"), "succeeded");
    let opened = s(&done["outputs"], "silence");
    let quiet = send(
        &app,
        &[alert("api-1", "api", "firing", "2026-12-01T10:00:00Z")],
    );
    assert_eq!(quiet["decisions"][0]["outcome"], "silenced", "{quiet}");
    assert_eq!(quiet["decisions"][0]["silence"], opened.as_str());
    let listed = app
        .get("/v1/silences")
        .auth(&app.operator)
        .send()
        .expect(200);
    let by_run = listed["items"]
        .as_array()
        .and_then(|i| i.iter().find(|x| x["id"] == opened.as_str()).cloned())
        .expect("the step's silence is listed");
    assert_eq!(by_run["comment"], "deploying api");
    assert_eq!(by_run["run_id"], started["id"]);
    // A matcher that renders to a bad regex fails the step, naming it.
    app.put("/v1/workflows/bad-quiet")
        .auth(&app.operator)
        .body(
            "application/yaml",
            "name: bad-quiet\nversion: 1\ninputs: { type: object, properties: { re: { type: string } } }\nsteps:\n  - id: quiet\n    silence: { matchers: { service: \"{{ inputs.re }}\" }, for: 1m }\n",
        )
        .send()
        .expect(201);
    let bad = app
        .post("/v1/runs")
        .auth(&app.operator)
        .json(&json!({ "workflow": "bad-quiet", "inputs": { "re": "=~(" } }))
        .send()
        .expect(202);
    let failed = app.wait_run(&app.operator, &s(&bad, "id"), "failed");
    let error = step(&failed, "quiet")
        .map(|u| u["error"].to_string())
        .unwrap_or_default();
    assert!(error.contains("not a valid regex"), "{failed}");
}

#[test]
fn pagerduty_events_and_generic_webhooks_come_in_too() {
    let app = App::start();
    // PagerDuty's own path: the routing key is the token, no Authorization header.
    let event = json!({
        "routing_key": app.integration.secret,
        "event_action": "trigger",
        "dedup_key": "disk-db-1",
        "payload": { "summary": "Disk 95% full on db-1", "source": "db-1", "severity": "critical" }
    });
    let answer = app.post("/v2/enqueue").json(&event).send().expect(202);
    assert_eq!(
        answer,
        json!({ "status": "success", "message": "Event processed", "dedup_key": "disk-db-1" })
    );
    let forged = json!({ "routing_key": "csmp_nobody_secret", "event_action": "trigger" });
    app.post("/v2/enqueue").json(&forged).send().expect(401);
    let wrong = app
        .post("/v2/enqueue")
        .json(&json!({ "routing_key": app.integration.secret, "event_action": "explode" }))
        .send();
    assert_eq!(wrong.invalid(), vec!["/event_action"]);
    let listed = app
        .get("/v1/alerts?source=pagerduty")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(listed["items"][0]["fingerprint"], "disk-db-1");
    assert_eq!(listed["items"][0]["labels"]["source"], "db-1");
    let events = app.get("/v1/events").auth(&app.operator).send().text();
    assert!(
        !events.contains(&app.integration.secret),
        "the routing key is never stored"
    );

    // A generic webhook, read through the mapping in its URL.
    let body = json!({ "checks": [{ "id": 7, "state": "DOWN", "tags": { "service": "shop" }, "title": "shop is down" }] });
    let got = app
        .post("/v1/events/webhook?items=/checks&fingerprint=/id&status=/state&firing=DOWN&resolved=UP&labels=/tags&summary=/title")
        .auth(&app.integration)
        .json(&body)
        .send()
        .expect(202);
    assert_eq!(got["alerts"], 1);
    let shop = app
        .get("/v1/alerts?source=webhook")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(shop["items"][0]["fingerprint"], "7");
    assert_eq!(shop["items"][0]["annotations"]["summary"], "shop is down");
    let bad = app
        .post("/v1/events/webhook?items=/checks&status=/state&firing=ALERTING")
        .auth(&app.integration)
        .json(&body)
        .send();
    assert_eq!(bad.invalid(), vec!["/checks/0/labels", "/checks/0/state"]);
    app.post("/v1/events/alertmanager?items=/x")
        .auth(&app.integration)
        .json(&notification(&[]))
        .send()
        .problem(400, "unknown-parameter");
    app.post("/v1/events/webhook?colour=red")
        .auth(&app.integration)
        .json(&body)
        .send()
        .expect(400);

    // CloudWatch through SNS: a topic nobody allowed is refused, and nothing is stored.
    let sns = json!({
        "Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:eu-west-1:123456789012:alarms",
        "Message": "{}", "Timestamp": "2026-12-01T10:00:00.000Z", "SignatureVersion": "2",
        "Signature": "Zm9yZ2Vk", "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem"
    });
    let refused = app
        .post("/v1/events/cloudwatch")
        .auth(&app.integration)
        .json(&sns)
        .send();
    let p = refused.problem(403, "forbidden");
    assert!(p.to_string().contains("--sns-topic"), "{p}");
    let malformed = app
        .post("/v1/events/cloudwatch")
        .auth(&app.integration)
        .json(&json!({ "Type": "Gossip" }))
        .send();
    assert!(malformed.invalid().contains(&"/Type".to_string()));
    let none = app
        .get("/v1/alerts?source=cloudwatch")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(none["items"], json!([]));
}

#[test]
fn a_rule_opens_an_incident_sends_a_message_and_waits_for_enough_alerts() {
    let app = App::start();
    let rule = r#"
name: disk-full
match:
  source: alertmanager
  labels: { alertname: DiskFull }
group_by: [host]
group_wait: 1s
min_occurrences: { count: 2, within: 10m }
then:
  - incident: { severity: sev2, title: "Disk full on {{ group.labels.host }}", service: storage }
  - notify: { channel: oncall, text: "{{ group.count }} disks full on {{ group.labels.host }}" }
"#;
    app.put("/v1/rules/disk-full")
        .auth(&app.operator)
        .body("application/yaml", rule)
        .send()
        .expect(201);
    let disk = |fp: &str, status: &str| {
        json!({ "status": status, "fingerprint": fp,
                "labels": { "alertname": "DiskFull", "host": "db-1", "mount": fp },
                "startsAt": "2026-12-01T10:00:00Z" })
    };
    let first = send(&app, &[disk("/var", "firing")]);
    let action = s(&first["decisions"][0]["rules"][0], "action");
    assert!(action.contains("act after group_wait (1s)"), "{first}");
    let group = s(&first["decisions"][0]["rules"][0], "group_id");
    // One occurrence is not enough: after group_wait the group still waits, with nothing done.
    app.wait_for(
        &app.operator,
        "/v1/alerts?rule=disk-full",
        "the group to look at its one alert",
        |b| b["items"][0]["links"][0]["group_state"] == "waiting",
    );
    let incidents = app
        .get("/v1/incidents")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(incidents["items"], json!([]), "nothing acted on one alert");

    // The second occurrence acts: one incident, one message run.
    send(&app, &[disk("/data", "firing")]);
    let open = app.wait_for(&app.operator, "/v1/incidents", "the rule's incident", |b| {
        b["items"].as_array().is_some_and(|i| i.len() == 1)
    });
    let incident = open["items"][0].clone();
    assert_eq!(incident["title"], "Disk full on db-1");
    assert_eq!(incident["severity"], "sev2");
    assert_eq!(incident["service"], "storage");
    // The message's run, and the incident's escalation (the example policy covers every
    // service).
    let sent = app.wait_for(
        &app.operator,
        "/v1/runs?label=rule=disk-full",
        "the message's run and the escalation's",
        |b| b["items"].as_array().is_some_and(|i| i.len() == 2),
    );
    let mut workflows: Vec<String> = sent["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| s(r, "workflow"))
        .collect();
    workflows.sort();
    assert_eq!(workflows, ["alert-notify", "escalate"]);
    let linked = app
        .get(&format!("/v1/alerts?group={group}"))
        .auth(&app.operator)
        .send()
        .expect(200);
    assert!(
        linked["items"].as_array().is_some_and(|i| i
            .iter()
            .all(|a| a["links"][0]["incident_id"] == incident["id"])),
        "{linked}"
    );
    // Both resolve: the incident is resolved with the group.
    send(&app, &[disk("/var", "resolved"), disk("/data", "resolved")]);
    let id = s(&incident, "id");
    app.wait_for(
        &app.operator,
        &format!("/v1/incidents/{id}"),
        "the incident to resolve",
        |b| b["status"] == "resolved",
    );
    // Its resolution ends the escalation.
    let escalation = sent["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["workflow"] == "escalate")
        .map(|r| s(r, "id"))
        .unwrap_or_default();
    let ended = app.wait_run(&app.operator, &escalation, "succeeded");
    assert_eq!(ended["outputs"]["outcome"], "resolved", "{ended}");
}

#[test]
fn an_integration_token_bound_to_a_tenant_gives_its_alerts_that_tenant() {
    let app = App::start();
    let made = app
        .post("/v1/tokens")
        .auth(&app.admin)
        .json(&json!({ "role": "integration", "tenant": super::harness::TENANT_A }))
        .send()
        .expect(201);
    let theirs = super::harness::Token {
        secret: s(&made, "token"),
        id: s(&made, "id"),
    };
    app.post("/v1/events/alertmanager")
        .auth(&theirs)
        .json(&notification(&[alert(
            "a-1",
            "shop",
            "firing",
            "2026-12-01T10:00:00Z",
        )]))
        .send()
        .expect(202);
    let seen = app.get("/v1/alerts").auth(&app.client_a).send().expect(200);
    assert_eq!(
        seen["items"][0]["tenant"],
        super::harness::TENANT_A,
        "{seen}"
    );
    let other = app.get("/v1/alerts").auth(&app.client_b).send().expect(200);
    assert_eq!(
        other["items"],
        json!([]),
        "another tenant sees none of them"
    );
    let filtered = app
        .get(&format!("/v1/alerts?tenant={}", super::harness::TENANT_A))
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(filtered["items"].as_array().map(Vec::len), Some(1));
    // Operators and admins stay unbound.
    app.post("/v1/tokens")
        .auth(&app.admin)
        .json(&json!({ "role": "operator", "tenant": super::harness::TENANT_A }))
        .send()
        .expect(422);
}

#[test]
fn a_group_whose_run_ended_is_closed_without_waiting_for_its_next_alert() {
    let app = App::start();
    let rule = "name: hello-web\nmatch: { labels: { alertname: HighCPU } }\ngroup_by: [service]\nthen:\n  - workflow: hello\n    inputs: { who: \"{{ group.labels.service }}\" }\n";
    app.put("/v1/rules/hello-web")
        .auth(&app.operator)
        .body("application/yaml", rule)
        .send()
        .expect(201);
    let first = send(
        &app,
        &[alert("web-1", "web", "firing", "2026-12-01T10:00:00Z")],
    );
    let group = s(&first["decisions"][0]["rules"][0], "group_id");
    app.wait_for(
        &app.operator,
        &format!("/v1/alerts?group={group}"),
        "the group to close after its run ended",
        |b| b["items"][0]["links"][0]["group_state"] == "ended",
    );
}
