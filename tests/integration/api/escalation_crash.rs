//! An escalation survives `kill -9` between its levels: a real `csmp serve` pages level 1 of a
//! three-level policy, is killed with SIGKILL while the unit waits for level 2, and the
//! restarted process pages levels 2 and 3 — each person exactly once, in order.

use std::path::Path;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use serde_json::json;

use super::harness::{GUARD, receiver, s};
use super::process::{Served, cli_token};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("a directory");
    std::fs::write(path, text).expect("written");
}

#[test]
fn an_escalation_killed_between_levels_pages_each_level_once_after_the_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = crate::helpers::repo_root();
    for wf in ["page.yaml", "escalate-incident.yaml"] {
        let text = std::fs::read_to_string(root.join("workflows").join(wf)).expect("an example");
        write(&dir.path().join("workflows").join(wf), &text);
    }
    std::fs::create_dir_all(dir.path().join("catalog")).expect("a catalog directory");
    // Level 1 waits long enough for the kill to fall inside it; levels 2 and 3 are short.
    write(
        &dir.path().join("oncall/three.yaml"),
        r#"users:
  - { id: one, contacts: [{ type: webhook, secret: notify_l1 }] }
  - { id: two, contacts: [{ type: webhook, secret: notify_l2 }] }
  - { id: three, contacts: [{ type: webhook, secret: notify_l3 }] }
escalation_policies:
  - id: three-levels
    services: [shop]
    levels:
      - { delay: 15s, targets: [{ user: one }] }
      - { delay: 1s, targets: [{ user: two }] }
      - { delay: 1s, targets: [{ user: three }] }
"#,
    );
    let (authority, hits) = receiver("text/plain", "ok");
    write(
        &dir.path().join("grants.yaml"),
        &format!(
            "plugins:\n  notify:\n    http_hosts: [\"{authority}\"]\n    secrets: [\"notify_*\"]\n"
        ),
    );
    let urls: Vec<(String, String)> = ["l1", "l2", "l3"]
        .iter()
        .map(|c| {
            (
                format!("CSMP_SECRET_NOTIFY_{}", c.to_uppercase()),
                format!("http://{authority}/hooks/{c}"),
            )
        })
        .collect();
    let env: Vec<(&str, &str)> = urls.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let oncall = dir.path().join("oncall");
    let grants = dir.path().join("grants.yaml");
    let args = [
        "--oncall",
        oncall.to_str().expect("a UTF-8 path"),
        "--grants",
        grants.to_str().expect("a UTF-8 path"),
    ];
    let admin = cli_token(&dir.path().join("csmp.db"), &["--role", "admin"]);
    let received = || hits.lock().unwrap_or_else(PoisonError::into_inner).clone();

    let first = Served::start_with(dir.path(), "before-the-kill", &args, &env);
    let started = first
        .post("/v1/runs")
        .auth(&admin)
        .json(&json!({ "workflow": "escalate-incident", "inputs": { "title": "cart down", "service": "shop" } }))
        .send()
        .expect(202);
    let run = s(&started, "id");
    // Level 1's page is delivered and recorded; the escalation waits for level 2.
    first.wait_for(
        &admin,
        "/v1/runs?workflow=page",
        "the level-1 page to succeed",
        |l| {
            l["items"]
                .as_array()
                .is_some_and(|items| items.len() == 1 && items[0]["status"] == "succeeded")
        },
    );
    let waiting = first
        .get(&format!("/v1/runs/{run}"))
        .auth(&admin)
        .send()
        .expect(200);
    let page = super::harness::step(&waiting, "page").expect("the escalate step");
    assert_eq!(page["status"], "waiting", "{waiting}");
    assert_eq!(
        received(),
        ["/hooks/l1"],
        "only level 1 was paged before the kill"
    );
    first.kill_9();

    let second = Served::start_with(dir.path(), "after-the-kill", &args, &env);
    let done = second.wait_run(&admin, &run, "succeeded");
    assert_eq!(done["outputs"]["outcome"], "exhausted", "{done}");
    let deadline = Instant::now() + GUARD;
    while received().len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        received(),
        ["/hooks/l1", "/hooks/l2", "/hooks/l3"],
        "each level paged once, in order"
    );
}
