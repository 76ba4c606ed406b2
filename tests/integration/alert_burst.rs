//! A burst of 1,000 firing alerts of one group against a real `csmp serve`, killed with
//! SIGKILL in the middle of the burst and restarted on the same database: the group starts
//! exactly one run, and every alert reaches it exactly once — in its start, or as one `alert`
//! signal — with the notifications that were not acknowledged sent again (as Alertmanager
//! retries) and a few that were acknowledged sent again too (duplicates, which deliver
//! nothing).
//!
//! The database is read from outside the service (read-only) for what reached the run. Waits
//! poll with a generous guard; nothing asserts on how long anything took.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ALERTS: usize = 1000;
const PER_POST: usize = 10;
const POSTS: usize = ALERTS / PER_POST;
const THREADS: usize = 3;
/// The serve is killed once this many notifications were acknowledged.
const KILL_AFTER: usize = 30;
/// The most any one wait may take.
const WAIT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(200);

const RULE: &str = r#"name: burst
match: { labels: { alertname: Burst } }
group_by: [service]
group_wait: 0s
then:
  - workflow: burst-sink
    inputs: { service: "{{ group.labels.service }}" }
"#;

/// Stays running (waiting for `done`) while the group's `alert` signals buffer.
const SINK: &str = r#"name: burst-sink
version: 1
inputs:
  type: object
  required: [service]
  properties:
    service: { type: string }
steps:
  - id: done
    signal: done
outputs:
  service: "{{ inputs.service }}"
"#;

fn fingerprint(n: usize) -> String {
    format!("f-{n:04}")
}

/// Notification `i`: alerts `10 i` … `10 i + 9`, all firing, of service `web`.
fn notification(i: usize) -> String {
    let alerts: Vec<Value> = (i * PER_POST..(i + 1) * PER_POST)
        .map(|n| {
            json!({
                "status": "firing",
                "fingerprint": fingerprint(n),
                "labels": { "alertname": "Burst", "service": "web", "instance": format!("i-{n:04}") },
                "startsAt": "2026-12-01T10:00:00Z",
            })
        })
        .collect();
    json!({ "version": "4", "status": "firing", "alerts": alerts }).to_string()
}

/// A running `csmp serve` on `dir`'s definitions and database.
struct Serve {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    base: String,
    log: PathBuf,
}

impl Serve {
    fn start(dir: &Path, name: &str) -> Self {
        let log = dir.join(format!("{name}.log"));
        let child = crate::helpers::csmp_command()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--database")
            .arg(dir.join("csmp.db"))
            .arg("--workflows")
            .arg(dir.join("workflows"))
            .arg("--catalog")
            .arg(dir.join("catalog"))
            .arg("--rules")
            .arg(dir.join("rules"))
            .env_remove("CSMP_PLUGINS")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join(format!("{name}.stdout"))).expect("stdout"))
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("csmp serve starts");
        let mut serve = Self {
            child,
            base: String::new(),
            log,
        };
        let started = Instant::now();
        serve.base = loop {
            let printed = std::fs::read_to_string(&serve.log).unwrap_or_default();
            if let Some(base) = printed
                .lines()
                .find_map(|l| l.split("listening on ").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
            {
                break base.to_string();
            }
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!("csmp serve exited ({status}) before it listened; its log: {printed}");
            }
            assert!(
                started.elapsed() < WAIT,
                "csmp serve did not say where it listens; its log: {printed}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        serve
    }

    /// The last 60 lines of its log.
    fn log(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// SIGTERM to its pid, then (bounded) SIGKILL.
    fn stop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A token of `role` made with `csmp token create`.
fn token(database: &Path, role: &str) -> String {
    let out = crate::helpers::csmp_command()
        .args(["token", "create", "--role", role, "--database"])
        .arg(database)
        .output()
        .expect("csmp token create runs");
    assert!(
        out.status.success(),
        "csmp token create --role {role}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

/// `POST /v1/events/alertmanager`: the status and JSON body, or why there was no answer.
fn post(http: &ureq::Agent, base: &str, token: &str, body: &str) -> Result<(u16, Value), String> {
    let mut response = http
        .post(format!("{base}/v1/events/alertmanager"))
        .header("authorization", &format!("Bearer {token}"))
        .header("content-type", "application/json")
        .send(body)
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("the answer's body: {e}"))?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// `GET PATH` with `token`, which must answer 200.
fn get(http: &ureq::Agent, serve: &Serve, token: &str, path: &str) -> Value {
    let mut response = http
        .get(format!("{}{path}", serve.base))
        .header("authorization", &format!("Bearer {token}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}; csmp's log: {}", serve.log()));
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(
        status,
        200,
        "GET {path}: {text}; csmp's log: {}",
        serve.log()
    );
    serde_json::from_str(&text).expect("a JSON body")
}

/// What became of one notification.
#[derive(Debug, Clone)]
enum Sent {
    /// Answered 202: the decisions.
    Acked(Value),
    /// Answered with another status.
    Refused(u16, Value),
    /// No answer; `in_flight` when it was sent before the kill.
    Failed { error: String, in_flight: bool },
}

/// The database, read-only, from outside the service.
struct Db {
    rt: tokio::runtime::Runtime,
    conn: sqlx::SqliteConnection,
}

impl Db {
    fn open(path: &Path) -> Self {
        use sqlx::ConnectOptions as _;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let conn = rt
            .block_on(
                sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .read_only(true)
                    .connect(),
            )
            .expect("a read-only connection");
        Self { rt, conn }
    }

    fn pairs(&mut self, sql: &'static str) -> Vec<(String, i64)> {
        let Self { rt, conn } = self;
        rt.block_on(sqlx::query_as::<_, (String, i64)>(sql).fetch_all(conn))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn count(&mut self, sql: &'static str) -> i64 {
        let Self { rt, conn } = self;
        rt.block_on(sqlx::query_as::<_, (i64,)>(sql).fetch_one(conn))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .0
    }

    /// How many of the rule's matches have each outcome (with `+signal` when undelivered).
    fn match_outcomes(&mut self) -> BTreeMap<String, i64> {
        self.pairs(
            "SELECT outcome || CASE WHEN signal IS NULL THEN '' ELSE '+signal' END, COUNT(*) \
             FROM alert_matches WHERE rule = 'burst' GROUP BY 1",
        )
        .into_iter()
        .collect()
    }

    /// How many `alert` signals carry each fingerprint, over every run.
    fn signals(&mut self) -> BTreeMap<String, i64> {
        self.pairs(
            "SELECT json_extract(payload, '$.alert.fingerprint'), COUNT(*) FROM signals \
             WHERE name = 'alert' GROUP BY 1",
        )
        .into_iter()
        .collect()
    }

    fn report(&mut self) -> String {
        let matched = self.count(
            "SELECT COUNT(DISTINCT fingerprint) FROM alerts \
             WHERE source = 'alertmanager' AND outcome = 'matched'",
        );
        let signals = self.count("SELECT COUNT(*) FROM signals WHERE name = 'alert'");
        format!(
            "{matched} fingerprints stored as matched, matches by outcome {:?}, {signals} `alert` signals",
            self.match_outcomes()
        )
    }
}

/// Sends `posts` from [`THREADS`] threads, each once (`retry` false: no answer is recorded as
/// such) or until answered 202 (`retry` true). `acked` counts the 202s as they come.
fn burst(
    base: &str,
    token: &str,
    posts: &[usize],
    retry: bool,
    acked: &AtomicUsize,
    killed: &AtomicBool,
) -> BTreeMap<usize, Sent> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                let http = agent();
                loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&i) = posts.get(k) else { return };
                    let body = notification(i);
                    let started = Instant::now();
                    let sent = loop {
                        let before_kill = !killed.load(Ordering::SeqCst);
                        let sent = match post(&http, base, token, &body) {
                            Ok((202, decisions)) => {
                                acked.fetch_add(1, Ordering::SeqCst);
                                Sent::Acked(decisions)
                            }
                            Ok((status, body)) => Sent::Refused(status, body),
                            Err(error) => Sent::Failed {
                                error,
                                in_flight: before_kill,
                            },
                        };
                        if !retry || matches!(sent, Sent::Acked(_)) {
                            break sent;
                        }
                        assert!(
                            started.elapsed() < WAIT,
                            "notification {i} was never acknowledged: {sent:?}"
                        );
                        std::thread::sleep(POLL);
                    };
                    results
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(i, sent);
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(PoisonError::into_inner)
}

/// The outcome of each alert in an acknowledged answer.
fn outcomes(sent: &Sent) -> Vec<String> {
    let Sent::Acked(answer) = sent else {
        panic!("not acknowledged: {sent:?}")
    };
    answer["decisions"]
        .as_array()
        .unwrap_or_else(|| panic!("decisions in {answer}"))
        .iter()
        .map(|d| d["outcome"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn alert_burst_of_one_group_starts_one_run_and_reaches_it_once_across_kill_9() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    for sub in ["workflows", "catalog", "rules"] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("a directory");
    }
    std::fs::write(dir.path().join("workflows/burst-sink.yaml"), SINK).expect("the workflow");
    std::fs::write(dir.path().join("rules/burst.yaml"), RULE).expect("the rule");
    let db_path = dir.path().join("csmp.db");
    let integration = token(&db_path, "integration");
    let operator = token(&db_path, "operator");
    let http = agent();

    // The burst, from several threads; the serve is killed (SIGKILL, to its pid: std's
    // `Child::kill`) once KILL_AFTER notifications are acknowledged.
    let mut first = Serve::start(dir.path(), "before");
    let acked = AtomicUsize::new(0);
    let killed = AtomicBool::new(false);
    let all: Vec<usize> = (0..POSTS).collect();
    let (before, acked_at_kill) = std::thread::scope(|s| {
        let sender = s.spawn(|| burst(&first.base, &integration, &all, false, &acked, &killed));
        let waited = Instant::now();
        while acked.load(Ordering::SeqCst) < KILL_AFTER {
            assert!(
                !sender.is_finished() && waited.elapsed() < WAIT,
                "{} notifications acknowledged, not {KILL_AFTER}; csmp's log: {}",
                acked.load(Ordering::SeqCst),
                first.log()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        first.child.kill().expect("SIGKILL");
        killed.store(true, Ordering::SeqCst);
        let at_kill = acked.load(Ordering::SeqCst);
        let status = first.child.wait().expect("the killed serve's status");
        assert!(!status.success(), "killed, not exited: {status}");
        (sender.join().expect("the senders"), at_kill)
    });
    drop(first);
    assert_eq!(before.len(), POSTS);
    let unacked: Vec<usize> = before
        .iter()
        .filter(|(_, s)| !matches!(s, Sent::Acked(_)))
        .map(|(i, _)| *i)
        .collect();
    let in_flight = before
        .values()
        .filter(|s| {
            matches!(
                s,
                Sent::Failed {
                    in_flight: true,
                    ..
                }
            )
        })
        .count();
    let refused: Vec<String> = before
        .iter()
        .filter_map(|(i, s)| match s {
            Sent::Refused(status, body) => Some(format!("{i}: {status} {body}")),
            _ => None,
        })
        .collect();
    // Why those with no answer had none: (sent before the kill, the error).
    let errors: std::collections::BTreeSet<(bool, &str)> = before
        .values()
        .filter_map(|s| match s {
            Sent::Failed { error, in_flight } => Some((*in_flight, error.as_str())),
            _ => None,
        })
        .collect();
    // The kill landed in the middle of the burst.
    assert!(
        (KILL_AFTER..POSTS).contains(&acked_at_kill),
        "{acked_at_kill} acknowledged at the kill"
    );
    assert!(
        !unacked.is_empty(),
        "some notifications were not acknowledged"
    );
    let mut db = Db::open(&db_path);
    let at_kill = db.report();
    eprintln!(
        "alert_burst: killed with {acked_at_kill} of {POSTS} notifications acknowledged; \
         {} unacknowledged in all ({in_flight} sent before the kill and cut, refused: {refused:?}, \
         errors: {errors:?}); in the database after the kill: {at_kill}",
        unacked.len()
    );
    drop(db);

    // A restart on the same database; what was not acknowledged is sent again, with a few
    // acknowledged ones (duplicates).
    let second = Serve::start(dir.path(), "after");
    // The first, a middle and the last acknowledged: the last one's signals may well still
    // have been undelivered at the kill.
    let acked_before: Vec<usize> = before
        .iter()
        .filter(|(_, s)| matches!(s, Sent::Acked(_)))
        .map(|(i, _)| *i)
        .collect();
    let mut again = unacked.clone();
    again.extend([
        acked_before[0],
        acked_before[acked_before.len() / 2],
        acked_before[acked_before.len() - 1],
    ]);
    let after = burst(&second.base, &integration, &again, true, &acked, &killed);
    let mut committed_unacked = 0;
    for (i, sent) in &after {
        let outcomes = outcomes(sent);
        assert_eq!(outcomes.len(), PER_POST, "{sent:?}");
        if unacked.contains(i) {
            // Stored before the kill (the answer was lost): duplicates; else matched.
            assert!(
                outcomes.iter().all(|o| o == "matched" || o == "duplicate"),
                "notification {i} sent again: {sent:?}"
            );
            committed_unacked += outcomes.iter().filter(|o| *o == "duplicate").count();
        } else {
            assert!(
                outcomes.iter().all(|o| o == "duplicate"),
                "acknowledged notification {i} sent again is all duplicates: {sent:?}"
            );
        }
    }

    // Every alert reaches the group's run.
    let mut db = Db::open(&db_path);
    let waited = Instant::now();
    loop {
        let undelivered = db.count(
            "SELECT COUNT(*) FROM alert_matches WHERE rule = 'burst' \
             AND (outcome IN ('pending', 'waiting') OR signal IS NOT NULL)",
        );
        if undelivered == 0 {
            break;
        }
        assert!(
            waited.elapsed() < WAIT,
            "{undelivered} alerts never reached the run: {}; csmp's log: {}",
            db.report(),
            second.log()
        );
        std::thread::sleep(POLL);
    }

    // Exactly one run, still running, for the one group.
    let runs = get(&http, &second, &operator, "/v1/runs?label=rule%3Dburst")["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(runs.len(), 1, "one run for the group: {runs:?}");
    let run = runs[0]["id"].as_str().expect("a run id").to_string();
    assert_eq!(runs[0]["workflow"], "burst-sink", "{runs:?}");
    let detail = get(&http, &second, &operator, &format!("/v1/runs/{run}"));
    assert_eq!(detail["status"], "running", "{detail}");
    let groups = db.pairs("SELECT COALESCE(run_id, '') || ' ' || state, generation FROM alert_groups WHERE rule = 'burst'");
    assert_eq!(
        groups,
        vec![(format!("{run} active"), 1)],
        "one group, with that run"
    );
    let other_signals = db.pairs(
        "SELECT run_id || ' ' || name, COUNT(*) FROM signals \
         WHERE NOT (name = 'alert' AND run_id IN (SELECT run_id FROM alert_groups WHERE rule = 'burst')) \
         GROUP BY 1",
    );
    assert!(
        other_signals.is_empty(),
        "no signal but `alert` to the run: {other_signals:?}"
    );

    // Each fingerprint reached it once: in its start, or as one `alert` signal.
    let started_with: BTreeMap<String, i64> = db
        .pairs(
            "SELECT a.fingerprint, COUNT(*) FROM alert_matches m JOIN alerts a ON a.id = m.alert_id \
             WHERE m.rule = 'burst' AND m.outcome = 'started' GROUP BY 1",
        )
        .into_iter()
        .collect();
    let signalled = db.signals();
    let stored = db.pairs(
        "SELECT fingerprint, COUNT(*) FROM alerts WHERE source = 'alertmanager' \
         AND outcome = 'matched' GROUP BY 1",
    );
    let outcomes = db.match_outcomes();
    let mut wrong = Vec::new();
    for n in 0..ALERTS {
        let fp = fingerprint(n);
        let (s, g) = (
            started_with.get(&fp).copied().unwrap_or(0),
            signalled.get(&fp).copied().unwrap_or(0),
        );
        if s + g != 1 {
            wrong.push(format!("{fp}: {s} in the start, {g} signals"));
        }
    }
    let extra: Vec<&String> = signalled
        .keys()
        .chain(started_with.keys())
        .filter(|fp| {
            fp.strip_prefix("f-")
                .and_then(|n| n.parse::<usize>().ok())
                .is_none_or(|n| n >= ALERTS)
        })
        .collect();
    assert!(
        wrong.is_empty() && extra.is_empty(),
        "{} of {ALERTS} fingerprints did not reach the run exactly once: {:?}; unknown: {extra:?}; \
         matches by outcome {outcomes:?}",
        wrong.len(),
        &wrong[..wrong.len().min(20)]
    );
    assert_eq!(stored.len(), ALERTS, "every alert stored as matched");
    assert!(
        stored.iter().all(|(_, n)| *n == 1),
        "no alert matched twice: {:?}",
        stored.iter().filter(|(_, n)| *n != 1).collect::<Vec<_>>()
    );
    let total_signals: i64 = signalled.values().sum();
    assert_eq!(
        outcomes,
        BTreeMap::from([
            ("signalled".to_string(), total_signals),
            (
                "started".to_string(),
                i64::try_from(ALERTS).expect("small") - total_signals
            ),
        ]),
        "every match started the run or was signalled"
    );
    assert!(total_signals > 0, "later alerts reached the run as signals");
    eprintln!(
        "alert_burst: after the restart {} notifications sent again ({} of them acknowledged \
         before), {committed_unacked} alerts of unacknowledged ones had been stored before the \
         kill; {} alerts in the run's start, {total_signals} as `alert` signals; {:.1?} in all",
        after.len(),
        after.len() - unacked.len(),
        ALERTS as i64 - total_signals,
        started.elapsed()
    );
    drop(db);
    drop(second);
}
