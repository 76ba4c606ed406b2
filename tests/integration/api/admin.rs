//! Admin: tokens, tenants with IP allowlists, the audit log.

use serde_json::{Value, json};

use super::harness::{App, TENANT_A, TENANT_B, Token, s};

#[test]
fn admins_create_list_and_revoke_tokens() {
    let app = App::start();
    let created = app
        .post("/v1/tokens")
        .auth(&app.admin)
        .json(&json!({ "role": "client", "tenant": "tenant-c", "name": "portal" }))
        .send()
        .expect(201);
    let token = Token {
        secret: s(&created, "token"),
        id: s(&created, "id"),
    };
    assert!(
        token.secret.starts_with(&format!("csmp_{}_", token.id)),
        "{created}"
    );
    assert_eq!(created["role"], "client");
    assert_eq!(created["tenant"], "tenant-c");
    assert_eq!(created["name"], "portal");
    assert_eq!(created["revoked_at"], Value::Null);

    // It works at once, for its own tenant (created with it).
    let catalog = app.get("/v1/catalog").auth(&token).send().expect(200);
    assert!(!catalog["items"].as_array().expect("items").is_empty());
    let ordered = app.order(&token, &json!({ "catalog_id": "hello" }));
    assert_eq!(ordered["tenant"], "tenant-c");
    let tenant = app
        .get("/v1/tenants/tenant-c")
        .auth(&app.admin)
        .send()
        .expect(200);
    assert_eq!(tenant["allowlist"], json!([]));

    // Listed without secrets or hashes.
    let list = app.get("/v1/tokens").auth(&app.admin).send();
    let listed = list.expect(200);
    assert!(
        !list.text().contains(&token.secret),
        "no secret in {listed}"
    );
    let entry = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|t| t["id"] == token.id.as_str())
        .unwrap_or_else(|| panic!("the new token is listed: {listed}"))
        .clone();
    assert_eq!(entry["role"], "client");
    assert!(
        entry.get("token").is_none() && entry.get("hash").is_none(),
        "{entry}"
    );
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(6));

    // In use (and so remembered by the service) before it is revoked.
    app.get("/v1/catalog").auth(&token).send().expect(200);
    let revoked = app
        .delete(&format!("/v1/tokens/{}", token.id))
        .auth(&app.admin)
        .send();
    assert_eq!(revoked.status, 204, "{}", revoked.text());
    assert!(revoked.body.is_empty());
    app.get("/v1/catalog")
        .auth(&token)
        .send()
        .problem(401, "unauthorized");
    app.delete(&format!("/v1/tokens/{}", token.id))
        .auth(&app.admin)
        .send()
        .problem(404, "not-found");
    app.delete("/v1/tokens/000000000000")
        .auth(&app.admin)
        .send()
        .problem(404, "not-found");
    let listed = app.get("/v1/tokens").auth(&app.admin).send().expect(200);
    let entry = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|t| t["id"] == token.id.as_str())
        .expect("a revoked token stays listed")
        .clone();
    assert!(entry["revoked_at"].is_string(), "{entry}");

    // Role and tenant must fit together.
    for (body, pointer) in [
        (json!({ "role": "client" }), "/tenant"),
        (json!({ "role": "operator", "tenant": TENANT_A }), "/tenant"),
        (
            json!({ "role": "client", "tenant": "Not A Tenant" }),
            "/tenant",
        ),
        (json!({ "role": "root" }), "/role"),
        (json!({ "role": "admin", "expires": "never" }), "/expires"),
    ] {
        let reply = app.post("/v1/tokens").auth(&app.admin).json(&body).send();
        assert_eq!(reply.invalid(), vec![pointer.to_string()], "{body}");
    }
    let listed = app.get("/v1/tokens").auth(&app.admin).send().expect(200);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(6));
}

#[test]
fn a_tenants_allowlist_decides_where_its_clients_may_call_from() {
    let app = App::start();
    let put = |tenant: &str, body: Value| {
        app.put(&format!("/v1/tenants/{tenant}"))
            .auth(&app.admin)
            .json(&body)
            .send()
    };
    let reply = put(
        TENANT_A,
        json!({ "allowlist": ["not-a-cidr", "10.0.0.0/8", "300.1.1.1/8", "::1", "127.0.0.1"] }),
    );
    assert_eq!(reply.invalid(), vec!["/allowlist/0", "/allowlist/2"]);
    assert_eq!(
        put("Bad_Id", json!({ "allowlist": [] })).invalid(),
        vec!["/id"]
    );
    let tenant = app
        .get(&format!("/v1/tenants/{TENANT_A}"))
        .auth(&app.admin)
        .send()
        .expect(200);
    assert_eq!(
        tenant["allowlist"],
        json!([]),
        "a refused allowlist changes nothing"
    );

    let stored = put(
        TENANT_A,
        json!({ "allowlist": ["10.0.0.0/8", "192.168.1.7"] }),
    )
    .expect(200);
    assert_eq!(stored["id"], TENANT_A);
    assert_eq!(stored["allowlist"], json!(["10.0.0.0/8", "192.168.1.7"]));
    let refused = app.get("/v1/catalog").auth(&app.client_a).send();
    let body = refused.problem(403, "forbidden");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("127.0.0.1")),
        "says which address was refused: {body}"
    );
    app.post("/v1/requests")
        .auth(&app.client_a)
        .json(&json!({ "catalog_id": "hello" }))
        .send()
        .problem(403, "forbidden");
    // Other tenants and other roles are not affected.
    app.get("/v1/catalog")
        .auth(&app.client_b)
        .send()
        .expect(200);
    app.get("/v1/catalog")
        .auth(&app.operator)
        .send()
        .expect(200);

    put(TENANT_A, json!({ "allowlist": ["127.0.0.0/8"] })).expect(200);
    app.get("/v1/catalog")
        .auth(&app.client_a)
        .send()
        .expect(200);
    put(TENANT_A, json!({ "allowlist": ["127.0.0.1"] })).expect(200);
    app.get("/v1/catalog")
        .auth(&app.client_a)
        .send()
        .expect(200);
    put(TENANT_A, json!({ "allowlist": [] })).expect(200);
    app.get("/v1/catalog")
        .auth(&app.client_a)
        .send()
        .expect(200);

    // A new tenant, then the list.
    let new = put("tenant-d", json!({ "allowlist": ["2001:db8::/32"] })).expect(200);
    assert_eq!(new["id"], "tenant-d");
    let list = app.get("/v1/tenants").auth(&app.admin).send().expect(200);
    let listed = super::harness::ids(&list);
    for t in [TENANT_A, TENANT_B, "tenant-d"] {
        assert!(listed.contains(&t.to_string()), "{t} in {listed:?}");
    }
    app.get("/v1/tenants/no-such-tenant")
        .auth(&app.admin)
        .send()
        .problem(404, "not-found");
}

#[test]
fn the_audit_log_records_every_state_changing_call_and_no_read() {
    let app = App::start();
    // Reads first: none of them may be recorded.
    app.get("/v1/catalog")
        .auth(&app.client_a)
        .send()
        .expect(200);
    app.get("/v1/runs").auth(&app.operator).send().expect(200);
    app.get("/v1/tokens").auth(&app.admin).send().expect(200);
    // State-changing calls, accepted and refused.
    let ordered = app.order(&app.client_a, &json!({ "catalog_id": "hello" }));
    let id = s(&ordered, "id");
    app.post("/v1/requests")
        .header("authorization", "Bearer csmp_000000000000_forged")
        .json(&json!({ "catalog_id": "hello" }))
        .send()
        .problem(401, "unauthorized");
    app.post(&format!("/v1/requests/{id}/approval"))
        .auth(&app.client_a)
        .json(&json!({ "approved": true }))
        .send()
        .problem(403, "forbidden");
    app.put(&format!("/v1/tenants/{TENANT_B}"))
        .auth(&app.admin)
        .json(&json!({ "allowlist": ["nope"] }))
        .send()
        .problem(422, "invalid-input");
    app.post(&format!("/v1/requests/{id}/approval"))
        .auth(&app.operator)
        .json(&json!({ "approved": false }))
        .send()
        .expect(200);
    app.get(&format!("/v1/requests/{id}"))
        .auth(&app.client_a)
        .send()
        .expect(200);

    let log = app.get("/v1/audit").auth(&app.admin).send().expect(200);
    let items = log["items"].as_array().expect("items");
    let seen: Vec<(String, String, u64)> = items
        .iter()
        .map(|e| {
            (
                s(e, "method"),
                s(e, "path"),
                e["status"].as_u64().expect("a status"),
            )
        })
        .collect();
    let approval = format!("/v1/requests/{id}/approval");
    assert_eq!(
        seen,
        vec![
            ("POST".to_string(), approval.clone(), 200),
            ("PUT".to_string(), format!("/v1/tenants/{TENANT_B}"), 422),
            ("POST".to_string(), approval, 403),
            ("POST".to_string(), "/v1/requests".to_string(), 401),
            ("POST".to_string(), "/v1/requests".to_string(), 202),
        ],
        "newest first, every state-changing call and no read: {log}"
    );
    let who = |i: usize| {
        (
            items[i]["actor"].clone(),
            items[i]["role"].clone(),
            items[i]["tenant"].clone(),
        )
    };
    assert_eq!(
        who(0),
        (json!(app.operator.id), json!("operator"), Value::Null)
    );
    assert_eq!(who(1), (json!(app.admin.id), json!("admin"), Value::Null));
    assert_eq!(
        who(2),
        (json!(app.client_a.id), json!("client"), json!(TENANT_A))
    );
    assert_eq!(
        who(3),
        (Value::Null, Value::Null, Value::Null),
        "the forged call"
    );
    assert_eq!(
        who(4),
        (json!(app.client_a.id), json!("client"), json!(TENANT_A))
    );
    for e in items {
        let remote = s(e, "remote");
        assert!(remote.starts_with("127.0.0.1:"), "from where: {e}");
        assert!(
            chrono::DateTime::parse_from_rfc3339(&s(e, "at")).is_ok(),
            "when: {e}"
        );
    }

    // Pages by `before`.
    let page = app
        .get("/v1/audit?limit=2")
        .auth(&app.admin)
        .send()
        .expect(200);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    let before = s(&page, "next_cursor");
    let rest = app
        .get(&format!("/v1/audit?limit=200&before={before}"))
        .auth(&app.admin)
        .send()
        .expect(200);
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(3));
    assert_eq!(rest["items"][0]["status"], 403);
    assert_eq!(
        app.get("/v1/audit?limit=0")
            .auth(&app.admin)
            .send()
            .invalid(),
        vec!["/limit"]
    );
}

/// A call refused by the tenant's allowlist came with a valid token: the audit log names it
/// (`AuditView::actor` is "absent when it presented no valid token").
#[test]
fn a_call_refused_by_the_allowlist_is_audited_with_its_caller() {
    let app = App::start();
    app.put(&format!("/v1/tenants/{TENANT_A}"))
        .auth(&app.admin)
        .json(&json!({ "allowlist": ["10.0.0.0/8"] }))
        .send()
        .expect(200);
    app.post("/v1/requests")
        .auth(&app.client_a)
        .json(&json!({ "catalog_id": "hello" }))
        .send()
        .problem(403, "forbidden");
    let log = app.get("/v1/audit").auth(&app.admin).send().expect(200);
    let entry = &log["items"][0];
    assert_eq!(entry["path"], "/v1/requests", "{log}");
    assert_eq!(entry["status"], 403);
    assert!(s(entry, "remote").starts_with("127.0.0.1:"));
    assert_eq!(entry["actor"], app.client_a.id.as_str(), "{entry}");
    assert_eq!(entry["role"], "client", "{entry}");
    assert_eq!(entry["tenant"], TENANT_A, "{entry}");
}
