//! What strangers and busy callers cost, black-box on a real `csmp serve`: connections past
//! `--max-connections` and calls past a token's `--rate-limit` are refused with `Retry-After`;
//! refused calls are audited in batches, not with an fsync each; a change and its audit entry
//! are stored together or not at all.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::harness::{GUARD, s, write_definitions};
use super::process::{Served, cli_token, sql};

/// Sends one request on a fresh connection and reads the whole answer (the connection is
/// closed by the request's `Connection: close`).
fn raw(addr: &str, request: &str) -> String {
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(GUARD)).expect("timeout");
    c.write_all(request.as_bytes()).expect("request sent");
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    answer
}

fn get(addr: &str, path: &str) -> String {
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
}

/// The value of a counter or gauge in `/metrics` text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

#[test]
fn connections_past_the_cap_are_answered_503_and_a_closed_one_frees_its_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_definitions(dir.path());
    let app = Served::start_with(dir.path(), "conns", &["--max-connections", "2"], &[]);
    let addr = app.base.trim_start_matches("http://").to_string();

    // Two connections that say nothing hold both places.
    let first = TcpStream::connect(&addr).expect("connect");
    let second = TcpStream::connect(&addr).expect("connect");
    let refused = get(&addr, "/healthz");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    let head = refused.to_ascii_lowercase();
    assert!(head.contains("retry-after: 1"), "{refused}");
    assert!(head.contains("application/problem+json"), "{refused}");
    assert!(refused.contains("too-many-connections"), "{refused}");
    assert!(refused.contains("--max-connections"), "{refused}");

    // One closes: its place is free again (the service notices the close on its own time).
    drop(first);
    let started = Instant::now();
    let metrics = loop {
        let answer = get(&addr, "/metrics");
        if answer.starts_with("HTTP/1.1 200") {
            break answer;
        }
        assert!(started.elapsed() < GUARD, "the place was never given back");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(metric(&metrics, "csmp_http_connections_refused_total") >= 1);
    assert_eq!(metric(&metrics, "csmp_http_connections_max"), 2);
    drop(second);
    let (status, _) = app.terminate();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn a_token_past_its_rate_is_answered_429_and_other_tokens_are_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_definitions(dir.path());
    let db = dir.path().join("csmp.db");
    let busy = cli_token(&db, &["--role", "operator"]);
    let other = cli_token(&db, &["--role", "operator"]);
    let admin = cli_token(&db, &["--role", "admin"]);
    // One call a second, in bursts of two.
    let app = Served::start_with(dir.path(), "rate", &["--rate-limit", "1"], &[]);

    let mut limited = None;
    for _ in 0..20 {
        let r = app.post("/v1/runs/nope/cancel").auth(&busy).send();
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, 404, "{}", r.text());
    }
    let limited = limited.expect("20 calls at once are past one a second");
    let body = limited.problem(429, "rate-limited");
    assert!(s(&body, "detail").contains("--rate-limit"), "{body}");
    let wait: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&wait), "Retry-After {wait}");

    // Another token has calls of its own.
    app.get("/v1/runs").auth(&other).send().expect(200);
    // The refusal is counted and audited (under the caller: it was authenticated).
    let metrics = app.get("/metrics").send();
    assert!(metric(&metrics.text(), "csmp_http_rate_limited_total") >= 1);
    let audit = app
        .get("/v1/audit?limit=200")
        .auth(&admin)
        .send()
        .expect(200);
    assert!(
        audit["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["status"] == 429 && e["actor"] == busy.id.as_str()),
        "{audit}"
    );
    let (status, _) = app.terminate();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn refused_calls_are_audited_in_batches_and_the_audit_log_shows_every_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_definitions(dir.path());
    let db = dir.path().join("csmp.db");
    let admin = cli_token(&db, &["--role", "admin"]);
    let client = cli_token(&db, &["--role", "client", "--tenant", "acme"]);
    let app = Served::start_with(dir.path(), "refused", &[], &[]);

    for i in 0..40 {
        app.post(&format!("/v1/tokens?n={i}"))
            .json(&json!({ "role": "admin" }))
            .send()
            .problem(401, "unauthorized");
    }
    for _ in 0..10 {
        app.put("/v1/tenants/evil")
            .auth(&client)
            .json(&json!({ "allowlist": [] }))
            .send()
            .problem(403, "forbidden");
    }
    let audit = app
        .get("/v1/audit?limit=200")
        .auth(&admin)
        .send()
        .expect(200);
    let items: Vec<&Value> = audit["items"].as_array().into_iter().flatten().collect();
    let unauthenticated = items
        .iter()
        .filter(|e| e["status"] == 401 && e["path"] == "/v1/tokens" && e["actor"].is_null())
        .count();
    let forbidden = items
        .iter()
        .filter(|e| {
            e["status"] == 403
                && e["path"] == "/v1/tenants/evil"
                && e["actor"] == client.id.as_str()
        })
        .count();
    assert_eq!((unauthenticated, forbidden), (40, 10), "{audit}");

    // They went through the queue, many to a transaction.
    let metrics = app.get("/metrics").send().text();
    let written = metric(&metrics, "csmp_audit_written_total");
    let batches = metric(&metrics, "csmp_audit_batches_total");
    assert!(written >= 50, "{metrics}");
    assert!(batches < written, "{batches} batches for {written} entries");
    assert_eq!(metric(&metrics, "csmp_audit_dropped_total"), 0);
    let (status, _) = app.terminate();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn a_change_is_not_kept_without_its_audit_entry() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_definitions(dir.path());
    let db = dir.path().join("csmp.db");
    let admin = cli_token(&db, &["--role", "admin"]);
    let app = Served::start_with(dir.path(), "atomic", &[], &[]);

    // The database refuses audit entries: the change that would go with one is refused too.
    sql(
        &db,
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit \
         BEGIN SELECT RAISE(ABORT, 'audit entries refused'); END",
    );
    let refused = app
        .put("/v1/tenants/beta")
        .auth(&admin)
        .json(&json!({ "allowlist": ["10.0.0.0/8"] }))
        .send();
    assert!(
        refused.status >= 400,
        "{} {}",
        refused.status,
        refused.text()
    );
    sql(&db, "DROP TRIGGER refuse_audit");
    app.get("/v1/tenants/beta")
        .auth(&admin)
        .send()
        .problem(404, "not-found");

    // With the entry, the change is kept, and the entry says what it was, once.
    app.put("/v1/tenants/beta")
        .auth(&admin)
        .json(&json!({ "allowlist": ["10.0.0.0/8"] }))
        .send()
        .expect(200);
    app.get("/v1/tenants/beta").auth(&admin).send().expect(200);
    let audit = app
        .get("/v1/audit?limit=200")
        .auth(&admin)
        .send()
        .expect(200);
    let entries: Vec<u64> = audit["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["path"] == "/v1/tenants/beta" && e["method"] == "PUT")
        .filter_map(|e| e["status"].as_u64())
        .collect();
    // (The refused call's own entry may or may not have been written: the queue writes it
    // when it can.)
    assert_eq!(entries.iter().filter(|s| **s == 200).count(), 1, "{audit}");
    let (status, _) = app.terminate();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn each_change_through_the_engine_has_one_entry_written_with_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_definitions(dir.path());
    let db = dir.path().join("csmp.db");
    let admin = cli_token(&db, &["--role", "admin"]);
    let operator = cli_token(&db, &["--role", "operator"]);
    let client = cli_token(&db, &["--role", "client", "--tenant", "acme"]);
    let app = Served::start_with(dir.path(), "engine-audit", &[], &[]);
    let ordered = app.order(&client, &json!({ "catalog_id": "steer" }));
    let run = s(&ordered, "run_id");
    app.wait_step(&client, &run, "gate", "waiting");
    app.post(&format!("/v1/runs/{run}/signals/go"))
        .auth(&operator)
        .json(&json!({}))
        .send()
        .expect(202);
    app.post(&format!("/v1/runs/{run}/approvals/gate"))
        .auth(&operator)
        .json(&json!({ "approved": true }))
        .send()
        .expect(200);
    app.wait_run(&client, &run, "succeeded");
    // A refused one: the run is over.
    app.post(&format!("/v1/runs/{run}/cancel"))
        .auth(&operator)
        .send()
        .problem(409, "conflict");
    let audit = app
        .get("/v1/audit?limit=200")
        .auth(&admin)
        .send()
        .expect(200);
    let of = |path: &str| -> Vec<(u64, String)> {
        audit["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["path"] == path)
            .map(|e| (e["status"].as_u64().unwrap_or(0), s(e, "actor")))
            .collect()
    };
    assert_eq!(
        of("/v1/requests"),
        vec![(202, client.id.clone())],
        "{audit}"
    );
    assert_eq!(
        of(&format!("/v1/runs/{run}/signals/go")),
        vec![(202, operator.id.clone())],
        "{audit}"
    );
    assert_eq!(
        of(&format!("/v1/runs/{run}/approvals/gate")),
        vec![(200, operator.id.clone())],
        "{audit}"
    );
    assert_eq!(
        of(&format!("/v1/runs/{run}/cancel")),
        vec![(409, operator.id.clone())],
        "{audit}"
    );
    let (status, _) = app.terminate();
    assert!(status.success(), "exit status {status}");
}
