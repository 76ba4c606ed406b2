//! The example workflows that need no cloud run to completion through the library engine,
//! against local stand-ins for the notification endpoints they call (`receivers.rs`), with the
//! secrets and grants an operator would set. Long waits pass on a
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
use crate::receivers::Receivers;
use crate::runtime::GUARD;

/// The built-in plugins, with `http` and `notify` granted the receivers' exact address and
/// `notify` its `notify_*` secrets: the grants an operator writes for these examples.
fn example_host(receivers: &str) -> PluginHost {
    let cache = crate::helpers::plugin_cache();
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
pub(crate) struct Examples {
    _dir: tempfile::TempDir,
    pub(crate) engine: Engine,
    pub(crate) clock: ManualClock,
    pub(crate) api: Receivers,
    host: PluginHost,
}

pub(crate) async fn examples() -> Examples {
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
    let engine = Engine::start(store, host.clone(), defs, Arc::new(clock.clone()), config)
        .await
        .expect("engine starts");
    Examples {
        _dir: dir,
        engine,
        clock,
        api,
        host,
    }
}

/// Validates `yaml` against the examples' plugins and workflows, stores it and makes it
/// runnable.
pub(crate) async fn define(ex: &Examples, yaml: &str) {
    let files = validate::collect_files(&[repo_root().join("workflows")]).expect("workflows/");
    let known = validate::validate_files(&files, &ex.host.index());
    let mut names = csmp::plan::WorkflowNames::new();
    for p in &known.plans {
        names
            .entry(p.name().to_string())
            .or_default()
            .push(p.version());
    }
    let plan = csmp::plan::validate_workflow(
        yaml.as_bytes(),
        csmp::plan::Env {
            plugins: &ex.host.index(),
            workflows: Some(&names),
        },
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    ex.engine
        .store()
        .put_workflow(plan.name(), plan.version(), yaml, 0, None)
        .await
        .expect("stored");
    ex.engine.define(plan).await.expect("defined");
}

impl Examples {
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
            .unwrap_or_else(|e| panic!("{workflow} not accepted: {e}"))
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

    /// Runs `run` to its end: whenever no plugin attempt is in flight, moves the clock to the
    /// next timer (a wait, a retry back-off, a signal or approval timeout). Returns the final
    /// status and the outputs (or the error).
    pub(crate) async fn drive(&self, run: &str) -> (RunStatus, Value) {
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

    pub(crate) async fn incident(&self, id: &Value) -> csmp::store::IncidentRow {
        let id = id.as_str().expect("an incident id");
        self.engine
            .store()
            .incident(id)
            .await
            .expect("read")
            .expect("exists")
    }

    pub(crate) fn messages(&self) -> Vec<(String, String)> {
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
