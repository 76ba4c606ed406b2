//! Synthetic checks against a real local server: a check that fails three probes in a row goes
//! down and, with no rule taking its alert, opens an incident on its service; once the server
//! answers again the check comes up and resolves it. The status page (HTML and JSON) shows the
//! check down with its incident, then up.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::Value;

use super::harness::{App, s};

/// A health endpoint: `503` while `failing`, else `200 {"status":"UP"}`; counts its hits.
fn health_server(failing: Arc<AtomicBool>, hits: Arc<AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let url = format!(
        "http://{}/health",
        listener.local_addr().expect("an address")
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            hits.fetch_add(1, Ordering::SeqCst);
            let (status, body) = if failing.load(Ordering::SeqCst) {
                ("503 Service Unavailable", r#"{"status":"DOWN"}"#)
            } else {
                ("200 OK", r#"{"status":"UP"}"#)
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn status(app: &App) -> Value {
    app.get("/status.json").send().expect(200)
}

fn shop(page: &Value) -> Value {
    page["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["service"] == "shop")
        .cloned()
        .unwrap_or(Value::Null)
}

fn wait(app: &App, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = std::time::Instant::now();
    loop {
        let page = status(app);
        if done(&page) {
            return page;
        }
        assert!(
            started.elapsed() < super::harness::GUARD,
            "gave up waiting for {what}: {page}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_check_failing_three_times_opens_an_incident_recovery_resolves_it_and_the_status_page_shows_both()
 {
    let app = App::start();
    let failing = Arc::new(AtomicBool::new(true));
    let hits = Arc::new(AtomicUsize::new(0));
    let url = health_server(Arc::clone(&failing), Arc::clone(&hits));
    let yaml = format!(
        "name: shop-home\nservice: shop\nurl: {url}\ninterval: 1s\ntimeout: 1s\nconditions:\n  - \"[STATUS] == 200\"\n  - \"[BODY].status == UP\"\nfailure_threshold: 3\nsuccess_threshold: 1\nseverity: sev2\nslo: {{ objective: 99 }}\n"
    );
    let check = csmp::checks::validate_check(yaml.as_bytes()).expect("a valid check");
    app.state.set_checks(vec![check]);

    // Down first, then (in the same pass) its incident opened.
    let down = wait(&app, "the check to go down and open its incident", |p| {
        shop(p)["state"] == "down"
            && shop(p)["incidents"]
                .as_array()
                .is_some_and(|i| !i.is_empty())
    });
    assert!(
        hits.load(Ordering::SeqCst) >= 3,
        "three probes failed first"
    );
    let incidents = shop(&down)["incidents"].clone();
    assert_eq!(incidents.as_array().map(Vec::len), Some(1), "{down}");
    assert_eq!(incidents[0]["title"], "shop is failing its check shop-home");
    assert_eq!(incidents[0]["severity"], "sev2");
    let id = s(&incidents[0], "id");
    let html = app.get("/status").send();
    assert_eq!(html.status, 200);
    let text = html.text();
    assert!(
        text.contains("<h2 id=\"svc-shop\">shop: <strong>down</strong></h2>"),
        "{text}"
    );
    assert!(
        text.contains("shop is failing its check shop-home"),
        "{text}"
    );
    let alert = app
        .get("/v1/alerts?source=check")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(alert["items"][0]["status"], "firing", "{alert}");
    assert_eq!(alert["items"][0]["labels"]["check"], "shop-home");

    // Its objective: three failed probes of a few burn a 1 % budget on every rule.
    let started = std::time::Instant::now();
    loop {
        let burn = app
            .get("/v1/alerts?source=slo")
            .auth(&app.operator)
            .send()
            .expect(200);
        let firing = burn["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["labels"]["check"] == "shop-home" && a["status"] == "firing")
            .count();
        if firing == 3 {
            assert_eq!(burn["items"][0]["labels"]["service"], "shop", "{burn}");
            break;
        }
        assert!(
            started.elapsed() < super::harness::GUARD,
            "no burn-rate alerts of the check: {burn}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    failing.store(false, Ordering::SeqCst);
    // Up first, then (in the same pass) its incident resolved.
    let up = wait(
        &app,
        "the check to come up and its incident to resolve",
        |p| shop(p)["state"] == "up" && shop(p)["incidents"] == serde_json::json!([]),
    );
    assert_eq!(shop(&up)["incidents"], serde_json::json!([]), "{up}");
    let resolved = app
        .get(&format!("/v1/incidents/{id}"))
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(resolved["status"], "resolved", "{resolved}");
    let uptime = shop(&up)["checks"][0]["uptime"]["24h"]
        .as_f64()
        .unwrap_or(100.0);
    assert!(
        uptime > 0.0 && uptime < 100.0,
        "some probes failed, some passed: {up}"
    );
    let text = app.get("/status").send().text();
    assert!(text.contains("shop: <strong>up</strong>"), "{text}");
    let alerts = app
        .get("/v1/alerts?source=check")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(
        alerts["items"][0]["status"], "resolved",
        "newest first: {alerts}"
    );
    // A client's page: the provider's checks, and its own incidents only (none here).
    let theirs = app
        .get("/status.json")
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(theirs["tenant"], super::harness::TENANT_A);
    assert_eq!(shop(&theirs)["state"], "up");
    app.get("/status.json")
        .header("Authorization", "Bearer csmp_nope_nope")
        .send()
        .problem(401, "unauthorized");
}
