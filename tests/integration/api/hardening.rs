//! Bad calls of every kind get a problem document and change nothing; health, metrics and the
//! OpenAPI document.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::{Value, json};
use ureq::http::Method;

use super::harness::{App, GUARD, Token, s};

/// Sends `method path` with a body of `len` bytes over a raw connection (the server may answer
/// before it has read it all) and returns the status line and the body of the answer.
fn oversized(
    app: &App,
    method: &str,
    path: &str,
    token: &Token,
    content_type: &str,
    len: usize,
) -> (u16, String, Value) {
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).expect("connect");
    stream.set_read_timeout(Some(GUARD)).expect("read timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n\r\n",
        token.secret
    );
    stream.write_all(head.as_bytes()).expect("send the head");
    // Write the body from another thread; the server may stop reading it at any point.
    let mut writer = stream.try_clone().expect("clone the stream");
    let feeder = std::thread::spawn(move || {
        let chunk = vec![b'a'; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            if writer.write_all(&chunk[..n]).is_err() {
                return;
            }
            left -= n;
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let (status, content_type, body) = loop {
        match stream.read(&mut buf) {
            Ok(0) => panic!(
                "{method} {path}: connection closed before a full answer: {}",
                String::from_utf8_lossy(&answer)
            ),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "{method} {path}: reading the answer: {e} (so far: {})",
                String::from_utf8_lossy(&answer)
            ),
        }
        let text = String::from_utf8_lossy(&answer).into_owned();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())
                    .flatten()
            })
            .expect("the answer has a content length");
        if body.len() < length {
            continue;
        }
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .expect("a status line");
        let content_type = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-type")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_default();
        break (status, content_type, body[..length].to_string());
    };
    drop(stream);
    let _ = feeder.join();
    let parsed = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{method} {path}: the 413 body is not JSON ({e}): {body}"));
    (status, content_type, parsed)
}

#[test]
fn bodies_over_the_limit_get_413_problems_and_change_nothing() {
    let app = App::start();
    let ten_mb = 10 * 1024 * 1024;
    let created = app.order(&app.client_a, &json!({ "catalog_id": "steer" }));
    let run = s(&created, "run_id");
    let cases: Vec<(&str, String, &Token, &str)> = vec![
        (
            "POST",
            "/v1/requests".into(),
            &app.client_a,
            "application/json",
        ),
        (
            "PUT",
            "/v1/workflows/huge".into(),
            &app.operator,
            "application/yaml",
        ),
        (
            "POST",
            format!("/v1/runs/{run}/signals/go"),
            &app.operator,
            "application/json",
        ),
        (
            "POST",
            "/v1/events/alertmanager".into(),
            &app.integration,
            "application/json",
        ),
        (
            "PUT",
            "/v1/tenants/tenant-a".into(),
            &app.admin,
            "application/json",
        ),
        (
            "POST",
            "/v1/incidents/inc-00000000deadbeef/acknowledge".into(),
            &app.operator,
            "application/json",
        ),
        (
            "PUT",
            "/v1/plugins/huge/1.0.0".into(),
            &app.admin,
            "application/wasm",
        ),
    ];
    for (method, path, token, ct) in &cases {
        // Plugin binaries may be larger: 64 MiB.
        let len = if path.starts_with("/v1/plugins/") {
            65 * 1024 * 1024
        } else {
            ten_mb
        };
        let (status, content_type, body) = oversized(&app, method, path, token, ct, len);
        assert_eq!(status, 413, "{method} {path}: {body}");
        assert_eq!(content_type, "application/problem+json", "{method} {path}");
        assert_eq!(body["type"], "urn:csmp:problem:payload-too-large", "{body}");
        assert_eq!(body["status"], 413);
    }
    let requests = app
        .get("/v1/requests")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(requests["items"].as_array().map(Vec::len), Some(1));
    app.get("/v1/workflows/huge")
        .auth(&app.operator)
        .send()
        .problem(404, "not-found");
    let events = app.get("/v1/events").auth(&app.operator).send().expect(200);
    assert_eq!(events["items"], json!([]));
}

#[test]
fn malformed_and_mistyped_bodies_get_problems() {
    let app = App::start();
    let post = || app.post("/v1/requests").auth(&app.client_a);
    for bad in [
        "{\"catalog_id\": ",
        "not json",
        "{\"catalog_id\": \"hello\",}",
        "",
    ] {
        let body = post()
            .body("application/json", bad)
            .send()
            .problem(400, "malformed-json");
        assert!(
            body["detail"].as_str().is_some_and(|d| d.contains("JSON")),
            "{body}"
        );
    }
    // Line and column of a syntax error.
    let body = post()
        .body(
            "application/json",
            "{\n  \"catalog_id\": \"hello\"\n  \"inputs\": {}\n}",
        )
        .send()
        .problem(400, "malformed-json");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("line 3")),
        "{body}"
    );
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
    ] {
        post()
            .body(ct, "{\"catalog_id\": \"hello\"}")
            .send()
            .problem(415, "unsupported-media-type");
    }
    post()
        .raw("{\"catalog_id\": \"hello\"}")
        .send()
        .problem(415, "unsupported-media-type");
    // JSON of the wrong shape.
    for (shape, pointer) in [
        ("[]", ""),
        ("42", ""),
        ("null", ""),
        ("{\"inputs\": {}}", ""),
        ("{\"catalog_id\": [\"hello\"]}", "/catalog_id"),
    ] {
        let reply = post().body("application/json", shape).send();
        assert_eq!(reply.invalid(), vec![pointer], "{shape}");
    }
    // `+json` media types are JSON.
    post()
        .body("application/vnd.csmp+json", "{\"catalog_id\": \"hello\"}")
        .send()
        .expect(202);
    let list = app
        .get("/v1/requests")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
}

#[test]
fn unknown_routes_and_methods_get_problems() {
    let app = App::start();
    for path in [
        "/v1/nope",
        "/nope",
        "/v2/catalog",
        "/v1/catalog/hello/extra",
    ] {
        let body = app
            .get(path)
            .auth(&app.admin)
            .send()
            .problem(404, "no-such-route");
        assert!(
            body["detail"].as_str().is_some_and(|d| d.contains(path)),
            "{body}"
        );
    }
    for (method, path, served) in [
        (Method::DELETE, "/v1/catalog", "GET"),
        (Method::PATCH, "/v1/requests", "POST"),
        (Method::PUT, "/v1/runs", "GET"),
        (Method::GET, "/v1/runs/run-x/cancel", "POST"),
        (Method::POST, "/healthz", "GET"),
        (Method::DELETE, "/v1/audit", "GET"),
    ] {
        let reply = app.call(method.clone(), path).auth(&app.admin).send();
        let allow = reply.header("allow").unwrap_or_default();
        assert!(
            allow.contains(served),
            "{}: a 405 lists the allowed methods, got {allow:?}",
            reply.call
        );
        let body = reply.problem(405, "method-not-allowed");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains(method.as_str())),
            "{body}"
        );
    }
}

#[test]
fn health_readiness_and_metrics() {
    let app = App::start();
    let health = app.get("/healthz").send();
    assert_eq!((health.status, health.text().trim()), (200, "ok"));
    let ready = app.get("/readyz").send();
    assert_eq!((ready.status, ready.text().trim()), (200, "ready"));

    // Something to count: a finished run and a few API calls.
    let created = app.order(&app.client_a, &json!({ "catalog_id": "sleeper" }));
    app.wait_run(&app.client_a, &s(&created, "run_id"), "succeeded");
    app.get("/v1/catalog")
        .auth(&app.client_a)
        .send()
        .expect(200);

    // The request gauges are read in the background: wait for a reading.
    let started = std::time::Instant::now();
    let metrics = loop {
        let m = app.get("/metrics").send();
        if m.text().contains("csmp_sla_breaches ") || started.elapsed() > super::harness::GUARD {
            break m;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        metrics.header("content-type")
    );
    let text = metrics.text();
    for family in [
        "csmp_runs_started_total",
        "csmp_runs_finished_total",
        "csmp_steps_finished_total",
        "csmp_runs_active",
        "csmp_attempts_running",
        "csmp_queue_depth",
        "csmp_requests",
        "csmp_sla_breaches",
        "csmp_http_request_duration_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} is exported:\n{text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l == "csmp_runs_finished_total{status=\"succeeded\"} 1"),
        "the finished run is counted:\n{text}"
    );
    assert!(text.lines().any(|l| l == "csmp_sla_breaches 0"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("csmp_queue_depth ")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with(
            "csmp_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/catalog\"}"
        )),
        "latency by route template:\n{text}"
    );
    // Every sample line is `name{labels} value` with a numeric value.
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let value = line.rsplit(' ').next().unwrap_or("");
        assert!(value.parse::<f64>().is_ok(), "not a sample: {line}");
    }
}

#[test]
fn the_openapi_document_describes_every_route() {
    let app = App::start();
    let reply = app.get("/openapi.json").send();
    let doc = reply.expect(200);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        reply.header("content-type")
    );
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    // Every route of the router, with every method it serves.
    let routes: &[(&str, &[&str])] = &[
        ("/v1/catalog", &["get"]),
        ("/v1/catalog/{id}", &["get", "put", "delete"]),
        ("/v1/requests", &["get", "post"]),
        ("/v1/requests/{id}", &["get"]),
        ("/v1/requests/{id}/approval", &["post"]),
        ("/v1/runs", &["get", "post"]),
        ("/v1/runs/{id}/pause", &["post"]),
        ("/v1/runs/{id}/retry", &["post"]),
        ("/v1/runs/{id}/rerun", &["post"]),
        ("/v1/runs/{id}/resume", &["post"]),
        ("/v1/approvals", &["get"]),
        ("/v1/runs/{id}", &["get"]),
        ("/v1/runs/{id}/steps/{key}", &["get"]),
        ("/v1/runs/{id}/cancel", &["post"]),
        ("/v1/runs/{id}/approvals/{step}", &["post"]),
        ("/v1/runs/{id}/signals/{name}", &["post"]),
        ("/v1/runs/{id}/events", &["get"]),
        ("/v1/workflows", &["get"]),
        ("/v1/workflows/{name}", &["get", "put", "delete"]),
        ("/v1/workflows/{name}/{version}", &["get"]),
        ("/v1/plugins", &["get"]),
        ("/v1/plugins/{name}/{version}", &["get", "put"]),
        ("/v1/grants", &["get"]),
        ("/v1/grants/reload", &["post"]),
        ("/v1/events", &["get"]),
        ("/v1/events/{source}", &["post"]),
        ("/v2/enqueue", &["post"]),
        ("/v1/alerts", &["get"]),
        ("/v1/rules", &["get"]),
        ("/v1/rules/test", &["post"]),
        ("/v1/rules/{name}", &["get", "put", "delete"]),
        ("/v1/silences", &["get", "post"]),
        ("/v1/silences/{id}", &["delete"]),
        ("/v1/oncall", &["get"]),
        ("/v1/oncall/files", &["get"]),
        ("/v1/oncall/files/{name}", &["put", "delete"]),
        ("/v1/oncall/{schedule}", &["get"]),
        ("/v1/incidents", &["get"]),
        ("/v1/incidents/{id}", &["get", "patch"]),
        ("/v1/incidents/{id}/review", &["get"]),
        ("/v1/incidents/{id}/reopen", &["post"]),
        ("/v1/reports/incidents", &["get"]),
        ("/v1/reports/sla", &["get"]),
        ("/v1/reports/slo", &["get"]),
        ("/v1/incidents/{id}/timeline", &["get"]),
        ("/v1/incidents/{id}/acknowledge", &["post"]),
        ("/v1/incidents/{id}/resolve", &["post"]),
        ("/v1/incidents/{id}/notes", &["post"]),
        ("/v1/tokens", &["get", "post"]),
        ("/v1/tokens/{id}", &["delete"]),
        ("/v1/tenants", &["get"]),
        ("/v1/tenants/{id}", &["get", "put"]),
        ("/v1/audit", &["get"]),
        ("/v1/cluster", &["get"]),
        ("/v1/secrets", &["get"]),
        ("/v1/secrets/{name}", &["put"]),
        ("/healthz", &["get"]),
        ("/status", &["get"]),
        ("/status.json", &["get"]),
        ("/readyz", &["get"]),
        ("/metrics", &["get"]),
        ("/openapi.json", &["get"]),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    let mut missing = Vec::new();
    for (path, methods) in routes {
        for m in *methods {
            if paths.get(*path).and_then(|p| p.get(*m)).is_none() {
                missing.push(format!("{} {path}", m.to_uppercase()));
            }
        }
    }
    assert!(missing.is_empty(), "undocumented routes: {missing:?}");
    let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    let served: BTreeSet<&str> = routes.iter().map(|(p, _)| *p).collect();
    assert_eq!(documented, served, "no documented path that is not served");
    // Every operation says what its errors look like.
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("a path item") {
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{method} {path}");
            if path.starts_with("/v1/") {
                assert!(
                    responses.contains_key("401"),
                    "{method} {path} documents its 401"
                );
            }
        }
    }
    // The document is stable JSON that a second fetch reproduces.
    let again = app.get("/openapi.json").send().expect(200);
    assert_eq!(again, doc);
}

/// A call refused before its body was read (a bad token here) still leaves its connection fit
/// for the next call: the body that arrives after the refusal is read off, not left to make the
/// server drop the connection under the client's next request.
#[test]
fn a_refused_calls_connection_serves_the_next_call() {
    let app = App::start();
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).expect("connect");
    stream.set_read_timeout(Some(GUARD)).expect("read timeout");
    let body = r#"{"catalog_id":"hello"}"#;
    let head = format!(
        "POST /v1/requests HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer not-a-token\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send the head");
    // Let the server see the head alone, as when a client writes head and body apart.
    std::thread::sleep(std::time::Duration::from_millis(300));
    stream.write_all(body.as_bytes()).expect("send the body");
    let next = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(next.as_bytes())
        .expect("send the next call");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("read both answers");
    let statuses: Vec<&str> = answer
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &answer[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, vec!["401", "200"], "both answered: {answer}");
}
