//! The real `csmp` binary: `csmp token create` makes tokens the running service accepts, and
//! SIGTERM stops `csmp serve` cleanly (open event streams end, the process exits 0) with
//! everything it acknowledged still there after a restart on the same database.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::harness::{Client, GUARD, Token, s, step, write_definitions};

/// A running `csmp serve`.
pub(super) struct Served {
    child: Child,
    http: Client,
    /// Lines of its log (standard error), as they come.
    log: mpsc::Receiver<String>,
    /// Where its standard output goes.
    stdout: PathBuf,
    /// The log lines read while waiting for it to listen.
    start_up: Vec<String>,
}

impl std::ops::Deref for Served {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.http
    }
}

impl Served {
    /// Starts `csmp serve` on `dir` (its `workflows/`, `catalog/` and `csmp.db`) under the
    /// default lease name, so a restart takes the runs back at once, and waits until it
    /// listens. `name` names its log file.
    pub(super) fn start(dir: &Path, name: &str) -> Self {
        Self::start_with(dir, name, &[], &[])
    }

    /// [`Served::start`] with more arguments and environment variables.
    pub(super) fn start_with(dir: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on(dir, &dir.join("csmp.db"), name, args, env)
    }

    /// [`Served::start_with`] on `database` (a SQLite file or a `postgres://` URL).
    pub(super) fn start_on(
        dir: &Path,
        database: &Path,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let stdout = dir.join(format!("{name}.stdout"));
        let mut child = crate::helpers::csmp_command()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .arg("--database")
            .arg(database)
            .arg("--workflows")
            .arg(dir.join("workflows"))
            .arg("--catalog")
            .arg(dir.join("catalog"))
            .current_dir(dir)
            .stderr(Stdio::piped())
            .stdout(std::fs::File::create(&stdout).expect("a stdout file"))
            .spawn()
            .expect("csmp serve starts");
        let out = child.stderr.take().expect("piped stderr");
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let started = Instant::now();
        let mut start_up = Vec::new();
        let base = loop {
            let left = GUARD.saturating_sub(started.elapsed());
            let line = log.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "csmp serve did not say where it listens; stdout: {}",
                    std::fs::read_to_string(&stdout).unwrap_or_default()
                )
            });
            if let Some(rest) = line.split("listening on ").nth(1) {
                let base = rest
                    .split_whitespace()
                    .next()
                    .expect("an address after `listening on`")
                    .to_string();
                start_up.push(line);
                break base;
            }
            start_up.push(line);
        };
        Self {
            child,
            http: Client::new(base),
            log,
            stdout,
            start_up,
        }
    }

    /// The log lines written so far (beyond those read at start-up), without waiting.
    pub(super) fn log_so_far(&mut self) -> Vec<String> {
        while let Ok(line) = self.log.try_recv() {
            self.start_up.push(line);
        }
        self.start_up.clone()
    }

    /// Kills the process with SIGKILL, as a crash would, and reaps it.
    pub(super) fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (`-STOP`, `-CONT`, …) to the process.
    pub(super) fn send_signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill {signal} sent");
    }

    /// Waits (bounded) for a line containing `text` among those the log writes from now on
    /// (lines already written do not count); returns it.
    pub(super) fn wait_new_log(&mut self, text: &str) -> String {
        let started = Instant::now();
        let from = self.log_so_far().len();
        loop {
            if let Some(line) = self.start_up[from..].iter().find(|l| l.contains(text)) {
                return line.clone();
            }
            let left = GUARD.saturating_sub(started.elapsed());
            match self.log.recv_timeout(left) {
                Ok(line) => self.start_up.push(line),
                Err(_) => panic!(
                    "no log line with `{text}`; the log so far:\n{}",
                    self.start_up.join("\n")
                ),
            }
        }
    }

    /// Sends SIGHUP (the service reads its grants file again).
    pub(super) fn hang_up(&self) {
        let sent = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGHUP sent");
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns its status and its whole log.
    pub(super) fn terminate(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM sent to {pid}");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("the child's status") {
                break status;
            }
            assert!(
                started.elapsed() < GUARD,
                "csmp serve did not exit after SIGTERM; stdout: {}",
                std::fs::read_to_string(&self.stdout).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        // Everything it logged, up to the end of its log (the reader ends at EOF).
        let mut printed = std::mem::take(&mut self.start_up);
        while let Ok(line) = self.log.recv_timeout(GUARD) {
            printed.push(line);
        }
        (status, printed.join("\n"))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(super) fn token_create(db: &Path, args: &[&str]) -> Output {
    crate::helpers::csmp_command()
        .args(["token", "create"])
        .args(args)
        .arg("--database")
        .arg(db)
        .output()
        .expect("csmp token create runs")
}

/// A token made with `csmp token create`.
pub(super) fn cli_token(db: &Path, args: &[&str]) -> Token {
    let out = token_create(db, args);
    assert!(
        out.status.success(),
        "csmp token create {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        secret.lines().count(),
        1,
        "only the token on stdout: {secret}"
    );
    let id = secret
        .split('_')
        .nth(1)
        .unwrap_or_else(|| panic!("a token is csmp_<id>_<secret>: {secret}"))
        .to_string();
    Token { secret, id }
}

#[test]
fn tokens_from_the_command_line_work_against_the_service() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_definitions(dir.path());
    let db = dir.path().join("csmp.db");

    let admin = cli_token(&db, &["--role", "admin", "--name", "first"]);
    let refused = token_create(&db, &["--role", "client"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("tenant"),
        "says the tenant is missing: {}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(refused.stdout.is_empty());

    let app = Served::start(dir.path(), "tokens");
    let tokens = app.get("/v1/tokens").auth(&admin).send().expect(200);
    let listed: Vec<String> = tokens["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| s(t, "id"))
        .collect();
    assert_eq!(
        listed,
        vec![admin.id.clone()],
        "the refused token was not made"
    );
    assert_eq!(tokens["items"][0]["name"], "first");
    assert_eq!(tokens["items"][0]["role"], "admin");

    // Made while the service runs, accepted at once.
    let client = cli_token(&db, &["--role", "client", "--tenant", "acme"]);
    let ordered = app.order(&client, &json!({ "catalog_id": "hello" }));
    assert_eq!(ordered["tenant"], "acme");
    let tenant = app.get("/v1/tenants/acme").auth(&admin).send().expect(200);
    assert_eq!(tenant["id"], "acme");
    app.get("/v1/tokens")
        .auth(&client)
        .send()
        .problem(403, "forbidden");
    let forged = Token {
        secret: format!("{}x", admin.secret),
        id: admin.id.clone(),
    };
    app.get("/v1/tokens")
        .auth(&forged)
        .send()
        .problem(401, "unauthorized");

    let (status, _) = app.terminate();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn sigterm_ends_streams_and_exits_0_and_a_restart_has_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_definitions(dir.path());
    let db = dir.path().join("csmp.db");
    let admin = cli_token(&db, &["--role", "admin"]);
    let operator = cli_token(&db, &["--role", "operator"]);
    let client = cli_token(&db, &["--role", "client", "--tenant", "acme"]);

    let app = Served::start(dir.path(), "first");
    let created = app.order(&client, &json!({ "catalog_id": "steer" }));
    let request = s(&created, "id");
    let run = s(&created, "run_id");
    app.wait_step(&client, &run, "gate", "waiting");
    app.put("/v1/workflows/sleeper")
        .auth(&operator)
        .body("application/yaml", super::harness::SLEEPER_V2)
        .send()
        .expect(201);

    let hostile = std::fs::read(format!("{}/hostile.wasm", env!("CSMP_PLUGIN_WASM_DIR")))
        .expect("the hostile test plugin is built");
    app.put("/v1/plugins/hostile/0.1.0")
        .auth(&admin)
        .body("application/wasm", hostile)
        .send()
        .expect(201);

    let mut stream = app
        .get(&format!("/v1/runs/{run}/events"))
        .auth(&client)
        .stream();
    let (name, snapshot) = stream.next_event().expect("a snapshot");
    assert_eq!(name, "snapshot");
    assert_eq!(snapshot["status"], "running");

    let (status, printed) = app.terminate();
    assert!(
        status.success(),
        "csmp serve exits 0 after SIGTERM, not {status}"
    );
    assert!(
        printed.contains("stopped"),
        "it says it stopped cleanly: {printed}"
    );
    // The open stream was ended by the server, not cut.
    let mut rest = Vec::new();
    while let Some(event) = stream.next_event() {
        rest.push(event);
    }
    assert!(
        rest.iter().all(|(_, e)| e["status"] != "succeeded"),
        "the run did not end: {rest:?}"
    );

    // Everything acknowledged is there after a restart.
    let app = Served::start(dir.path(), "second");
    let r = app
        .get(&format!("/v1/requests/{request}"))
        .auth(&client)
        .send()
        .expect(200);
    assert_eq!(r["status"], "running");
    assert_eq!(r["run_id"], run.as_str());
    let detail = app
        .get(&format!("/v1/runs/{run}"))
        .auth(&client)
        .send()
        .expect(200);
    assert_eq!(detail["status"], "running");
    assert_eq!(
        step(&detail, "gate").map(|g| g["status"].clone()),
        Some(json!("waiting"))
    );
    let plugin = app
        .get("/v1/plugins/hostile/0.1.0")
        .auth(&operator)
        .send()
        .expect(200);
    assert_eq!(
        plugin["name"], "hostile",
        "the uploaded plugin is loaded again"
    );
    let versions = app
        .get("/v1/workflows/sleeper")
        .auth(&client)
        .send()
        .expect(200);
    assert_eq!(versions["versions"][1]["version"], 2, "{versions}");
    let audit = app
        .get("/v1/audit?limit=200")
        .auth(&admin)
        .send()
        .expect(200);
    let entries: Vec<(String, String, u64, String)> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            (
                s(e, "method"),
                s(e, "path"),
                e["status"].as_u64().expect("status"),
                e["actor"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        entries.contains(&("POST".into(), "/v1/requests".into(), 202, client.id.clone())),
        "{audit}"
    );
    assert!(
        entries.contains(&(
            "PUT".into(),
            "/v1/plugins/hostile/0.1.0".into(),
            201,
            admin.id.clone()
        )),
        "{audit}"
    );
    assert!(
        entries.contains(&(
            "PUT".into(),
            "/v1/workflows/sleeper".into(),
            201,
            operator.id.clone()
        )),
        "{audit}"
    );

    // The run goes on where it stopped.
    finish_steer(&app, &operator, &client, &run, &request, "restart");

    let (status, _) = app.terminate();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn the_json_log_carries_start_up_failures_and_request_ids() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_definitions(dir.path());
    let db = dir.path().join("csmp.db");
    let operator = cli_token(&db, &["--role", "operator"]);
    let client = cli_token(&db, &["--role", "client", "--tenant", "acme"]);
    let app = Served::start_with(
        dir.path(),
        "json",
        &["--log-format", "json"],
        &[("RUST_LOG", "debug")],
    );

    // A problem document names the call: the caller's id when it gave one, a fresh one else.
    let given = app
        .get("/v1/runs/run-0000000000000000")
        .auth(&operator)
        .header("x-request-id", "probe-42")
        .send();
    let problem = given.problem(404, "not-found");
    assert_eq!(problem["request_id"], "probe-42");
    assert_eq!(given.header("x-request-id").as_deref(), Some("probe-42"));
    let fresh = app.get("/v1/runs/nope").auth(&operator).send();
    let id = fresh
        .header("x-request-id")
        .expect("an id is always sent back");
    assert_eq!(id.len(), 16, "{id}");
    assert_eq!(fresh.problem(404, "not-found")["request_id"], id.as_str());
    let odd = app
        .get("/v1/catalog")
        .auth(&client)
        .header("x-request-id", "no spaces allowed")
        .send();
    assert_ne!(
        odd.header("x-request-id").as_deref(),
        Some("no spaces allowed")
    );

    // A failure in a run: the rejected approval fails its step and the run.
    let ordered = app.order(&client, &json!({ "catalog_id": "steer" }));
    let run = s(&ordered, "run_id");
    app.wait_step(&client, &run, "gate", "waiting");
    app.post(&format!("/v1/runs/{run}/approvals/gate"))
        .auth(&operator)
        .json(&json!({ "approved": false }))
        .send()
        .expect(200);
    app.wait_run(&client, &run, "failed");

    let (status, log) = app.terminate();
    assert!(status.success(), "exit status {status}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let message = |l: &serde_json::Value| l["fields"]["message"].as_str().unwrap_or("").to_string();
    assert!(
        lines
            .iter()
            .any(|l| message(l).starts_with("listening on http://127.0.0.1:")
                && l["level"] == "INFO"),
        "the start-up is logged: {log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["request_id"] == "probe-42" && l["fields"]["status"] == 404),
        "the call's lines carry its request id: {log}"
    );
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"
            && l["fields"]["run"] == run.as_str()
            && l["fields"]["unit"] == "gate"
            && message(l) == "unit failed"),
        "a failed unit is a warning naming the run and the unit: {log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "DEBUG" && l["fields"]["unit"] == "gate"),
        "transitions are logged at debug: {log}"
    );
}

#[test]
fn a_start_up_failure_is_a_json_error_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_definitions(dir.path());
    std::fs::write(
        dir.path().join("workflows/broken.yaml"),
        "name: broken\nversion: x\n",
    )
    .expect("write a broken workflow");
    let out = crate::helpers::csmp_command()
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--database")
        .arg(dir.path().join("csmp.db"))
        .arg("--workflows")
        .arg(dir.path().join("workflows"))
        .arg("--catalog")
        .arg(dir.path().join("catalog"))
        .output()
        .expect("csmp serve runs");
    assert_eq!(out.status.code(), Some(1));
    let log = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .filter(|l: &serde_json::Value| l["level"] == "ERROR")
        .collect();
    assert!(
        errors.iter().any(|l| l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("broken.yaml:2:"))),
        "the located problem is in the log: {log}"
    );
    assert!(
        errors.iter().any(|l| l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("csmp serve cannot run"))),
        "and why the service stopped: {log}"
    );
}

/// The lease of `run`'s partition as stored: (holder, epoch).
fn stored_lease(db: &Path, run: &str) -> (Option<String>, i64) {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    rt.block_on(async {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("a reader");
        let row: (Option<String>, i64) = sqlx::query_as(
            "SELECT p.owner, p.epoch FROM runs r JOIN partitions p ON p.id = r.partition \
             WHERE r.id = ?",
        )
        .bind(run)
        .fetch_one(&mut c)
        .await
        .expect("the run is stored");
        row
    })
}

#[test]
fn csmp_run_beside_csmp_serve_leaves_the_services_runs_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_definitions(dir.path());
    let db = dir.path().join("csmp.db");
    let operator = cli_token(&db, &["--role", "operator"]);
    let client = cli_token(&db, &["--role", "client", "--tenant", "acme"]);
    let app = Served::start(dir.path(), "beside");
    let ordered = app.order(&client, &json!({ "catalog_id": "steer" }));
    let run = s(&ordered, "run_id");
    app.wait_step(&client, &run, "gate", "waiting");
    let before = stored_lease(&db, &run);
    assert_eq!(before.0.as_deref(), Some("local"));

    // A one-off run on the same database, with the same default lease name as the service.
    let out = crate::helpers::csmp_command()
        .args(["run", "workflows/hello.yaml", "--input", "who=beside"])
        .arg("--database")
        .arg(&db)
        .current_dir(dir.path())
        .output()
        .expect("csmp run runs");
    assert!(
        out.status.success(),
        "csmp run: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // It neither took, re-planned, failed nor released the service's run.
    assert_eq!(stored_lease(&db, &run), before);
    let seen = app
        .get(&format!("/v1/runs/{run}"))
        .auth(&client)
        .send()
        .expect(200);
    assert_eq!(seen["status"], "running");

    // The service still executes it.
    app.post(&format!("/v1/runs/{run}/approvals/gate"))
        .auth(&operator)
        .json(&json!({ "approved": true }))
        .send()
        .expect(200);
    app.post(&format!("/v1/runs/{run}/signals/go"))
        .auth(&operator)
        .json(&json!("done"))
        .send()
        .expect(202);
    let done = app.wait_run(&client, &run, "succeeded");
    assert_eq!(done["outputs"]["heard"], "done");
    let (status, _) = app.terminate();
    assert!(status.success());
}

#[test]
fn a_second_serve_on_one_sqlite_file_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_definitions(dir.path());
    let app = Served::start(dir.path(), "first");
    let log = second_serve_refused(dir.path(), &dir.path().join("csmp.db"), &[]);
    assert!(
        log.contains("another csmp serve is using")
            && log.contains(&format!("pid {}", app.child.id())),
        "says who holds the database: {log}"
    );
    // The first one is untouched and stops cleanly; then the file is free again.
    assert_eq!(app.get("/healthz").send().status, 200);
    let (status, _) = app.terminate();
    assert!(status.success());
    let again = Served::start(dir.path(), "again");
    let (status, _) = again.terminate();
    assert!(status.success());
}

/// Signals `go` with `{"after": after}` to a `steer` run waiting at its gate, approves the gate,
/// and checks that the run hears the payload and its request is fulfilled.
pub(super) fn finish_steer(
    app: &Served,
    operator: &Token,
    client: &Token,
    run: &str,
    request: &str,
    after: &str,
) {
    app.post(&format!("/v1/runs/{run}/signals/go"))
        .auth(operator)
        .json(&json!({ "after": after }))
        .send()
        .expect(202);
    app.post(&format!("/v1/runs/{run}/approvals/gate"))
        .auth(operator)
        .json(&json!({ "approved": true }))
        .send()
        .expect(200);
    let done = app.wait_run(client, run, "succeeded");
    assert_eq!(done["outputs"], json!({ "heard": { "after": after } }));
    app.wait_request(client, request, "fulfilled");
}

/// Starts a second `csmp serve` on `database` beside a running one, waits (bounded) for it to
/// exit 1, and returns its log.
pub(super) fn second_serve_refused(dir: &Path, database: &Path, env: &[(&str, &str)]) -> String {
    let log_path = dir.join("second.log");
    let mut second = crate::helpers::csmp_command()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--database")
        .arg(database)
        .arg("--workflows")
        .arg(dir.join("workflows"))
        .arg("--catalog")
        .arg(dir.join("catalog"))
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("a log file"))
        .spawn()
        .expect("a second csmp serve runs");
    let started = Instant::now();
    let code = loop {
        if let Some(status) = second.try_wait().expect("its status") {
            break status.code();
        }
        if started.elapsed() > GUARD {
            let _ = second.kill();
            let _ = second.wait();
            panic!("the second csmp serve kept running beside the first");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(&log_path).expect("its log");
    assert_eq!(code, Some(1), "the second serve exits 1: {log}");
    log
}

/// An approval, then a step of the uploaded test plugin.
const NEEDS_HOSTILE: &str = r#"name: needs-hostile
version: 1
description: waits for an approval, then calls an uploaded plugin
steps:
  - id: gate
    approval: { roles: [operator] }
  - id: call
    needs: [gate]
    uses: hostile@^0.1
    with: { mode: flood, bytes: 8 }
outputs:
  called: "{{ steps.call.status }}"
"#;

/// Runs `sql` on the database from outside the service.
pub(super) fn sql(db: &Path, statement: &str) {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    rt.block_on(async {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("a connection");
        sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
            .execute(&mut c)
            .await
            .expect("the statement runs");
    });
}

#[test]
fn a_run_whose_workflow_no_longer_plans_waits_blocked_and_goes_on_when_fixed() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_definitions(dir.path());
    let db = dir.path().join("csmp.db");
    let admin = cli_token(&db, &["--role", "admin"]);
    let operator = cli_token(&db, &["--role", "operator"]);
    let hostile = std::fs::read(format!("{}/hostile.wasm", env!("CSMP_PLUGIN_WASM_DIR")))
        .expect("the hostile test plugin is built");
    let upload = |app: &Served, status: u16| {
        app.put("/v1/plugins/hostile/0.1.0")
            .auth(&admin)
            .body("application/wasm", hostile.clone())
            .send()
            .expect(status);
    };

    // The plugin and a workflow using it are stored; a run waits at its gate.
    let app = Served::start(dir.path(), "before");
    upload(&app, 201);
    app.put("/v1/workflows/needs-hostile")
        .auth(&operator)
        .body("application/yaml", NEEDS_HOSTILE)
        .send()
        .expect(201);
    // Catalog entries load at start: add one for it and restart to order it.
    let (status, _) = app.terminate();
    assert!(status.success());
    std::fs::write(
        dir.path().join("catalog/needs-hostile.yaml"),
        "id: needs-hostile\ntitle: Needs hostile\nworkflow: needs-hostile\ntenants: [\"*\"]\n",
    )
    .expect("write the entry");
    let app = Served::start(dir.path(), "ordering");
    let client = cli_token(&db, &["--role", "client", "--tenant", "acme"]);
    let ordered = app.order(&client, &json!({ "catalog_id": "needs-hostile" }));
    let run = s(&ordered, "run_id");
    app.wait_step(&client, &run, "gate", "waiting");
    let (status, _) = app.terminate();
    assert!(status.success());

    // The plugin is lost (an engine upgrade that no longer loads it would do the same), and
    // with it the entry that named the workflow.
    sql(&db, "DELETE FROM plugins WHERE name = 'hostile'");
    std::fs::remove_file(dir.path().join("catalog/needs-hostile.yaml")).expect("remove the entry");
    let app = Served::start(dir.path(), "blocked");
    let seen = app
        .get(&format!("/v1/runs/{run}"))
        .auth(&client)
        .send()
        .expect(200);
    assert_eq!(seen["status"], "blocked", "{seen}");
    let why = seen["blocked"].as_str().unwrap_or_default();
    assert!(why.contains("hostile") && why.contains("goes on"), "{why}");
    // It cannot be steered meanwhile, and says why.
    let refused = app
        .post(&format!("/v1/runs/{run}/approvals/gate"))
        .auth(&operator)
        .json(&json!({ "approved": true }))
        .send();
    let problem = refused.problem(409, "conflict");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("blocked"),
        "{problem}"
    );

    // The plugin comes back: the run goes on from where it stopped.
    upload(&app, 201);
    let seen = app.wait_run(&client, &run, "running");
    assert!(seen.get("blocked").is_none(), "{seen}");
    app.post(&format!("/v1/runs/{run}/approvals/gate"))
        .auth(&operator)
        .json(&json!({ "approved": true }))
        .send()
        .expect(200);
    let done = app.wait_run(&client, &run, "succeeded");
    assert_eq!(done["outputs"]["called"], "succeeded");
    let (status, _) = app.terminate();
    assert!(status.success());
}

/// Past `--max-event-streams`, a new event stream is a 503 with Retry-After, and an open one
/// is unaffected; when a stream ends its place is free again.
#[test]
fn event_streams_past_the_cap_are_refused_until_one_ends() {
    use std::io::{Read as _, Write as _};

    let dir = tempfile::tempdir().expect("temp dir");
    write_definitions(dir.path());
    let db = dir.path().join("csmp.db");
    let operator = cli_token(&db, &["--role", "operator"]);
    let client = cli_token(&db, &["--role", "client", "--tenant", "acme"]);
    let app = Served::start_with(dir.path(), "streams", &["--max-event-streams", "1"], &[]);
    let ordered = app.order(&client, &json!({ "catalog_id": "steer" }));
    let run = s(&ordered, "run_id");
    app.wait_step(&client, &run, "gate", "waiting");

    // One stream, held open on a raw connection.
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut held = std::net::TcpStream::connect(&addr).expect("connect");
    write!(
        held,
        "GET /v1/runs/{run}/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        client.secret
    )
    .expect("request sent");
    held.set_read_timeout(Some(GUARD)).expect("timeout");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        held.read_exact(&mut byte).expect("the stream's head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    let refused = app
        .get(&format!("/v1/runs/{run}/events"))
        .auth(&client)
        .send();
    let body = refused.problem(503, "unavailable");
    assert!(s(&body, "detail").contains("max-event-streams"), "{body}");
    assert!(
        refused.header("retry-after").is_some(),
        "Retry-After is set"
    );

    // The run ends, so does the held stream, and its place is free again.
    app.post(&format!("/v1/runs/{run}/signals/go"))
        .auth(&operator)
        .json(&json!({}))
        .send()
        .expect(202);
    app.post(&format!("/v1/runs/{run}/approvals/gate"))
        .auth(&operator)
        .json(&json!({ "approved": true }))
        .send()
        .expect(200);
    let mut rest = String::new();
    held.read_to_string(&mut rest).expect("the stream ends");
    drop(held);
    app.wait_run(&client, &run, "succeeded");
    let started = Instant::now();
    loop {
        let again = app
            .get(&format!("/v1/runs/{run}/events"))
            .auth(&client)
            .send();
        if again.status == 200 {
            assert!(again.text().contains("snapshot"), "{}", again.text());
            break;
        }
        assert!(started.elapsed() < GUARD, "the place was never given back");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _) = app.terminate();
    assert!(status.success(), "exit status {status}");
}
