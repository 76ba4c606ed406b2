//! The real `csmp` binary on a real PostgreSQL server (one the test starts itself): tokens made
//! with `csmp token create --database postgres://…`, a `csmp serve` killed with SIGKILL and
//! started again with every acknowledged change kept and no finished step run again, and a
//! second `csmp serve` on the same database refused.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::harness::{GUARD, s, write_definitions};
use super::process::{Served, cli_token};

/// A new database on this test process's PostgreSQL server.
fn database() -> String {
    tokio::runtime::Runtime::new()
        .expect("a runtime")
        .block_on(csmp::testing::postgres())
        .expect("the test PostgreSQL starts")
}

/// Each finished unit of a run: key → (status, attempt).
fn finished(detail: &Value) -> Vec<(String, String, u64)> {
    detail["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|u| {
            ["succeeded", "failed", "skipped"].contains(&u["status"].as_str().unwrap_or(""))
        })
        .map(|u| {
            (
                s(u, "key"),
                s(u, "status"),
                u["attempt"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[test]
fn a_serve_on_postgres_killed_with_sigkill_keeps_everything_and_goes_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_definitions(dir.path());
    let url = database();
    let db = Path::new(&url);
    let data = dir.path().join("data");
    let data = data.to_str().expect("a UTF-8 path");
    let env = [("CSMP_DATA_DIR", data)];
    let operator = cli_token(db, &["--role", "operator"]);
    let client = cli_token(db, &["--role", "client", "--tenant", "acme"]);

    let app = Served::start_on(dir.path(), db, "first", &[], &env);
    let created = app.order(&client, &json!({ "catalog_id": "steer" }));
    let request = s(&created, "id");
    let run = s(&created, "run_id");
    app.wait_step(&client, &run, "gate", "waiting");
    let ordered = app.order(&client, &json!({ "catalog_id": "ordered" }));
    let ordered_run = s(&ordered, "run_id");
    let ordered_done = app.wait_run(&client, &ordered_run, "succeeded");
    let before = app
        .get(&format!("/v1/runs/{run}"))
        .auth(&client)
        .send()
        .expect(200);
    app.kill_9();
    assert!(
        Path::new(data).join("postgres.key").is_file(),
        "the master key is kept in CSMP_DATA_DIR"
    );

    let app = Served::start_on(dir.path(), db, "second", &[], &env);
    let r = app
        .get(&format!("/v1/requests/{request}"))
        .auth(&client)
        .send()
        .expect(200);
    assert_eq!(r["status"], "running");
    let after = app
        .get(&format!("/v1/runs/{run}"))
        .auth(&client)
        .send()
        .expect(200);
    assert_eq!(
        finished(&after),
        finished(&before),
        "finished units unchanged"
    );
    let again = app
        .get(&format!("/v1/runs/{ordered_run}"))
        .auth(&client)
        .send()
        .expect(200);
    assert_eq!(again["outputs"], ordered_done["outputs"]);
    assert_eq!(finished(&again), finished(&ordered_done), "not run again");

    app.post(&format!("/v1/runs/{run}/signals/go"))
        .auth(&operator)
        .json(&json!({ "after": "kill -9" }))
        .send()
        .expect(202);
    app.post(&format!("/v1/runs/{run}/approvals/gate"))
        .auth(&operator)
        .json(&json!({ "approved": true }))
        .send()
        .expect(200);
    let done = app.wait_run(&client, &run, "succeeded");
    assert_eq!(done["outputs"], json!({ "heard": { "after": "kill -9" } }));
    app.wait_request(&client, &request, "fulfilled");
    let (status, _) = app.terminate();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn a_second_serve_on_one_postgres_database_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_definitions(dir.path());
    let url = database();
    let db = Path::new(&url);
    let data = dir.path().join("data");
    let data = data.to_str().expect("a UTF-8 path");
    let env = [("CSMP_DATA_DIR", data)];
    let app = Served::start_on(dir.path(), db, "first", &[], &env);
    let log_path = dir.path().join("second.log");
    let mut second = Command::new(env!("CARGO_BIN_EXE_csmp"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &url])
        .arg("--workflows")
        .arg(dir.path().join("workflows"))
        .arg("--catalog")
        .arg(dir.path().join("catalog"))
        .envs(env)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("a log file"))
        .spawn()
        .expect("a second csmp serve runs");
    let started = Instant::now();
    let code = loop {
        if let Some(status) = second.try_wait().expect("its status") {
            break status.code();
        }
        if started.elapsed() > GUARD {
            let _ = second.kill();
            let _ = second.wait();
            panic!("the second csmp serve kept running beside the first");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(1));
    let log = std::fs::read_to_string(&log_path).expect("its log");
    assert!(
        log.contains("another csmp serve is using this PostgreSQL database"),
        "says why: {log}"
    );
    assert_eq!(app.get("/healthz").send().status, 200);
    // A process killed outright lets go of the database: the lock dies with its connection.
    app.kill_9();
    let again = Served::start_on(dir.path(), db, "again", &[], &env);
    let (status, _) = again.terminate();
    assert!(status.success());
}
