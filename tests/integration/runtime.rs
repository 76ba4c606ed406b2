//! Run-time semantics of every step kind and field, on a real SQLite file and the real plugin
//! host. Time is a [`ManualClock`]: waits, retry back-offs and timeouts are long (hours,
//! seconds) and happen when a test moves the clock, never by sleeping. Tests check that
//! nothing fires a millisecond before its time and that it does fire at it; nothing asserts on
//! how long anything took.

use std::collections::BTreeMap;
use std::io::{Read, Write as _};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use csmp::plan::{Env, UnitKey, validate_workflow};
use csmp::plugin::PluginHost;
use csmp::runtime::{Clock, Definitions, Engine, EngineConfig, EngineError, ManualClock, NewRun};
use csmp::store::{AttemptOutcome, Durability, RunStatus, StepRow, StepStatus, Store};
use serde_json::{Value, json};

/// Bounds a test that would otherwise hang on a bug.
pub(crate) const GUARD: Duration = Duration::from_secs(60);

fn host() -> PluginHost {
    let host = crate::helpers::loopback_host();
    let hostile = std::fs::read(format!("{}/hostile.wasm", env!("CSMP_PLUGIN_WASM_DIR")))
        .expect("hostile wasm");
    host.load(&hostile).expect("hostile loads");
    host
}

pub(crate) struct Harness {
    _dir: tempfile::TempDir,
    pub(crate) path: std::path::PathBuf,
    pub(crate) engine: Engine,
    pub(crate) host: PluginHost,
    pub(crate) defs: Definitions,
    /// The engine's time; moves only when a test says so.
    pub(crate) clock: ManualClock,
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

pub(crate) async fn start(workflows: &[&str]) -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("csmp.db");
    let host = host();
    let defs = definitions(&host, workflows);
    let clock = ManualClock::at("2030-01-01T00:00:00Z").expect("valid time");
    let engine = engine_on(&path, &host, &defs, &clock).await;
    Harness {
        _dir: dir,
        path,
        engine,
        host,
        defs,
        clock,
    }
}

pub(crate) async fn engine_on(
    path: &std::path::Path,
    host: &PluginHost,
    defs: &Definitions,
    clock: &ManualClock,
) -> Engine {
    engine_with(path, host, defs, clock, EngineConfig::default()).await
}

/// An engine on `path` with `config` (its workers and secrets set as every test's are).
pub(crate) async fn engine_with(
    path: &std::path::Path,
    host: &PluginHost,
    defs: &Definitions,
    clock: &ManualClock,
    config: EngineConfig,
) -> Engine {
    let store = Store::open(path, Durability::Full)
        .await
        .expect("store opens");
    let config = EngineConfig {
        secrets: BTreeMap::from([("token".into(), "s3cr3t".into())]),
        ..config
    };
    Engine::start(
        store,
        host.clone(),
        defs.clone(),
        Arc::new(clock.clone()),
        config,
    )
    .await
    .expect("engine starts")
}

impl Harness {
    pub(crate) async fn run(&self, workflow: &str, inputs: Value) -> (String, RunStatus) {
        let id = self.submit(workflow, inputs).await;
        let status = tokio::time::timeout(GUARD, self.engine.wait(&id))
            .await
            .expect("run ends")
            .expect("wait");
        (id, status)
    }

    pub(crate) async fn submit(&self, workflow: &str, inputs: Value) -> String {
        self.engine
            .submit(NewRun {
                workflow: workflow.into(),
                version: None,
                inputs,
                tenant: "acme".into(),
                requester: Some("alice".into()),
                partition: None,
            })
            .await
            .expect("submitted")
    }

    pub(crate) async fn steps(&self, run: &str) -> BTreeMap<String, StepRow> {
        self.engine
            .store()
            .steps(run)
            .await
            .expect("steps")
            .into_iter()
            .map(|s| (s.key.to_string(), s))
            .collect()
    }

    pub(crate) async fn outputs(&self, run: &str) -> Value {
        self.engine
            .store()
            .run(run)
            .await
            .expect("run")
            .expect("exists")
            .outputs
            .unwrap_or(Value::Null)
    }

    pub(crate) async fn error(&self, run: &str) -> String {
        self.engine
            .store()
            .run(run)
            .await
            .expect("run")
            .expect("exists")
            .error
            .unwrap_or_default()
    }

    pub(crate) async fn wait_for_status(
        &self,
        run: &str,
        key: &str,
        status: StepStatus,
    ) -> StepRow {
        self.wait_for(run, key, &format!("{status:?}"), |s| s.status == status)
            .await
    }

    /// Polls until unit `key` of `run` exists and satisfies `what`; returns it.
    pub(crate) async fn wait_for(
        &self,
        run: &str,
        key: &str,
        described: &str,
        what: impl Fn(&StepRow) -> bool,
    ) -> StepRow {
        tokio::time::timeout(GUARD, async {
            loop {
                if let Some(s) = self.steps(run).await.remove(key).filter(|s| what(s)) {
                    return s;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{key} never became {described}"))
    }

    /// The current row of unit `key` of `run`.
    pub(crate) async fn step(&self, run: &str, key: &str) -> StepRow {
        self.steps(run)
            .await
            .remove(key)
            .unwrap_or_else(|| panic!("no unit {key}"))
    }

    /// Moves the clock to just before `at`, lets the executor finish a turn, then moves it to
    /// `at`: what is due at `at` must not have happened in between.
    pub(crate) async fn advance_to_just_before(&self, at: i64) {
        let now = self.clock.now_ms();
        assert!(at > now, "{at} is not in the future of {now}");
        self.clock.advance(Duration::from_millis(
            u64::try_from(at - now - 1).expect("ahead"),
        ));
        self.engine.sync().await.expect("executor turn");
    }

    pub(crate) async fn status(&self, run: &str) -> RunStatus {
        self.engine
            .store()
            .run(run)
            .await
            .expect("run")
            .expect("exists")
            .status
    }

    pub(crate) async fn finish(&self, run: &str) -> RunStatus {
        tokio::time::timeout(GUARD, self.engine.wait(run))
            .await
            .expect("run ends")
            .expect("wait")
    }
}

pub(crate) const HOUR: Duration = Duration::from_secs(3600);
pub(crate) const MS: Duration = Duration::from_millis(1);

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
            partition: None,
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
            partition: None,
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
    wait: 1h
  - id: gate
    needs: [pause]
    approval: { roles: [operator], message: "ok for {{ run.tenant }}?" }
  - id: ack
    needs: [gate]
    signal: ack
  - id: late
    needs: [gate]
    signal: { name: never, timeout: 30m }
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
        .signal(&id, "ack", json!({"by": "bob"}), None)
        .await
        .expect("signal buffered");
    let early = h
        .engine
        .approve(&id, "gate", true, "carol", None)
        .await
        .expect_err("not waiting yet");
    assert!(matches!(early, EngineError::Conflict(_)), "{early}");
    // The durable timer: an hour of clock time, not a millisecond less.
    let pause = h.wait_for_status(&id, "pause", StepStatus::Waiting).await;
    let started = h.clock.now_ms();
    assert_eq!(pause.wake_at, Some(started + 3_600_000));
    h.advance_to_just_before(started + 3_600_000).await;
    assert_eq!(h.step(&id, "pause").await.status, StepStatus::Waiting);
    assert!(!h.steps(&id).await.contains_key("gate"));
    h.clock.advance(MS);
    h.wait_for_status(&id, "gate", StepStatus::Waiting).await;
    let pause = h.step(&id, "pause").await;
    assert_eq!(pause.status, StepStatus::Succeeded);
    assert_eq!(pause.output, Some(json!({"waited_ms": 3_600_000})));
    h.engine
        .approve(&id, "gate", true, "carol", None)
        .await
        .expect("approved");
    // `ack` takes the buffered signal; `late` waits for one that never comes, for 30 minutes.
    let late = h.wait_for_status(&id, "late", StepStatus::Waiting).await;
    let deadline = late.wake_at.expect("a signal timeout is a timer");
    assert_eq!(deadline, h.clock.now_ms() + 30 * 60_000);
    h.advance_to_just_before(deadline).await;
    assert_eq!(h.step(&id, "late").await.status, StepStatus::Waiting);
    assert_eq!(h.status(&id).await, RunStatus::Running);
    h.clock.advance(MS);
    let status = h.finish(&id).await;
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
    h.wait_for_status(&id, "pause", StepStatus::Waiting).await;
    h.clock.advance(HOUR);
    h.wait_for_status(&id, "gate", StepStatus::Waiting).await;
    h.engine
        .approve(&id, "gate", false, "dave", None)
        .await
        .expect("decided");
    assert_eq!(h.finish(&id).await, RunStatus::Failed);
    assert_eq!(h.error(&id).await, "step `gate` failed: rejected by dave");
}

const LISTEN: &str = r#"
name: listen
version: 1
steps:
  - id: ack
    signal: { name: ack, timeout: 1h }
outputs:
  by: "{{ steps.ack.output.by }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_sent_while_its_step_waits_is_taken_at_once() {
    let h = start(&[LISTEN]).await;
    let id = h.submit("listen", json!({})).await;
    h.wait_for_status(&id, "ack", StepStatus::Waiting).await;
    h.engine
        .signal(&id, "ack", json!({"by": "lee"}), None)
        .await
        .expect("delivered");
    // The clock never moves: only the signal can end the step.
    assert_eq!(h.finish(&id).await, RunStatus::Succeeded);
    assert_eq!(h.outputs(&id).await, json!({"by": "lee"}));
    assert_eq!(h.step(&id, "ack").await.wake_at, None);
}

const GATED: &str = r#"
name: gated
version: 1
steps:
  - id: gate
    approval: { roles: [operator], timeout: 24h }
  - id: after
    needs: [gate]
    uses: echo@^1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_without_a_decision_times_out() {
    let h = start(&[GATED]).await;
    let id = h.submit("gated", json!({})).await;
    let gate = h.wait_for_status(&id, "gate", StepStatus::Waiting).await;
    let deadline = gate.wake_at.expect("an approval timeout is a timer");
    assert_eq!(deadline, h.clock.now_ms() + 24 * 3_600_000);
    h.advance_to_just_before(deadline).await;
    assert_eq!(h.step(&id, "gate").await.status, StepStatus::Waiting);
    assert_eq!(h.status(&id).await, RunStatus::Running);
    h.clock.advance(MS);
    assert_eq!(h.finish(&id).await, RunStatus::Failed);
    assert_eq!(
        h.error(&id).await,
        "step `gate` failed: no decision before the approval's timeout"
    );
    assert!(!h.steps(&id).await.contains_key("after"));
    let late = h
        .engine
        .approve(&id, "gate", true, "erin", None)
        .await
        .expect_err("too late");
    assert!(matches!(late, EngineError::Conflict(_)), "{late}");
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
    retry: { max_attempts: 3, backoff: exponential, initial_delay: 10s, max_delay: 1m }
    with: { url: "{{ inputs.url }}" }
"#;

impl Harness {
    /// Waits for attempt `attempt` of `key` to fail and be scheduled for a retry; checks the
    /// back-off is `base` ± 20% jitter of clock time; checks nothing happens a millisecond
    /// before it ends, then moves the clock to its end.
    async fn retry_after(
        &self,
        run: &str,
        key: &str,
        attempt: u32,
        base: Duration,
        hits: &AtomicUsize,
    ) {
        let failed_at = self.clock.now_ms();
        let row = self
            .wait_for(
                run,
                key,
                &format!("retrying after attempt {attempt}"),
                |s| s.status == StepStatus::Retrying && s.attempt == attempt,
            )
            .await;
        let wake = row.wake_at.expect("a retry is a timer");
        let base = i64::try_from(base.as_millis()).expect("small");
        let delay = wake - failed_at;
        assert!(
            (base * 8 / 10..=base * 12 / 10).contains(&delay),
            "back-off {delay} ms is not {base} ms ± 20%"
        );
        assert_eq!(hits.load(Ordering::SeqCst), attempt as usize);
        self.advance_to_just_before(wake).await;
        let row = self.step(run, key).await;
        assert_eq!((row.status, row.attempt), (StepStatus::Retrying, attempt));
        assert_eq!(
            hits.load(Ordering::SeqCst),
            attempt as usize,
            "no retry before its back-off ends"
        );
        self.clock.advance(MS);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_failures_are_retried_until_attempts_run_out() {
    let h = start(&[RETRIES]).await;
    let (url, hits) = flaky(2);
    let id = h.submit("retries", json!({"url": url})).await;
    h.retry_after(&id, "call", 1, Duration::from_secs(10), &hits)
        .await;
    h.retry_after(&id, "call", 2, Duration::from_secs(20), &hits)
        .await;
    let status = h.finish(&id).await;
    assert_eq!(status, RunStatus::Succeeded, "{}", h.error(&id).await);
    let steps = h.steps(&id).await;
    assert_eq!(steps["call"].attempt, 3);
    assert_eq!(
        steps["call"].output.as_ref().map(|o| o["body"].clone()),
        Some(json!({"ok": true}))
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // Each attempt is kept: when it ran, how it ended and why; the retries start after
    // their back-off.
    let history = h
        .engine
        .store()
        .attempts(&id, &UnitKey::Step("call".into()))
        .await
        .expect("attempts");
    let seen: Vec<(u32, AttemptOutcome, Option<&str>)> = history
        .iter()
        .map(|a| (a.attempt, a.outcome, a.kind.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (1, AttemptOutcome::Failed, Some("retryable")),
            (2, AttemptOutcome::Failed, Some("retryable")),
            (3, AttemptOutcome::Succeeded, None),
        ]
    );
    assert!(
        history[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("503")),
        "{:?}",
        history[0].error
    );
    for a in &history {
        assert!(a.started_at <= a.finished_at, "{a:?}");
    }
    assert!(history[1].started_at >= history[0].finished_at + 8_000);
    assert!(history[2].started_at >= history[1].finished_at + 16_000);

    let (url, hits) = flaky(10);
    let id = h.submit("retries", json!({"url": url})).await;
    h.retry_after(&id, "call", 1, Duration::from_secs(10), &hits)
        .await;
    h.retry_after(&id, "call", 2, Duration::from_secs(20), &hits)
        .await;
    assert_eq!(h.finish(&id).await, RunStatus::Failed);
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

const PANIC: &str = r#"
name: panic
version: 1
steps:
  - id: boom
    uses: hostile@0.1
    with: { mode: panic }
"#;

/// A failed attempt keeps what the plugin wrote: here the panic message on its stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_keeps_its_log() {
    let h = start(&[PANIC]).await;
    let (id, status) = h.run("panic", json!({})).await;
    assert_eq!(status, RunStatus::Failed);
    let history = h
        .engine
        .store()
        .attempts(&id, &UnitKey::Step("boom".into()))
        .await
        .expect("attempts");
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].outcome, AttemptOutcome::Failed);
    assert_eq!(history[0].kind.as_deref(), Some("trap"));
    assert!(
        history[0]
            .log
            .contains("hostile plugin panicked on purpose"),
        "{:?}",
        history[0].log
    );
    let failed = h.engine.store().failed_attempts(&id).await.expect("failed");
    assert_eq!(failed, history);
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

/// The plugin host's own deadline: real time, whatever the engine's clock says.
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

const SPIN_LONG: &str = r#"
name: spin-long
version: 1
steps:
  - id: spin
    uses: hostile@0.1
    timeout: 1h
    with: { mode: spin }
"#;

/// With a clock that does not follow real time, the executor enforces the step timeout in
/// clock time and cancels the attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_timeout_in_clock_time_cancels_the_attempt() {
    let h = start(&[SPIN_LONG]).await;
    let id = h.submit("spin-long", json!({})).await;
    let spin = h.wait_for_status(&id, "spin", StepStatus::Running).await;
    let deadline = spin.wake_at.expect("the attempt's deadline is a timer");
    assert_eq!(deadline, h.clock.now_ms() + 3_600_000);
    h.advance_to_just_before(deadline).await;
    assert_eq!(h.step(&id, "spin").await.status, StepStatus::Running);
    h.clock.advance(MS);
    assert_eq!(h.finish(&id).await, RunStatus::Failed);
    let spin = h.step(&id, "spin").await;
    assert_eq!(
        spin.error.as_deref(),
        Some(
            "step exceeded its timeout of 3600s and was stopped; raise the step's `timeout` if it needs longer"
        )
    );
    assert_eq!(spin.wake_at, None);
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
    // The clock stands still, so the order compensations ran in comes from the committed
    // transitions, not from timestamps.
    let mut events = h.engine.subscribe();
    let (id, status) = h.run("saga", json!({})).await;
    assert_eq!(status, RunStatus::Failed);
    let steps = h.steps(&id).await;
    let mut started = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let Some(key) = e
            .step
            .filter(|k| k.starts_with('~') && e.status == "running")
        {
            started.push(key);
        }
    }
    let undone: Vec<&str> = started
        .iter()
        .map(|k| {
            steps[k]
                .output
                .as_ref()
                .and_then(|o| o["undo"].as_str())
                .unwrap_or("")
        })
        .collect();
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
    wait: 1h
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
    let pause = h.wait_for_status(&id, "pause", StepStatus::Waiting).await;
    h.engine.shutdown().await;
    // A new engine on the same database; the old lease belongs to this same owner name.
    let engine = engine_on(&h.path, &h.host, &h.defs, &h.clock).await;
    // The timer was re-armed from the store: still waiting a millisecond before it ends.
    let wake = pause.wake_at.expect("timer");
    h.clock.advance(Duration::from_millis(
        u64::try_from(wake - h.clock.now_ms() - 1).expect("ahead"),
    ));
    engine.sync().await.expect("turn");
    let steps = engine.store().steps(&id).await.expect("steps");
    assert!(
        steps
            .iter()
            .any(|s| s.key.to_string() == "pause" && s.status == StepStatus::Waiting),
        "{steps:?}"
    );
    h.clock.advance(MS);
    let status = tokio::time::timeout(GUARD, engine.wait(&id))
        .await
        .expect("ends")
        .expect("wait");
    assert_eq!(status, RunStatus::Succeeded);
    let steps = engine.store().steps(&id).await.expect("steps");
    let first = steps
        .iter()
        .find(|s| s.key.to_string() == "first")
        .expect("first");
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

const SAY: &str = r#"
name: say
version: 1
inputs: { type: object, required: [message], properties: { message: { type: string } } }
steps:
  - id: speak
    uses: echo@^1
    with: { said: "{{ inputs.message }}" }
outputs:
  said: "{{ steps.speak.output.said }}"
"#;

/// The database itself refuses some writes here: a trigger the test adds aborts any step row
/// whose output mentions `poison` (SQLite reports it as a constraint, as it would a row that
/// breaks the schema). The run whose transition is refused fails with the reason; a run
/// committed beside it carries on; the executor keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_database_refuses_fails_only_its_own_run() {
    use sqlx::Connection as _;
    let h = start(&[SAY]).await;
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", h.path.display()))
        .await
        .expect("a second connection");
    for event in ["INSERT", "UPDATE"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TRIGGER refuse_poison_{event} BEFORE {event} ON steps \
             WHEN NEW.output LIKE '%poison%' BEGIN SELECT RAISE(ABORT, 'poisoned output'); END"
        )))
        .execute(&mut c)
        .await
        .expect("a trigger");
    }
    let bad = h.submit("say", json!({"message": "poison"})).await;
    let good = h.submit("say", json!({"message": "fine"})).await;
    assert_eq!(h.finish(&bad).await, RunStatus::Failed);
    let error = h.error(&bad).await;
    assert!(
        error.contains("the database refused") && error.contains("poisoned output"),
        "{error}"
    );
    assert_eq!(h.finish(&good).await, RunStatus::Succeeded);
    assert_eq!(h.outputs(&good).await, json!({"said": "fine"}));
    assert_eq!(h.engine.health().runs_refused(), 1);
    assert!(h.engine.health().storage_fault().is_none());
    // And it goes on taking work.
    let (later, status) = h.run("say", json!({"message": "still here"})).await;
    assert_eq!(status, RunStatus::Succeeded, "{}", h.error(&later).await);
}

const LATE_SIGNAL: &str = r#"
name: late-signal
version: 1
steps:
  - id: nap
    wait: 1h
  - id: hear
    needs: [nap]
    signal: go
outputs:
  heard: "{{ steps.hear.output }}"
"#;

/// An engine under lease name `owner`, with an hour-long lease it renews only every twenty
/// minutes of real time, so in a test a lease runs out only when the clock is moved.
async fn owned_engine(h: &Harness, owner: &str) -> Engine {
    engine_with(
        &h.path,
        &h.host,
        &h.defs,
        &h.clock,
        EngineConfig {
            owner: owner.into(),
            lease: HOUR,
            ..EngineConfig::default()
        },
    )
    .await
}

/// Two engines on one SQLite file: when one's lease runs out and the other takes its
/// partitions over, the first one's next write for a run there is refused (never applied) and
/// it drops the run; a command it takes afterwards goes to the new holder, which finishes the
/// run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_whose_lease_was_taken_over_is_fenced_out() {
    let h = start(&[STEER_AFTER_NAP]).await;
    // Only `a` and `b` execute here (the harness's own engine would hold partitions too).
    h.engine.shutdown().await;
    let a = owned_engine(&h, "a").await;
    let run = a
        .submit(NewRun {
            workflow: "steer-after-nap".into(),
            version: None,
            inputs: json!({}),
            tenant: "acme".into(),
            requester: None,
            partition: None,
        })
        .await
        .expect("submitted");
    h.wait_for_status(&run, "gate", StepStatus::Waiting).await;

    // a's lease runs out; b starts and takes every partition under new epochs.
    h.clock.advance(2 * HOUR);
    let b = owned_engine(&h, "b").await;
    let stored = h
        .engine
        .store()
        .run(&run)
        .await
        .expect("read")
        .expect("run");
    let holder = h
        .engine
        .store()
        .partitions()
        .await
        .expect("partitions")
        .into_iter()
        .find(|p| p.id == stored.partition)
        .and_then(|p| p.owner);
    assert_eq!(holder.as_deref(), Some("b"));
    assert!(b.held().holds(stored.partition));

    // a still has the run in memory: its approval is refused, and nothing of it is stored.
    let refused = a
        .approve(&run, "gate", true, "alice", None)
        .await
        .expect_err("fenced");
    assert!(
        matches!(&refused, EngineError::Conflict(m) if m.contains("another process")),
        "{refused}"
    );
    assert_eq!(h.step(&run, "gate").await.status, StepStatus::Waiting);
    assert!(!a.held().holds(stored.partition), "a has let go");

    // A command a takes now goes to b, the holder, which applies it and answers.
    a.approve(&run, "gate", true, "alice", None)
        .await
        .expect("forwarded to b and applied there");
    let status = tokio::time::timeout(GUARD, b.wait(&run))
        .await
        .expect("ends")
        .expect("wait");
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(
        h.step(&run, "gate").await.output.expect("decided")["by"],
        "alice"
    );
    let late = b
        .approve(&run, "gate", true, "bob", None)
        .await
        .expect_err("decided already");
    assert!(matches!(late, EngineError::Conflict(_)), "{late}");
    a.shutdown().await;
    b.shutdown().await;
}

const STEER_AFTER_NAP: &str = r#"
name: steer-after-nap
version: 1
steps:
  - id: gate
    approval: { roles: [operator] }
"#;

/// Signals delivered through two engines on one file never share an id: ids come from the
/// database (a per-process counter seeded at start gave both the same one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_ids_come_from_the_database() {
    let h = start(&[LATE_SIGNAL]).await;
    h.engine.shutdown().await;
    let a = owned_engine(&h, "a").await;
    let b = owned_engine(&h, "b").await;
    let new = || NewRun {
        workflow: "late-signal".into(),
        version: None,
        inputs: json!({}),
        tenant: "acme".into(),
        requester: None,
        partition: None,
    };
    let run_a = a.submit(new()).await.expect("a submits");
    let run_b = b.submit(new()).await.expect("b submits");
    // Both sent before their signal step waits: both are buffered.
    a.signal(&run_a, "go", json!("to a"), None)
        .await
        .expect("a buffers");
    b.signal(&run_b, "go", json!("to b"), None)
        .await
        .expect("b buffers");
    let store = h.engine.store();
    let mut ids = Vec::new();
    for r in [&run_a, &run_b] {
        ids.extend(
            store
                .pending_signals(r)
                .await
                .expect("signals")
                .iter()
                .map(|s| s.id),
        );
    }
    assert_eq!(ids.len(), 2, "both signals are stored");
    assert_ne!(ids[0], ids[1]);
    // And each run takes its own when it gets there.
    h.clock.advance(2 * HOUR);
    for (e, run, said) in [(&a, &run_a, "to a"), (&b, &run_b, "to b")] {
        let status = tokio::time::timeout(GUARD, e.wait(run))
            .await
            .expect("ends")
            .expect("wait");
        assert_eq!(status, RunStatus::Succeeded);
        assert_eq!(h.outputs(run).await["heard"], json!(said));
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// Counts attempts in flight as the worker threads report them, and can hold a chosen
/// attempt's result back, or panic at the start of one.
#[derive(Debug, Default)]
struct Watch {
    now: AtomicUsize,
    most: AtomicUsize,
    started: std::sync::Mutex<Vec<(String, u32)>>,
    /// (unit, attempt) whose result waits until `release` is called.
    hold: Option<(String, u32)>,
    released: std::sync::Mutex<bool>,
    wake: std::sync::Condvar,
    /// (unit, attempt) at whose start the worker thread panics.
    panic_at: Option<(String, u32)>,
}

impl Watch {
    fn release(&self) {
        *self.released.lock().expect("lock") = true;
        self.wake.notify_all();
    }

    fn has_started(&self, key: &str, attempt: u32) -> bool {
        self.started
            .lock()
            .expect("lock")
            .iter()
            .any(|(k, a)| k == key && *a == attempt)
    }
}

impl csmp::runtime::AttemptObserver for Watch {
    fn started(&self, _run: &str, key: &csmp::plan::UnitKey, attempt: u32) {
        self.started
            .lock()
            .expect("lock")
            .push((key.to_string(), attempt));
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        if self
            .panic_at
            .as_ref()
            .is_some_and(|(k, a)| *k == key.to_string() && *a == attempt)
        {
            self.now.fetch_sub(1, Ordering::SeqCst);
            panic!("a bug in the host, for the test");
        }
    }

    fn finished(&self, _run: &str, key: &csmp::plan::UnitKey, attempt: u32) {
        self.now.fetch_sub(1, Ordering::SeqCst);
        if self
            .hold
            .as_ref()
            .is_some_and(|(k, a)| *k == key.to_string() && *a == attempt)
        {
            let mut released = self.released.lock().expect("lock");
            while !*released {
                released = self.wake.wait(released).expect("wait");
            }
        }
    }
}

/// A host whose grants allow `slots` attempts at once (and `http_hosts` to the test plugin),
/// with the test plugin loaded.
fn host_with_slots(slots: u32, http_hosts: &[String]) -> PluginHost {
    use csmp::plugin::{Grant, Grants, HostConfig};
    let cache = crate::helpers::plugin_cache();
    let mut grants = Grants {
        max_concurrent_steps: slots,
        ..Grants::default()
    };
    grants.plugins.insert(
        "hostile".into(),
        Grant {
            http_hosts: http_hosts.to_vec(),
            ..Grant::default()
        },
    );
    let host = PluginHost::new(HostConfig::new(cache, grants)).expect("host starts");
    host.load_builtins().expect("built-ins load");
    let hostile = std::fs::read(format!("{}/hostile.wasm", env!("CSMP_PLUGIN_WASM_DIR")))
        .expect("hostile wasm");
    host.load(&hostile).expect("hostile loads");
    host
}

/// A server on 127.0.0.1 that answers every request after `delay`; returns its port.
fn slow_server(delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                std::thread::sleep(delay);
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            });
        }
    });
    port
}

/// Worker threads and sandbox slots come from one setting: with `max_concurrent_steps: 2`, a
/// fan-out of six slow steps never has more than two attempts in flight, and every item
/// succeeds on its first attempt (none fails for want of a slot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_and_slots_agree_and_attempts_wait_for_a_slot() {
    let port = slow_server(Duration::from_millis(150));
    let fan = format!(
        r#"
name: six-slow
version: 1
steps:
  - id: call
    for_each: [1, 2, 3, 4, 5, 6]
    uses: hostile@^0.1
    with: {{ mode: fetch, url: "http://127.0.0.1:{port}/" }}
"#
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("csmp.db");
    let host = host_with_slots(2, &[format!("127.0.0.1:{port}")]);
    let defs = definitions(&host, &[&fan]);
    let clock = ManualClock::at("2030-01-01T00:00:00Z").expect("valid time");
    let watch = Arc::new(Watch::default());
    let engine = engine_with(
        &path,
        &host,
        &defs,
        &clock,
        EngineConfig {
            observer: Some(watch.clone()),
            ..EngineConfig::default()
        },
    )
    .await;
    let run = engine
        .submit(NewRun {
            workflow: "six-slow".into(),
            version: None,
            inputs: json!({}),
            tenant: "acme".into(),
            requester: None,
            partition: None,
        })
        .await
        .expect("submitted");
    let status = tokio::time::timeout(GUARD, engine.wait(&run))
        .await
        .expect("ends")
        .expect("wait");
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(
        watch.most.load(Ordering::SeqCst),
        2,
        "at most the two granted slots, and both used"
    );
    let items: Vec<StepRow> = engine
        .store()
        .steps(&run)
        .await
        .expect("steps")
        .into_iter()
        .filter(|s| s.key.item().is_some())
        .collect();
    assert_eq!(items.len(), 6);
    for s in items {
        assert_eq!(
            (s.status, s.attempt),
            (StepStatus::Succeeded, 1),
            "{}",
            s.key
        );
    }
    engine.shutdown().await;
}

const SPIN_WITH_RETRY: &str = r#"
name: spin-with-retry
version: 1
steps:
  - id: call
    uses: hostile@^0.1
    timeout: 10m
    retry: { max_attempts: 3, backoff: fixed, initial_delay: 1s, max_delay: 1s }
    with: { mode: spin }
"#;

const BOOM: &str = r#"
name: boom
version: 1
steps:
  - id: once
    uses: echo@^1
    retry: { max_attempts: 2, backoff: fixed, initial_delay: 1s, max_delay: 1s }
    with: { said: "after a host fault" }
"#;

/// A panic in a step worker fails that attempt as a host fault, which is retried per the
/// step's policy; the thread lives on (a host with one slot runs everything after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_worker_fails_only_that_attempt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("csmp.db");
    let host = host_with_slots(1, &[]);
    let defs = definitions(&host, &[BOOM, CHAIN]);
    let clock = ManualClock::at("2030-01-01T00:00:00Z").expect("valid time");
    let watch = Arc::new(Watch {
        panic_at: Some(("once".into(), 1)),
        ..Watch::default()
    });
    let engine = engine_with(
        &path,
        &host,
        &defs,
        &clock,
        EngineConfig {
            observer: Some(watch.clone()),
            ..EngineConfig::default()
        },
    )
    .await;
    let new = |workflow: &str, inputs: Value| NewRun {
        workflow: workflow.into(),
        version: None,
        inputs,
        tenant: "acme".into(),
        requester: None,
        partition: None,
    };
    let run = engine
        .submit(new("boom", json!({})))
        .await
        .expect("submitted");
    let deadline = tokio::time::Instant::now() + GUARD;
    let retrying = loop {
        let steps = engine.store().steps(&run).await.expect("steps");
        if let Some(s) = steps.into_iter().find(|s| s.status == StepStatus::Retrying) {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the attempt never failed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let error = retrying.error.unwrap_or_default();
    assert!(
        error.contains("panicked") && error.contains("retried"),
        "{error}"
    );
    clock.advance(Duration::from_secs(2));
    let status = tokio::time::timeout(GUARD, engine.wait(&run))
        .await
        .expect("ends")
        .expect("wait");
    assert_eq!(status, RunStatus::Succeeded);
    // The only worker thread survived: other runs still go through it.
    for n in 0..3 {
        let other = engine
            .submit(new("chain", json!({ "n": n })))
            .await
            .expect("submitted");
        let status = tokio::time::timeout(GUARD, engine.wait(&other))
            .await
            .expect("ends")
            .expect("wait");
        assert_eq!(status, RunStatus::Succeeded);
    }
    engine.shutdown().await;
}

/// A result of attempt 1 that arrives after attempt 2 started must not take attempt 2's
/// cancellation handle: cancelling the run afterwards still interrupts attempt 2 (a plugin
/// that would spin until its ten-minute real-time deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_result_of_an_earlier_attempt_leaves_the_current_one_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("csmp.db");
    let host = host_with_slots(4, &[]);
    let defs = definitions(&host, &[SPIN_WITH_RETRY]);
    let clock = ManualClock::at("2030-01-01T00:00:00Z").expect("valid time");
    let watch = Arc::new(Watch {
        hold: Some(("call".into(), 1)),
        ..Watch::default()
    });
    let engine = engine_with(
        &path,
        &host,
        &defs,
        &clock,
        EngineConfig {
            observer: Some(watch.clone()),
            ..EngineConfig::default()
        },
    )
    .await;
    let run = engine
        .submit(NewRun {
            workflow: "spin-with-retry".into(),
            version: None,
            inputs: json!({}),
            tenant: "acme".into(),
            requester: None,
            partition: None,
        })
        .await
        .expect("submitted");
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + GUARD;
        while !done() {
            assert!(std::time::Instant::now() < deadline, "never: {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    until("attempt 1 starts", &|| watch.has_started("call", 1));
    // Attempt 1 times out (in clock time); its result is held back. Attempt 2 starts.
    clock.advance(Duration::from_secs(601));
    engine.sync().await.expect("turn");
    clock.advance(Duration::from_secs(2));
    engine.sync().await.expect("turn");
    until("attempt 2 starts", &|| watch.has_started("call", 2));
    // Attempt 1's late result arrives now.
    watch.release();
    engine.sync().await.expect("turn");
    engine.sync().await.expect("turn");
    engine.cancel(&run).await.expect("cancel");
    let status = tokio::time::timeout(GUARD, engine.wait(&run))
        .await
        .expect("attempt 2 was interrupted")
        .expect("wait");
    assert_eq!(status, RunStatus::Cancelled);
    engine.shutdown().await;
}

const CANCEL_SAGA: &str = r#"
name: cancel-saga
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
  - id: gate
    needs: [two]
    approval: { roles: [operator] }
on_failure:
  - id: report
    uses: echo@^1
    with: { error: "{{ run.error }}" }
"#;

/// The compensations that ran, in the order they started.
fn undone_in_order(
    events: &mut tokio::sync::broadcast::Receiver<csmp::runtime::RunEvent>,
    steps: &BTreeMap<String, StepRow>,
) -> Vec<String> {
    let mut started = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let Some(key) = e
            .step
            .filter(|k| k.starts_with('~') && e.status == "running")
        {
            started.push(key);
        }
    }
    started
        .iter()
        .map(|k| {
            steps[k]
                .output
                .as_ref()
                .and_then(|o| o["undo"].as_str())
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// Cancelling interrupts what waits, then undoes what was done, newest first, then runs
/// `on_failure`; with `compensate: false` it only stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_compensates_newest_first_then_runs_on_failure_unless_told_not_to() {
    let h = start(&[CANCEL_SAGA]).await;
    let mut events = h.engine.subscribe();
    let id = h.submit("cancel-saga", json!({})).await;
    h.wait_for_status(&id, "gate", StepStatus::Waiting).await;
    h.engine.cancel(&id).await.expect("cancel");
    assert_eq!(h.finish(&id).await, RunStatus::Cancelled);
    let steps = h.steps(&id).await;
    assert_eq!(steps["gate"].status, StepStatus::Cancelled);
    assert_eq!(
        undone_in_order(&mut events, &steps),
        ["two-b", "two-a", "one"]
    );
    let report = steps["!report"].output.clone().expect("on_failure ran");
    assert_eq!(report["error"], "cancelled");

    let plain = h.submit("cancel-saga", json!({})).await;
    h.wait_for_status(&plain, "gate", StepStatus::Waiting).await;
    h.engine
        .cancel_with(&plain, false, None)
        .await
        .expect("cancel");
    assert_eq!(h.finish(&plain).await, RunStatus::Cancelled);
    let steps = h.steps(&plain).await;
    assert!(
        steps
            .keys()
            .all(|k| !k.starts_with('~') && !k.starts_with('!')),
        "nothing undone, no on_failure: {:?}",
        steps.keys().collect::<Vec<_>>()
    );
}

/// Commands wait in a bounded queue: while the executor is held in a commit (a second
/// connection keeps SQLite's write lock), a command past the queue's size is refused at once
/// as busy instead of piling up; those queued go through once the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_command_queue_refuses_at_once() {
    use sqlx::Connection as _;
    let h = start(&[LATE_SIGNAL]).await;
    h.engine.shutdown().await;
    let engine = engine_with(
        &h.path,
        &h.host,
        &h.defs,
        &h.clock,
        EngineConfig {
            owner: "queue".into(),
            command_queue: 2,
            ..EngineConfig::default()
        },
    )
    .await;
    let run = engine
        .submit(NewRun {
            workflow: "late-signal".into(),
            version: None,
            inputs: json!({}),
            tenant: "acme".into(),
            requester: None,
            partition: None,
        })
        .await
        .expect("submitted");
    let mut lock = sqlx::SqliteConnection::connect(&format!("sqlite://{}", h.path.display()))
        .await
        .expect("a second connection");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .expect("the write lock");

    let send = |n: i64| {
        let (engine, run) = (engine.clone(), run.clone());
        tokio::spawn(async move { engine.signal(&run, "go", json!(n), None).await })
    };
    let first = send(0);
    let deadline = tokio::time::Instant::now() + GUARD;
    while engine.queued_commands() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the loop never took the first command"
        );
        tokio::task::yield_now().await;
    }
    // The loop now waits on the lock; the queue fills, then refuses.
    let mut tasks = vec![first];
    let mut refused = None;
    for n in 1..20 {
        let task = send(n);
        tokio::time::sleep(Duration::from_millis(5)).await;
        if task.is_finished() {
            refused = Some(task.await.expect("joined"));
            break;
        }
        tasks.push(task);
    }
    let refused = refused.expect("a command past the queue is refused");
    assert!(matches!(&refused, Err(EngineError::Busy(2))), "{refused:?}");
    sqlx::query("ROLLBACK")
        .execute(&mut lock)
        .await
        .expect("release");
    for task in tasks {
        task.await
            .expect("joined")
            .expect("queued commands go through");
    }
    engine.shutdown().await;
}
