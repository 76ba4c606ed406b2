//! Workflow uploads (validated like `csmp validate`, located errors), versions, listing.

use serde_json::json;

use super::harness::{App, s};

const GREETER_V1: &str = "name: greeter\nversion: 1\ndescription: says hi\nsteps:\n  - id: hi\n    uses: echo@^1\n    with: { text: hi }\n";
const GREETER_V1_CHANGED: &str = "name: greeter\nversion: 1\ndescription: says hello\nsteps:\n  - id: hi\n    uses: echo@^1\n    with: { text: hello }\n";
const GREETER_V2: &str = "name: greeter\nversion: 2\ndescription: says hi twice\nsteps:\n  - id: hi\n    uses: echo@^1\n    with: { text: hi }\n  - id: again\n    needs: [hi]\n    uses: echo@^1\n    with: { text: hi }\n";

#[test]
fn uploads_are_stored_once_and_versions_are_immutable() {
    let app = App::start();
    let put = |body: &str| {
        app.put("/v1/workflows/greeter")
            .auth(&app.operator)
            .body("application/yaml", body)
            .send()
    };
    let created = put(GREETER_V1).expect(201);
    assert_eq!(created["name"], "greeter");
    assert_eq!(created["version"], 1);
    assert_eq!(created["created"], true);
    let sha = s(&created, "sha256");
    assert_eq!(sha.len(), 64);

    let same = put(GREETER_V1).expect(200);
    assert_eq!(same["created"], false);
    assert_eq!(same["sha256"], sha.as_str());

    put(GREETER_V1_CHANGED).problem(409, "conflict");

    // Other YAML media types are YAML too; admins may upload.
    let v2 = app
        .put("/v1/workflows/greeter")
        .auth(&app.admin)
        .body("text/yaml; charset=utf-8", GREETER_V2)
        .send()
        .expect(201);
    assert_eq!(v2["version"], 2);

    let list = app
        .get("/v1/workflows")
        .auth(&app.operator)
        .send()
        .expect(200);
    let greeter = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|w| w["name"] == "greeter")
        .unwrap_or_else(|| panic!("greeter listed: {list}"))
        .clone();
    assert_eq!(greeter["versions"], json!([1, 2]));
    assert_eq!(greeter["latest_version"], 2);
    assert_eq!(greeter["description"], "says hi twice");
    assert!(
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|w| w["name"] == "hello"),
        "the examples are listed: {list}"
    );

    let versions = app
        .get("/v1/workflows/greeter")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(versions["name"], "greeter");
    assert_eq!(versions["versions"][0]["version"], 1);
    assert_eq!(versions["versions"][0]["source"], GREETER_V1);
    assert_eq!(versions["versions"][0]["sha256"], sha.as_str());
    assert_eq!(versions["versions"][1]["source"], GREETER_V2);
    // No catalog entry starts it: not a client's to read.
    app.get("/v1/workflows/greeter")
        .auth(&app.client_a)
        .send()
        .problem(404, "not-found");
    let one = app
        .get("/v1/workflows/greeter/1")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(
        one["source"], GREETER_V1,
        "the conflicting upload changed nothing"
    );
    for path in [
        "/v1/workflows/greeter/3",
        "/v1/workflows/greeter/latest",
        "/v1/workflows/nope",
        "/v1/workflows/nope/1",
    ] {
        app.get(path)
            .auth(&app.operator)
            .send()
            .problem(404, "not-found");
    }
}

#[test]
fn bad_uploads_are_refused_with_located_problems() {
    let app = App::start();
    let put = |name: &str, content_type: Option<&str>, body: &str| {
        let call = app
            .put(&format!("/v1/workflows/{name}"))
            .auth(&app.operator);
        match content_type {
            Some(ct) => call.body(ct, body),
            None => call.raw(body),
        }
        .send()
    };

    // Semantic problems, all of them, each with line and column.
    let broken = "name: broken\nversion: 1\nsteps:\n  - id: a\n    uses: echo@^1\n    neds: [b]\n  - id: a\n    uses: nosuch@^1\n";
    let body = put("broken", Some("application/yaml"), broken).problem(400, "invalid-definition");
    let problems = body["problems"].as_array().expect("problems[]");
    assert!(problems.len() >= 3, "every problem is reported: {body}");
    for p in problems {
        assert!(p["line"].as_u64().is_some_and(|l| l >= 1), "{p}");
        assert!(p["column"].as_u64().is_some_and(|c| c >= 1), "{p}");
        assert!(p["code"].as_str().is_some_and(|c| !c.is_empty()), "{p}");
        assert!(p["message"].as_str().is_some_and(|m| !m.is_empty()), "{p}");
    }
    let at = |line: u64| problems.iter().any(|p| p["line"] == line);
    assert!(at(6), "the misspelt `neds` on line 6 is located: {body}");
    assert!(at(7), "the duplicate id on line 7 is located: {body}");
    assert!(at(8), "the unknown plugin on line 8 is located: {body}");
    let neds = problems.iter().find(|p| p["line"] == 6).expect("line 6");
    assert_eq!(neds["column"], 5);
    assert!(
        neds.to_string().contains("needs"),
        "the nearest valid key is suggested: {neds}"
    );

    // YAML syntax.
    let body = put(
        "broken",
        Some("application/yaml"),
        "name: broken\nversion: 1\nsteps: [\n  - id: a\n",
    )
    .problem(400, "invalid-definition");
    let first = &body["problems"][0];
    assert!(first["line"].as_u64().is_some_and(|l| l >= 3), "{body}");
    assert!(first["column"].as_u64().is_some_and(|c| c >= 1), "{body}");

    // The name in the YAML must be the name in the path.
    let reply = put("other-name", Some("application/yaml"), GREETER_V1);
    assert_eq!(reply.invalid(), vec!["/name"]);

    // Only YAML.
    for ct in [
        Some("application/json"),
        Some("application/octet-stream"),
        None,
    ] {
        put("greeter", ct, GREETER_V1).problem(415, "unsupported-media-type");
    }

    // Nothing of it was stored.
    for name in ["broken", "other-name", "greeter"] {
        app.get(&format!("/v1/workflows/{name}"))
            .auth(&app.operator)
            .send()
            .problem(404, "not-found");
    }
}

#[test]
fn a_workflow_is_deleted_only_when_nothing_uses_it() {
    let app = App::start();
    let yaml = "name: lone\nversion: 1\nsteps:\n  - id: nap\n    wait: 1h\n";
    app.put("/v1/workflows/lone")
        .auth(&app.operator)
        .body("application/yaml", yaml)
        .send()
        .expect(201);
    let run = app
        .post("/v1/runs")
        .auth(&app.operator)
        .json(&serde_json::json!({ "workflow": "lone" }))
        .send()
        .expect(202);
    let run = super::harness::s(&run, "id");
    // An unfinished run uses it; a catalog entry orders `hello`; clients may not delete.
    let busy = app
        .delete("/v1/workflows/lone")
        .auth(&app.operator)
        .send()
        .problem(409, "conflict");
    assert!(
        super::harness::s(&busy, "detail").contains("1 unfinished run"),
        "{busy}"
    );
    let ordered = app
        .delete("/v1/workflows/hello")
        .auth(&app.operator)
        .send()
        .problem(409, "conflict");
    assert!(
        super::harness::s(&ordered, "detail").contains("catalog entries"),
        "{ordered}"
    );
    app.delete("/v1/workflows/lone")
        .auth(&app.client_a)
        .send()
        .problem(403, "forbidden");

    app.post(&format!("/v1/runs/{run}/cancel"))
        .auth(&app.operator)
        .send()
        .expect(202);
    app.wait_run(&app.operator, &run, "cancelled");
    let gone = app.delete("/v1/workflows/lone").auth(&app.operator).send();
    assert_eq!(gone.status, 204, "{}", gone.text());
    app.get("/v1/workflows/lone")
        .auth(&app.operator)
        .send()
        .problem(404, "not-found");
    let refused = app
        .post("/v1/runs")
        .auth(&app.operator)
        .json(&serde_json::json!({ "workflow": "lone" }))
        .send();
    assert_eq!(refused.invalid(), ["/workflow"]);
    // Its finished run is kept.
    app.get(&format!("/v1/runs/{run}"))
        .auth(&app.operator)
        .send()
        .expect(200);
    app.delete("/v1/workflows/lone")
        .auth(&app.operator)
        .send()
        .problem(404, "not-found");
}
