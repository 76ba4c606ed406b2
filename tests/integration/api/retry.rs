//! `POST /v1/runs/{id}/retry`: a failed run runs its failed and interrupted units again, in
//! place; completed units keep their outputs and are not run again.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::harness::{App, s, step};

/// A listener answering `GET /ok…` with 200 and `GET /flaky…` with 404 until `healed`; it
/// counts the calls per path.
struct Flaky {
    url: String,
    healed: Arc<AtomicBool>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Flaky {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let healed = Arc::new(AtomicBool::new(false));
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (h, c) = (Arc::clone(&healed), Arc::clone(&hits));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut line = String::new();
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                // Read the head to its end.
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                *c.lock().expect("hits").entry(path.clone()).or_default() += 1;
                let ok = path.starts_with("/ok") || h.load(Ordering::SeqCst);
                let status = if ok { "200 OK" } else { "404 Not Found" };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
                );
            }
        });
        Self { url, healed, hits }
    }

    fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .expect("hits")
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

const FLAKY: &str = r#"name: flaky
version: 1
inputs: { type: object, required: [url], properties: { url: { type: string } } }
steps:
  - id: first
    uses: echo@^1
    with: { n: 1 }
  - id: call
    needs: [wide]
    uses: http@^1
    with: { url: "{{ inputs.url }}/flaky/call" }
  - id: after
    needs: [call]
    uses: echo@^1
    with: { status: "{{ steps.call.output.status }}" }
  - id: wide
    needs: [first]
    for_each: [ok, flaky, ok]
    uses: http@^1
    with: { url: "{{ inputs.url }}/{{ item }}/item{{ index }}" }
on_failure:
  - id: tell
    uses: echo@^1
    with: { failed: true }
outputs:
  after: "{{ steps.after.output.status }}"
  wide: "{{ len steps.wide.output }}"
"#;

const UNDONE: &str = r#"name: undone
version: 1
inputs: { type: object, required: [url], properties: { url: { type: string } } }
steps:
  - id: make
    uses: echo@^1
    with: { n: 1 }
    compensate: { uses: echo@^1, with: { undo: 1 } }
  - id: boom
    needs: [make]
    uses: http@^1
    with: { url: "{{ inputs.url }}/flaky/boom" }
"#;

fn upload(app: &App, name: &str, yaml: &str) {
    app.put(&format!("/v1/workflows/{name}"))
        .auth(&app.operator)
        .body("application/yaml", yaml)
        .send()
        .expect(201);
}

fn start(app: &App, workflow: &str, url: &str) -> String {
    let run = app
        .post("/v1/runs")
        .auth(&app.operator)
        .json(&json!({ "workflow": workflow, "inputs": { "url": url } }))
        .send()
        .expect(202);
    s(&run, "id")
}

fn unit<'v>(run: &'v Value, key: &str) -> &'v Value {
    step(run, key).unwrap_or_else(|| panic!("unit {key} in {run}"))
}

#[test]
fn a_failed_run_runs_again_what_failed_and_keeps_what_completed() {
    let app = App::start();
    let flaky = Flaky::start();
    upload(&app, "flaky", FLAKY);
    let run = start(&app, "flaky", &flaky.url);
    // Only the fan-out can fail first (`call` needs it), so what fails is always the same.
    let failed = app.wait_run(&app.operator, &run, "failed");
    assert!(
        step(&failed, "call").is_none(),
        "held up, never started: {failed}"
    );
    assert!(step(&failed, "after").is_none(), "never started: {failed}");
    assert_eq!(unit(&failed, "wide#0")["status"], "succeeded");
    assert_eq!(unit(&failed, "wide#1")["status"], "failed");
    let first_done = unit(&failed, "first")["finished_at"].clone();

    // Not yet fixed: a client may not retry; the operator may.
    app.post(&format!("/v1/runs/{run}/retry"))
        .auth(&app.client_a)
        .send()
        .problem(403, "forbidden");
    flaky.healed.store(true, Ordering::SeqCst);
    let retried = app
        .post(&format!("/v1/runs/{run}/retry"))
        .auth(&app.operator)
        .send()
        .expect(202);
    assert_eq!(retried["status"], "running");
    let done = app.wait_run(&app.operator, &run, "succeeded");
    assert_eq!(
        done["outputs"],
        json!({ "after": 200, "wide": 3 }),
        "{done}"
    );

    // What completed ran once; what failed ran twice, its history continued; what it held
    // up ran once, after it.
    assert_eq!(unit(&done, "first")["finished_at"], first_done);
    assert_eq!((flaky.hits("/ok/item0"), flaky.hits("/ok/item2")), (1, 1));
    assert_eq!(
        (flaky.hits("/flaky/call"), flaky.hits("/flaky/item1")),
        (1, 2)
    );
    let call = app
        .get(&format!("/v1/runs/{run}/steps/wide%231"))
        .auth(&app.operator)
        .send()
        .expect(200);
    let outcomes: Vec<String> = call["history"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| format!("{} {}", a["attempt"], s(a, "outcome")))
        .collect();
    assert_eq!(outcomes, ["1 failed", "2 succeeded"], "{call}");
    // The retry is in the run's history, with what it ran again.
    let retries = done["retries"].as_array().cloned().unwrap_or_default();
    assert_eq!(retries.len(), 1, "{done}");
    assert_eq!(retries[0]["by"], app.operator.id.as_str());
    let units: Vec<&str> = retries[0]["units"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for key in ["wide", "wide#1"] {
        assert!(units.contains(&key), "{key} in {units:?}");
    }

    // Only a failed run is retried.
    app.post(&format!("/v1/runs/{run}/retry"))
        .auth(&app.operator)
        .send()
        .problem(409, "conflict");
    app.post("/v1/runs/run-none/retry")
        .auth(&app.operator)
        .send()
        .problem(404, "not-found");
}

#[test]
fn a_run_whose_work_was_compensated_is_not_retried_in_place() {
    let app = App::start();
    let flaky = Flaky::start();
    upload(&app, "undone", UNDONE);
    let run = start(&app, "undone", &flaky.url);
    app.wait_run(&app.operator, &run, "failed");
    let refused = app
        .post(&format!("/v1/runs/{run}/retry"))
        .auth(&app.operator)
        .send()
        .problem(409, "conflict");
    assert!(s(&refused, "detail").contains("compensated"), "{refused}");
    let still = app
        .get(&format!("/v1/runs/{run}"))
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(still["status"], "failed");
}

#[test]
fn a_rerun_from_a_step_copies_what_is_upstream_and_runs_the_rest_again() {
    let app = App::start();
    let flaky = Flaky::start();
    flaky.healed.store(true, Ordering::SeqCst);
    upload(&app, "flaky", FLAKY);
    let old = start(&app, "flaky", &flaky.url);
    let done = app.wait_run(&app.operator, &old, "succeeded");

    let reply = app
        .post(&format!("/v1/runs/{old}/rerun"))
        .auth(&app.operator)
        .json(&json!({ "from": "call" }))
        .send();
    let new = reply.expect(202);
    let id = s(&new, "id");
    assert_ne!(id, old);
    assert_eq!(reply.header("location"), Some(format!("/v1/runs/{id}")));
    assert_eq!(new["labels"]["rerun-of"], old.as_str());
    assert_eq!(new["labels"]["rerun-from"], "call");
    let again = app.wait_run(&app.operator, &id, "succeeded");
    assert_eq!(again["outputs"], done["outputs"]);
    // `first` and the fan-out are not downstream of `call`: copied, not run again.
    assert_eq!(
        unit(&again, "first")["finished_at"],
        unit(&done, "first")["finished_at"]
    );
    assert_eq!(
        unit(&again, "wide#0")["output"],
        unit(&done, "wide#0")["output"]
    );
    assert_eq!((flaky.hits("/ok/item0"), flaky.hits("/ok/item2")), (1, 1));
    // `call` and `after` ran again.
    assert_eq!(flaky.hits("/flaky/call"), 2);
    assert_ne!(
        unit(&again, "after")["finished_at"],
        unit(&done, "after")["finished_at"]
    );
    // The old run is as it was; a rerun is found by its label.
    let listed = app
        .get(&format!("/v1/runs?label=rerun-of={old}"))
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(super::harness::ids(&listed), vec![id.clone()]);

    let bad = app
        .post(&format!("/v1/runs/{old}/rerun"))
        .auth(&app.operator)
        .json(&json!({ "from": "nope" }))
        .send();
    assert_eq!(bad.invalid(), ["/from"]);
    app.post(&format!("/v1/runs/{old}/rerun"))
        .auth(&app.client_a)
        .json(&json!({ "from": "call" }))
        .send()
        .problem(403, "forbidden");
    // A run not over yet is not rerun.
    let steered = app.order(&app.client_a, &json!({ "catalog_id": "steer" }));
    let running = s(&steered, "run_id");
    app.wait_step(&app.client_a, &running, "gate", "waiting");
    app.post(&format!("/v1/runs/{running}/rerun"))
        .auth(&app.operator)
        .json(&json!({ "from": "gate" }))
        .send()
        .problem(409, "conflict");
}

#[test]
fn a_retry_outlives_kill_9_of_the_service() {
    use super::process::{Served, cli_token};
    let dir = tempfile::tempdir().expect("temp dir");
    super::harness::write_definitions(dir.path());
    std::fs::write(dir.path().join("workflows").join("flaky.yaml"), FLAKY).expect("workflow");
    let grants = dir.path().join("grants.yaml");
    std::fs::write(
        &grants,
        "plugins:\n  http: { http_hosts: [\"127.0.0.1:*\"] }\n",
    )
    .expect("grants");
    let grants = grants.display().to_string();
    let db = dir.path().join("csmp.db");
    let operator = cli_token(&db, &["--role", "operator"]);
    let flaky = Flaky::start();
    let app = Served::start_with(dir.path(), "retry", &["--grants", &grants], &[]);
    let run = app
        .post("/v1/runs")
        .auth(&operator)
        .json(&json!({ "workflow": "flaky", "inputs": { "url": flaky.url } }))
        .send()
        .expect(202);
    let run = s(&run, "id");
    app.wait_run(&operator, &run, "failed");
    // The retry is answered once it is on disk; the service is killed right after, whatever
    // of the retry it had started by then. The restarted one finishes the retried run.
    flaky.healed.store(true, Ordering::SeqCst);
    app.post(&format!("/v1/runs/{run}/retry"))
        .auth(&operator)
        .send()
        .expect(202);
    drop(app); // SIGKILL

    let app = Served::start_with(dir.path(), "retry-again", &["--grants", &grants], &[]);
    let done = app.wait_run(&operator, &run, "succeeded");
    assert_eq!(
        done["outputs"],
        json!({ "after": 200, "wide": 3 }),
        "{done}"
    );
    assert_eq!(done["retries"].as_array().map(Vec::len), Some(1), "{done}");
    let (status, _) = app.terminate();
    assert!(status.success(), "exit status {status}");
}
