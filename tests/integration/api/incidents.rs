//! Incidents opened by runs: list, get, timeline, acknowledge (which signals the opening run),
//! notes, resolve.

use serde_json::{Value, json};

use super::harness::{App, TENANT_A, Token, ids, s};

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
    assert_eq!(incident["status"], "open");
    assert_eq!(incident["tenant"], TENANT_A);
    assert_eq!(incident["run_id"], run.as_str());
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
    assert_eq!(paged["status"], "open");
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
    assert_eq!(incident["run_id"], run.as_str());
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
    assert_eq!(unchanged["status"], "open");
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
    let timeline = app
        .get(&path("timeline"))
        .auth(&app.client_a)
        .send()
        .expect(200);
    let notes: Vec<String> = timeline["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| s(e, "note"))
        .collect();
    assert_eq!(
        notes,
        vec!["opened", "on it", "root cause: logs"],
        "oldest first"
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
        .json(&json!({ "note": "late" }))
        .send()
        .problem(409, "conflict");
    let after = app
        .get(&format!("/v1/incidents/{id}"))
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(after["status"], "resolved");
    assert_eq!(after["timeline"].as_array().map(Vec::len), Some(4));
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
