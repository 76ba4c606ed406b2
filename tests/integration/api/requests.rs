//! `POST /v1/requests` and the request's life: schema violations, defaults, the approval gate,
//! the SLA, `Idempotency-Key`, pagination.

use serde_json::{Value, json};

use super::harness::{App, TENANT_A, ids, s, step};

#[test]
fn an_order_breaking_the_schema_gets_every_violation_and_stores_nothing() {
    let app = App::start();
    let reply = app
        .post("/v1/requests")
        .auth(&app.client_a)
        .json(&json!({
            "catalog_id": "hello",
            "inputs": { "who": "", "times": "x", "extra": true }
        }))
        .send();
    let pointers = reply.invalid();
    assert_eq!(
        pointers,
        vec!["/inputs", "/inputs/times", "/inputs/who"],
        "{}",
        reply.text()
    );
    let body = reply.json();
    let messages = body["errors"].to_string();
    assert!(
        messages.contains("extra"),
        "the unknown input is named: {body}"
    );

    // The workflow's own schema is checked too (hello's `times` must be at most 10).
    let reply = app
        .post("/v1/requests")
        .auth(&app.client_a)
        .json(&json!({ "catalog_id": "hello", "inputs": { "times": 11 } }))
        .send();
    assert_eq!(reply.invalid(), vec!["/inputs/times"]);

    // The order itself: unknown fields, missing fields, unknown entries, tenants.
    let cases: Vec<(&super::harness::Token, Value, &str)> = vec![
        (
            &app.client_a,
            json!({ "catalog_id": "hello", "colour": "red" }),
            "/colour",
        ),
        (&app.client_a, json!({ "inputs": {} }), ""),
        (&app.client_a, json!({ "catalog_id": 7 }), "/catalog_id"),
        (
            &app.client_a,
            json!({ "catalog_id": "no-such-entry" }),
            "/catalog_id",
        ),
        (&app.operator, json!({ "catalog_id": "hello" }), "/tenant"),
        (
            &app.operator,
            json!({ "catalog_id": "hello", "tenant": "no-such-tenant" }),
            "/tenant",
        ),
        (
            &app.client_a,
            json!({ "catalog_id": "hello", "tenant": "tenant-b" }),
            "/tenant",
        ),
    ];
    for (token, order, pointer) in cases {
        let reply = app.post("/v1/requests").auth(token).json(&order).send();
        assert_eq!(reply.invalid(), vec![pointer.to_string()], "{order}");
    }

    let list = app
        .get("/v1/requests")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(list["items"], json!([]), "refused orders are not stored");
    let runs = app.get("/v1/runs").auth(&app.operator).send().expect(200);
    assert_eq!(runs["items"], json!([]), "and start nothing");
}

#[test]
fn a_gated_order_waits_for_an_operator_then_runs_to_fulfilment() {
    let app = App::start();
    let reply = app
        .post("/v1/requests")
        .auth(&app.client_a)
        .json(&json!({ "catalog_id": "hello", "inputs": { "who": "ada" } }))
        .send();
    let created = reply.expect(202);
    let id = s(&created, "id");
    assert_eq!(
        reply.header("location").as_deref(),
        Some(format!("/v1/requests/{id}").as_str())
    );
    assert_eq!(created["status"], "awaiting_approval");
    assert_eq!(created["catalog_id"], "hello");
    assert_eq!(created["tenant"], TENANT_A);
    assert_eq!(created["requester"], app.client_a.id.as_str());
    assert_eq!(
        created["inputs"],
        json!({ "who": "ada", "times": 3 }),
        "the entry's default `times: 3` is applied"
    );
    assert_eq!(created["run_id"], Value::Null);
    assert_eq!(created["run_url"], Value::Null);
    assert_eq!(created["approval"]["roles"], json!(["operator"]));
    assert_eq!(created["approval"]["decided_by"], Value::Null);
    let deadline = s(&created["sla"], "deadline");
    assert!(
        chrono::DateTime::parse_from_rfc3339(&deadline).is_ok(),
        "{deadline}"
    );
    assert_eq!(created["sla"]["breached"], false);
    assert_eq!(created["finished_at"], Value::Null);

    // A client cannot approve, not even its own order.
    app.post(&format!("/v1/requests/{id}/approval"))
        .auth(&app.client_a)
        .json(&json!({ "approved": true }))
        .send()
        .problem(403, "forbidden");
    // A malformed decision is refused before anything happens.
    let reply = app
        .post(&format!("/v1/requests/{id}/approval"))
        .auth(&app.operator)
        .json(&json!({ "approved": "yes" }))
        .send();
    assert_eq!(reply.invalid(), vec!["/approved"]);
    let still = app
        .get(&format!("/v1/requests/{id}"))
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(still["status"], "awaiting_approval");
    assert_eq!(still["run_id"], Value::Null);

    let approved = app
        .post(&format!("/v1/requests/{id}/approval"))
        .auth(&app.operator)
        .json(&json!({ "approved": true, "comment": "fine" }))
        .send()
        .expect(200);
    assert_eq!(approved["status"], "running");
    assert_eq!(approved["approval"]["decided_by"], app.operator.id.as_str());
    assert_eq!(approved["approval"]["comment"], "fine");
    let run = s(&approved, "run_id");
    assert_eq!(approved["run_url"], format!("/v1/runs/{run}"));

    // Deciding twice is a conflict, whoever tries.
    for token in [&app.operator, &app.admin] {
        app.post(&format!("/v1/requests/{id}/approval"))
            .auth(token)
            .json(&json!({ "approved": false }))
            .send()
            .problem(409, "conflict");
    }

    let done = app.wait_request(&app.client_a, &id, "fulfilled");
    assert_eq!(done["sla"]["breached"], false);
    assert_eq!(done["sla"]["deadline"], deadline.as_str());
    assert!(done["finished_at"].is_string(), "{done}");
    // Fulfilment is a change of the request: `updated_at` is no earlier than `finished_at`.
    assert!(
        done["updated_at"].as_str() >= done["finished_at"].as_str(),
        "{done}"
    );
    let detail = app
        .get(&format!("/v1/runs/{run}"))
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(detail["status"], "succeeded");
    assert_eq!(detail["workflow"], "hello");
    assert_eq!(detail["tenant"], TENANT_A);
    assert_eq!(detail["inputs"], json!({ "who": "ada", "times": 3 }));
    assert_eq!(
        detail["outputs"],
        json!({ "greeting": "hello, ada", "repeated": 3 })
    );
    for key in [
        "greet", "repeat", "repeat#0", "repeat#1", "repeat#2", "pause",
    ] {
        let st = step(&detail, key).unwrap_or_else(|| panic!("step {key} in {detail}"));
        assert_eq!(st["status"], "succeeded", "{st}");
    }

    // The request answered with the same view in the list.
    let list = app
        .get("/v1/requests")
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert_eq!(list["items"][0]["status"], "fulfilled");
}

#[test]
fn a_rejected_order_never_runs() {
    let app = App::start();
    let created = app.order(&app.client_a, &json!({ "catalog_id": "hello" }));
    let id = s(&created, "id");
    let rejected = app
        .post(&format!("/v1/requests/{id}/approval"))
        .auth(&app.operator)
        .json(&json!({ "approved": false, "comment": "not today" }))
        .send()
        .expect(200);
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["run_id"], Value::Null);
    assert_eq!(rejected["approval"]["comment"], "not today");
    assert_eq!(rejected["sla"]["breached"], false);
    assert!(rejected["finished_at"].is_string(), "{rejected}");
    app.post(&format!("/v1/requests/{id}/approval"))
        .auth(&app.operator)
        .json(&json!({ "approved": true }))
        .send()
        .problem(409, "conflict");
    let again = app
        .get(&format!("/v1/requests/{id}"))
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(again["status"], "rejected");
    let runs = app.get("/v1/runs").auth(&app.operator).send().expect(200);
    assert_eq!(runs["items"], json!([]));

    // An ungated request has no approval to decide.
    let ungated = app.order(&app.client_a, &json!({ "catalog_id": "steer" }));
    assert_eq!(ungated["approval"], Value::Null);
    app.post(&format!("/v1/requests/{}/approval", s(&ungated, "id")))
        .auth(&app.operator)
        .json(&json!({ "approved": true }))
        .send()
        .problem(403, "forbidden");
    app.post("/v1/requests/req-00000000deadbeef/approval")
        .auth(&app.operator)
        .json(&json!({ "approved": true }))
        .send()
        .problem(404, "not-found");
}

#[test]
fn an_idempotency_key_replays_the_first_answer_and_orders_nothing_more() {
    let app = App::start();
    let order = json!({ "catalog_id": "steer" });
    let first = app
        .post("/v1/requests")
        .auth(&app.client_a)
        .header("idempotency-key", "order-1")
        .json(&order)
        .send();
    let original = first.expect(202);
    assert_eq!(first.header("idempotent-replayed"), None);
    assert_eq!(original["status"], "running");
    let run = s(&original, "run_id");

    for _ in 0..2 {
        let again = app
            .post("/v1/requests")
            .auth(&app.client_a)
            .header("idempotency-key", "order-1")
            .json(&order)
            .send();
        let replayed = again.expect(202);
        assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
        assert_eq!(replayed["id"], original["id"]);
        assert_eq!(replayed["run_id"], run.as_str());
    }
    let requests = app
        .get("/v1/requests")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(ids(&requests), vec![s(&original, "id")]);
    let runs = app.get("/v1/runs").auth(&app.operator).send().expect(200);
    assert_eq!(ids(&runs), vec![run.clone()]);

    // The same key for another order is refused.
    for other in [
        json!({ "catalog_id": "hello" }),
        json!({ "catalog_id": "steer", "inputs": { "x": 1 } }),
    ] {
        app.post("/v1/requests")
            .auth(&app.client_a)
            .header("idempotency-key", "order-1")
            .json(&other)
            .send()
            .problem(422, "idempotency-key-reused");
    }
    // A malformed key is refused.
    let long = "k".repeat(256);
    for bad in [long.as_str(), " "] {
        app.post("/v1/requests")
            .auth(&app.client_a)
            .header("idempotency-key", bad)
            .json(&order)
            .send()
            .problem(400, "invalid-idempotency-key");
    }
    // Keys belong to their caller: another client's same key is another order.
    let b = app
        .post("/v1/requests")
        .auth(&app.client_b)
        .header("idempotency-key", "order-1")
        .json(&order)
        .send();
    let theirs = b.expect(202);
    assert_eq!(b.header("idempotent-replayed"), None);
    assert_ne!(theirs["id"], original["id"]);
    // A new key is a new order.
    let fresh = app
        .post("/v1/requests")
        .auth(&app.client_a)
        .header("idempotency-key", "order-2")
        .json(&order)
        .send()
        .expect(202);
    assert_ne!(fresh["id"], original["id"]);
    let requests = app
        .get("/v1/requests")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(ids(&requests).len(), 3);
    let runs = app.get("/v1/runs").auth(&app.operator).send().expect(200);
    assert_eq!(ids(&runs).len(), 3);
}

#[test]
fn lists_page_with_cursors() {
    let app = App::start();
    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(s(
            &app.order(&app.client_a, &json!({ "catalog_id": "hello" })),
            "id",
        ));
    }
    let first = app
        .get("/v1/requests?limit=2")
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(ids(&first).len(), 2);
    let cursor = s(&first, "next_cursor");
    let second = app
        .get(&format!("/v1/requests?limit=2&cursor={cursor}"))
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(ids(&second).len(), 1);
    assert_eq!(second["next_cursor"], Value::Null);
    let mut all: Vec<String> = ids(&first).into_iter().chain(ids(&second)).collect();
    all.sort();
    made.sort();
    assert_eq!(all, made, "the pages together hold every request once");

    for (query, pointer) in [
        ("limit=0", "/limit"),
        ("limit=201", "/limit"),
        ("cursor=not-a-cursor", "/cursor"),
        ("limit=many", ""),
    ] {
        for path in ["/v1/requests", "/v1/runs", "/v1/incidents", "/v1/events"] {
            let reply = app
                .get(&format!("{path}?{query}"))
                .auth(&app.operator)
                .send();
            assert_eq!(reply.invalid(), vec![pointer.to_string()], "{path}?{query}");
        }
    }
}

/// `hurried` promises fulfilment within 1 ms, and its run waits 1 s: it cannot be on time.
#[test]
fn a_missed_deadline_is_a_visible_and_counted_breach() {
    let app = App::start();
    let late = app.order(&app.client_a, &json!({ "catalog_id": "hurried" }));
    let on_time = app.order(&app.client_a, &json!({ "catalog_id": "steer" }));
    assert_eq!(on_time["sla"]["breached"], false);
    let done = app.wait_request(&app.client_a, &s(&late, "id"), "fulfilled");
    assert_eq!(done["sla"]["breached"], true, "{done}");
    assert!(
        s(&done["sla"], "deadline") < s(&done, "finished_at"),
        "fulfilled after its deadline: {done}"
    );
    // Read in the background: the next reading counts it.
    let started = std::time::Instant::now();
    loop {
        let metrics = app.get("/metrics").send();
        assert_eq!(metrics.status, 200);
        if metrics.text().lines().any(|l| l == "csmp_sla_breaches 1") {
            break;
        }
        assert!(
            started.elapsed() < super::harness::GUARD,
            "the breach is never counted: {}",
            metrics.text()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let steer = app
        .get(&format!("/v1/requests/{}", s(&on_time, "id")))
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(steer["sla"]["breached"], false);
}
