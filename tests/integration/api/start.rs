//! Runs started directly (`POST /v1/runs`) and run lists narrowed by status, workflow, tenant,
//! labels and time.

use serde_json::{Value, json};

use super::harness::{App, TENANT_A, ids, s};

fn start(app: &App, body: &Value) -> Value {
    app.post("/v1/runs")
        .auth(&app.operator)
        .json(body)
        .send()
        .expect(202)
}

#[test]
fn operators_start_runs_directly_with_labels_and_clients_cannot() {
    let app = App::start();
    let reply = app
        .post("/v1/runs")
        .auth(&app.operator)
        .json(&json!({
            "workflow": "hello",
            "inputs": { "who": "ops", "times": 1 },
            "tenant": TENANT_A,
            "labels": { "team": "db", "change": "chg-42" },
        }))
        .send();
    let run = reply.expect(202);
    let id = s(&run, "id");
    assert_eq!(reply.header("location"), Some(format!("/v1/runs/{id}")));
    assert_eq!(run["tenant"], TENANT_A);
    assert_eq!(run["labels"], json!({ "team": "db", "change": "chg-42" }));
    let done = app.wait_run(&app.operator, &id, "succeeded");
    assert_eq!(done["outputs"]["greeting"], "hello, ops");
    assert_eq!(done["labels"]["team"], "db", "{done}");
    // The tenant's client sees it, labels and all.
    let seen = app
        .get(&format!("/v1/runs/{id}"))
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(seen["labels"]["change"], "chg-42");

    // Without a tenant, a run is the provider's own; defaults of the schema apply.
    let own = start(
        &app,
        &json!({ "workflow": "hello", "inputs": { "times": 1 } }),
    );
    assert_eq!(own["tenant"], "provider");
    let done = app.wait_run(&app.operator, &s(&own, "id"), "succeeded");
    assert_eq!(done["outputs"]["greeting"], "hello, world");

    for token in [&app.client_a, &app.integration] {
        app.post("/v1/runs")
            .auth(token)
            .json(&json!({ "workflow": "hello" }))
            .send()
            .problem(403, "forbidden");
    }
}

#[test]
fn a_run_that_cannot_start_says_every_reason_with_its_pointer_and_starts_nothing() {
    let app = App::start();
    let before = app.get("/v1/runs").auth(&app.operator).send().expect(200);
    let pointers = app
        .post("/v1/runs")
        .auth(&app.operator)
        .json(&json!({
            "workflow": "hello",
            "inputs": { "times": 99, "who": 7 },
            "tenant": "no-such-tenant",
            "labels": { "Bad Key": "x", "ok": "a,b" },
        }))
        .send()
        .invalid();
    assert_eq!(
        pointers,
        [
            "/inputs/times",
            "/inputs/who",
            "/labels/Bad Key",
            "/labels/ok",
            "/tenant"
        ],
    );
    let unknown = app
        .post("/v1/runs")
        .auth(&app.operator)
        .json(&json!({ "workflow": "helo" }))
        .send();
    assert_eq!(unknown.invalid(), ["/workflow"]);
    assert!(
        unknown.text().contains("did you mean `hello`"),
        "{}",
        unknown.text()
    );
    let version = app
        .post("/v1/runs")
        .auth(&app.operator)
        .json(&json!({ "workflow": "hello", "version": 99 }))
        .send();
    assert_eq!(version.invalid(), ["/version"]);
    app.post("/v1/runs")
        .auth(&app.operator)
        .json(&json!({ "workflow": "hello", "colour": "red" }))
        .send()
        .problem(422, "invalid-input");
    let after = app.get("/v1/runs").auth(&app.operator).send().expect(200);
    assert_eq!(ids(&before), ids(&after), "nothing started");
}

#[test]
fn an_idempotency_key_starts_one_run_and_refuses_another_body() {
    let app = App::start();
    let body = json!({ "workflow": "hello", "inputs": { "times": 1 } });
    let first = app
        .post("/v1/runs")
        .auth(&app.operator)
        .header("Idempotency-Key", "deploy-7")
        .json(&body)
        .send();
    let run = first.expect(202);
    let again = app
        .post("/v1/runs")
        .auth(&app.operator)
        .header("Idempotency-Key", "deploy-7")
        .json(&body)
        .send();
    assert_eq!(again.expect(202)["id"], run["id"]);
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    app.post("/v1/runs")
        .auth(&app.operator)
        .header("Idempotency-Key", "deploy-7")
        .json(&json!({ "workflow": "hello", "inputs": { "times": 2 } }))
        .send()
        .problem(422, "idempotency-key-reused");
    // Keys are per caller: the admin's deploy-7 is another run.
    let other = app
        .post("/v1/runs")
        .auth(&app.admin)
        .header("Idempotency-Key", "deploy-7")
        .json(&body)
        .send()
        .expect(202);
    assert_ne!(other["id"], run["id"]);
}

#[test]
fn runs_are_found_by_status_workflow_tenant_label_and_time() {
    let app = App::start();
    let a = start(
        &app,
        &json!({ "workflow": "hello", "inputs": { "times": 1 }, "tenant": TENANT_A, "labels": { "team": "db" } }),
    );
    let b = start(
        &app,
        &json!({ "workflow": "hello", "inputs": { "times": 1 }, "labels": { "team": "web", "tier": "1" } }),
    );
    let c = start(
        &app,
        &json!({ "workflow": "hello", "inputs": { "times": 1 }, "labels": { "team": "db", "tier": "1" } }),
    );
    let (a, b, c) = (s(&a, "id"), s(&b, "id"), s(&c, "id"));
    for id in [&a, &b, &c] {
        app.wait_run(&app.operator, id, "succeeded");
    }
    let find = |query: &str| {
        ids(&app
            .get(&format!("/v1/runs?{query}"))
            .auth(&app.operator)
            .send()
            .expect(200))
    };
    assert_eq!(
        find("label=team=db"),
        [c.clone(), a.clone()],
        "newest first"
    );
    assert_eq!(find("label=team=db,tier=1"), vec![c.clone()]);
    assert_eq!(find("label=team=ops"), Vec::<String>::new());
    assert_eq!(
        find(&format!("tenant={TENANT_A}&workflow=hello")),
        vec![a.clone()]
    );
    assert_eq!(
        find("status=succeeded&label=tier=1"),
        [c.clone(), b.clone()]
    );
    assert!(find("status=running&label=tier=1").is_empty());
    assert!(find("workflow=steer&label=tier=1").is_empty());
    assert!(find("created_after=2999-01-01T00:00:00Z").is_empty());
    assert_eq!(
        find("created_after=2000-01-01T00:00:00Z&created_before=2999-01-01T00:00:00Z&label=tier=1"),
        [c.clone(), b.clone()]
    );

    // Paged under a filter.
    let first = app
        .get("/v1/runs?label=tier=1&limit=1")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(ids(&first), vec![c.clone()]);
    let cursor = s(&first, "next_cursor");
    let second = app
        .get(&format!("/v1/runs?label=tier=1&limit=1&cursor={cursor}"))
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(ids(&second), vec![b.clone()]);

    // A client sees its tenant's runs only; naming another finds nothing.
    let own = app
        .get("/v1/runs?label=team=db")
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(ids(&own), vec![a.clone()]);
    let other = app
        .get("/v1/runs?tenant=provider")
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert!(ids(&other).is_empty(), "{other}");

    // Bad filters are located; unknown parameters named.
    let bad = app
        .get("/v1/runs?status=done&created_before=yesterday&label=nokey")
        .auth(&app.operator)
        .send()
        .invalid();
    assert_eq!(bad, ["/created_before", "/label", "/status"]);
    let unknown = app
        .get("/v1/runs?state=failed")
        .auth(&app.operator)
        .send()
        .problem(400, "unknown-parameter");
    assert!(s(&unknown, "detail").contains("`state`"), "{unknown}");
}
