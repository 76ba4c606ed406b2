//! Who may call what: 401 without a valid token, 403 for a role an endpoint does not serve,
//! and tenant isolation (another tenant's ids answer exactly like ids that do not exist).

use std::collections::BTreeSet;

use serde_json::{Value, json};
use ureq::http::Method;

use super::harness::{App, TENANT_A, TENANT_B, Token, ids, s};

fn assert_unauthorized(reply: &super::harness::Reply) {
    reply.problem(401, "unauthorized");
    assert_eq!(
        reply.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"csmp\", Basic realm=\"csmp\""),
        "{}: 401 says how to authenticate",
        reply.call
    );
}

#[test]
fn calls_without_a_valid_token_get_401_with_www_authenticate() {
    let app = App::start();
    let order = json!({ "catalog_id": "hello", "inputs": {} });
    for header in [
        None,
        Some("Basic YWRtaW46YWRtaW4="),
        Some("Bearer "),
        Some("Bearer csmp_000000000000_nope"),
        Some("csmp_000000000000_nope"),
    ] {
        for (method, path) in [
            (Method::GET, "/v1/catalog"),
            (Method::GET, "/v1/runs"),
            (Method::POST, "/v1/requests"),
            (Method::GET, "/v1/runs/run-nope/events"),
        ] {
            let mut call = app.call(method.clone(), path);
            if let Some(h) = header {
                call = call.header("authorization", h);
            }
            if method == Method::POST {
                call = call.json(&order);
            }
            assert_unauthorized(&call.send());
        }
    }

    // A revoked token stops working at once.
    let created = app
        .post("/v1/tokens")
        .auth(&app.admin)
        .json(&json!({ "role": "operator", "name": "short-lived" }))
        .send()
        .expect(201);
    let token = Token {
        secret: s(&created, "token"),
        id: s(&created, "id"),
    };
    app.get("/v1/runs").auth(&token).send().expect(200);
    let revoked = app
        .delete(&format!("/v1/tokens/{}", token.id))
        .auth(&app.admin)
        .send();
    assert_eq!(revoked.status, 204, "{}", revoked.text());
    assert_unauthorized(&app.get("/v1/runs").auth(&token).send());

    // Nothing was ordered by any of the refused calls.
    let requests = app
        .get("/v1/requests")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(requests["items"], json!([]));

    // Health, metrics, the API description and the status page need no token.
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/status",
        "/status.json",
    ] {
        let r = app.get(path).send();
        assert_eq!(r.status, 200, "{path} without a token: {}", r.text());
    }
}

/// One call in the role matrix.
struct Case {
    method: Method,
    /// The concrete path called.
    path: String,
    /// The route it exercises, as in the router and the OpenAPI document.
    route: &'static str,
    body: Option<(&'static str, Vec<u8>)>,
}

fn case(method: Method, route: &'static str, path: String) -> Case {
    Case {
        method,
        path,
        route,
        body: None,
    }
}

fn with_json(mut c: Case, v: &Value) -> Case {
    c.body = Some(("application/json", v.to_string().into_bytes()));
    c
}

fn send(app: &App, token: &Token, c: &Case) -> super::harness::Reply {
    let mut call = app.call(c.method.clone(), &c.path).auth(token);
    if let Some((ct, body)) = &c.body {
        call = call.body(ct, body.clone());
    }
    call.send()
}

/// Every route of the router, called with a role it refuses (403) and with one it serves.
/// The set of routes covered is checked against the OpenAPI document, so a new route without
/// a case here fails this test.
#[test]
fn every_route_refuses_roles_it_does_not_serve_and_serves_the_others() {
    let app = App::start();

    // Live ids: a gated request, a run waiting at an approval step, an open incident.
    let gated = app.order(&app.client_a, &json!({ "catalog_id": "hello" }));
    let req = s(&gated, "id");
    let steer = app.order(&app.client_a, &json!({ "catalog_id": "steer" }));
    let run = s(&steer, "run_id");
    app.wait_step(&app.client_a, &run, "gate", "waiting");
    let paged = app.order(
        &app.client_a,
        &json!({ "catalog_id": "pager", "inputs": { "title": "t" } }),
    );
    assert_eq!(paged["status"], "running");
    let incidents = app.wait_for(&app.client_a, "/v1/incidents", "an incident", |l| {
        !ids(l).is_empty()
    });
    let inc = ids(&incidents)[0].clone();

    let yaml = (
        "application/yaml",
        b"name: x\nversion: 1\nsteps: []\n".to_vec(),
    );
    let yaml_entry = (
        "application/yaml",
        b"id: x\ntitle: X\nworkflow: hello\ntenants: [\"*\"]\n".to_vec(),
    );
    let wasm = ("application/wasm", b"\0asm\x01\0\0\0".to_vec());
    let alert = json!({ "status": "firing", "alerts": [{ "labels": { "alertname": "x" } }] });

    // (token, case) pairs that must answer 403.
    let forbidden: Vec<(&Token, Case)> = vec![
        (
            &app.integration,
            case(Method::GET, "/v1/requests", "/v1/requests".into()),
        ),
        (
            &app.integration,
            with_json(
                case(Method::POST, "/v1/requests", "/v1/requests".into()),
                &json!({ "catalog_id": "hello", "tenant": TENANT_A }),
            ),
        ),
        (
            &app.integration,
            case(
                Method::GET,
                "/v1/requests/{id}",
                format!("/v1/requests/{req}"),
            ),
        ),
        (
            &app.client_a,
            with_json(
                case(
                    Method::POST,
                    "/v1/requests/{id}/approval",
                    format!("/v1/requests/{req}/approval"),
                ),
                &json!({ "approved": true }),
            ),
        ),
        (
            &app.integration,
            case(Method::GET, "/v1/runs", "/v1/runs".into()),
        ),
        (
            &app.integration,
            case(Method::GET, "/v1/runs/{id}", format!("/v1/runs/{run}")),
        ),
        (
            &app.integration,
            case(
                Method::GET,
                "/v1/runs/{id}/steps/{key}",
                format!("/v1/runs/{run}/steps/gate"),
            ),
        ),
        (
            &app.integration,
            case(
                Method::GET,
                "/v1/runs/{id}/events",
                format!("/v1/runs/{run}/events"),
            ),
        ),
        (
            &app.client_a,
            with_json(
                case(
                    Method::POST,
                    "/v1/runs/{id}/rerun",
                    format!("/v1/runs/{run}/rerun"),
                ),
                &json!({ "from": "gate" }),
            ),
        ),
        (
            &app.client_a,
            case(
                Method::POST,
                "/v1/runs/{id}/retry",
                format!("/v1/runs/{run}/retry"),
            ),
        ),
        (
            &app.client_a,
            case(
                Method::POST,
                "/v1/runs/{id}/pause",
                format!("/v1/runs/{run}/pause"),
            ),
        ),
        (
            &app.client_a,
            case(
                Method::POST,
                "/v1/runs/{id}/resume",
                format!("/v1/runs/{run}/resume"),
            ),
        ),
        (
            &app.client_a,
            Case {
                body: Some(yaml_entry.clone()),
                ..case(Method::PUT, "/v1/catalog/{id}", "/v1/catalog/x".into())
            },
        ),
        (
            &app.client_a,
            case(
                Method::DELETE,
                "/v1/catalog/{id}",
                "/v1/catalog/hello".into(),
            ),
        ),
        (
            &app.client_a,
            case(
                Method::DELETE,
                "/v1/workflows/{name}",
                "/v1/workflows/hello".into(),
            ),
        ),
        (
            &app.client_a,
            with_json(
                case(Method::POST, "/v1/runs", "/v1/runs".into()),
                &json!({ "workflow": "hello" }),
            ),
        ),
        (
            &app.integration,
            case(Method::GET, "/v1/approvals", "/v1/approvals".into()),
        ),
        (
            &app.integration,
            with_json(
                case(Method::POST, "/v1/runs", "/v1/runs".into()),
                &json!({ "workflow": "hello" }),
            ),
        ),
        (
            &app.client_a,
            case(
                Method::POST,
                "/v1/runs/{id}/cancel",
                format!("/v1/runs/{run}/cancel"),
            ),
        ),
        (
            &app.client_a,
            with_json(
                case(
                    Method::POST,
                    "/v1/runs/{id}/approvals/{step}",
                    format!("/v1/runs/{run}/approvals/gate"),
                ),
                &json!({ "approved": true }),
            ),
        ),
        (
            &app.client_a,
            with_json(
                case(
                    Method::POST,
                    "/v1/runs/{id}/signals/{name}",
                    format!("/v1/runs/{run}/signals/go"),
                ),
                &json!({}),
            ),
        ),
        (
            &app.client_a,
            Case {
                body: Some(yaml.clone()),
                ..case(
                    Method::PUT,
                    "/v1/workflows/{name}",
                    "/v1/workflows/x".into(),
                )
            },
        ),
        (
            &app.operator,
            Case {
                body: Some(wasm.clone()),
                ..case(
                    Method::PUT,
                    "/v1/plugins/{name}/{version}",
                    "/v1/plugins/x/1.0.0".into(),
                )
            },
        ),
        (
            &app.client_a,
            case(Method::GET, "/v1/events", "/v1/events".into()),
        ),
        (
            &app.operator,
            case(Method::GET, "/v1/grants", "/v1/grants".into()),
        ),
        (
            &app.operator,
            case(Method::GET, "/v1/secrets", "/v1/secrets".into()),
        ),
        (
            &app.operator,
            with_json(
                case(Method::PUT, "/v1/secrets/{name}", "/v1/secrets/x".into()),
                &json!({ "value": "v" }),
            ),
        ),
        (
            &app.operator,
            case(
                Method::POST,
                "/v1/grants/reload",
                "/v1/grants/reload".into(),
            ),
        ),
        (
            &app.operator,
            with_json(
                case(
                    Method::POST,
                    "/v1/events/{source}",
                    "/v1/events/alertmanager".into(),
                ),
                &alert,
            ),
        ),
        (
            &app.client_a,
            with_json(
                case(
                    Method::POST,
                    "/v1/events/{source}",
                    "/v1/events/alertmanager".into(),
                ),
                &alert,
            ),
        ),
        (
            &app.integration,
            case(Method::GET, "/v1/incidents", "/v1/incidents".into()),
        ),
        (
            &app.integration,
            case(
                Method::GET,
                "/v1/incidents/{id}",
                format!("/v1/incidents/{inc}"),
            ),
        ),
        (
            &app.integration,
            case(
                Method::GET,
                "/v1/incidents/{id}/timeline",
                format!("/v1/incidents/{inc}/timeline"),
            ),
        ),
        (
            &app.client_a,
            case(
                Method::POST,
                "/v1/incidents/{id}/acknowledge",
                format!("/v1/incidents/{inc}/acknowledge"),
            ),
        ),
        (
            &app.client_a,
            case(
                Method::POST,
                "/v1/incidents/{id}/resolve",
                format!("/v1/incidents/{inc}/resolve"),
            ),
        ),
        (
            &app.client_a,
            with_json(
                case(
                    Method::POST,
                    "/v1/incidents/{id}/notes",
                    format!("/v1/incidents/{inc}/notes"),
                ),
                &json!({ "note": "mine" }),
            ),
        ),
        (
            &app.client_a,
            with_json(
                case(
                    Method::PATCH,
                    "/v1/incidents/{id}",
                    format!("/v1/incidents/{inc}"),
                ),
                &json!({ "impact": "mine" }),
            ),
        ),
        (
            &app.client_a,
            case(
                Method::POST,
                "/v1/incidents/{id}/reopen",
                format!("/v1/incidents/{inc}/reopen"),
            ),
        ),
        (
            &app.client_a,
            case(
                Method::GET,
                "/v1/incidents/{id}/review",
                format!("/v1/incidents/{inc}/review"),
            ),
        ),
        (
            &app.integration,
            case(
                Method::GET,
                "/v1/reports/incidents",
                "/v1/reports/incidents".into(),
            ),
        ),
        (
            &app.integration,
            case(Method::GET, "/v1/reports/sla", "/v1/reports/sla".into()),
        ),
        (
            &app.client_a,
            case(Method::GET, "/v1/reports/slo", "/v1/reports/slo".into()),
        ),
        (
            &app.client_a,
            case(Method::GET, "/v1/oncall/files", "/v1/oncall/files".into()),
        ),
        (
            &app.client_a,
            case(
                Method::PUT,
                "/v1/oncall/files/{name}",
                "/v1/oncall/files/night".into(),
            ),
        ),
        (
            &app.client_a,
            case(
                Method::DELETE,
                "/v1/oncall/files/{name}",
                "/v1/oncall/files/platform".into(),
            ),
        ),
        (
            &app.operator,
            with_json(
                case(Method::POST, "/v1/tokens", "/v1/tokens".into()),
                &json!({ "role": "admin" }),
            ),
        ),
        (
            &app.operator,
            case(Method::GET, "/v1/tokens", "/v1/tokens".into()),
        ),
        (
            &app.operator,
            case(
                Method::DELETE,
                "/v1/tokens/{id}",
                format!("/v1/tokens/{}", app.admin.id),
            ),
        ),
        (
            &app.client_a,
            case(Method::GET, "/v1/tenants", "/v1/tenants".into()),
        ),
        (
            &app.operator,
            case(
                Method::GET,
                "/v1/tenants/{id}",
                format!("/v1/tenants/{TENANT_A}"),
            ),
        ),
        (
            &app.operator,
            with_json(
                case(
                    Method::PUT,
                    "/v1/tenants/{id}",
                    format!("/v1/tenants/{TENANT_A}"),
                ),
                &json!({ "allowlist": ["10.0.0.0/8"] }),
            ),
        ),
        (
            &app.operator,
            case(Method::GET, "/v1/audit", "/v1/audit".into()),
        ),
        (
            &app.client_a,
            case(Method::GET, "/v1/cluster", "/v1/cluster".into()),
        ),
        (
            &app.integration,
            case(Method::GET, "/v1/alerts", "/v1/alerts".into()),
        ),
        (
            &app.client_a,
            case(Method::GET, "/v1/rules", "/v1/rules".into()),
        ),
        (
            &app.client_a,
            case(Method::GET, "/v1/rules/{name}", "/v1/rules/x".into()),
        ),
        (
            &app.client_a,
            case(Method::PUT, "/v1/rules/{name}", "/v1/rules/x".into()),
        ),
        (
            &app.client_a,
            case(Method::DELETE, "/v1/rules/{name}", "/v1/rules/x".into()),
        ),
        (
            &app.integration,
            with_json(
                case(Method::POST, "/v1/rules/test", "/v1/rules/test".into()),
                &json!({ "alerts": [] }),
            ),
        ),
        (
            &app.client_a,
            with_json(
                case(Method::POST, "/v1/silences", "/v1/silences".into()),
                &json!({ "matchers": { "a": "b" }, "duration": "1h", "comment": "c" }),
            ),
        ),
        (
            &app.integration,
            case(Method::GET, "/v1/silences", "/v1/silences".into()),
        ),
        (
            &app.client_a,
            case(Method::DELETE, "/v1/silences/{id}", "/v1/silences/x".into()),
        ),
        (
            &app.client_a,
            case(Method::GET, "/v1/oncall", "/v1/oncall".into()),
        ),
        (
            &app.integration,
            case(
                Method::GET,
                "/v1/oncall/{schedule}",
                "/v1/oncall/platform-primary".into(),
            ),
        ),
    ];
    let mut covered = BTreeSet::new();
    for (token, c) in &forbidden {
        let reply = send(&app, token, c);
        let body = reply.problem(403, "forbidden");
        assert!(body.get("errors").is_none(), "{}: {body}", reply.call);
        covered.insert(format!("{} {}", c.method, c.route));
    }

    // Refused calls changed nothing.
    let r = app
        .get(&format!("/v1/requests/{req}"))
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(r["status"], "awaiting_approval");
    let r = app
        .get(&format!("/v1/runs/{run}"))
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(r["status"], "running");
    let i = app
        .get(&format!("/v1/incidents/{inc}"))
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(i["status"], "triggered");
    assert_eq!(i["timeline"].as_array().map(Vec::len), Some(1), "{i}");
    let tenant = app
        .get(&format!("/v1/tenants/{TENANT_A}"))
        .auth(&app.admin)
        .send()
        .expect(200);
    assert_eq!(tenant["allowlist"], json!([]));
    let events = app.get("/v1/events").auth(&app.operator).send().expect(200);
    assert_eq!(events["items"], json!([]));
    let plugins = app.get("/v1/plugins").auth(&app.admin).send().expect(200);
    assert!(!plugins.to_string().contains("\"name\":\"x\""), "{plugins}");
    app.get("/v1/workflows/x")
        .auth(&app.admin)
        .send()
        .problem(404, "not-found");
    app.get("/v1/runs").auth(&app.operator).send().expect(200);

    // Reads that every role serving them answers with 200.
    let readers: Vec<(&Token, Vec<(&'static str, String)>)> = vec![
        (
            &app.client_a,
            vec![
                ("/v1/catalog", "/v1/catalog".into()),
                ("/v1/catalog/{id}", "/v1/catalog/hello".into()),
                ("/v1/requests", "/v1/requests".into()),
                ("/v1/requests/{id}", format!("/v1/requests/{req}")),
                ("/v1/runs", "/v1/runs".into()),
                ("/v1/runs/{id}", format!("/v1/runs/{run}")),
                (
                    "/v1/runs/{id}/steps/{key}",
                    format!("/v1/runs/{run}/steps/gate"),
                ),
                ("/v1/workflows", "/v1/workflows".into()),
                ("/v1/workflows/{name}", "/v1/workflows/hello".into()),
                (
                    "/v1/workflows/{name}/{version}",
                    "/v1/workflows/hello/1".into(),
                ),
                ("/v1/plugins", "/v1/plugins".into()),
                (
                    "/v1/plugins/{name}/{version}",
                    "/v1/plugins/echo/1.0.0".into(),
                ),
                ("/v1/incidents", "/v1/incidents".into()),
                ("/v1/incidents/{id}", format!("/v1/incidents/{inc}")),
                (
                    "/v1/incidents/{id}/timeline",
                    format!("/v1/incidents/{inc}/timeline"),
                ),
            ],
        ),
        (
            &app.operator,
            vec![
                ("/v1/catalog", "/v1/catalog".into()),
                ("/v1/requests", "/v1/requests".into()),
                ("/v1/requests/{id}", format!("/v1/requests/{req}")),
                ("/v1/runs", "/v1/runs".into()),
                ("/v1/runs/{id}", format!("/v1/runs/{run}")),
                ("/v1/events", "/v1/events".into()),
                ("/v1/incidents", "/v1/incidents".into()),
                ("/v1/incidents/{id}", format!("/v1/incidents/{inc}")),
                (
                    "/v1/incidents/{id}/review",
                    format!("/v1/incidents/{inc}/review"),
                ),
                ("/v1/reports/incidents", "/v1/reports/incidents".into()),
                ("/v1/reports/sla", "/v1/reports/sla".into()),
                ("/v1/reports/slo", "/v1/reports/slo".into()),
                ("/v1/alerts", "/v1/alerts".into()),
                ("/v1/rules", "/v1/rules".into()),
                ("/v1/silences", "/v1/silences".into()),
                ("/v1/oncall", "/v1/oncall".into()),
                ("/v1/oncall/files", "/v1/oncall/files".into()),
            ],
        ),
        (
            &app.admin,
            vec![
                ("/v1/catalog", "/v1/catalog".into()),
                ("/v1/requests", "/v1/requests".into()),
                ("/v1/runs/{id}", format!("/v1/runs/{run}")),
                ("/v1/events", "/v1/events".into()),
                ("/v1/incidents", "/v1/incidents".into()),
                ("/v1/tokens", "/v1/tokens".into()),
                ("/v1/tenants", "/v1/tenants".into()),
                ("/v1/tenants/{id}", format!("/v1/tenants/{TENANT_A}")),
                ("/v1/audit", "/v1/audit".into()),
                ("/v1/grants", "/v1/grants".into()),
                ("/v1/secrets", "/v1/secrets".into()),
                ("/v1/cluster", "/v1/cluster".into()),
            ],
        ),
    ];
    for (token, calls) in &readers {
        for (route, path) in calls {
            app.get(path).auth(token).send().expect(200);
            covered.insert(format!("GET {route}"));
        }
    }
    // The event stream opens for clients of the run's tenant and for operators.
    for token in [&app.client_a, &app.operator] {
        let mut stream = app
            .get(&format!("/v1/runs/{run}/events"))
            .auth(token)
            .stream();
        let (name, snapshot) = stream.next_event().expect("a snapshot");
        assert_eq!(name, "snapshot");
        assert_eq!(snapshot["id"], run.as_str());
    }

    // The state-changing routes are served (with the right role) by the functional tests of
    // their modules; here, one allowed call each, in an order that leaves the ids valid.
    let decided = app
        .post(&format!("/v1/requests/{req}/approval"))
        .auth(&app.operator)
        .json(&json!({ "approved": false }))
        .send()
        .expect(200);
    assert_eq!(decided["status"], "rejected");
    // The signal goes first: a signal step takes a signal that arrived before it waited
    // (one that arrives while it waits is `runs::signals_reach_a_waiting_step`).
    app.post(&format!("/v1/runs/{run}/signals/go"))
        .auth(&app.operator)
        .send()
        .expect(202);
    app.post(&format!("/v1/runs/{run}/approvals/gate"))
        .auth(&app.operator)
        .json(&json!({ "approved": true }))
        .send()
        .expect(200);
    app.wait_run(&app.operator, &run, "succeeded");
    app.post(&format!("/v1/incidents/{inc}/notes"))
        .auth(&app.operator)
        .json(&json!({ "note": "looking" }))
        .send()
        .expect(200);
    app.post(&format!("/v1/incidents/{inc}/acknowledge"))
        .auth(&app.operator)
        .send()
        .expect(200);
    app.post(&format!("/v1/incidents/{inc}/resolve"))
        .auth(&app.operator)
        .send()
        .expect(200);
    let sleeper = app.order(
        &app.operator,
        &json!({ "catalog_id": "sleeper", "tenant": TENANT_B }),
    );
    app.post(&format!("/v1/runs/{}/cancel", s(&sleeper, "run_id")))
        .auth(&app.operator)
        .send()
        .expect(202);
    app.post("/v1/events/grafana")
        .auth(&app.integration)
        .json(&alert)
        .send()
        .expect(202);
    app.put("/v1/workflows/tiny")
        .auth(&app.operator)
        .body(
            "application/yaml",
            "name: tiny\nversion: 1\nsteps:\n  - id: a\n    wait: 1s\n",
        )
        .send()
        .expect(201);
    let hostile = std::fs::read(format!("{}/hostile.wasm", env!("CSMP_PLUGIN_WASM_DIR")))
        .expect("the hostile test plugin is built");
    app.put("/v1/plugins/hostile/0.1.0")
        .auth(&app.admin)
        .body("application/wasm", hostile)
        .send()
        .expect(201);
    let made = app
        .post("/v1/tokens")
        .auth(&app.admin)
        .json(&json!({ "role": "integration" }))
        .send()
        .expect(201);
    app.put("/v1/tenants/tenant-c")
        .auth(&app.admin)
        .json(&json!({ "allowlist": [] }))
        .send()
        .expect(200);
    let revoked = app
        .delete(&format!("/v1/tokens/{}", s(&made, "id")))
        .auth(&app.admin)
        .send();
    assert_eq!(revoked.status, 204, "{}", revoked.text());

    // Every documented operation was called with a role it refuses or one it serves.
    let doc = app.get("/openapi.json").send().expect(200);
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !path.starts_with("/v1/") {
            continue;
        }
        for method in item.as_object().expect("a path item").keys() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    for route in [
        "POST /v1/requests",
        "POST /v1/requests/{id}/approval",
        "POST /v1/runs/{id}/cancel",
        // Served to operators in api::catalog.
        "PUT /v1/catalog/{id}",
        "DELETE /v1/catalog/{id}",
        // Served to operators in api::workflows.
        "DELETE /v1/workflows/{name}",
        // Served to operators and admins in api::start.
        "POST /v1/runs",
        // Served to operators in api::control and api::retry.
        "POST /v1/runs/{id}/retry",
        "POST /v1/runs/{id}/rerun",
        "POST /v1/runs/{id}/pause",
        "POST /v1/runs/{id}/resume",
        // Served to clients, operators and admins in api::approvals.
        "GET /v1/approvals",
        "POST /v1/runs/{id}/approvals/{step}",
        "POST /v1/runs/{id}/signals/{name}",
        "PUT /v1/workflows/{name}",
        "PUT /v1/plugins/{name}/{version}",
        "POST /v1/events/{source}",
        "POST /v1/incidents/{id}/acknowledge",
        "POST /v1/incidents/{id}/resolve",
        "POST /v1/incidents/{id}/notes",
        "PATCH /v1/incidents/{id}",
        // Served to operators in api::oncall.
        "PUT /v1/oncall/files/{name}",
        "DELETE /v1/oncall/files/{name}",
        "POST /v1/incidents/{id}/reopen",
        "POST /v1/tokens",
        "DELETE /v1/tokens/{id}",
        "PUT /v1/tenants/{id}",
        "GET /v1/runs/{id}/events",
        // Served to admins in api::plugin_loop (it needs a grants file).
        "POST /v1/grants/reload",
        // Served to admins in api::secrets (it needs a master key).
        "PUT /v1/secrets/{name}",
    ] {
        covered.insert(route.to_string());
    }
    assert_eq!(
        documented, covered,
        "the role matrix covers exactly the documented /v1 operations"
    );
}

/// Integration tokens send alerts and nothing else (`Role::Integration`, ARCHITECTURE.md:
/// "alerts in only"): the catalog, workflows and plugins are not theirs to read.
#[test]
fn integration_tokens_only_send_alerts() {
    let app = App::start();
    let real = s(
        &app.order(&app.client_a, &json!({ "catalog_id": "hello" })),
        "id",
    );
    let mut answered = Vec::new();
    for path in [
        "/v1/catalog",
        "/v1/catalog/hello",
        "/v1/workflows",
        "/v1/workflows/hello",
        "/v1/workflows/hello/1",
        "/v1/plugins",
        "/v1/plugins/echo/1.0.0",
    ] {
        answered.push(app.get(path).auth(&app.integration).send());
    }
    // Deciding a request is not theirs either, whether the id exists or not: the answer must
    // not tell an integration token which request ids exist.
    for id in [real.as_str(), "req-00000000deadbeef"] {
        answered.push(
            app.post(&format!("/v1/requests/{id}/approval"))
                .auth(&app.integration)
                .json(&json!({ "approved": true }))
                .send(),
        );
    }
    let wrong: Vec<String> = answered
        .iter()
        .filter(|r| r.status != 403)
        .map(|r| format!("{} answered {}", r.call, r.status))
        .collect();
    assert!(
        wrong.is_empty(),
        "an integration token got past: {wrong:#?}"
    );
    for reply in &answered {
        reply.problem(403, "forbidden");
    }
}

/// A client reads only the definitions its tenant's catalog entries reach: their workflows
/// (and child workflows) and the plugins those use; the rest answers 404, as for what does not
/// exist. Operators read everything.
#[test]
fn clients_read_only_the_definitions_their_catalog_reaches() {
    let app = App::start();
    let listed = app
        .get("/v1/workflows")
        .auth(&app.client_a)
        .send()
        .expect(200);
    let names: Vec<String> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|w| s(w, "name"))
        .collect();
    for reachable in ["hello", "provision-vms", "escalate-incident", "steer"] {
        assert!(
            names.contains(&reachable.to_string()),
            "{reachable}: {names:?}"
        );
    }
    for hidden in ["remediate-high-cpu", "predictive-scale"] {
        assert!(!names.contains(&hidden.to_string()), "{hidden}: {names:?}");
        app.get(&format!("/v1/workflows/{hidden}"))
            .auth(&app.client_a)
            .send()
            .problem(404, "not-found");
        app.get(&format!("/v1/workflows/{hidden}/1"))
            .auth(&app.client_a)
            .send()
            .problem(404, "not-found");
        app.get(&format!("/v1/workflows/{hidden}"))
            .auth(&app.operator)
            .send()
            .expect(200);
    }
    // `forecast` is used only by predictive-scale, which no catalog entry starts.
    let plugins = app
        .get("/v1/plugins")
        .auth(&app.client_a)
        .send()
        .expect(200);
    let plugin_names: Vec<String> = plugins["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| s(p, "name"))
        .collect();
    assert!(
        plugin_names.contains(&"echo".to_string()),
        "{plugin_names:?}"
    );
    assert!(
        !plugin_names.contains(&"forecast".to_string()),
        "{plugin_names:?}"
    );
    app.get("/v1/plugins/forecast/1.0.0")
        .auth(&app.client_a)
        .send()
        .problem(404, "not-found");
    app.get("/v1/plugins/forecast/1.0.0")
        .auth(&app.operator)
        .send()
        .expect(200);
}

/// The body of a 404, with the id it names replaced, so two of them can be compared.
/// A 404 with the id asked for, and the call's own request id, taken out.
fn not_found_shape(reply: &super::harness::Reply, id: &str) -> Value {
    let mut body = reply.problem(404, "not-found");
    let call = body
        .as_object_mut()
        .and_then(|o| o.remove("request_id"))
        .expect("every problem names its call");
    assert_eq!(
        reply.header("x-request-id"),
        call.as_str().map(String::from)
    );
    let text = body.to_string().replace(id, "<id>");
    serde_json::from_str(&text).expect("still JSON")
}

#[test]
fn another_tenants_ids_answer_like_ids_that_do_not_exist() {
    let app = App::start();
    let (a, b) = (&app.client_a, &app.client_b);

    let gated = app.order(a, &json!({ "catalog_id": "hello" }));
    let req = s(&gated, "id");
    let steer = app.order(a, &json!({ "catalog_id": "steer" }));
    let run = s(&steer, "run_id");
    let paged = app.order(
        a,
        &json!({ "catalog_id": "pager", "inputs": { "title": "disk" } }),
    );
    let incidents = app.wait_for(a, "/v1/incidents", "tenant A's incident", |l| {
        !ids(l).is_empty()
    });
    let inc = ids(&incidents)[0].clone();
    let own_b = app.order(b, &json!({ "catalog_id": "steer" }));

    // Each of A's ids, asked by B, answers exactly as a never-existing id does.
    let cases: Vec<(Method, String, Option<Value>, &str)> = vec![
        (Method::GET, "/v1/requests/{}".into(), None, "req"),
        (
            Method::POST,
            "/v1/requests/{}/approval".into(),
            Some(json!({ "approved": true })),
            "req",
        ),
        (Method::GET, "/v1/runs/{}".into(), None, "run"),
        (Method::GET, "/v1/runs/{}/events".into(), None, "run"),
        (
            Method::POST,
            "/v1/runs/{}/approvals/gate".into(),
            Some(json!({ "approved": true })),
            "run",
        ),
        (Method::GET, "/v1/incidents/{}".into(), None, "inc"),
        (Method::GET, "/v1/incidents/{}/timeline".into(), None, "inc"),
    ];
    for (method, template, body, kind) in &cases {
        let real = match *kind {
            "req" => &req,
            "run" => &run,
            _ => &inc,
        };
        let fake = format!("{kind}-00000000deadbeef");
        let call = |id: &str| {
            let mut c = app
                .call(method.clone(), &template.replace("{}", id))
                .auth(b);
            if let Some(v) = body {
                c = c.json(v);
            }
            c.send()
        };
        let theirs = call(real);
        let missing = call(&fake);
        assert_eq!(
            not_found_shape(&theirs, real),
            not_found_shape(&missing, &fake),
            "{}: another tenant's id must look like no id at all",
            theirs.call
        );
    }

    // Nothing B tried changed A's things.
    let r = app
        .get(&format!("/v1/requests/{req}"))
        .auth(a)
        .send()
        .expect(200);
    assert_eq!(r["status"], "awaiting_approval");
    let r = app
        .get(&format!("/v1/runs/{run}"))
        .auth(a)
        .send()
        .expect(200);
    assert_eq!(
        super::harness::step(&r, "gate").map(|g| g["status"].clone()),
        Some(json!("waiting"))
    );

    // Lists show one's own tenant only; operators see both.
    let mine = |t: &Token, path: &str| ids(&app.get(path).auth(t).send().expect(200));
    let a_requests = mine(a, "/v1/requests");
    assert_eq!(a_requests.len(), 3, "{a_requests:?}");
    assert!(a_requests.contains(&req) && a_requests.contains(&s(&paged, "id")));
    assert_eq!(mine(b, "/v1/requests"), vec![s(&own_b, "id")]);
    let b_runs = mine(b, "/v1/runs");
    assert_eq!(b_runs, vec![s(&own_b, "run_id")]);
    assert!(mine(a, "/v1/runs").contains(&run));
    assert!(!mine(a, "/v1/runs").contains(&s(&own_b, "run_id")));
    assert_eq!(mine(b, "/v1/incidents"), Vec::<String>::new());
    assert_eq!(mine(a, "/v1/incidents"), vec![inc.clone()]);
    assert_eq!(mine(&app.operator, "/v1/requests").len(), 4);
    for item in app.get("/v1/runs").auth(b).send().expect(200)["items"]
        .as_array()
        .expect("items")
    {
        assert_eq!(item["tenant"], TENANT_B);
    }

    // A catalog entry for tenant A only: B neither sees it nor can order it, and the answers
    // are those for an entry that does not exist.
    let listed = |t: &Token| ids(&app.get("/v1/catalog").auth(t).send().expect(200));
    assert!(listed(a).contains(&"tenant-a-only".to_string()));
    assert!(!listed(b).contains(&"tenant-a-only".to_string()));
    assert!(listed(b).contains(&"hello".to_string()));
    app.get("/v1/catalog/tenant-a-only")
        .auth(a)
        .send()
        .expect(200);
    assert_eq!(
        not_found_shape(
            &app.get("/v1/catalog/tenant-a-only").auth(b).send(),
            "tenant-a-only"
        ),
        not_found_shape(
            &app.get("/v1/catalog/no-such-entry").auth(b).send(),
            "no-such-entry"
        ),
    );
    let order_as_b = |id: &str| {
        let reply = app
            .post("/v1/requests")
            .auth(b)
            .json(&json!({ "catalog_id": id }))
            .send();
        assert_eq!(reply.invalid(), vec!["/catalog_id"]);
        let mut body = reply.json();
        body.as_object_mut().and_then(|o| o.remove("request_id"));
        let body = body.to_string().replace(id, "<id>");
        serde_json::from_str::<Value>(&body).expect("JSON")
    };
    assert_eq!(order_as_b("tenant-a-only"), order_as_b("no-such-entry"));

    // A client orders for its own tenant only.
    let reply = app
        .post("/v1/requests")
        .auth(a)
        .json(&json!({ "catalog_id": "steer", "tenant": TENANT_B }))
        .send();
    assert_eq!(reply.invalid(), vec!["/tenant"]);
    assert_eq!(mine(b, "/v1/requests").len(), 1);
}
