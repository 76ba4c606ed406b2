//! `GET /v1/approvals`: approval steps and request gates waiting on the caller's role.

use serde_json::{Value, json};

use super::harness::{App, TENANT_B, s};

fn waiting(app: &App, token: &super::harness::Token) -> Vec<Value> {
    app.get("/v1/approvals").auth(token).send().expect(200)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn what_waits_on_a_role_is_listed_with_how_to_decide_it() {
    let app = App::start();
    // A request at its gate (operators decide it) and a run whose step waits for an operator.
    let request = app.order(
        &app.client_a,
        &json!({ "catalog_id": "hello", "inputs": { "who": "ann" } }),
    );
    let request = s(&request, "id");
    let steered = app.order(&app.client_a, &json!({ "catalog_id": "steer" }));
    let run = s(&steered, "run_id");
    app.wait_step(&app.client_a, &run, "gate", "waiting");
    // Another tenant's order.
    let other = app.order(&app.client_b, &json!({ "catalog_id": "hello" }));
    let other = s(&other, "id");

    let items = waiting(&app, &app.operator);
    let step = items
        .iter()
        .find(|w| w["kind"] == "step" && w["run_id"] == run.as_str())
        .unwrap_or_else(|| panic!("the waiting step: {items:?}"));
    assert_eq!(step["step"], "gate");
    assert_eq!(step["workflow"], "steer");
    assert_eq!(step["roles"], json!(["operator"]));
    assert_eq!(
        step["decide"],
        format!("POST /v1/runs/{run}/approvals/gate").as_str()
    );
    assert!(step["waiting_since"].is_string(), "{step}");
    let gate = items
        .iter()
        .find(|w| w["kind"] == "request" && w["request_id"] == request.as_str())
        .unwrap_or_else(|| panic!("the request at its gate: {items:?}"));
    assert_eq!(gate["catalog_id"], "hello");
    assert_eq!(gate["inputs"]["who"], "ann");
    assert_eq!(
        gate["decide"],
        format!("POST /v1/requests/{request}/approval").as_str()
    );
    assert!(
        items
            .iter()
            .any(|w| w["request_id"] == other.as_str() && w["tenant"] == TENANT_B),
        "operators see every tenant's: {items:?}"
    );

    // A client decides neither (the roles are operator's), and sees nothing of another tenant.
    assert!(waiting(&app, &app.client_a).is_empty());
    app.get("/v1/approvals")
        .auth(&app.integration)
        .send()
        .problem(403, "forbidden");
    app.get("/v1/approvals?all=1")
        .auth(&app.operator)
        .send()
        .problem(400, "unknown-parameter");

    // Decided, it is no longer listed.
    app.post(&format!("/v1/runs/{run}/approvals/gate"))
        .auth(&app.operator)
        .json(&json!({ "approved": true }))
        .send()
        .expect(200);
    app.post(&format!("/v1/requests/{request}/approval"))
        .auth(&app.operator)
        .json(&json!({ "approved": false, "comment": "no" }))
        .send()
        .expect(200);
    let left = waiting(&app, &app.admin);
    assert!(
        !left
            .iter()
            .any(|w| w["run_id"] == run.as_str() || w["request_id"] == request.as_str()),
        "{left:?}"
    );
    assert!(
        left.iter().any(|w| w["request_id"] == other.as_str()),
        "{left:?}"
    );
}
