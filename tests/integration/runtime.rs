//! Run-time semantics of every step kind and field, on a real SQLite file and the real plugin
//! host. Durations are short real times; nothing asserts on how long anything took.

use std::collections::BTreeMap;
use std::io::{Read, Write as _};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use csmp::plan::{Env, validate_workflow};
use csmp::plugin::PluginHost;
use csmp::runtime::{Definitions, Engine, EngineConfig, EngineError, NewRun, TokioClock};
use csmp::store::{Durability, RunStatus, StepRow, StepStatus, Store};
use serde_json::{Value, json};

/// Bounds a test that would otherwise hang on a bug.
const GUARD: Duration = Duration::from_secs(60);

fn host() -> PluginHost {
    let host = crate::helpers::loopback_host();
    let hostile = std::fs::read(format!("{}/hostile.wasm", env!("CSMP_PLUGIN_WASM_DIR")))
        .expect("hostile wasm");
    host.load(&hostile).expect("hostile loads");
    host
}

struct Harness {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    engine: Engine,
    host: PluginHost,
    defs: Definitions,
}

fn definitions(host: &PluginHost, workflows: &[&str]) -> Definitions {
    let index = host.index();
    let mut defs = Definitions::default();
    for yaml in workflows {
        let plan = validate_workflow(
            yaml.as_bytes(),
            Env {
                plugins: &index,
                workflows: None,
            },
        )
        .unwrap_or_else(|d| panic!("fixture invalid: {d:#?}"));
        defs.insert(plan);
    }
    defs
}

async fn start(workflows: &[&str]) -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("csmp.db");
    let host = host();
    let defs = definitions(&host, workflows);
    let engine = engine_on(&path, &host, &defs).await;
    Harness {
        _dir: dir,
        path,
        engine,
        host,
        defs,
    }
}

async fn engine_on(path: &std::path::Path, host: &PluginHost, defs: &Definitions) -> Engine {
    let store = Store::open(path, Durability::Full)
        .await
        .expect("store opens");
    let config = EngineConfig {
        workers: 4,
        secrets: BTreeMap::from([("token".into(), "s3cr3t".into())]),
        ..EngineConfig::default()
    };
    Engine::start(
        store,
        host.clone(),
        defs.clone(),
        Arc::new(TokioClock::new()),
        config,
    )
    .await
    .expect("engine starts")
}

impl Harness {
    async fn run(&self, workflow: &str, inputs: Value) -> (String, RunStatus) {
        let id = self.submit(workflow, inputs).await;
        let status = tokio::time::timeout(GUARD, self.engine.wait(&id))
            .await
            .expect("run ends")
            .expect("wait");
        (id, status)
    }

    async fn submit(&self, workflow: &str, inputs: Value) -> String {
        self.engine
            .submit(NewRun {
                workflow: workflow.into(),
                version: None,
                inputs,
                tenant: "acme".into(),
                requester: Some("alice".into()),
            })
            .await
            .expect("submitted")
    }

    async fn steps(&self, run: &str) -> BTreeMap<String, StepRow> {
        self.engine
            .store()
            .steps(run)
            .await
            .expect("steps")
            .into_iter()
            .map(|s| (s.key.clone(), s))
            .collect()
    }

    async fn outputs(&self, run: &str) -> Value {
        self.engine
            .store()
            .run(run)
            .await
            .expect("run")
            .expect("exists")
            .outputs
            .unwrap_or(Value::Null)
    }

    async fn error(&self, run: &str) -> String {
        self.engine
            .store()
            .run(run)
            .await
            .expect("run")
            .expect("exists")
            .error
            .unwrap_or_default()
    }

    async fn wait_for_status(&self, run: &str, key: &str, status: StepStatus) {
        tokio::time::timeout(GUARD, async {
            loop {
                if self
                    .steps(run)
                    .await
                    .get(key)
                    .is_some_and(|s| s.status == status)
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{key} never became {status:?}"));
    }
}

fn statuses(steps: &BTreeMap<String, StepRow>) -> Vec<(String, &'static str)> {
    steps
        .iter()
        .map(|(k, s)| (k.clone(), s.status.as_str()))
        .collect()
}

const CHAIN: &str = r#"
name: chain
version: 1
inputs: { type: object, required: [n], properties: { n: { type: integer } } }
steps:
  - id: a
    uses: echo@^1
    with: { n: "{{ inputs.n }}", who: "{{ run.tenant }}" }
  - id: b
    needs: [a]
    uses: echo@^1
    with: { doubled: "{{ concat steps.a.output.n steps.a.output.n }}" }
outputs:
  first: "{{ steps.a.output }}"
  second: "{{ steps.b.output.doubled }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_passes_outputs_along_and_renders_run_outputs() {
    let h = start(&[CHAIN]).await;
    let (id, status) = h.run("chain", json!({"n": 7})).await;
    assert_eq!(status, RunStatus::Succeeded, "{}", h.error(&id).await);
    assert_eq!(
        h.outputs(&id).await,
        json!({"first": {"n": 7, "who": "acme"}, "second": "77"})
    );
    let steps = h.steps(&id).await;
    assert_eq!(
        statuses(&steps),
        [("a".into(), "succeeded"), ("b".into(), "succeeded")]
    );
    assert_eq!(steps["a"].attempt, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_are_checked_before_anything_is_stored() {
    let h = start(&[CHAIN]).await;
    let err = h
        .engine
        .submit(NewRun {
            workflow: "chain".into(),
            version: None,
            inputs: json!({"n": "seven"}),
            tenant: "acme".into(),
            requester: None,
        })
        .await
        .expect_err("invalid");
    assert!(
        matches!(&err, EngineError::InvalidInputs(v) if v[0].contains("/n") && v[0].contains("integer")),
        "{err}"
    );
    let unknown = h
        .engine
        .submit(NewRun {
            workflow: "nope".into(),
            version: None,
            inputs: json!({}),
            tenant: "acme".into(),
            requester: None,
        })
        .await
        .expect_err("unknown");
    assert!(matches!(unknown, EngineError::UnknownWorkflow(_)));
    assert!(h.engine.store().runs(10).await.expect("runs").is_empty());
}

const FAN: &str = r#"
name: fan
version: 1
steps:
  - id: items
    for_each: ["x", "y", "z", "w", "v"]
    max_parallel: 2
    uses: echo@^1
    with: { item: "{{ item }}", index: "{{ index }}" }
  - id: join
    needs: [items]
    uses: echo@^1
    with: { count: "{{ len steps.items.output }}", ids: "{{ map steps.items.output 'item' }}" }
outputs:
  all: "{{ steps.join.output }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_runs_every_item_and_fans_in_in_order() {
    let h = start(&[FAN]).await;
    let (id, status) = h.run("fan", json!({})).await;
    assert_eq!(status, RunStatus::Succeeded, "{}", h.error(&id).await);
    assert_eq!(
        h.outputs(&id).await,
        json!({"all": {"count": 5, "ids": ["x", "y", "z", "w", "v"]}})
    );
    let steps = h.steps(&id).await;
    assert_eq!(
        steps["items#3"].output,
        Some(json!({"item": "w", "index": 3}))
    );
}

const BRANCHES: &str = r#"
name: branches
version: 1
inputs: { type: object, properties: { big: { type: boolean } } }
steps:
  - id: start
    uses: echo@^1
  - id: big-only
    needs: [start]
    when: "{{ inputs.big }}"
    uses: echo@^1
  - id: after-big
    needs: [big-only]
    uses: echo@^1
  - id: join
    needs: [start, big-only]
    uses: echo@^1
    with: { big: "{{ steps.big-only.status }}" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_steps_propagate_but_a_join_with_a_live_branch_runs() {
    let h = start(&[BRANCHES]).await;
    let (id, status) = h.run("branches", json!({"big": false})).await;
    assert_eq!(status, RunStatus::Succeeded);
    let steps = h.steps(&id).await;
    assert_eq!(
        statuses(&steps),
        [
            ("after-big".into(), "skipped"),
            ("big-only".into(), "skipped"),
            ("join".into(), "succeeded"),
            ("start".into(), "succeeded")
        ]
    );
    assert_eq!(steps["join"].output, Some(json!({"big": "skipped"})));
    let (id, _) = h.run("branches", json!({"big": true})).await;
    assert_eq!(
        h.steps(&id).await["after-big"].status,
        StepStatus::Succeeded
    );
}

const WAITS: &str = r#"
name: waits
version: 1
steps:
  - id: pause
    wait: 200ms
  - id: gate
    needs: [pause]
    approval: { roles: [operator], message: "ok for {{ run.tenant }}?" }
  - id: ack
    needs: [gate]
    signal: ack
  - id: late
    needs: [gate]
    signal: { name: never, timeout: 200ms }
    continue_on_error: true
  - id: done
    needs: [ack, late]
    uses: echo@^1
    with: { by: "{{ steps.ack.output.by }}", late: "{{ steps.late.status }}" }
outputs:
  done: "{{ steps.done.output }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_approvals_and_signals() {
    let h = start(&[WAITS]).await;
    let id = h.submit("waits", json!({})).await;
    // A signal that arrives before its step waits is kept for it.
    h.engine
        .signal(&id, "ack", json!({"by": "bob"}))
        .await
        .expect("signal buffered");
    let early = h
        .engine
        .approve(&id, "gate", true, "carol")
        .await
        .expect_err("not waiting yet");
    assert!(matches!(early, EngineError::Conflict(_)), "{early}");
    h.wait_for_status(&id, "gate", StepStatus::Waiting).await;
    assert_eq!(h.steps(&id).await["pause"].status, StepStatus::Succeeded);
    h.engine
        .approve(&id, "gate", true, "carol")
        .await
        .expect("approved");
    let status = tokio::time::timeout(GUARD, h.engine.wait(&id))
        .await
        .expect("ends")
        .expect("wait");
    assert_eq!(status, RunStatus::Succeeded, "{}", h.error(&id).await);
    let steps = h.steps(&id).await;
    assert_eq!(
        steps["gate"].output.as_ref().map(|o| o["by"].clone()),
        Some(json!("carol"))
    );
    assert_eq!(steps["late"].status, StepStatus::Failed);
    assert_eq!(
        steps["late"].error.as_deref(),
        Some("signal `never` did not arrive before the timeout")
    );
    assert_eq!(
        h.outputs(&id).await,
        json!({"done": {"by": "bob", "late": "failed"}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_approval_fails_the_run() {
    let h = start(&[WAITS]).await;
    let id = h.submit("waits", json!({})).await;
    h.wait_for_status(&id, "gate", StepStatus::Waiting).await;
    h.engine
        .approve(&id, "gate", false, "dave")
        .await
        .expect("decided");
    let status = tokio::time::timeout(GUARD, h.engine.wait(&id))
        .await
        .expect("ends")
        .expect("wait");
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(h.error(&id).await, "step `gate` failed: rejected by dave");
}

const PARENT: &str = r#"
name: parent
version: 1
steps:
  - id: child
    workflow: chain
    with: { n: 3 }
  - id: incident
    needs: [child]
    incident: { action: open, title: "child said {{ steps.child.output.second }}", severity: sev2, service: web }
  - id: note
    needs: [incident]
    incident: { action: update, id: "{{ steps.incident.output.id }}", note: looking }
  - id: close
    needs: [note]
    incident: { action: resolve, id: "{{ steps.incident.output.id }}", note: fixed }
outputs:
  child: "{{ steps.child.output }}"
  incident: "{{ steps.close.output }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_workflows_and_incidents() {
    let h = start(&[CHAIN, PARENT]).await;
    let (id, status) = h.run("parent", json!({})).await;
    assert_eq!(status, RunStatus::Succeeded, "{}", h.error(&id).await);
    let out = h.outputs(&id).await;
    assert_eq!(
        out["child"],
        json!({"first": {"n": 3, "who": "acme"}, "second": "33"})
    );
    assert_eq!(out["incident"]["status"], "resolved");
    let inc_id = out["incident"]["id"]
        .as_str()
        .expect("incident id")
        .to_string();
    let inc = h
        .engine
        .store()
        .incident(&inc_id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (
            inc.title.as_str(),
            inc.severity.as_str(),
            inc.status.as_str()
        ),
        ("child said 33", "sev2", "resolved")
    );
    let notes: Vec<&str> = inc
        .timeline
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["note"].as_str())
        .collect();
    assert_eq!(notes, ["opened", "looking", "fixed"]);
}

/// A server on 127.0.0.1 that answers 503 to the first `failures` requests, then 200.
fn flaky(failures: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let (status, body) = if n < failures {
                ("503 Service Unavailable", "{\"busy\":true}")
            } else {
                ("200 OK", "{\"ok\":true}")
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (format!("http://{addr}"), hits)
}

const RETRIES: &str = r#"
name: retries
version: 1
inputs: { type: object, properties: { url: { type: string } } }
steps:
  - id: call
    uses: http@^1
    retry: { max_attempts: 3, backoff: exponential, initial_delay: 50ms, max_delay: 200ms }
    with: { url: "{{ inputs.url }}" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_failures_are_retried_until_attempts_run_out() {
    let h = start(&[RETRIES]).await;
    let (url, hits) = flaky(2);
    let (id, status) = h.run("retries", json!({"url": url})).await;
    assert_eq!(status, RunStatus::Succeeded, "{}", h.error(&id).await);
    let steps = h.steps(&id).await;
    assert_eq!(steps["call"].attempt, 3);
    assert_eq!(
        steps["call"].output.as_ref().map(|o| o["body"].clone()),
        Some(json!({"ok": true}))
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    let (url, hits) = flaky(10);
    let (id, status) = h.run("retries", json!({"url": url})).await;
    assert_eq!(status, RunStatus::Failed);
    let steps = h.steps(&id).await;
    assert_eq!(steps["call"].attempt, 3);
    assert!(
        steps["call"]
            .error
            .as_deref()
            .is_some_and(|e| e.ends_with("(after 3 attempts)")),
        "{:?}",
        steps["call"].error
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

const TIMEOUT: &str = r#"
name: spin
version: 1
steps:
  - id: spin
    uses: hostile@0.1
    timeout: 300ms
    with: { mode: spin }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_timeout_stops_the_plugin() {
    let h = start(&[TIMEOUT]).await;
    let (id, status) = h.run("spin", json!({})).await;
    assert_eq!(status, RunStatus::Failed);
    let error = h.steps(&id).await["spin"].error.clone().unwrap_or_default();
    assert!(
        error.contains("timeout") || error.contains("time"),
        "{error}"
    );
}

const SAGA: &str = r#"
name: saga
version: 1
steps:
  - id: one
    uses: echo@^1
    with: { made: one }
    compensate: { uses: echo@^1, with: { undo: "{{ output.made }}" } }
  - id: two
    needs: [one]
    for_each: [a, b]
    max_parallel: 1
    uses: echo@^1
    with: { made: "two-{{ item }}" }
    compensate: { uses: echo@^1, with: { undo: "{{ output.made }}" } }
  - id: three
    needs: [two]
    uses: echo@^1
    with: { made: three }
  - id: boom
    needs: [three]
    uses: http@^1
    with: { url: "http://127.0.0.1:9/unreachable", timeout_ms: 200 }
on_failure:
  - id: report
    uses: echo@^1
    with: { error: "{{ run.error }}", boom: "{{ steps.boom.status }}" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_compensates_in_reverse_order_then_runs_on_failure() {
    let h = start(&[SAGA]).await;
    let (id, status) = h.run("saga", json!({})).await;
    assert_eq!(status, RunStatus::Failed);
    let steps = h.steps(&id).await;
    let mut comps: Vec<(&StepRow, String)> = steps
        .values()
        .filter(|s| s.key.starts_with('~'))
        .map(|s| {
            (
                s,
                s.output
                    .as_ref()
                    .map(|o| o["undo"].as_str().unwrap_or("").to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    comps.sort_by_key(|(s, _)| (s.started_at, s.finished_at));
    let undone: Vec<&str> = comps.iter().map(|(_, u)| u.as_str()).collect();
    assert_eq!(
        undone,
        ["two-b", "two-a", "one"],
        "newest completion undone first; `three` has nothing to undo"
    );
    let report = steps["!report"].output.clone().expect("on_failure ran");
    assert_eq!(report["boom"], "failed");
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("step `boom` failed")),
        "{report}"
    );
}

const SLOW_FAN: &str = r#"
name: slow-fan
version: 1
steps:
  - id: spin
    for_each: [1, 2, 3, 4, 5, 6]
    max_parallel: 2
    uses: hostile@0.1
    timeout: 1m
    with: { mode: spin }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_interrupts_a_fan_out_mid_way() {
    let h = start(&[SLOW_FAN]).await;
    let id = h.submit("slow-fan", json!({})).await;
    h.wait_for_status(&id, "spin#1", StepStatus::Running).await;
    h.engine.cancel(&id).await.expect("cancel accepted");
    let status = tokio::time::timeout(GUARD, h.engine.wait(&id))
        .await
        .expect("ends")
        .expect("wait");
    assert_eq!(status, RunStatus::Cancelled);
    let steps = h.steps(&id).await;
    assert_eq!(steps["spin#0"].status, StepStatus::Cancelled);
    assert_eq!(steps["spin#1"].status, StepStatus::Cancelled);
    assert!(
        !steps.contains_key("spin#2"),
        "no new item starts after cancellation"
    );
    let again = h.engine.cancel(&id).await.expect_err("already over");
    assert!(matches!(again, EngineError::Conflict(_)));
}

const RECOVER: &str = r#"
name: recover
version: 1
steps:
  - id: first
    uses: echo@^1
    with: { n: 1 }
  - id: pause
    needs: [first]
    wait: 400ms
  - id: last
    needs: [pause]
    uses: echo@^1
    with: { prev: "{{ steps.first.output.n }}" }
outputs:
  last: "{{ steps.last.output }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_engine_finishes_the_runs_of_the_previous_one() {
    let h = start(&[RECOVER]).await;
    let id = h.submit("recover", json!({})).await;
    h.wait_for_status(&id, "pause", StepStatus::Waiting).await;
    h.engine.shutdown().await;
    // A new engine on the same database; the old lease belongs to this same owner name.
    let engine = engine_on(&h.path, &h.host, &h.defs).await;
    let status = tokio::time::timeout(GUARD, engine.wait(&id))
        .await
        .expect("ends")
        .expect("wait");
    assert_eq!(status, RunStatus::Succeeded);
    let steps = engine.store().steps(&id).await.expect("steps");
    let first = steps.iter().find(|s| s.key == "first").expect("first");
    assert_eq!(first.attempt, 1, "a completed step is never run again");
    assert_eq!(
        engine
            .store()
            .run(&id)
            .await
            .expect("run")
            .expect("exists")
            .outputs,
        Some(json!({"last": {"prev": 1}}))
    );
}

const BLOCKED: &str = r#"
name: blocked
version: 1
steps:
  - id: bad
    uses: echo@^1
    with: { x: "{{ secrets.missing }}" }
  - id: after
    needs: [bad]
    uses: echo@^1
  - id: tolerant
    uses: echo@^1
    with: { x: "{{ secrets.missing }}" }
    continue_on_error: true
  - id: after-tolerant
    needs: [tolerant]
    uses: echo@^1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_blocks_its_dependants_unless_it_may_fail() {
    let h = start(&[BLOCKED]).await;
    let (id, status) = h.run("blocked", json!({})).await;
    assert_eq!(status, RunStatus::Failed);
    let steps = h.steps(&id).await;
    assert!(
        !steps.contains_key("after"),
        "a dependant of a failed step never starts"
    );
    let error = steps["bad"].error.clone().unwrap_or_default();
    assert!(error.ends_with("the secret `missing` is not set; set the environment variable CSMP_SECRET_MISSING for csmp"), "{error}");
    assert_eq!(
        h.error(&id).await.split(':').next(),
        Some("step `bad` failed")
    );
}
