//! Service levels from request outcomes: the SLA report per tenant and catalog entry (JSON and
//! CSV), and burn-rate alerts the watcher raises into the alert pipeline when an entry's
//! requests fail faster than its objective allows, resolved when they no longer do.

use serde_json::{Value, json};

use super::harness::{App, TENANT_A, TENANT_B, s};

fn order(app: &App, fail: bool) -> String {
    let token = if fail { &app.client_b } else { &app.client_a };
    let created = app.order(
        token,
        &json!({ "catalog_id": "coin", "inputs": { "fail": fail } }),
    );
    s(&created, "run_id")
}

/// The burn-rate alerts of `coin` by window, as `GET /v1/alerts` has them now (newest first).
fn burn_alerts(app: &App) -> Vec<Value> {
    app.get("/v1/alerts?source=slo")
        .auth(&app.operator)
        .send()
        .expect(200)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn status_of(alerts: &[Value], window: &str) -> Option<String> {
    alerts
        .iter()
        .find(|a| a["labels"]["window"] == window)
        .map(|a| s(a, "status"))
}

#[test]
fn failing_requests_burn_the_budget_raise_alerts_and_show_in_the_sla_report() {
    let app = App::start();
    let failed: Vec<String> = (0..3).map(|_| order(&app, true)).collect();
    for run in &failed {
        app.wait_run(&app.operator, run, "failed");
    }
    // Three bad requests of three: every rule burns (100× against a 1 % budget).
    let started = std::time::Instant::now();
    let alerts = loop {
        let a = burn_alerts(&app);
        if a.len() == 3 {
            break a;
        }
        assert!(
            started.elapsed() < super::harness::GUARD,
            "no burn-rate alerts: {a:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    for window in ["1h", "6h", "3d"] {
        assert_eq!(
            status_of(&alerts, window).as_deref(),
            Some("firing"),
            "{window}: {alerts:?}"
        );
    }
    let one = alerts
        .iter()
        .find(|a| a["labels"]["window"] == "1h")
        .cloned()
        .unwrap_or_default();
    assert_eq!(one["labels"]["alertname"], "SLOBurnRate");
    assert_eq!(one["labels"]["slo"], "coin");
    assert_eq!(one["severity"], "critical");

    // Twenty-five good requests: 3 of 28 bad is 10.7 %, a burn of 10.7× — under the 1 h
    // rule's 14.4, over the 6 h rule's 6.
    let good: Vec<String> = (0..25).map(|_| order(&app, false)).collect();
    for run in &good {
        app.wait_run(&app.operator, run, "succeeded");
    }
    let started = std::time::Instant::now();
    loop {
        let a = burn_alerts(&app);
        if status_of(&a, "1h").as_deref() == Some("resolved") {
            assert_eq!(status_of(&a, "6h").as_deref(), Some("firing"), "{a:?}");
            break;
        }
        assert!(
            started.elapsed() < super::harness::GUARD,
            "the 1 h rule never resolved: {a:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // The objective: 3 bad of 28 against a budget of 0.28 is overspent, and the 6 h rule burns.
    let objectives = app
        .get("/v1/reports/slo")
        .auth(&app.operator)
        .send()
        .expect(200);
    let coin = objectives["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["id"] == "slo:coin")
        .cloned()
        .unwrap_or_else(|| panic!("the coin objective: {objectives}"));
    assert_eq!(
        (
            coin["budget"]["decided"].clone(),
            coin["budget"]["bad"].clone()
        ),
        (json!(28), json!(3))
    );
    assert!(
        coin["budget"]["remaining"]
            .as_f64()
            .is_some_and(|r| r < 0.0),
        "{coin}"
    );
    let rules: Vec<&str> = coin["burning"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["rule"]["long"].as_str())
        .collect();
    assert!(rules.contains(&"6h") && !rules.contains(&"1h"), "{coin}");
    app.get("/v1/reports/slo")
        .auth(&app.client_a)
        .send()
        .problem(403, "forbidden");

    // The SLA report: tenant B's three failed, tenant A's 25 fulfilled.
    let report = app
        .get("/v1/reports/sla")
        .auth(&app.operator)
        .send()
        .expect(200);
    let rows = report["items"].as_array().cloned().unwrap_or_default();
    let row = |tenant: &str| {
        rows.iter()
            .find(|r| r["tenant"] == tenant && r["catalog_id"] == "coin")
            .cloned()
            .unwrap_or_else(|| panic!("a row of {tenant}: {report}"))
    };
    let a = row(TENANT_A);
    assert_eq!(
        (
            a["requests"].clone(),
            a["fulfilled"].clone(),
            a["within_sla"].clone()
        ),
        (json!(25), json!(25), json!(25))
    );
    assert_eq!(a["availability"], 100.0);
    assert_eq!(
        (a["objective"].clone(), a["met"].clone()),
        (json!(99.0), json!(true))
    );
    let b = row(TENANT_B);
    assert_eq!(
        (
            b["requests"].clone(),
            b["failed"].clone(),
            b["availability"].clone(),
            b["met"].clone()
        ),
        (json!(3), json!(3), json!(0.0), json!(false))
    );
    // A client sees its own tenant's rows only; CSV on asking.
    let mine = app
        .get("/v1/reports/sla")
        .auth(&app.client_b)
        .send()
        .expect(200);
    let tenants: Vec<String> = mine["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| s(r, "tenant"))
        .collect();
    assert!(tenants.iter().all(|t| t == TENANT_B), "{mine}");
    let csv = app
        .get("/v1/reports/sla")
        .auth(&app.operator)
        .header("Accept", "text/csv")
        .send();
    assert_eq!(csv.status, 200);
    let text = csv.text();
    assert!(text.starts_with("tenant,catalog_id,requests,"), "{text}");
    assert!(
        text.contains(&format!("{TENANT_B},coin,3,0,0,0,0,3,0,,,0,99,false")),
        "{text}"
    );
    app.get("/v1/reports/sla?to=2020-01-01T00:00:00Z&from=2021-01-01T00:00:00Z")
        .auth(&app.operator)
        .send()
        .invalid();
}
