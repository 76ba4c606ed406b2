//! Escalation policies on a [`ManualClock`](csmp::runtime::ManualClock): the example
//! `escalate-incident` workflow follows a three-level policy (written here, on the receivers'
//! channels) and each level is paged at its moment, an acknowledgement stops the paging, and
//! a raised severity pages the current level again. The `kill -9` case runs a real process
//! (`api/escalation_crash.rs`).

use std::time::Duration;

use csmp::runtime::{Clock as _, IncidentSteer, NewRun};
use csmp::store::{RunRow, RunStatus, StepStatus};
use serde_json::{Value, json};

use crate::examples_run::{Examples, examples};
use crate::runtime::GUARD;

/// Three people, one per receiver channel, and a policy on `shop`: `l1` for 5 minutes, then
/// `l2` for 10, then `ops` for 15.
const ONCALL: &str = r#"
users:
  - { id: first, contacts: [{ type: slack, secret: notify_l1 }] }
  - { id: second, contacts: [{ type: slack, secret: notify_l2 }] }
  - { id: third, contacts: [{ type: slack, secret: notify_ops }] }
escalation_policies:
  - id: shop
    services: [shop]
    levels:
      - { delay: 5m, targets: [{ user: first }] }
      - { delay: 10m, targets: [{ user: second }] }
      - { delay: 15m, targets: [{ user: third }] }
"#;

fn oncall(yaml: &str) -> csmp::oncall::OnCall {
    let mut diags = csmp::diag::Diagnostics::default();
    let Some(csmp::dsl::Definition::OnCall(file)) =
        csmp::dsl::decode_any(yaml.as_bytes(), &mut diags)
    else {
        panic!("an on-call file: {diags:?}");
    };
    csmp::oncall::plan(vec![(file, diags)]).expect("the on-call set plans")
}

async fn with_policy(yaml: &str) -> Examples {
    let ex = examples().await;
    ex.engine.set_oncall(oncall(yaml));
    ex
}

/// Every run of `page`, oldest first.
async fn pages(ex: &Examples) -> Vec<RunRow> {
    let mut runs: Vec<RunRow> = ex
        .engine
        .store()
        .runs(1000)
        .await
        .expect("runs")
        .into_iter()
        .filter(|r| r.workflow == "page")
        .collect();
    runs.sort_by_key(|r| (r.created_at, r.inputs["level"].as_i64()));
    runs
}

/// Runs `run` to its end, moving the clock to its next timer only while no other run has
/// work in flight (a page being delivered): every page is delivered at the instant it is sent.
async fn drive(ex: &Examples, run: &str) -> (RunStatus, Value) {
    tokio::time::timeout(GUARD, async {
        loop {
            ex.engine.sync().await.expect("executor turn");
            let row = ex
                .engine
                .store()
                .run(run)
                .await
                .expect("run")
                .expect("exists");
            if row.status.is_final() {
                return (
                    row.status,
                    row.outputs.unwrap_or_else(|| json!({ "error": row.error })),
                );
            }
            let pending = pages(ex).await.iter().any(|p| !p.status.is_final());
            let next = ex
                .steps(run)
                .await
                .values()
                .filter(|s| s.status == StepStatus::Waiting)
                .filter_map(|s| s.wake_at)
                .min();
            match next {
                Some(t) if !pending => ex.clock.set(t),
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("run {run} did not end"))
}

/// Waits until `n` pages were sent and delivered.
async fn delivered(ex: &Examples, n: usize) -> Vec<RunRow> {
    tokio::time::timeout(GUARD, async {
        loop {
            ex.engine.sync().await.expect("executor turn");
            let p = pages(ex).await;
            if p.len() >= n && p.iter().all(|r| r.status.is_final()) {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{n} pages were never delivered"))
}

async fn report(ex: &Examples, title: &str) -> String {
    ex.submit(
        "escalate-incident",
        json!({ "title": title, "service": "shop" }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_ack_each_level_is_paged_at_its_moment_and_then_the_policy_is_spent() {
    let ex = with_policy(ONCALL).await;
    let start = ex.clock.now_ms();
    let run = report(&ex, "checkout errors").await;
    let (status, out) = drive(&ex, &run).await;
    assert_eq!(status, RunStatus::Succeeded, "{out}");
    assert_eq!(out["outcome"], "exhausted", "{out}");

    let pages = pages(&ex).await;
    let sent: Vec<(i64, &str, i64)> = pages
        .iter()
        .map(|p| {
            (
                (p.created_at - start) / 60_000,
                p.inputs["person"].as_str().unwrap_or_default(),
                p.inputs["level"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        sent,
        [(0, "first", 1), (5, "second", 2), (15, "third", 3)],
        "minutes after the start, who, which level"
    );
    assert!(pages.iter().all(|p| p.status == RunStatus::Succeeded));
    assert_eq!(
        ex.clock.now_ms() - start,
        30 * 60_000,
        "the policy ends when the last level's 15 minutes run out"
    );
    let channels: Vec<String> = ex.messages().into_iter().map(|(c, _)| c).collect();
    assert_eq!(channels, ["l1", "l2", "ops"]);
    let incident = ex.incident(&out["incident"]).await;
    assert_eq!(incident.status, "triggered", "nobody acknowledged it");
    let notes: Vec<&str> = incident
        .timeline
        .as_array()
        .expect("a timeline")
        .iter()
        .filter_map(|e| e["note"].as_str())
        .collect();
    assert_eq!(notes.len(), 5, "{notes:?}");
    assert!(
        notes[1].starts_with("paged first (slack) at level 1"),
        "{notes:?}"
    );
    assert!(
        notes[2].starts_with("escalated: paged second (slack) at level 2"),
        "{notes:?}"
    );
    assert!(
        notes[4].contains("is spent: nobody acknowledged"),
        "{notes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_stops_the_paging() {
    let ex = with_policy(ONCALL).await;
    let run = report(&ex, "checkout errors").await;
    let first = delivered(&ex, 1).await;
    assert_eq!(first.len(), 1);
    ex.clock.advance(Duration::from_secs(4 * 60));
    let incident = first[0].inputs["incident"]
        .as_str()
        .expect("an incident id")
        .to_string();
    let acked = ex
        .engine
        .steer_incident(&incident, IncidentSteer::Acknowledge, "lee", None, None)
        .await
        .expect("acknowledged");
    assert_eq!(acked.status, "acknowledged");
    let (status, out) = drive(&ex, &run).await;
    assert_eq!(status, RunStatus::Succeeded, "{out}");
    assert_eq!(out["outcome"], "acknowledged");
    assert_eq!(out["acknowledged_by"], "lee");
    assert_eq!(pages(&ex).await.len(), 1, "nobody else was paged");
    let text = &ex.messages()[0].1;
    assert!(
        text.starts_with("[sev3] checkout errors (shop): level 1 of shop; acknowledge incident"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raised_severity_pages_the_current_level_again() {
    let ex = with_policy(ONCALL).await;
    let workflow = r#"name: raise
version: 1
steps:
  - id: open
    incident: { action: open, title: disk full, severity: sev3, service: shop }
  - id: page
    needs: [open]
    escalate: { incident: "{{ steps.open.output.id }}" }
  - id: later
    needs: [open]
    wait: 2m
  - id: worse
    needs: [later]
    incident: { action: update, id: "{{ steps.open.output.id }}", severity: sev1 }
  - id: done
    needs: [worse]
    incident: { action: resolve, id: "{{ steps.open.output.id }}" }
outputs:
  page: "{{ steps.page.output }}"
"#;
    crate::examples_run::define(&ex, workflow).await;
    let run = ex
        .engine
        .submit(NewRun {
            workflow: "raise".into(),
            version: None,
            inputs: json!({}),
            tenant: "acme".into(),
            requester: None,
            partition: None,
        })
        .await
        .expect("accepted");
    let (status, out) = drive(&ex, &run).await;
    assert_eq!(status, RunStatus::Succeeded, "{out}");
    assert_eq!(out["page"]["outcome"], "resolved", "{out}");
    delivered(&ex, 2).await;
    let texts: Vec<String> = ex.messages().into_iter().map(|(_, t)| t).collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts[0].starts_with("[sev3] disk full"), "{texts:?}");
    assert!(texts[1].starts_with("[sev1] disk full"), "{texts:?}");
    let pages = pages(&ex).await;
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[1].inputs["level"], 1, "the same level, again");
}
