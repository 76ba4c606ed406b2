//! Pause and resume: a paused run starts nothing new, its timers wait, and the pause outlives
//! `kill -9` of the service.

use std::time::Duration;

use serde_json::json;

use super::harness::{App, s, step, write_definitions};
use super::process::{Served, cli_token};

#[test]
fn a_paused_run_starts_nothing_new_until_it_is_resumed() {
    let app = App::start();
    let ordered = app.order(&app.client_a, &json!({ "catalog_id": "steer" }));
    let run = s(&ordered, "run_id");
    app.wait_step(&app.client_a, &run, "gate", "waiting");
    let paused = app
        .post(&format!("/v1/runs/{run}/pause"))
        .auth(&app.operator)
        .send()
        .expect(202);
    assert_eq!(paused["status"], "paused");
    assert!(paused["paused_at"].is_string(), "{paused}");
    // Pausing again changes nothing.
    app.post(&format!("/v1/runs/{run}/pause"))
        .auth(&app.operator)
        .send()
        .expect(202);
    let listed = app
        .get("/v1/runs?status=paused")
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(super::harness::ids(&listed), vec![run.clone()]);

    // A decision is taken while paused, but the step after it does not start.
    app.post(&format!("/v1/runs/{run}/approvals/gate"))
        .auth(&app.operator)
        .json(&json!({ "approved": true }))
        .send()
        .expect(200);
    let now = app.wait_step(&app.client_a, &run, "gate", "succeeded");
    assert_eq!(now["status"], "paused");
    assert!(step(&now, "hear").is_none(), "nothing new started: {now}");

    // Clients may not steer; resuming needs a paused run.
    app.post(&format!("/v1/runs/{run}/resume"))
        .auth(&app.client_a)
        .send()
        .problem(403, "forbidden");
    let resumed = app
        .post(&format!("/v1/runs/{run}/resume"))
        .auth(&app.operator)
        .send()
        .expect(202);
    assert_eq!(resumed["status"], "running");
    app.post(&format!("/v1/runs/{run}/resume"))
        .auth(&app.operator)
        .send()
        .problem(409, "conflict");
    app.wait_step(&app.client_a, &run, "hear", "waiting");
    app.post(&format!("/v1/runs/{run}/signals/go"))
        .auth(&app.operator)
        .json(&json!({}))
        .send()
        .expect(202);
    app.wait_run(&app.client_a, &run, "succeeded");
    app.post(&format!("/v1/runs/{run}/pause"))
        .auth(&app.operator)
        .send()
        .problem(409, "conflict");
    app.post("/v1/runs/run-none/pause")
        .auth(&app.operator)
        .send()
        .problem(404, "not-found");
}

#[test]
fn a_timer_that_falls_due_while_paused_fires_on_resume() {
    let app = App::start();
    let started = app
        .post("/v1/runs")
        .auth(&app.operator)
        .json(&json!({ "workflow": "sleeper", "version": 1 }))
        .send()
        .expect(202);
    let run = s(&started, "id");
    app.post(&format!("/v1/runs/{run}/pause"))
        .auth(&app.operator)
        .send()
        .expect(202);
    // The one-second wait falls due while the run is paused: it does not end.
    std::thread::sleep(Duration::from_millis(1500));
    let held = app
        .get(&format!("/v1/runs/{run}"))
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(held["status"], "paused", "{held}");
    assert_eq!(
        step(&held, "nap").map(|n| n["status"].clone()),
        Some(json!("waiting"))
    );
    app.post(&format!("/v1/runs/{run}/resume"))
        .auth(&app.operator)
        .send()
        .expect(202);
    app.wait_run(&app.operator, &run, "succeeded");
}

#[test]
fn a_pause_outlives_kill_9_of_the_service() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_definitions(dir.path());
    let db = dir.path().join("csmp.db");
    let operator = cli_token(&db, &["--role", "operator"]);
    let client = cli_token(&db, &["--role", "client", "--tenant", "acme"]);
    let app = Served::start(dir.path(), "paused");
    let ordered = app.order(&client, &json!({ "catalog_id": "steer" }));
    let run = s(&ordered, "run_id");
    app.wait_step(&client, &run, "gate", "waiting");
    app.post(&format!("/v1/runs/{run}/pause"))
        .auth(&operator)
        .send()
        .expect(202);
    drop(app); // SIGKILL

    let app = Served::start(dir.path(), "paused-again");
    let after = app.wait_step(&client, &run, "gate", "waiting");
    assert_eq!(after["status"], "paused", "{after}");
    app.post(&format!("/v1/runs/{run}/approvals/gate"))
        .auth(&operator)
        .json(&json!({ "approved": true }))
        .send()
        .expect(200);
    let decided = app.wait_step(&client, &run, "gate", "succeeded");
    assert!(step(&decided, "hear").is_none(), "still paused: {decided}");
    app.post(&format!("/v1/runs/{run}/resume"))
        .auth(&operator)
        .send()
        .expect(202);
    app.wait_step(&client, &run, "hear", "waiting");
    app.post(&format!("/v1/runs/{run}/signals/go"))
        .auth(&operator)
        .json(&json!({}))
        .send()
        .expect(202);
    app.wait_run(&client, &run, "succeeded");
    let (status, _) = app.terminate();
    assert!(status.success(), "exit status {status}");
}
