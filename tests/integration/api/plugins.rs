//! Plugins: the built-ins are listed; uploads are loaded into the sandbox before they are
//! accepted, must describe themselves as the name and version of their URL, and are admins'.

use serde_json::Value;

use super::harness::{App, s};

fn wasm(stem: &str) -> Vec<u8> {
    let path = format!("{}/{stem}.wasm", env!("CSMP_PLUGIN_WASM_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| format!("{}@{}", s(p, "name"), s(p, "version")))
        .collect()
}

#[test]
fn the_built_in_plugins_are_listed_with_their_schemas() {
    let app = App::start();
    let list = app
        .get("/v1/plugins")
        .auth(&app.operator)
        .send()
        .expect(200);
    let listed = names(&list);
    for builtin in ["echo@1.0.0", "http@1.0.0", "notify@1.0.0", "forecast@1.0.0"] {
        assert!(
            listed.contains(&builtin.to_string()),
            "{builtin} in {listed:?}"
        );
    }
    let http = app
        .get("/v1/plugins/http/1.0.0")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(http["name"], "http");
    assert!(http["description"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(http["input_schema"].is_object(), "{http}");
    assert!(http["output_schema"].is_object(), "{http}");
    assert!(http["capabilities"]["http_hosts"].is_array(), "{http}");
    assert!(http["capabilities"]["secrets"].is_array(), "{http}");
    for path in ["/v1/plugins/http/9.9.9", "/v1/plugins/nope/1.0.0"] {
        app.get(path)
            .auth(&app.operator)
            .send()
            .problem(404, "not-found");
    }
}

#[test]
fn uploads_are_validated_in_the_sandbox() {
    let app = App::start();
    let hostile = wasm("hostile");
    let put = |path: &str, content_type: &str, body: &[u8]| {
        app.put(path)
            .auth(&app.admin)
            .body(content_type, body.to_vec())
            .send()
    };

    // Not WebAssembly, broken WebAssembly, the wrong media type.
    let garbage = put(
        "/v1/plugins/junk/1.0.0",
        "application/wasm",
        b"definitely not wasm",
    );
    assert_eq!(garbage.invalid(), vec![""]);
    let truncated = put(
        "/v1/plugins/junk/1.0.0",
        "application/wasm",
        &hostile[..hostile.len() / 2],
    );
    assert_eq!(truncated.invalid(), vec![""]);
    put("/v1/plugins/hostile/0.1.0", "application/json", &hostile)
        .problem(415, "unsupported-media-type");
    app.put("/v1/plugins/hostile/0.1.0")
        .auth(&app.admin)
        .raw(hostile.clone())
        .send()
        .problem(415, "unsupported-media-type");
    // Bad names and versions in the URL.
    assert_eq!(
        put("/v1/plugins/hostile/one", "application/wasm", &hostile).invalid(),
        vec!["/version"]
    );
    assert_eq!(
        put("/v1/plugins/Hostile/0.1.0", "application/wasm", &hostile).invalid(),
        vec!["/name"]
    );
    // A real plugin under another name or version.
    for path in ["/v1/plugins/hostile/0.2.0", "/v1/plugins/friendly/0.1.0"] {
        let reply = put(path, "application/wasm", &hostile);
        assert_eq!(reply.invalid(), vec![""]);
        let body = reply.json();
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("hostile@0.1.0")),
            "the mismatch names what the binary says it is: {body}"
        );
    }
    // A plugin that imports sockets is refused at load time.
    let reply = put(
        "/v1/plugins/sockets/0.1.0",
        "application/wasm",
        &wasm("sockets"),
    );
    assert_eq!(reply.invalid(), vec![""]);
    assert!(
        reply.text().contains("socket"),
        "the refused import is named: {}",
        reply.text()
    );
    // Only admins upload.
    app.put("/v1/plugins/hostile/0.1.0")
        .auth(&app.operator)
        .body("application/wasm", hostile.clone())
        .send()
        .problem(403, "forbidden");

    let listed = names(&app.get("/v1/plugins").auth(&app.admin).send().expect(200));
    for refused in ["junk", "friendly", "sockets", "hostile"] {
        assert!(
            !listed.iter().any(|n| n.starts_with(&format!("{refused}@"))),
            "{refused} was not loaded: {listed:?}"
        );
    }

    // The real thing, under its own name and version.
    let created = put("/v1/plugins/hostile/0.1.0", "application/wasm", &hostile).expect(201);
    assert_eq!(created["name"], "hostile");
    assert_eq!(created["version"], "0.1.0");
    assert_eq!(created["created"], true);
    assert_eq!(s(&created, "sha256").len(), 64);
    let again = put(
        "/v1/plugins/hostile/0.1.0",
        "application/octet-stream",
        &hostile,
    )
    .expect(200);
    assert_eq!(again["created"], false);
    let got = app
        .get("/v1/plugins/hostile/0.1.0")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(got["name"], "hostile");
    let listed = names(&app.get("/v1/plugins").auth(&app.admin).send().expect(200));
    assert!(listed.contains(&"hostile@0.1.0".to_string()), "{listed:?}");

    // Workflows may use it now.
    app.put("/v1/workflows/uses-hostile")
        .auth(&app.operator)
        .body(
            "application/yaml",
            "name: uses-hostile\nversion: 1\nsteps:\n  - id: h\n    uses: hostile@^0.1\n    with: { mode: flood, bytes: 1 }\n",
        )
        .send()
        .expect(201);
}
