//! The real `csmp` binary on a real PostgreSQL server (one the test starts itself): tokens made
//! with `csmp token create --database postgres://…`, a `csmp serve` killed with SIGKILL and
//! started again with every acknowledged change kept and no finished step run again, and a
//! second `csmp serve` on the same database refused.

use std::path::Path;

use serde_json::{Value, json};

use super::harness::{s, write_definitions};
use super::process::{Served, cli_token, finish_steer, second_serve_refused};

/// A directory with the test definitions, a new database on this test process's PostgreSQL
/// server, and the data directory the service is to use.
pub(super) fn setup() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    write_definitions(dir.path());
    let url = tokio::runtime::Runtime::new()
        .expect("a runtime")
        .block_on(csmp::testing::postgres())
        .expect("the test PostgreSQL starts");
    let data = dir.path().join("data").display().to_string();
    (dir, url, data)
}

/// Each finished unit of a run: key → (status, attempt).
pub(super) fn finished(detail: &Value) -> Vec<(String, String, u64)> {
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
    let (dir, url, data) = setup();
    let db = Path::new(&url);
    let env = [("CSMP_DATA_DIR", data.as_str())];
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
        Path::new(&data).join("postgres.key").is_file(),
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

    finish_steer(&app, &operator, &client, &run, &request, "kill -9");
    let (status, _) = app.terminate();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn a_second_process_under_a_live_ones_name_refuses_to_start() {
    let (dir, url, data) = setup();
    let db = Path::new(&url);
    let env = [("CSMP_DATA_DIR", data.as_str())];
    let app = Served::start_on(dir.path(), db, "first", &[], &env);
    let log = second_serve_refused(dir.path(), db, &env);
    assert!(
        log.contains("another csmp process is running as `local`")
            && log.contains("its own --owner"),
        "says why and what to do: {log}"
    );
    assert_eq!(app.get("/healthz").send().status, 200);
    // A process killed outright lets go of the database: the lock dies with its connection.
    app.kill_9();
    let again = Served::start_on(dir.path(), db, "again", &[], &env);
    let (status, _) = again.terminate();
    assert!(status.success());
}
