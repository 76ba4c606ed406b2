//! `PUT`/`DELETE /v1/catalog/{id}`: operators change the catalog without a restart, validated
//! like the catalog directory, and the change outlives a restart.

use serde_json::json;

use super::harness::{App, TENANT_A, s, write_definitions};
use super::process::{Served, cli_token};

const GREET: &str = "id: greet\ntitle: Greet\nworkflow: hello\ntenants: [tenant-a]\n";

#[test]
fn operators_set_and_delete_entries_and_clients_order_them_at_once() {
    let app = App::start();
    let put = |body: &str| {
        app.put("/v1/catalog/greet")
            .auth(&app.operator)
            .body("application/yaml", body.to_string())
            .send()
    };
    let created = put(GREET).expect(201);
    assert_eq!(created["id"], "greet");
    let listed = app
        .get("/v1/catalog")
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert!(
        listed["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|e| e["id"] == "greet")),
        "{listed}"
    );
    let ordered = app.order(
        &app.client_a,
        &json!({ "catalog_id": "greet", "inputs": { "times": 1 } }),
    );
    app.wait_run(&app.client_a, &s(&ordered, "run_id"), "succeeded");

    // Replaced: 200, and in force at once.
    put(&GREET.replace("title: Greet", "title: Greet twice")).expect(200);
    let one = app
        .get("/v1/catalog/greet")
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(one["title"], "Greet twice");

    // Refused, and nothing changes: a client; an entry that does not validate; another id.
    app.put("/v1/catalog/greet")
        .auth(&app.client_a)
        .body("application/yaml", GREET)
        .send()
        .problem(403, "forbidden");
    let bad = put("id: greet\ntitle: Greet\nworkflow: nope\ntenants: [tenant-a]\n")
        .problem(400, "invalid-definition");
    assert!(bad["problems"][0]["line"].as_u64().is_some(), "{bad}");
    let moved = app
        .put("/v1/catalog/other")
        .auth(&app.operator)
        .body("application/yaml", GREET)
        .send();
    assert_eq!(moved.invalid(), ["/id"]);
    app.put("/v1/catalog/greet")
        .auth(&app.operator)
        .json(&json!({ "id": "greet" }))
        .send()
        .problem(415, "unsupported-media-type");
    let still = app
        .get("/v1/catalog/greet")
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(still["title"], "Greet twice");

    // Deleted: no longer orderable; deleting again is a 404.
    let gone = app.delete("/v1/catalog/greet").auth(&app.operator).send();
    assert_eq!(gone.status, 204, "{}", gone.text());
    app.get("/v1/catalog/greet")
        .auth(&app.client_a)
        .send()
        .problem(404, "not-found");
    app.delete("/v1/catalog/greet")
        .auth(&app.operator)
        .send()
        .problem(404, "not-found");
    let refused = app
        .post("/v1/requests")
        .auth(&app.client_a)
        .json(&json!({ "catalog_id": "greet", "tenant": TENANT_A }))
        .send();
    assert_eq!(refused.invalid(), ["/catalog_id"]);
}

#[test]
fn catalog_changes_outlive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_definitions(dir.path());
    let db = dir.path().join("csmp.db");
    let operator = cli_token(&db, &["--role", "operator"]);
    let app = Served::start(dir.path(), "catalog");
    app.put("/v1/catalog/greet")
        .auth(&operator)
        .body("application/yaml", GREET.replace("tenant-a", "\"*\""))
        .send()
        .expect(201);
    // `hello` comes from the catalog directory; deleted over the API, it stays deleted.
    let gone = app.delete("/v1/catalog/hello").auth(&operator).send();
    assert_eq!(gone.status, 204, "{}", gone.text());
    let (status, _) = app.terminate();
    assert!(status.success());

    let app = Served::start(dir.path(), "catalog-again");
    app.get("/v1/catalog/greet")
        .auth(&operator)
        .send()
        .expect(200);
    app.get("/v1/catalog/hello")
        .auth(&operator)
        .send()
        .problem(404, "not-found");
    let (status, _) = app.terminate();
    assert!(status.success());
}
