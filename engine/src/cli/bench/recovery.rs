//! `recovery`: a real `csmp` process (this binary, re-run as `csmp bench --child-db …`) runs
//! many chains; it is killed with SIGKILL under load and started again on the same database.
//! Measured: time from the restart to the first resumed plugin attempt, runs lost (accepted
//! but not finished correctly), and duplicate attempts (a unit started again by the restarted
//! process after the killed one had started it) against the units in flight at the kill.
//!
//! Each child traces its attempt starts (`child.rs`).

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;

use super::Ctx;
use super::child;
use super::report::{Report, Target};
use super::workloads::submit_all;
use crate::runtime::EngineConfig;
use crate::store::{RunStatus, Store, StoreOptions};

/// Steps per run.
const LEN: usize = 10;
/// The workflow the children run.
const WORKFLOW: &str = "bench-recovery";
/// The lease name both children use, so the restarted one takes the runs back at once.
const OWNER: &str = "bench-recovery";
/// The share of all steps the first child starts before it is killed.
const KILL_AT: f64 = 0.3;
/// How long to wait for anything before giving up.
const GIVE_UP: Duration = Duration::from_secs(120);

/// The child process: runs the engine on `db`, submits `submit` runs (printing `submitted N`
/// once all are accepted), then works until its standard input closes or it is killed.
pub(super) async fn child(db: &str, trace: Option<&Path>, submit: usize) -> anyhow::Result<()> {
    let config = EngineConfig {
        owner: OWNER.into(),
        ..EngineConfig::default()
    };
    let engine = child::engine(db, WORKFLOW, LEN, trace, config).await?;
    if submit > 0 {
        submit_all(
            &engine,
            WORKFLOW,
            (0..submit).map(|n| json!({ "n": n })).collect(),
        )
        .await?;
        let mut out = std::io::stdout();
        writeln!(out, "submitted {submit}")?;
        out.flush()?;
    }
    // Work until the parent closes our standard input (or kills us).
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await?;
    engine.shutdown().await;
    Ok(())
}

/// A child process that is killed (SIGKILL) and reaped if the benchmark gives up early, so
/// no child outlives a failed run.
#[derive(Debug)]
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn get(&mut self) -> anyhow::Result<&mut Child> {
        self.0
            .as_mut()
            .context("the child process was already reaped")
    }

    fn take(&mut self) -> anyhow::Result<Child> {
        self.0
            .take()
            .context("the child process was already reaped")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_child(db: &str, trace: &Path, submit: usize) -> anyhow::Result<ChildGuard> {
    let exe = std::env::current_exe().context("finding the csmp binary")?;
    Command::new(&exe)
        .arg("bench")
        .arg("--child-db")
        .arg(db)
        .arg("--child-trace")
        .arg(trace)
        .arg("--child-submit")
        .arg(submit.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map(|c| ChildGuard(Some(c)))
        .with_context(|| format!("starting {}", exe.display()))
}

/// Polls `ready` every few milliseconds until it is true.
async fn until(
    what: &str,
    mut ready: impl AsyncFnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + GIVE_UP;
    while !ready().await? {
        if Instant::now() > deadline {
            bail!("gave up waiting for {what} after {GIVE_UP:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// The parent: starts, kills and restarts the child, then checks the database.
pub(super) async fn parent(ctx: &Ctx) -> anyhow::Result<Report> {
    let runs = ctx.scaled(2_000);
    let total_steps = runs * LEN;
    let dir = ctx.dir.join("recovery");
    std::fs::create_dir_all(&dir)?;
    let db = ctx.database("recovery/recovery.db").await?;
    let (trace_a, trace_b) = (
        dir.join("trace-killed.txt"),
        dir.join("trace-restarted.txt"),
    );

    // 1. The first process accepts every run, then works until it is killed.
    let mut a = spawn_child(&db, &trace_a, runs)?;
    let stdout = a
        .get()?
        .stdout
        .take()
        .context("the child's standard output")?;
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await??;
    if !line.starts_with("submitted") {
        bail!("the child process did not accept the runs (it said {line:?})");
    }
    let kill_after = ((total_steps as f64 * KILL_AT) as usize).max(1);
    until("the first process to get under load", async || {
        Ok(child::lines(&trace_a) >= kill_after)
    })
    .await?;
    let mut killed = a.take()?;
    killed.kill().context("killing the child with SIGKILL")?;
    let killed_at = Instant::now();
    killed.wait()?;
    let started_before_kill = child::lines(&trace_a);

    // 2. What the disk says at the kill.
    let store = Store::open_location(&db, StoreOptions::default()).await?;
    let census = store.census().await?;
    let in_flight = census.steps.get("running").copied().unwrap_or(0);
    let unfinished_at_kill = census.unfinished_runs();

    // 3. The restart, on the same database.
    let restarted = Instant::now();
    let mut b = spawn_child(&db, &trace_b, 0)?;
    until("the first resumed step", async || {
        Ok(child::lines(&trace_b) > 0)
    })
    .await?;
    let first_step = Instant::now();
    until("every run to finish", async || {
        Ok(store.census().await?.unfinished_runs() == 0)
    })
    .await?;
    let all_done = Instant::now();
    drop(b.get()?.stdin.take()); // asks the child to stop
    let stop_by = Instant::now() + Duration::from_secs(10);
    while b.get()?.try_wait()?.is_none() {
        if Instant::now() > stop_by {
            bail!("the restarted child did not stop within 10 s after its input closed");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // 4. Losses: accepted runs that did not succeed with the right output.
    let rows = store
        .runs(i64::try_from(runs * 2).unwrap_or(i64::MAX))
        .await?;
    let correct = rows
        .iter()
        .filter(|r| {
            r.status == RunStatus::Succeeded
                && r.outputs.as_ref().map(|o| &o["n"]) == Some(&r.inputs["n"])
        })
        .count();
    let lost = runs.saturating_sub(correct);
    // Duplicates: units the restarted process started again after the killed one started them.
    let mut starts: HashMap<(String, String), usize> = HashMap::new();
    for path in [&trace_a, &trace_b] {
        for t in child::read(path) {
            *starts.entry((t.run, t.key)).or_default() += 1;
        }
    }
    let duplicates: usize = starts.values().map(|n| n.saturating_sub(1)).sum();
    let never_started = total_steps.saturating_sub(starts.len());
    let final_census = store.census().await?;

    let mut r = Report::new(
        "recovery",
        format!(
            "{runs} runs × {LEN} echo steps in a `csmp` child process, SIGKILL after {:.0}% of the steps started, restart on the same database",
            KILL_AT * 100.0
        ),
    );
    r.add("runs", runs as f64, "")
        .add("steps_started_before_kill", started_before_kill as f64, "")
        .add("unfinished_runs_at_kill", unfinished_at_kill as f64, "")
        .add("steps_in_flight_at_kill", in_flight as f64, "")
        .check(
            "restart_to_first_step_ms",
            (first_step - restarted).as_secs_f64() * 1000.0,
            "ms",
            Target::AtMost(1000.0),
        )
        .add(
            "kill_to_first_step_ms",
            (first_step - killed_at).as_secs_f64() * 1000.0,
            "ms",
        )
        .add(
            "restart_to_all_done_s",
            (all_done - restarted).as_secs_f64(),
            "s",
        )
        .check("lost_runs", lost as f64, "", Target::AtMost(0.0))
        .check(
            "duplicate_attempts",
            duplicates as f64,
            "",
            Target::AtMost(in_flight as f64),
        )
        .check(
            "steps_never_started",
            never_started as f64,
            "",
            Target::AtMost(0.0),
        )
        .add(
            "steps_succeeded",
            final_census.steps.get("succeeded").copied().unwrap_or(0) as f64,
            "",
        );
    Ok(r)
}
