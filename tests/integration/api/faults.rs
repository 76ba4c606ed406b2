//! Storage faults met by a real `csmp serve`: a disk that fills up (a tmpfs the test mounts),
//! database files made read-only (the immutable attribute, which stops root too), and
//! `SQLITE_BUSY` from a second connection holding the write lock. Each must show in `/readyz`
//! and in the log (once per change of state, not once per retry), refuse further changes with
//! 503 and `Retry-After` while it lasts, and pass by itself when the fault clears; a shutdown
//! asked for during a fault must not wait for the database.
//!
//! These tests need root (mount, chattr), as CI and the development machines have.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use super::harness::{GUARD, Token, s, write_definitions};
use super::process::{Served, cli_token};

/// Waits for the signal `go`, then says what it heard.
const HOLD: &str = r#"name: hold
version: 1
description: waits for the signal go, then echoes it
steps:
  - id: hear
    signal: go
  - id: say
    needs: [hear]
    uses: echo@^1
    with: { heard: "{{ steps.hear.output }}" }
outputs:
  heard: "{{ steps.say.output.heard }}"
"#;

/// A directory with the example definitions plus `hold`, and tokens on its database.
struct Setup {
    operator: Token,
    client: Token,
}

fn setup(dir: &Path) -> Setup {
    write_definitions(dir);
    std::fs::write(dir.join("workflows/hold.yaml"), HOLD).expect("write hold");
    std::fs::write(
        dir.join("catalog/hold.yaml"),
        "id: hold\ntitle: Hold\nworkflow: hold\ntenants: [\"*\"]\n",
    )
    .expect("write the hold entry");
    let db = dir.join("csmp.db");
    Setup {
        operator: cli_token(&db, &["--role", "operator"]),
        client: cli_token(&db, &["--role", "client", "--tenant", "acme"]),
    }
}

/// Polls `/readyz` until its answer has `status`; returns the body.
fn readyz_until(app: &Served, status: u16) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let reply = app.get("/readyz").send();
        if reply.status == status {
            return if status == 200 {
                json!(reply.text())
            } else {
                reply.json()
            };
        }
        assert!(
            started.elapsed() < GUARD,
            "/readyz never answered {status}; last: {} {}",
            reply.status,
            reply.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Orders `hold` and waits until it waits for its signal; returns the run id.
fn a_waiting_run(app: &Served, who: &Setup) -> String {
    let ordered = app.order(&who.client, &json!({ "catalog_id": "hold" }));
    let run = s(&ordered, "run_id");
    app.wait_step(&who.client, &run, "hear", "waiting");
    run
}

/// Sends the signal `go` on a thread of its own (its answer waits for the commit); the thread
/// returns the status and the problem type, if any.
fn signal_in_background(
    app: &Served,
    who: &Setup,
    run: &str,
) -> std::thread::JoinHandle<(u16, String)> {
    let base = app.base.clone();
    let token = who.operator.clone();
    let run = run.to_string();
    std::thread::spawn(move || {
        let reply = super::harness::Client::new(base)
            .post(&format!("/v1/runs/{run}/signals/go"))
            .auth(&token)
            .json(&json!({ "from": "the test" }))
            .send();
        let kind = if reply.status == 202 {
            String::new()
        } else {
            reply.json()["type"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        (reply.status, kind)
    })
}

/// What every fault must look like while it lasts: `/readyz` names it, a change is refused
/// at once with 503 and `Retry-After`, and the log has said so exactly once.
fn check_fault_is_visible(app: &mut Served, who: &Setup, run: &str, codes: &[&str]) {
    let ready = readyz_until(app, 503);
    let detail = ready["detail"].as_str().unwrap_or_default().to_string();
    assert!(
        codes.iter().any(|c| detail.contains(c)),
        "/readyz names one of {codes:?}: {detail}"
    );
    assert!(detail.contains("retries on its own"), "{detail}");
    let refused = app
        .post(&format!("/v1/runs/{run}/cancel"))
        .auth(&who.operator)
        .send();
    refused.problem(503, "unavailable");
    assert_eq!(refused.header("retry-after").as_deref(), Some("1"));
    // Let a few retries go by: the log still says it once.
    let metrics = || app.get("/metrics").send().text();
    let retries = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("csmp_store_commit_retries_total "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    let started = Instant::now();
    while retries(&metrics()) < 3 {
        assert!(
            started.elapsed() < GUARD,
            "no retries counted: {}",
            metrics()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metrics().contains("csmp_store_failing 1"));
    let said: Vec<String> = app
        .log_so_far()
        .into_iter()
        .filter(|l| l.contains("cannot commit to the database"))
        .collect();
    assert_eq!(
        said.len(),
        1,
        "one error line per change of state: {said:#?}"
    );
    assert!(codes.iter().any(|c| said[0].contains(c)), "{}", said[0]);
}

/// After the fault clears: the held signal lands, the run finishes, `/readyz` is ready again
/// and the log says the database came back.
fn check_recovery(
    mut app: Served,
    who: &Setup,
    run: &str,
    signal: std::thread::JoinHandle<(u16, String)>,
) {
    // Accepted once the commit landed, or, on a slow machine, answered by the API's time limit
    // while it waited (which says the change may still complete): the run tells which.
    let (status, kind) = signal.join().expect("the signal call");
    assert!(
        status == 202 || (status == 503 && kind == "urn:csmp:problem:timeout"),
        "the held signal is accepted when the database comes back: {status} {kind}"
    );
    readyz_until(&app, 200);
    let done = app.wait_run(&who.client, run, "succeeded");
    assert_eq!(done["outputs"]["heard"], json!({ "from": "the test" }));
    readyz_until(&app, 200);
    assert!(
        app.get("/metrics")
            .send()
            .text()
            .contains("csmp_store_failing 0")
    );
    assert!(
        app.log_so_far()
            .iter()
            .any(|l| l.contains("the database accepts commits again")),
        "the recovery is logged"
    );
    let (status, _) = app.terminate();
    assert!(status.success(), "exit status {status}");
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).expect("a mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(at.to_path_buf())
    }

    /// Writes a file until the filesystem is full; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write as _;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).expect("a filler file");
        let block = vec![0u8; 64 * 1024];
        loop {
            match f.write_all(&block).and_then(|()| f.sync_data()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        // Whatever is left is less than a block; take it too, byte by byte.
        while f.write_all(&[0]).and_then(|()| f.sync_data()).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_shows_in_readyz_and_passes_when_space_is_freed() {
    let root = tempfile::tempdir().expect("temp dir");
    let fs = Tmpfs::mount(&root.path().join("small"), "64m");
    let dir = fs.0.clone();
    let who = setup(&dir);
    let mut app = Served::start(&dir, "full");
    let run = a_waiting_run(&app, &who);

    let filler = fs.fill();
    let signal = signal_in_background(&app, &who, &run);
    check_fault_is_visible(&mut app, &who, &run, &["SQLITE_FULL"]);
    // An order writes its request row itself: refused, and nothing is left of it.
    app.post("/v1/requests")
        .auth(&who.client)
        .json(&json!({ "catalog_id": "hold" }))
        .send()
        .problem(503, "unavailable");

    std::fs::remove_file(filler).expect("free the space");
    check_recovery(app, &who, &run, signal);
}

/// Sets or clears the immutable attribute, which refuses writes even to root and even
/// through descriptors opened before.
fn immutable(on: bool, files: &[PathBuf]) {
    let out = Command::new("chattr")
        .arg(if on { "+i" } else { "-i" })
        .args(files)
        .output()
        .expect("chattr runs");
    assert!(
        out.status.success(),
        "this test needs chattr on a filesystem with the immutable attribute (ext4, xfs, btrfs) and root: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Clears the immutable attribute when dropped, so a failing test still cleans up.
struct Mutable(Vec<PathBuf>);

impl Drop for Mutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").args(&self.0).status();
    }
}

#[test]
fn read_only_database_files_show_in_readyz_and_pass_when_writable_again() {
    // On the build directory's disk, which keeps file attributes (a tmpfs does not).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let who = setup(dir.path());
    let mut app = Served::start(dir.path(), "read-only");
    let run = a_waiting_run(&app, &who);

    let db = dir.path().join("csmp.db");
    let files = vec![db.clone(), db.with_extension("db-wal")];
    let guard = Mutable(files.clone());
    immutable(true, &files);
    let signal = signal_in_background(&app, &who, &run);
    // Written through the open connection: an I/O error; through a fresh one: read-only.
    check_fault_is_visible(&mut app, &who, &run, &["SQLITE_IOERR", "SQLITE_READONLY"]);

    immutable(false, &files);
    drop(guard);
    check_recovery(app, &who, &run, signal);
}

#[test]
fn a_held_write_lock_is_busy_and_a_shutdown_meanwhile_does_not_wait_for_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let who = setup(dir.path());
    let mut app = Served::start_with(dir.path(), "busy", &["--sqlite-busy-timeout", "200ms"], &[]);
    let run = a_waiting_run(&app, &who);

    // A second connection takes SQLite's write lock and keeps it.
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let db = dir.path().join("csmp.db");
    let mut holder = rt.block_on(async {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("a second connection");
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut c)
            .await
            .expect("the write lock");
        c
    });
    let signal = signal_in_background(&app, &who, &run);
    check_fault_is_visible(&mut app, &who, &run, &["SQLITE_BUSY"]);

    // SIGTERM while the commit cannot land: the service stops without it.
    let (status, log) = app.terminate();
    assert!(status.success(), "exit status {status}; log: {log}");
    assert!(log.contains("stopping while the database fails"), "{log}");
    let (status, kind) = signal.join().expect("the signal call");
    assert_eq!(
        (status, kind.as_str()),
        (503, "urn:csmp:problem:unavailable"),
        "the signal was never acknowledged"
    );
    rt.block_on(async {
        sqlx::query("ROLLBACK")
            .execute(&mut holder)
            .await
            .expect("release the lock");
    });
    drop(holder);

    // Restarted, the run still waits for the signal nobody was told was taken.
    let app = Served::start(dir.path(), "busy-again");
    app.wait_step(&who.client, &run, "hear", "waiting");
    app.post(&format!("/v1/runs/{run}/signals/go"))
        .auth(&who.operator)
        .json(&json!({ "from": "the test" }))
        .send()
        .expect(202);
    let done = app.wait_run(&who.client, &run, "succeeded");
    assert_eq!(done["outputs"]["heard"], json!({ "from": "the test" }));
    let (status, _) = app.terminate();
    assert!(status.success());
}
