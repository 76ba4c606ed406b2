//! Incidents opened by runs: list, get, timeline, acknowledge (which signals the opening run),
//! notes, resolve.

use serde_json::{Value, json};

use super::harness::{App, TENANT_A, TENANT_B, Token, ids, s};

/// Waits until `token` sees exactly one incident; returns it.
fn the_incident(app: &App, token: &Token) -> Value {
    let list = app.wait_for(token, "/v1/incidents", "an incident", |l| {
        !ids(l).is_empty()
    });
    assert_eq!(ids(&list).len(), 1, "{list}");
    list["items"][0].clone()
}

/// `incident-report` runs `workflows/escalate-incident.yaml`: its first step opens the
/// incident, its second pages through the example policy of `oncall/`, which covers every
/// service. The pages are the provider's runs, not the client's.
#[test]
fn reporting_an_incident_opens_one_for_the_clients_tenant() {
    let app = App::start();
    let created = app.order(
        &app.client_a,
        &json!({ "catalog_id": "incident-report", "inputs": { "title": "database down", "service": "db" } }),
    );
    assert_eq!(created["inputs"]["severity"], "sev3", "the entry's default");
    let run = s(&created, "run_id");
    let incident = the_incident(&app, &app.client_a);
    assert_eq!(incident["title"], "database down");
    assert_eq!(incident["severity"], "sev3");
    assert_eq!(incident["service"], "db");
    assert_eq!(incident["status"], "triggered");
    assert_eq!(incident["tenant"], TENANT_A);
    assert!(incident.get("run_id").is_none(), "a client sees no run id");
    let full = app
        .get(&format!("/v1/incidents/{}", s(&incident, "id")))
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(full["run_id"], run.as_str());
    assert_eq!(incident["timeline"][0]["by"], format!("run {run}"));
    assert_eq!(incident["timeline"][0]["note"], "opened");
    let listed = app
        .get("/v1/incidents")
        .auth(&app.client_b)
        .send()
        .expect(200);
    assert_eq!(listed["items"], json!([]), "tenant B sees none of it");

    app.wait_step(&app.operator, &run, "page", "waiting");
    let paged = app
        .get(&format!("/v1/incidents/{}", s(&incident, "id")))
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(paged["status"], "triggered");
    let entry = &paged["timeline"][1];
    assert_eq!(entry["by"], "escalation platform", "{paged}");
    let note = entry["note"].as_str().unwrap_or_default();
    assert!(note.starts_with("paged "), "{paged}");
    let page_run = note
        .rsplit("(run ")
        .next()
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("the page's run in {note}"));
    let page = app
        .get(&format!("/v1/runs/{page_run}"))
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(page["workflow"], "page");
    app.get(&format!("/v1/runs/{page_run}"))
        .auth(&app.client_a)
        .send()
        .expect(404);
}

#[test]
fn operators_acknowledge_annotate_and_resolve_incidents() {
    let app = App::start();
    let created = app.order(
        &app.client_a,
        &json!({ "catalog_id": "pager", "inputs": { "title": "disk full" } }),
    );
    let run = s(&created, "run_id");
    let incident = the_incident(&app, &app.client_a);
    let id = s(&incident, "id");
    assert_eq!(incident["severity"], "sev2");
    assert_eq!(incident["service"], "web");
    let path = |action: &str| format!("/v1/incidents/{id}/{action}");
    app.wait_step(&app.operator, &run, "ack", "waiting");

    let one = app
        .get(&format!("/v1/incidents/{id}"))
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(one, incident);
    let timeline = app
        .get(&path("timeline"))
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(timeline["items"], incident["timeline"]);

    // Clients watch; operators steer.
    for action in ["acknowledge", "resolve"] {
        app.post(&path(action))
            .auth(&app.client_a)
            .send()
            .problem(403, "forbidden");
    }
    app.post(&path("notes"))
        .auth(&app.client_a)
        .json(&json!({ "note": "please hurry" }))
        .send()
        .problem(403, "forbidden");

    // Bad bodies.
    app.post(&path("acknowledge"))
        .auth(&app.operator)
        .body("text/plain", "ack")
        .send()
        .problem(415, "unsupported-media-type");
    app.post(&path("acknowledge"))
        .auth(&app.operator)
        .body("application/json", "{\"note\":")
        .send()
        .problem(400, "malformed-json");
    let reply = app
        .post(&path("acknowledge"))
        .auth(&app.operator)
        .json(&json!({ "comment": "wrong field" }))
        .send();
    assert_eq!(reply.invalid(), vec!["/comment"]);
    for empty in [json!({}), json!({ "note": "  " })] {
        let reply = app
            .post(&path("notes"))
            .auth(&app.operator)
            .json(&empty)
            .send();
        assert_eq!(reply.invalid(), vec!["/note"]);
    }
    let unchanged = app
        .get(&format!("/v1/incidents/{id}"))
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(unchanged["status"], "triggered");
    assert_eq!(unchanged["timeline"].as_array().map(Vec::len), Some(1));

    // Acknowledge: the incident says so, and the run that opened it gets the signal `ack`.
    let acked = app
        .post(&path("acknowledge"))
        .auth(&app.operator)
        .json(&json!({ "note": "on it" }))
        .send()
        .expect(200);
    assert_eq!(acked["status"], "acknowledged");
    let last = acked["timeline"]
        .as_array()
        .and_then(|t| t.last())
        .expect("a timeline entry");
    assert_eq!(last["by"], app.operator.id.as_str());
    assert_eq!(last["note"], "on it");
    app.post(&path("acknowledge"))
        .auth(&app.operator)
        .send()
        .problem(409, "conflict");

    let noted = app
        .post(&path("notes"))
        .auth(&app.admin)
        .json(&json!({ "note": "root cause: logs" }))
        .send()
        .expect(200);
    assert_eq!(noted["status"], "acknowledged");
    let notes = |token| -> Vec<String> {
        app.get(&path("timeline")).auth(token).send().expect(200)["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| s(e, "note"))
            .collect()
    };
    assert_eq!(
        notes(&app.operator),
        vec!["opened", "on it", "root cause: logs"],
        "oldest first"
    );
    assert_eq!(
        notes(&app.client_a),
        vec!["opened", "on it"],
        "the tenant never sees an internal note"
    );

    let resolved = app
        .post(&path("resolve"))
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(
        resolved["timeline"]
            .as_array()
            .and_then(|t| t.last())
            .map(|e| e["note"].clone()),
        Some(json!("resolved"))
    );
    app.post(&path("resolve"))
        .auth(&app.operator)
        .send()
        .problem(409, "conflict");
    app.post(&path("acknowledge"))
        .auth(&app.operator)
        .send()
        .problem(409, "conflict");
    app.post(&path("notes"))
        .auth(&app.operator)
        .json(&json!({ "note": "found in the review" }))
        .send()
        .expect(200);
    let after = app
        .get(&format!("/v1/incidents/{id}"))
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(after["status"], "resolved");
    assert_eq!(
        after["timeline"].as_array().map(Vec::len),
        Some(3),
        "opened, acknowledged, resolved: {after}"
    );
    for action in ["acknowledge", "resolve", "notes", "timeline"] {
        let call = app
            .call(
                if action == "timeline" {
                    ureq::http::Method::GET
                } else {
                    ureq::http::Method::POST
                },
                &format!("/v1/incidents/inc-00000000deadbeef/{action}"),
            )
            .auth(&app.operator);
        let call = if action == "notes" {
            call.json(&json!({ "note": "x" }))
        } else {
            call
        };
        call.send().problem(404, "not-found");
    }

    // The run that opened the incident took the acknowledgement and finished.
    let done = app.wait_run(&app.operator, &run, "succeeded");
    assert_eq!(done["outputs"]["incident"], id.as_str());
    assert_eq!(done["outputs"]["ack"]["incident"], id.as_str());
    assert_eq!(done["outputs"]["ack"]["by"], app.operator.id.as_str());
}

/// Waits for the `pager` fixture's incident; returns its id and the opening run.
fn paged(app: &App, title: &str) -> (String, String) {
    let created = app.order(
        &app.client_a,
        &json!({ "catalog_id": "pager", "inputs": { "title": title } }),
    );
    let run = s(&created, "run_id");
    let incident = the_incident(app, &app.client_a);
    (s(&incident, "id"), run)
}

#[test]
fn a_ticket_records_every_change_and_its_tenant_sees_only_the_public_part() {
    let app = App::start();
    let (id, run) = paged(&app, "checkout slow");
    let url = format!("/v1/incidents/{id}");
    let patch = |body: &Value| {
        app.call(ureq::http::Method::PATCH, &url)
            .auth(&app.operator)
            .json(body)
            .send()
    };
    // Every bad field is refused at its pointer, and nothing changes.
    for (body, pointer) in [
        (json!({ "severity": "p1" }), "/severity"),
        (json!({ "assignee": "nobody" }), "/assignee"),
        (json!({ "type": "meltdown" }), "/type"),
        (json!({ "tenants": ["no-such-tenant"] }), "/tenants"),
        (json!({ "title": " " }), "/title"),
        (
            json!({ "action_items": [{ "title": "" }] }),
            "/action_items/0/title",
        ),
        (json!({ "owner": "alice" }), "/owner"),
        (json!([null, null]), ""),
    ] {
        assert_eq!(patch(&body).invalid(), vec![pointer], "{body}");
    }
    app.call(ureq::http::Method::PATCH, &url)
        .auth(&app.client_a)
        .json(&json!({ "impact": "x" }))
        .send()
        .problem(403, "forbidden");
    let edited = patch(&json!({
        "severity": "sev1",
        "impact": "checkout takes 30 s for EU clients",
        "type": "degradation",
        "services": ["web", "payments"],
        "tenants": [TENANT_A, TENANT_B],
        "assignee": "alice",
        "root_cause": "a connection pool of 5",
        "contributing_factors": ["no load test"],
        "action_items": [{ "title": "size the pool from load", "owner": "bob" }],
    }))
    .expect(200);
    assert_eq!(edited["severity"], "sev1");
    assert_eq!(edited["services"], json!(["web", "payments"]));
    assert_eq!(edited["ticket"]["assignee"], "alice");
    assert_eq!(edited["ticket"]["type"], "degradation");
    assert_eq!(edited["ticket"]["action_items"][0]["owner"], "bob");
    let kinds: Vec<String> = edited["timeline"]
        .as_array()
        .expect("a timeline")
        .iter()
        .map(|e| s(e, "kind"))
        .collect();
    assert_eq!(kinds, ["opened", "severity", "edited"], "{edited}");
    assert_eq!(edited["timeline"][1]["note"], "severity sev2 → sev1");
    assert_eq!(edited["timeline"][2]["by"], app.operator.id.as_str());
    assert_eq!(
        patch(&json!({ "severity": "sev1" })).expect(200)["timeline"],
        edited["timeline"],
        "no change, no entry"
    );

    app.post(&format!("{url}/notes"))
        .auth(&app.operator)
        .json(&json!({ "note": "we are rolling out a fix", "public": true }))
        .send()
        .expect(200);
    app.post(&format!("{url}/notes"))
        .auth(&app.operator)
        .json(&json!({ "note": "pool exhausted on db-2" }))
        .send()
        .expect(200);
    let client = app.get(&url).auth(&app.client_a).send().expect(200);
    assert!(
        client.get("ticket").is_none(),
        "no internal fields: {client}"
    );
    assert!(client.get("run_id").is_none(), "{client}");
    assert_eq!(client["impact"], "checkout takes 30 s for EU clients");
    let seen: Vec<String> = client["timeline"]
        .as_array()
        .expect("a timeline")
        .iter()
        .map(|e| s(e, "note"))
        .collect();
    assert_eq!(
        seen,
        ["opened", "severity sev2 → sev1", "we are rolling out a fix"]
    );
    // Tenant B is named affected: its client sees the incident too, the same public part.
    let other = app.get(&url).auth(&app.client_b).send().expect(200);
    assert_eq!(other["timeline"], client["timeline"]);
    let operator = app.get(&url).auth(&app.operator).send().expect(200);
    assert_eq!(operator["links"]["runs"][0], run.as_str());

    // Reopen only what is resolved; a reopened incident is triggered again.
    app.post(&format!("{url}/reopen"))
        .auth(&app.operator)
        .send()
        .problem(409, "conflict");
    app.post(&format!("{url}/acknowledge"))
        .auth(&app.operator)
        .send()
        .expect(200);
    app.post(&format!("{url}/resolve"))
        .auth(&app.operator)
        .send()
        .expect(200);
    let reopened = app
        .post(&format!("{url}/reopen"))
        .auth(&app.operator)
        .json(&json!({ "note": "errors are back" }))
        .send()
        .expect(200);
    assert_eq!(reopened["status"], "triggered");
    // Reopened, it follows its service's policy again (the example's covers every service).
    let again = app.wait_for(
        &app.operator,
        "/v1/runs?workflow=escalate",
        "the new escalation",
        |l| !ids(l).is_empty(),
    );
    let escalation = ids(&again)[0].clone();
    app.wait_step(&app.operator, &escalation, "page", "waiting");
    app.post(&format!("{url}/resolve"))
        .auth(&app.operator)
        .send()
        .expect(200);
    let ended = app.wait_run(&app.operator, &escalation, "succeeded");
    assert_eq!(ended["outputs"]["outcome"], "resolved", "{ended}");

    // The review, as JSON and as Markdown; operators only.
    let review = app
        .get(&format!("{url}/review"))
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(review["overview"]["status"], "resolved");
    assert_eq!(review["root_cause"], "a connection pool of 5");
    assert_eq!(review["impact"]["tenants"], json!([TENANT_A, TENANT_B]));
    assert!(
        review["overview"]["time_to_acknowledge_s"].is_number(),
        "{review}"
    );
    let sev: Vec<&String> = review["impact"]["seconds_at_severity"]
        .as_object()
        .expect("time at each severity")
        .keys()
        .collect();
    assert_eq!(sev, ["sev1", "sev2"]);
    let md = app
        .get(&format!("{url}/review"))
        .auth(&app.operator)
        .header("Accept", "text/markdown")
        .send();
    assert_eq!(md.status, 200);
    let text = md.text();
    assert!(
        text.starts_with("# Post-incident review: checkout slow"),
        "{text}"
    );
    assert!(
        text.contains("## Root cause\n\na connection pool of 5"),
        "{text}"
    );
    assert!(
        text.contains("- [ ] size the pool from load (bob)"),
        "{text}"
    );
    app.get(&format!("{url}/review"))
        .auth(&app.client_a)
        .send()
        .problem(403, "forbidden");

    // The measures count it: acknowledged and resolved once each.
    let report = app
        .get("/v1/reports/incidents")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(report["overall"]["incidents"], 1, "{report}");
    assert_eq!(report["overall"]["mtta"]["count"], 1, "{report}");
    assert_eq!(report["overall"]["mttr"]["count"], 1, "{report}");
    assert_eq!(report["by_severity"][0]["key"], "sev1");
    app.get("/v1/reports/incidents?from=2026-13-01")
        .auth(&app.operator)
        .send()
        .invalid();
    let theirs = app
        .get("/v1/reports/incidents")
        .auth(&app.client_b)
        .send()
        .expect(200);
    assert_eq!(theirs["tenant"], TENANT_B);
    let metrics = app.get("/metrics").send();
    let body = metrics.text();
    assert!(
        body.contains("csmp_incident_time_to_acknowledge_seconds_count 1"),
        "{body}"
    );
}

/// A rule's `incident` action opens an incident no run owns; a policy of `oncall/` covers its
/// service, so the shipped `escalate` workflow pages its responders until the acknowledgement.
#[test]
fn an_incident_a_rule_opens_is_escalated_through_its_services_policy() {
    let app = App::start();
    app.put("/v1/rules/disk-full")
        .auth(&app.operator)
        .body(
            "application/yaml",
            "name: disk-full\nmatch: { source: [webhook], labels: { alertname: DiskFull } }\ngroup_by: [service]\ngroup_wait: 0s\nthen:\n  - incident: { severity: sev2, title: \"Disk full on {{ group.labels.service }}\", service: \"{{ group.labels.service }}\" }\n",
        )
        .send()
        .expect(201);
    app.post("/v1/events/webhook?fingerprint=/id&labels=/labels")
        .auth(&app.integration)
        .json(&json!({ "id": "db-1", "labels": { "alertname": "DiskFull", "service": "db" } }))
        .send()
        .expect(202);
    let list = app.wait_for(
        &app.operator,
        "/v1/runs?workflow=escalate",
        "the escalation's run",
        |l| !ids(l).is_empty(),
    );
    let run = ids(&list)[0].clone();
    app.wait_step(&app.operator, &run, "page", "waiting");
    let incidents = app
        .get("/v1/incidents")
        .auth(&app.operator)
        .send()
        .expect(200);
    let incident = &incidents["items"][0];
    let id = s(incident, "id");
    let paged = app
        .get(&format!("/v1/incidents/{id}"))
        .auth(&app.operator)
        .send()
        .expect(200);
    let kinds: Vec<String> = paged["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| s(e, "kind"))
        .collect();
    assert!(kinds.contains(&"page".to_string()), "{paged}");
    app.post(&format!("/v1/incidents/{id}/acknowledge"))
        .auth(&app.operator)
        .send()
        .expect(200);
    let done = app.wait_run(&app.operator, &run, "succeeded");
    assert_eq!(done["outputs"]["outcome"], "acknowledged", "{done}");
    assert_eq!(done["outputs"]["acknowledged_by"], app.operator.id.as_str());
}
