//! Several real `csmp serve` processes on one real PostgreSQL database (a cluster this test
//! process starts itself, `synchronous_commit=on`): they share the partitions, a process
//! killed with SIGKILL loses no run and re-runs no completed step, a process stopped past its
//! lease writes nothing more and lets go, every cron instant fires exactly once across a kill,
//! commands reach the process holding the run, and an API-only process works with two
//! executors.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::json;

use super::harness::{GUARD, Token, receiver, s, step};
use super::postgres::{finished, setup};
use super::process::{Served, cli_token, finish_steer};

/// A lease this short makes a failover take seconds; the renewal runs every third of it.
const LEASE: &str = "2s";

/// Two plugin steps around a durable wait; the second one calls the counting server, so a
/// second execution of it would be seen.
fn shared_work(authority: &str) -> String {
    format!(
        r#"name: shared-work
version: 1
inputs:
  type: object
  required: [n]
  properties: {{ n: {{ type: integer }} }}
steps:
  - id: first
    uses: echo@^1
    with: {{ n: "{{{{ inputs.n }}}}" }}
  - id: nap
    needs: [first]
    wait: 4s
  - id: second
    needs: [nap]
    uses: http@^1
    with: {{ method: POST, url: "http://{authority}/hit/{{{{ run.id }}}}" }}
outputs:
  n: "{{{{ steps.first.output.n }}}}"
"#
    )
}

/// Any webhook alert starts a run of `hello` for the service it names.
const WAKE: &str = r#"name: wake
match:
  source: [webhook]
group_wait: 0s
then:
  - workflow: hello
    inputs: { who: "{{ alert.labels.service }}" }
"#;

/// Uploaded while the processes run.
const LATE: &str = r#"name: late
version: 1
steps:
  - id: say
    uses: echo@^1
    with: { said: late }
outputs:
  said: "{{ steps.say.output.said }}"
"#;

/// Every instant of every second (each fire starts a run, even while the last one goes on).
const TICK: &str = r#"name: tick
version: 1
triggers:
  - cron: "* * * * * *"
    overlap: allow
steps:
  - id: say
    uses: echo@^1
    with: { at: "{{ run.id }}" }
"#;

/// The definitions and the grants file the processes share.
struct Site {
    dir: tempfile::TempDir,
    url: String,
    data: String,
    grants: String,
    hits: Arc<Mutex<Vec<String>>>,
}

impl Site {
    fn new(extra: &[(&str, String)]) -> Self {
        let (dir, url, data) = setup();
        let (authority, hits) = receiver("application/json", "{}");
        let workflows = dir.path().join("workflows");
        std::fs::write(workflows.join("shared-work.yaml"), shared_work(&authority))
            .expect("a workflow");
        for (name, text) in extra {
            std::fs::write(workflows.join(name), text).expect("a workflow");
        }
        std::fs::create_dir_all(dir.path().join("rules")).expect("a rules directory");
        std::fs::write(dir.path().join("rules/wake.yaml"), WAKE).expect("a rule");
        let grants = dir.path().join("grants.yaml");
        std::fs::write(
            &grants,
            format!("plugins:\n  http:\n    http_hosts: [\"{authority}\"]\n"),
        )
        .expect("grants");
        Self {
            dir,
            url,
            data,
            grants: grants.display().to_string(),
            hits,
        }
    }

    fn db(&self) -> &Path {
        Path::new(&self.url)
    }

    fn token(&self, args: &[&str]) -> Token {
        cli_token(self.db(), args)
    }

    /// A `csmp serve` named `owner` in `role`.
    fn serve(&self, owner: &str, role: &str) -> Served {
        Served::start_on(
            self.dir.path(),
            self.db(),
            owner,
            &[
                "--owner",
                owner,
                "--role",
                role,
                "--lease",
                LEASE,
                "--grants",
                &self.grants,
            ],
            &[("CSMP_DATA_DIR", self.data.as_str())],
        )
    }

    /// How many calls of `path` the counting server received.
    fn calls_of(&self, path: &str) -> usize {
        self.hits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|p| *p == path)
            .count()
    }
}

/// The partitions each live member holds, by name, as `app` sees them.
fn holdings(app: &Served, operator: &Token) -> BTreeMap<String, Vec<i64>> {
    let cluster = app.get("/v1/cluster").auth(operator).send().expect(200);
    cluster["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter(|m| m["alive"] == true)
        .map(|m| {
            (
                s(m, "owner"),
                m["partitions"]
                    .as_array()
                    .expect("partitions")
                    .iter()
                    .map(|p| p.as_i64().expect("an id"))
                    .collect(),
            )
        })
        .collect()
}

/// Waits until the shared partitions are split as `want` (member → how many) says.
fn wait_split(
    app: &Served,
    operator: &Token,
    want: &[(&str, usize)],
) -> BTreeMap<String, Vec<i64>> {
    let started = Instant::now();
    loop {
        let held = holdings(app, operator);
        let split: Vec<(&str, usize)> = want
            .iter()
            .map(|(owner, _)| (*owner, held.get(*owner).map_or(0, Vec::len)))
            .collect();
        if split == want {
            return held;
        }
        assert!(
            started.elapsed() < GUARD,
            "the partitions were not split as {want:?}: {held:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The partition of run `id`, read from the database.
fn partition_of(site: &Site, run: &str) -> i64 {
    query_one(
        site,
        &format!("SELECT partition FROM runs WHERE id = '{run}'"),
    )
}

fn query_one(site: &Site, sql: &str) -> i64 {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    rt.block_on(async {
        use sqlx::Connection as _;
        let mut c = sqlx::PgConnection::connect(&site.url)
            .await
            .expect("connects");
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&mut c)
            .await
            .expect("answers")
    })
}

/// Sends `call` until it is accepted (202): what another process changed reaches this one a
/// moment later. Returns the answer.
fn until_accepted(app: &Served, call: impl Fn() -> super::harness::Reply) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let reply = call();
        if reply.status == 202 {
            return reply.json();
        }
        assert!(
            started.elapsed() < GUARD,
            "never accepted by {}: {} {}",
            app.base,
            reply.status,
            reply.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A number of `/metrics`.
fn metric(app: &Served, name: &str) -> i64 {
    let text = app.get("/metrics").send().text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} is in /metrics: {text}"))
}

fn start_run(app: &Served, operator: &Token, n: i64) -> String {
    let started = app
        .post("/v1/runs")
        .auth(operator)
        .json(&json!({ "workflow": "shared-work", "inputs": { "n": n } }))
        .send()
        .expect(202);
    s(&started, "id")
}

#[test]
fn two_serves_share_the_work_and_one_killed_loses_nothing() {
    let site = Site::new(&[]);
    let operator = site.token(&["--role", "operator"]);
    let client = site.token(&["--role", "client", "--tenant", "acme"]);
    let a = site.serve("a", "all");
    let b = site.serve("b", "all");
    let split = wait_split(&b, &operator, &[("a", 32), ("b", 32)]);

    // 100 runs, half taken by each process; each runs where it was started.
    let runs: Vec<(String, i64)> = (0..100)
        .map(|n| (start_run(if n % 2 == 0 { &a } else { &b }, &operator, n), n))
        .collect();
    for (run, n) in &runs {
        let holder = if n % 2 == 0 { "a" } else { "b" };
        assert!(
            split[holder].contains(&partition_of(&site, run)),
            "run {n} lives in a partition of {holder}, the process that took it"
        );
    }
    // An order taken by a, steered through b.
    let order = a.order(&client, &json!({ "catalog_id": "steer" }));
    let (steer, request) = (s(&order, "run_id"), s(&order, "id"));
    assert!(split["a"].contains(&partition_of(&site, &steer)));
    b.wait_step(&client, &steer, "gate", "waiting");
    finish_steer(&b, &operator, &client, &steer, &request, "through b");

    // A workflow uploaded and a catalog entry set through a are known to b at once.
    a.put("/v1/workflows/late")
        .auth(&operator)
        .body("application/yaml", LATE)
        .send()
        .expect(201);
    a.put("/v1/catalog/late")
        .auth(&operator)
        .body(
            "application/yaml",
            "id: late\ntitle: Late\nworkflow: late\ntenants: [\"*\"]\n",
        )
        .send()
        .expect(201);
    let ordered = until_accepted(&b, || {
        b.post("/v1/requests")
            .auth(&client)
            .json(&json!({ "catalog_id": "late" }))
            .send()
    });
    let late = b.wait_run(&client, &s(&ordered, "run_id"), "succeeded");
    assert_eq!(late["outputs"]["said"], "late");

    // Every run is at its nap; what finished so far is kept.
    let mut before = BTreeMap::new();
    for (run, _) in &runs {
        let detail = b.wait_step(&operator, run, "nap", "waiting");
        before.insert(run.clone(), finished(&detail));
    }
    a.kill_9();

    // b takes a's partitions over and finishes every run; nothing finished runs again.
    for (run, n) in &runs {
        let done = b.wait_run(&operator, run, "succeeded");
        assert_eq!(done["outputs"]["n"], *n);
        let after = finished(&done);
        for unit in &before[run] {
            assert!(
                after.contains(unit),
                "{unit:?} of {run} is as it was: {after:?}"
            );
        }
        assert_eq!(
            site.calls_of(&format!("/hit/{run}")),
            1,
            "the second step of {run} ran once"
        );
    }
    let held = wait_split(&b, &operator, &[("b", 64)]);
    assert_eq!(held.len(), 1, "a is no longer alive: {held:?}");
    let (status, _) = b.terminate();
    assert!(status.success());
}

#[test]
fn a_process_stopped_past_its_lease_writes_nothing_more_and_lets_go() {
    let site = Site::new(&[]);
    let operator = site.token(&["--role", "operator"]);
    let mut a = site.serve("a", "all");
    let b = site.serve("b", "all");
    wait_split(&b, &operator, &[("a", 32), ("b", 32)]);
    let run = start_run(&a, &operator, 7);
    let partition = partition_of(&site, &run);
    b.wait_step(&operator, &run, "nap", "waiting");

    // a stops while its run naps; b takes its partitions over and finishes the run.
    a.send_signal("-STOP");
    let done = b.wait_run(&operator, &run, "succeeded");
    assert!(holdings(&b, &operator)["b"].contains(&partition));
    assert_eq!(site.calls_of(&format!("/hit/{run}")), 1);

    // a comes back with the run in memory and its nap due: it writes nothing for it, runs
    // nothing of it, and lets the partition go.
    a.log_so_far();
    a.send_signal("-CONT");
    let line = a.wait_new_log("partition let go");
    assert!(line.contains("another process took it over"), "{line}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        site.calls_of(&format!("/hit/{run}")),
        1,
        "the stopped process did not run the second step again"
    );
    let again = b
        .get(&format!("/v1/runs/{run}"))
        .auth(&operator)
        .send()
        .expect(200);
    assert_eq!(
        finished(&again),
        finished(&done),
        "nothing of it was written"
    );
    assert!(
        metric(&a, "csmp_partitions_lost_total") >= 1,
        "the loss is counted"
    );
    // Then the two share the work again.
    wait_split(&b, &operator, &[("a", 32), ("b", 32)]);
    let (status, _) = a.terminate();
    assert!(status.success());
    let (status, _) = b.terminate();
    assert!(status.success());
}

#[test]
fn every_cron_instant_fires_once_across_a_kill() {
    let site = Site::new(&[("tick.yaml", TICK.to_string())]);
    let operator = site.token(&["--role", "operator"]);
    let a = site.serve("a", "all");
    let b = site.serve("b", "all");
    let split = wait_split(&b, &operator, &[("a", 32), ("b", 32)]);
    std::thread::sleep(Duration::from_secs(15));
    // The holder of partition 0 fires; it is killed half way.
    let (killed, kept) = if split["a"].contains(&0) {
        (a, b)
    } else {
        (b, a)
    };
    killed.kill_9();
    std::thread::sleep(Duration::from_secs(15));
    let (status, _) = kept.terminate();
    assert!(status.success());

    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let fires: Vec<(i64, Option<String>)> = rt.block_on(async {
        use sqlx::Connection as _;
        let mut c = sqlx::PgConnection::connect(&site.url)
            .await
            .expect("connects");
        sqlx::query_as(
            "SELECT scheduled_at, run_id FROM cron_fires WHERE workflow = 'tick' ORDER BY scheduled_at",
        )
        .fetch_all(&mut c)
        .await
        .expect("fires")
    });
    assert!(
        fires.len() >= 25,
        "about 30 instants fired: {}",
        fires.len()
    );
    for pair in fires.windows(2) {
        assert_eq!(
            pair[1].0 - pair[0].0,
            1_000,
            "no instant missed or fired twice, across the kill: {:?}",
            fires.iter().map(|f| f.0).collect::<Vec<_>>()
        );
    }
    for (at, run) in &fires {
        let run = run
            .as_deref()
            .unwrap_or_else(|| panic!("the fire at {at} started a run"));
        assert_eq!(
            query_one(
                &site,
                &format!("SELECT COUNT(*) FROM runs WHERE id = '{run}'")
            ),
            1
        );
    }
}

#[test]
fn an_api_process_and_two_executors_share_one_database() {
    let site = Site::new(&[]);
    let operator = site.token(&["--role", "operator"]);
    let client = site.token(&["--role", "client", "--tenant", "acme"]);
    let api = site.serve("api", "api");
    let e1 = site.serve("e1", "executor");
    let e2 = site.serve("e2", "executor");
    let split = wait_split(&api, &operator, &[("api", 0), ("e1", 32), ("e2", 32)]);
    assert_eq!(split.len(), 3);

    // Executors serve their health, nothing else.
    for e in [&e1, &e2] {
        assert_eq!(e.get("/healthz").send().status, 200);
        assert_eq!(e.get("/readyz").send().status, 200);
        assert_eq!(e.get("/metrics").send().status, 200);
        assert_eq!(e.get("/v1/runs").auth(&operator).send().status, 404);
        assert_eq!(e.get("/").send().status, 404);
    }

    // An order, an approval and a signal through the process that holds nothing reach the
    // executors, and its event stream follows the run to its end.
    let order = api.order(&client, &json!({ "catalog_id": "steer" }));
    let (run, request) = (s(&order, "run_id"), s(&order, "id"));
    api.wait_step(&client, &run, "gate", "waiting");
    let mut events = api
        .get(&format!("/v1/runs/{run}/events"))
        .auth(&client)
        .stream();
    let (first, snapshot) = events.next_event().expect("a snapshot");
    assert_eq!(first, "snapshot");
    assert_eq!(snapshot["status"], "running");
    finish_steer(&api, &operator, &client, &run, &request, "through the api");
    let mut last = None;
    while let Some((name, data)) = events.next_event() {
        last = Some((name, data));
    }
    let (name, data) = last.expect("events came");
    assert_eq!(name, "run");
    assert_eq!(data["status"], "succeeded");
    assert_eq!(data["outputs"]["heard"]["after"], "through the api");
    assert!(
        metric(&api, "csmp_commands_forwarded_total") >= 2,
        "the approval and the signal went to the run's holder"
    );
    assert_eq!(metric(&api, "csmp_partitions_held"), 0);
    assert_eq!(metric(&e1, "csmp_partitions_held"), 32);

    // Retry, pause, resume and cancel through it reach the executors too.
    let coin = api
        .post("/v1/runs")
        .auth(&operator)
        .json(&json!({ "workflow": "coin", "inputs": { "fail": true } }))
        .send()
        .expect(202);
    let coin = s(&coin, "id");
    api.wait_run(&operator, &coin, "failed");
    api.post(&format!("/v1/runs/{coin}/retry"))
        .auth(&operator)
        .send()
        .expect(202);
    let again = api.wait_run(&operator, &coin, "failed");
    assert_eq!(
        again["retries"].as_array().map(Vec::len),
        Some(1),
        "{again}"
    );
    let order = api.order(&client, &json!({ "catalog_id": "steer" }));
    let steer = s(&order, "run_id");
    api.wait_step(&client, &steer, "gate", "waiting");
    let paused = api
        .post(&format!("/v1/runs/{steer}/pause"))
        .auth(&operator)
        .send()
        .expect(202);
    assert_eq!(paused["status"], "paused", "{paused}");
    api.post(&format!("/v1/runs/{steer}/resume"))
        .auth(&operator)
        .send()
        .expect(202);
    api.post(&format!("/v1/runs/{steer}/cancel"))
        .auth(&operator)
        .json(&json!({}))
        .send()
        .expect(202);
    api.wait_run(&operator, &steer, "cancelled");

    // An alert taken by it reaches the rule's group, acted on by the executor holding
    // partition 0, whose run goes wherever the run's id says.
    let integration = site.token(&["--role", "integration"]);
    api.post("/v1/events/webhook?items=/checks&fingerprint=/id&status=/state&firing=DOWN&resolved=UP&labels=/tags&summary=/title")
        .auth(&integration)
        .json(&json!({ "checks": [{ "id": 1, "state": "DOWN", "tags": { "service": "shop" }, "title": "shop is down" }] }))
        .send()
        .expect(202);
    let woken = api.wait_for(
        &operator,
        "/v1/runs?label=rule=wake",
        "the rule's run to succeed",
        |l| {
            l["items"]
                .as_array()
                .is_some_and(|items| items.len() == 1 && items[0]["status"] == "succeeded")
        },
    );
    let woken = s(&woken["items"][0], "id");
    let done = api
        .get(&format!("/v1/runs/{woken}"))
        .auth(&operator)
        .send()
        .expect(200);
    assert_eq!(done["outputs"]["greeting"], "hello, shop");

    // A workflow uploaded through it is run by the executors.
    api.put("/v1/workflows/late")
        .auth(&operator)
        .body("application/yaml", LATE)
        .send()
        .expect(201);
    let started = api
        .post("/v1/runs")
        .auth(&operator)
        .json(&json!({ "workflow": "late" }))
        .send()
        .expect(202);
    let late = api.wait_run(&operator, &s(&started, "id"), "succeeded");
    assert_eq!(late["outputs"]["said"], "late");

    // Runs started directly through it run on the executors, both of them.
    let runs: Vec<String> = (0..20).map(|n| start_run(&api, &operator, n)).collect();
    let mut on = std::collections::BTreeSet::new();
    for run in &runs {
        let done = api.wait_run(&operator, run, "succeeded");
        assert!(step(&done, "second").is_some());
        let p = partition_of(&site, run);
        on.insert(if split["e1"].contains(&p) { "e1" } else { "e2" });
    }
    assert_eq!(on.len(), 2, "both executors ran some: {on:?}");
    for e in [e1, e2, api] {
        let (status, _) = e.terminate();
        assert!(status.success());
    }
}
