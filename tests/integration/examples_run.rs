//! Every example in `workflows/` runs to completion, through the library engine, against a
//! local emulator of the endpoints it calls (`cloud_api.rs`), with the secrets and grants an
//! operator would set. Long waits (30 s to 45 min) pass on a [`ManualClock`]: whenever no
//! plugin attempt is in flight, the test moves the clock to the next timer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use csmp::cli::validate;
use csmp::plugin::{Grant, Grants, HostConfig, PluginHost};
use csmp::runtime::{Definitions, Engine, EngineConfig, ManualClock, NewRun};
use csmp::store::{Durability, RunStatus, StepRow, StepStatus, Store};
use serde_json::{Value, json};

use crate::cloud_api::{Cloud, CloudApi, Host, ROUTING_KEY, Service};
use crate::helpers::repo_root;
use crate::runtime::GUARD;

/// The built-in plugins, with `http` and `notify` granted the emulator's address and `notify`
/// its `notify_*` secrets: the grants an operator writes for these examples.
fn example_host() -> PluginHost {
    let cache = format!("{}/plugin-cache", env!("CARGO_TARGET_TMPDIR"));
    let mut grants = Grants::default();
    for (plugin, secrets) in [("http", vec![]), ("notify", vec!["notify_*".to_string()])] {
        grants.plugins.insert(
            plugin.into(),
            Grant {
                http_hosts: vec!["127.0.0.1".into()],
                secrets,
                ..Grant::default()
            },
        );
    }
    let host = PluginHost::new(HostConfig::new(cache, grants)).expect("host starts");
    host.load_builtins().expect("built-ins load");
    host
}

/// The example workflows on an engine whose secrets point at a cloud emulator.
struct Examples {
    _dir: tempfile::TempDir,
    engine: Engine,
    clock: ManualClock,
    api: CloudApi,
}

async fn examples(cloud: Cloud) -> Examples {
    let api = CloudApi::start(cloud).await;
    let host = example_host();
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

fn cloud() -> Cloud {
    Cloud {
        quota: 20,
        capacity: BTreeMap::from([
            ("small".into(), 20),
            ("medium".into(), 10),
            ("large".into(), 2),
        ]),
        services: BTreeMap::from([
            (
                "web".into(),
                Service {
                    replicas: 2,
                    rolling_out: 0,
                },
            ),
            (
                "search".into(),
                Service {
                    replicas: 9,
                    rolling_out: 0,
                },
            ),
        ]),
        hosts: BTreeMap::from([
            (
                "web-1".into(),
                Host {
                    service: "web".into(),
                    cpu: 96.0,
                },
            ),
            (
                "search-3".into(),
                Host {
                    service: "search".into(),
                    cpu: 99.0,
                },
            ),
        ]),
        ..Cloud::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_runs_to_completion() {
    let ex = examples(cloud()).await;
    let id = ex
        .submit("hello", json!({"who": "operator", "times": 3}))
        .await;
    let (status, out) = ex.drive(&id).await;
    assert_eq!(status, RunStatus::Succeeded, "{out}");
    assert_eq!(out, json!({"greeting": "hello, operator", "repeated": 3}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_vms_creates_the_machines_lets_them_settle_and_tells_ops() {
    let ex = examples(cloud()).await;
    let id = ex
        .submit(
            "provision-vms",
            json!({"count": 3, "size": "small", "project": "web"}),
        )
        .await;
    let (status, out) = ex.drive(&id).await;
    assert_eq!(status, RunStatus::Succeeded, "{out}");
    let mut ids: Vec<String> = out["instance_ids"]
        .as_array()
        .expect("a list of ids")
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    ids.sort();
    assert_eq!(ids, ["i-0001", "i-0002", "i-0003"]);
    let steps = ex.steps(&id).await;
    assert_eq!(
        steps["approve"].status,
        StepStatus::Skipped,
        "3 machines need no approval"
    );
    assert_eq!(steps["settle"].output, Some(json!({"waited_ms": 30_000})));
    {
        let cloud = ex.api.state();
        assert_eq!(cloud.instances.len(), 3);
        assert!(
            cloud
                .instances
                .values()
                .all(|i| i.project == "web" && i.size == "small")
        );
    }
    assert_eq!(
        ex.messages(),
        [("ops".into(), "3 small machines ready for acme".into())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_vms_asks_an_operator_for_a_large_order() {
    let ex = examples(cloud()).await;
    let id = ex
        .submit("provision-vms", json!({"count": 12, "size": "small"}))
        .await;
    ex.wait_for(&id, "approve", StepStatus::Waiting).await;
    ex.engine
        .approve(&id, "approve", true, "olivia")
        .await
        .expect("approved");
    let (status, out) = ex.drive(&id).await;
    assert_eq!(status, RunStatus::Succeeded, "{out}");
    assert_eq!(out["instance_ids"].as_array().map(Vec::len), Some(12));
    assert_eq!(ex.api.state().instances.len(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_vms_without_capacity_deletes_what_it_made_and_pages_ops() {
    let ex = examples(cloud()).await;
    // Two large machines fit; the third is refused (409), so the run fails and compensates.
    let id = ex
        .submit("provision-vms", json!({"count": 3, "size": "large"}))
        .await;
    let (status, out) = ex.drive(&id).await;
    assert_eq!(status, RunStatus::Failed, "{out}");
    {
        let cloud = ex.api.state();
        assert!(cloud.instances.is_empty(), "{:?}", cloud.instances);
        assert_eq!(cloud.deleted.len(), 2);
        assert_eq!(cloud.capacity["large"], 2);
    }
    let messages = ex.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0].0, "ops");
    assert!(
        messages[0].1.contains("failed") && messages[0].1.contains("no capacity left"),
        "{messages:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_vms_over_quota_stops_before_creating_anything() {
    let ex = examples(Cloud {
        quota: 2,
        ..cloud()
    })
    .await;
    let id = ex
        .submit("provision-vms", json!({"count": 3, "size": "small"}))
        .await;
    let (status, out) = ex.drive(&id).await;
    assert_eq!(status, RunStatus::Failed, "{out}");
    assert!(
        out["error"]
            .as_str()
            .is_some_and(|e| e.contains("step `quota` failed")),
        "{out}"
    );
    assert_eq!(ex.api.state().created, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_service_scales_waits_for_the_rollout_and_reports() {
    let ex = examples(cloud()).await;
    let id = ex
        .submit("scale-service", json!({"service": "web", "replicas": 4}))
        .await;
    let (status, out) = ex.drive(&id).await;
    assert_eq!(status, RunStatus::Succeeded, "{out}");
    assert_eq!(out, json!({"previous_replicas": 2, "healthy": true}));
    let steps = ex.steps(&id).await;
    assert_eq!(steps["rollout"].output, Some(json!({"waited_ms": 60_000})));
    assert_eq!(
        steps["verify"].attempt, 2,
        "the first probe met the rollout and was retried"
    );
    assert_eq!(ex.api.state().services["web"].replicas, 4);
    assert_eq!(
        ex.messages(),
        [("ops".into(), "web now runs 4 replicas (was 2)".into())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remediate_high_cpu_resolves_when_capacity_helps() {
    let ex = examples(cloud()).await;
    let id = ex
        .submit(
            "remediate-high-cpu",
            json!({"host": "web-1", "service": "web", "cpu": 96}),
        )
        .await;
    let (status, out) = ex.drive(&id).await;
    assert_eq!(status, RunStatus::Succeeded, "{out}");
    assert_eq!(out["resolved"], json!(true));
    let steps = ex.steps(&id).await;
    assert_eq!(steps["settle"].output, Some(json!({"waited_ms": 300_000})));
    assert_eq!(
        steps["check"]
            .output
            .as_ref()
            .map(|o| o["body"]["cpu"].clone()),
        Some(json!(64.0))
    );
    assert_eq!(ex.incident(&out["incident"]).await.status, "resolved");
    assert!(ex.messages().is_empty(), "nobody is paged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remediate_high_cpu_escalates_when_capacity_does_not_help() {
    let ex = examples(cloud()).await;
    let id = ex
        .submit(
            "remediate-high-cpu",
            json!({"host": "search-3", "service": "search"}),
        )
        .await;
    let (status, out) = ex.drive(&id).await;
    assert_eq!(status, RunStatus::Succeeded, "{out}");
    assert_eq!(out["resolved"], json!(false));
    let incident = ex.incident(&out["incident"]).await;
    assert_eq!(
        (incident.status.as_str(), incident.severity.as_str()),
        ("open", "sev2")
    );
    assert_eq!(
        ex.messages(),
        [(
            "oncall".into(),
            "High CPU on search-3 persists after automatic scale-out".into()
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalate_incident_stops_at_the_first_acknowledgement() {
    let ex = examples(cloud()).await;
    let id = ex
        .submit(
            "escalate-incident",
            json!({"title": "checkout errors", "service": "shop"}),
        )
        .await;
    ex.wait_for(&id, "ack-1", StepStatus::Waiting).await;
    ex.engine
        .signal(&id, "ack", json!({"by": "lee"}))
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
    let ex = examples(cloud()).await;
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
