//! The example workflows that need no cloud run to completion through the library engine,
//! against local stand-ins for the notification endpoints they call (`receivers.rs`), with the
//! secrets and grants an operator would set. Long waits (up to 45 min) pass on a
//! [`ManualClock`]: whenever no plugin attempt is in flight, the test moves the clock to the
//! next timer. The examples that drive AWS run against moto instead (`moto.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use csmp::cli::validate;
use csmp::plugin::{Grant, Grants, HostConfig, PluginHost};
use csmp::runtime::{Definitions, Engine, EngineConfig, ManualClock, NewRun};
use csmp::store::{Durability, RunStatus, StepRow, StepStatus, Store};
use serde_json::{Value, json};

use crate::helpers::repo_root;
use crate::receivers::{ROUTING_KEY, Receivers};
use crate::runtime::GUARD;

/// The built-in plugins, with `http` and `notify` granted the receivers' exact address and
/// `notify` its `notify_*` secrets: the grants an operator writes for these examples.
fn example_host(receivers: &str) -> PluginHost {
    let cache = format!("{}/plugin-cache", env!("CARGO_TARGET_TMPDIR"));
    let mut grants = Grants::default();
    for (plugin, secrets) in [("http", vec![]), ("notify", vec!["notify_*".to_string()])] {
        grants.plugins.insert(
            plugin.into(),
            Grant {
                http_hosts: vec![receivers.into()],
                secrets,
                ..Grant::default()
            },
        );
    }
    let host = PluginHost::new(HostConfig::new(cache, grants)).expect("host starts");
    host.load_builtins().expect("built-ins load");
    host
}

/// The example workflows on an engine whose secrets point at the receivers.
struct Examples {
    _dir: tempfile::TempDir,
    engine: Engine,
    clock: ManualClock,
    api: Receivers,
}

async fn examples() -> Examples {
    let api = Receivers::start().await;
    let host = example_host(api.authority());
    let files = validate::collect_files(&[repo_root().join("workflows")]).expect("workflows/");
    let outcome = validate::validate_files(&files, &host.index());
    assert_eq!(outcome.errors(), 0, "{}", validate::render_text(&outcome));
    let mut defs = Definitions::default();
    for plan in outcome.plans {
        defs.insert(plan);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("csmp.db"), Durability::Full)
        .await
        .expect("store opens");
    let clock = ManualClock::at("2030-01-01T00:00:00Z").expect("valid time");
    let config = EngineConfig {
        secrets: api.secrets(),
        ..EngineConfig::default()
    };
    let engine = Engine::start(store, host, defs, Arc::new(clock.clone()), config)
        .await
        .expect("engine starts");
    Examples {
        _dir: dir,
        engine,
        clock,
        api,
    }
}

impl Examples {
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
            .unwrap_or_else(|e| panic!("{workflow} not accepted: {e}"))
    }

    async fn steps(&self, run: &str) -> BTreeMap<String, StepRow> {
        self.engine
            .store()
            .steps(run)
            .await
            .expect("steps")
            .into_iter()
            .map(|s| (s.key.to_string(), s))
            .collect()
    }

    /// Runs `run` to its end: whenever no plugin attempt is in flight, moves the clock to the
    /// next timer (a wait, a retry back-off, a signal or approval timeout). Returns the final
    /// status and the outputs (or the error).
    async fn drive(&self, run: &str) -> (RunStatus, Value) {
        tokio::time::timeout(GUARD, async {
            loop {
                self.engine.sync().await.expect("executor turn");
                let row = self
                    .engine
                    .store()
                    .run(run)
                    .await
                    .expect("run")
                    .expect("exists");
                if row.status.is_final() {
                    let out = row.outputs.unwrap_or_else(|| json!({ "error": row.error }));
                    return (row.status, out);
                }
                let steps = self.steps(run).await;
                let busy = steps.values().any(|s| s.status == StepStatus::Running);
                let next = steps
                    .values()
                    .filter(|s| matches!(s.status, StepStatus::Waiting | StepStatus::Retrying))
                    .filter_map(|s| s.wake_at)
                    .min();
                match next {
                    Some(t) if !busy => self.clock.set(t),
                    _ => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("run {run} did not end"))
    }

    async fn wait_for(&self, run: &str, key: &str, status: StepStatus) {
        tokio::time::timeout(GUARD, async {
            while self.steps(run).await.get(key).map(|s| s.status) != Some(status) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{key} never became {status:?}"));
    }

    async fn incident(&self, id: &Value) -> csmp::store::IncidentRow {
        let id = id.as_str().expect("an incident id");
        self.engine
            .store()
            .incident(id)
            .await
            .expect("read")
            .expect("exists")
    }

    fn messages(&self) -> Vec<(String, String)> {
        self.api.state().messages.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_runs_to_completion() {
    let ex = examples().await;
    let id = ex
        .submit("hello", json!({"who": "operator", "times": 3}))
        .await;
    let (status, out) = ex.drive(&id).await;
    assert_eq!(status, RunStatus::Succeeded, "{out}");
    assert_eq!(out, json!({"greeting": "hello, operator", "repeated": 3}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalate_incident_stops_at_the_first_acknowledgement() {
    let ex = examples().await;
    let id = ex
        .submit(
            "escalate-incident",
            json!({"title": "checkout errors", "service": "shop"}),
        )
        .await;
    ex.wait_for(&id, "ack-1", StepStatus::Waiting).await;
    ex.engine
        .signal(&id, "ack", json!({"by": "lee"}), None)
        .await
        .expect("delivered");
    let (status, out) = ex.drive(&id).await;
    assert_eq!(status, RunStatus::Succeeded, "{out}");
    assert_eq!(out["acknowledged_at_level_1"], json!(true));
    assert_eq!(
        ex.messages(),
        [(
            "l1".into(),
            "[sev3] checkout errors: acknowledge within 15 minutes".into()
        )]
    );
    assert!(ex.api.state().pages.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalate_incident_pages_the_manager_after_45_unacknowledged_minutes() {
    let ex = examples().await;
    let start = csmp::runtime::Clock::now_ms(&ex.clock);
    let id = ex
        .submit(
            "escalate-incident",
            json!({"title": "checkout errors", "service": "shop"}),
        )
        .await;
    let (status, out) = ex.drive(&id).await;
    assert_eq!(status, RunStatus::Succeeded, "{out}");
    assert_eq!(out["acknowledged_at_level_1"], json!(false));
    assert_eq!(csmp::runtime::Clock::now_ms(&ex.clock) - start, 45 * 60_000);
    let channels: Vec<String> = ex.messages().into_iter().map(|(c, _)| c).collect();
    assert_eq!(channels, ["l1", "l2"]);
    let pages = ex.api.state().pages.clone();
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0]["routing_key"], ROUTING_KEY);
    assert_eq!(pages[0]["payload"]["severity"], "critical");
    assert_eq!(pages[0]["payload"]["source"], "shop");
    assert_eq!(
        pages[0]["payload"]["summary"],
        "checkout errors: unacknowledged for 45 minutes"
    );
    assert_eq!(ex.incident(&out["incident"]).await.severity, "sev2");
}
