//! The durability contract under `kill -9`: a real `csmp serve` process runs 60 workflows
//! (HTTP plugin steps, durable waits, a fan-out), is killed with SIGKILL at five random
//! moments and restarted on the same database each time. Every run must finish with the same
//! outputs as an uninterrupted reference, and no step may run again after its completion was
//! recorded: the HTTP server the steps call checks, at every hit, that the calling unit is not
//! already recorded as succeeded.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use csmp::plan::{Env, validate_workflow};
use csmp::runtime::{Definitions, Engine, EngineConfig, NewRun, TokioClock};
use csmp::store::{Durability, RunStatus, Store};
use serde_json::{Value, json};

const RUNS: usize = 60;
const KILLS: usize = 5;

const WORKFLOW: &str = r#"name: crash
version: 1
inputs:
  type: object
  required: [n, url]
  properties:
    n: { type: integer }
    url: { type: string }
steps:
  - id: first
    uses: http@^1
    with: { url: "{{ inputs.url }}/hit/{{ run.id }}/first" }
  - id: pause
    needs: [first]
    wait: 5s
  - id: fan
    needs: [pause]
    for_each: "{{ range 4 }}"
    uses: http@^1
    with: { url: "{{ inputs.url }}/hit/{{ run.id }}/fan%23{{ index }}" }
  - id: pause-again
    needs: [fan]
    wait: 5s
  - id: sum
    needs: [pause-again]
    uses: echo@^1
    with: { n: "{{ inputs.n }}", fanned: "{{ len steps.fan.output }}", first: "{{ steps.first.output.status }}" }
outputs:
  result: "{{ steps.sum.output }}"
"#;

/// Hits seen by the server, and hits that came for a unit already recorded as succeeded.
#[derive(Default)]
struct Observed {
    hits: usize,
    violations: Vec<String>,
}

/// An HTTP server on 127.0.0.1 that answers 200 and checks each hit against the database.
fn checking_server(db: PathBuf) -> (String, Arc<Mutex<Observed>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let observed = Arc::new(Mutex::new(Observed::default()));
    let seen = Arc::clone(&observed);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let store = rt
            .block_on(Store::open(&db, Durability::Full))
            .expect("store");
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = [0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .replace("%23", "#");
            if let Some(rest) = path.strip_prefix("/hit/")
                && let Some((run, key)) = rest.split_once('/')
            {
                let steps = rt.block_on(store.steps(run)).unwrap_or_default();
                let done = steps.iter().any(|u| {
                    u.key.to_string() == key && u.status == csmp::store::StepStatus::Succeeded
                });
                let mut o = seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                o.hits += 1;
                if done {
                    o.violations
                        .push(format!("{run}/{key} ran after its completion was recorded"));
                }
            }
            let body = "{\"ok\":true}";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, observed)
}

fn grants_file(dir: &Path) -> PathBuf {
    let path = dir.join("grants.yaml");
    std::fs::write(
        &path,
        "plugins:\n  http:\n    http_hosts: [\"127.0.0.1:*\"]\n",
    )
    .expect("grants");
    path
}

fn serve_command(db: &Path, owner: &str, workflows: &Path, grants: &Path) -> Command {
    let mut command = crate::helpers::csmp_command();
    command
        .args(["serve", "--owner", owner, "--listen", "127.0.0.1:0"])
        .arg("--database")
        .arg(db)
        .arg("--workflows")
        .arg(workflows)
        .arg("--grants")
        .arg(grants)
        .stdout(Stdio::null());
    command
}

fn serve(db: &Path, workflows: &Path, grants: &Path) -> Child {
    serve_command(db, "crash-test", workflows, grants)
        .stderr(Stdio::null())
        .spawn()
        .expect("csmp serve starts")
}

/// Runs `csmp serve` once on a scratch database in the same directory until it listens, so
/// the built-in plugins are compiled into that directory's plugin cache before the kills: a
/// cold compile takes about a second in a debug build and could outlast every kill window.
fn warm_plugin_cache(dir: &Path, workflows: &Path, grants: &Path) {
    let mut child = serve_command(&dir.join("warm-up.db"), "warm-up", workflows, grants)
        .stderr(Stdio::piped())
        .spawn()
        .expect("csmp serve starts");
    let listened = child.stderr.take().is_some_and(|log| {
        BufReader::new(log)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains("listening on"))
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(listened, "the warm-up `csmp serve` never started listening");
}

/// A small deterministic generator, seeded from the clock and printed, so a failure can be
/// replayed by fixing the seed.
fn next(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

async fn engine(db: &Path, owner: &str) -> Engine {
    let host = crate::helpers::loopback_host();
    let plan = validate_workflow(
        WORKFLOW.as_bytes(),
        Env {
            plugins: &host.index(),
            workflows: None,
        },
    )
    .expect("valid");
    let mut defs = Definitions::default();
    defs.insert(plan);
    let store = Store::open(db, Durability::Full).await.expect("store");
    store
        .put_workflow("crash", 1, WORKFLOW, 0, None)
        .await
        .expect("stored");
    let config = EngineConfig {
        owner: owner.into(),
        ..EngineConfig::default()
    };
    Engine::start(store, host, defs, Arc::new(TokioClock::new()), config)
        .await
        .expect("engine")
}

async fn outputs_by_n(store: &Store) -> BTreeMap<i64, Value> {
    store
        .runs(1000)
        .await
        .expect("runs")
        .into_iter()
        .map(|r| {
            (
                r.inputs["n"].as_i64().unwrap_or(-1),
                r.outputs.unwrap_or(Value::Null),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_survive_kill_9_at_random_moments() {
    let dir = tempfile::tempdir().expect("temp dir");
    let workflows = dir.path().join("workflows");
    std::fs::create_dir_all(&workflows).expect("dir");
    std::fs::write(workflows.join("crash.yaml"), WORKFLOW).expect("workflow");
    let grants = grants_file(dir.path());

    // The uninterrupted reference, in this process, on its own database.
    let ref_db = dir.path().join("reference.db");
    // Apply the schema once, before the server's and the engine's handles open the file.
    drop(
        Store::open(&ref_db, Durability::Full)
            .await
            .expect("schema"),
    );
    let (ref_url, _) = checking_server(ref_db.clone());
    let reference = engine(&ref_db, "reference").await;
    let mut ids = Vec::new();
    for n in 0..RUNS {
        let inputs = json!({"n": n, "url": ref_url});
        ids.push(
            reference
                .submit(NewRun {
                    workflow: "crash".into(),
                    version: None,
                    inputs,
                    tenant: "t".into(),
                    requester: None,
                    partition: None,
                })
                .await
                .expect("submit"),
        );
    }
    for id in &ids {
        let status = tokio::time::timeout(Duration::from_secs(120), reference.wait(id))
            .await
            .expect("reference ends")
            .expect("wait");
        assert_eq!(status, RunStatus::Succeeded);
    }
    let want = outputs_by_n(reference.store()).await;
    reference.shutdown().await;

    // The runs under test: accepted durably by a short-lived submitter with the serve's lease
    // name, then executed by `csmp serve` processes that keep being killed.
    let db = dir.path().join("csmp.db");
    drop(Store::open(&db, Durability::Full).await.expect("schema"));
    let (url, observed) = checking_server(db.clone());
    let submitter = engine(&db, "crash-test").await;
    for n in 0..RUNS {
        let inputs = json!({"n": n, "url": url});
        submitter
            .submit(NewRun {
                workflow: "crash".into(),
                version: None,
                inputs,
                tenant: "t".into(),
                requester: None,
                partition: None,
            })
            .await
            .expect("submit");
    }
    submitter.shutdown().await;

    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64);
    eprintln!("crash test seed: {seed}");
    let store = Store::open(&db, Durability::Full).await.expect("store");
    let finished_units = |store: Store| async move {
        let mut n = 0;
        for r in store.runs(1000).await.expect("runs") {
            n += store
                .steps(&r.id)
                .await
                .expect("steps")
                .iter()
                .filter(|u| u.status.is_final())
                .count();
        }
        n
    };
    warm_plugin_cache(dir.path(), &workflows, &grants);
    let mut progress = vec![finished_units(store.clone()).await];
    for round in 0..KILLS {
        let mut child = serve(&db, &workflows, &grants);
        let pause = 300 + next(&mut seed) % 700;
        std::thread::sleep(Duration::from_millis(pause));
        child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
        let _ = child.wait();
        progress.push(finished_units(store.clone()).await);
        eprintln!(
            "round {round}: killed after {pause} ms; finished units so far: {}",
            progress[round + 1]
        );
    }
    // Each run has 9 units (first, pause, fan, 4 items, pause-again, sum); its two 5 s timers
    // outlast the five rounds, so every kill lands while work is in progress. The killed
    // processes must have made progress, and work must be left for the last restart.
    assert!(
        progress.last().copied().unwrap_or(0) > progress[0],
        "killed processes made progress: {progress:?}"
    );
    assert!(
        progress.last().copied().unwrap_or(0) < RUNS * 9,
        "some work was left for the last restart: {progress:?}"
    );

    let mut child = serve(&db, &workflows, &grants);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let runs = store.runs(1000).await.expect("runs");
        if runs.len() == RUNS && runs.iter().all(|r| r.status.is_final()) {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let states: HashMap<&str, usize> = runs.iter().fold(HashMap::new(), |mut m, r| {
                *m.entry(r.status.as_str()).or_default() += 1;
                m
            });
            panic!("runs did not all finish: {states:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();

    let got = outputs_by_n(&store).await;
    assert_eq!(got.len(), RUNS, "no run lost");
    assert_eq!(got, want, "every run has the reference's outputs");
    let statuses: Vec<RunStatus> = store
        .runs(1000)
        .await
        .expect("runs")
        .iter()
        .map(|r| r.status)
        .collect();
    assert!(statuses.iter().all(|s| *s == RunStatus::Succeeded));
    let o = observed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    assert!(o.violations.is_empty(), "{:#?}", o.violations);
    // Each run calls the server 5 times; re-executions of attempts in flight may add some.
    assert!(o.hits >= RUNS * 5, "{} hits", o.hits);
    eprintln!("{} hits for {} step executions needed", o.hits, RUNS * 5);
}
