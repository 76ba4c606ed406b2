//! `scaleout` (PostgreSQL only): real `csmp` processes (this binary, re-run as `csmp bench
//! --child-db … --child-owner …`) sharing one database. The same chains run on one process,
//! then on two (each starting half, in the partitions it holds); then, with two processes under
//! load, one is killed with SIGKILL and the time until the other starts a step of a run it
//! took over is measured (the failover).
//!
//! Each child says `ready` once it holds its share of the partitions, starts its runs when it
//! reads `go`, says `done` when they have all ended, and stops when its input closes; it
//! traces its attempts (`child.rs`), in wall-clock time, for the failover.

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader, Write as _};
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
use crate::store::{Store, StoreOptions};

/// Steps per run.
const LEN: usize = 10;
/// The workflow the children run.
const WORKFLOW: &str = "bench-scaleout";
/// The children's lease: a process silent this long is taken over.
const LEASE: Duration = Duration::from_secs(2);
/// The share of the failover run's steps started before the kill.
const KILL_AT: f64 = 0.3;
/// How long to wait for anything before giving up.
const GIVE_UP: Duration = Duration::from_secs(300);

/// What a child is told on its command line.
#[derive(Debug)]
pub(super) struct ChildArgs<'a> {
    pub(super) db: &'a str,
    pub(super) owner: &'a str,
    /// How many children share the database (it is ready once it holds its share).
    pub(super) of: usize,
    /// Runs it starts at `go`.
    pub(super) submit: usize,
    pub(super) trace: Option<&'a Path>,
}

/// The child process.
pub(super) async fn child(args: ChildArgs<'_>) -> anyhow::Result<()> {
    let config = EngineConfig {
        owner: args.owner.into(),
        lease: LEASE,
        role: "executor",
        ..EngineConfig::default()
    };
    let engine = child::engine(args.db, WORKFLOW, LEN, args.trace, config).await?;
    let shared = engine.store().partition_count().await? as usize;
    let share = shared.div_ceil(args.of.max(1));
    let deadline = Instant::now() + GIVE_UP;
    while engine.held().all().len() != share {
        if Instant::now() > deadline {
            bail!("{} never held its share of the partitions", args.owner);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held: Vec<String> = engine.held().all().iter().map(i64::to_string).collect();
    // Standard input, line by line, read on a thread of its own; closed at its end.
    let (tx, mut input) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    say(&format!("ready {}", held.join(",")))?;
    if input.recv().await.as_deref() != Some("go") {
        bail!("expected `go` on standard input");
    }
    let mut ends = engine.subscribe();
    let ids = submit_all(
        &engine,
        WORKFLOW,
        (0..args.submit).map(|n| json!({ "n": n })).collect(),
    )
    .await?;
    let mut open: HashSet<String> = ids.into_iter().collect();
    while !open.is_empty() {
        match ends.recv().await {
            Ok(e)
                if e.step.is_none()
                    && matches!(e.status.as_str(), "succeeded" | "failed" | "cancelled") =>
            {
                open.remove(&e.run_id);
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                let mut still = HashSet::new();
                for id in open {
                    if let Some(r) = engine.store().run(&id).await?
                        && !r.status.is_final()
                    {
                        still.insert(id);
                    }
                }
                open = still;
            }
            Err(e) => bail!("the executor stopped: {e}"),
        }
    }
    say("done")?;
    // Work on (runs taken over from others) until the parent closes our input.
    while input.recv().await.is_some() {}
    engine.shutdown().await;
    Ok(())
}

fn say(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// A child process, killed and reaped if the benchmark gives up early.
struct Process {
    child: Option<Child>,
    out: Option<std::io::Lines<BufReader<std::process::ChildStdout>>>,
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Process {
    fn spawn(
        db: &str,
        owner: &str,
        of: usize,
        submit: usize,
        trace: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the csmp binary")?;
        let mut cmd = Command::new(&exe);
        cmd.args(["bench", "--child-db", db, "--child-owner", owner])
            .args([
                "--child-of",
                &of.to_string(),
                "--child-submit",
                &submit.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(t) = trace {
            cmd.arg("--child-trace").arg(t);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let out = child.stdout.take().map(|o| BufReader::new(o).lines());
        Ok(Self {
            child: Some(child),
            out,
        })
    }

    /// The next line the child says (blocking).
    fn hear(&mut self) -> anyhow::Result<String> {
        match self.out.as_mut().and_then(Iterator::next) {
            Some(line) => Ok(line?),
            None => bail!("a child process ended before it said what it was doing"),
        }
    }

    fn tell(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self
            .child
            .as_mut()
            .and_then(|c| c.stdin.as_mut())
            .context("the child's input")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// Closes its input (it stops) and waits for it.
    fn stop(mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            drop(c.stdin.take());
            c.wait()?;
        }
        Ok(())
    }

    fn kill(mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill().context("killing the child with SIGKILL")?;
            c.wait()?;
        }
        Ok(())
    }
}

/// Runs `runs` chains over `processes` children on a fresh database; seconds from `go` to
/// the last `done`.
async fn timed(ctx: &Ctx, name: &str, processes: usize, runs: usize) -> anyhow::Result<f64> {
    let db = ctx.database(name).await?;
    // The schema and the workflow, before the children race to create them.
    drop(Store::open_location(&db, StoreOptions::default()).await?);
    let mut children = Vec::new();
    for i in 0..processes {
        let share = runs / processes + usize::from(i < runs % processes);
        children.push(Process::spawn(
            &db,
            &format!("p{i}"),
            processes,
            share,
            None,
        )?);
    }
    let children = tokio::task::spawn_blocking(move || -> anyhow::Result<(f64, Vec<Process>)> {
        for c in &mut children {
            let line = c.hear()?;
            if !line.starts_with("ready") {
                bail!("a child said {line:?} instead of `ready`");
            }
        }
        let started = Instant::now();
        for c in &mut children {
            c.tell("go")?;
        }
        for c in &mut children {
            let line = c.hear()?;
            if line != "done" {
                bail!("a child said {line:?} instead of `done`");
            }
        }
        Ok((started.elapsed().as_secs_f64(), children))
    })
    .await??;
    let (seconds, children) = children;
    for c in children {
        c.stop()?;
    }
    Ok(seconds)
}

/// The workload.
pub(super) async fn parent(ctx: &Ctx) -> anyhow::Result<Report> {
    if ctx.postgres.is_none() {
        bail!(
            "the scaleout workload needs a shared PostgreSQL database: run it with --database postgres://…"
        );
    }
    let runs = ctx.scaled(2_000);
    let steps = (runs * LEN) as f64;
    let one = timed(ctx, "scaleout-one.db", 1, runs).await?;
    let two = timed(ctx, "scaleout-two.db", 2, runs).await?;
    let (failover_ms, lost) = failover(ctx, runs).await?;
    let mut r = Report::new(
        "scaleout",
        format!(
            "{runs} runs × {LEN} echo steps on 1, then 2 `csmp` processes sharing one database (each starts its half in its partitions); then kill -9 of one of two under load (lease {} s)",
            LEASE.as_secs()
        ),
    );
    r.add("one_process_steps_per_s", steps / one, "steps/s")
        .add("two_processes_steps_per_s", steps / two, "steps/s")
        .check("two_over_one", one / two, "×", Target::AtLeast(0.9))
        .check(
            "failover_ms",
            failover_ms,
            "ms",
            Target::AtMost(LEASE.as_secs_f64() * 1000.0 * 4.0 / 3.0),
        )
        .check("failover_lost_runs", lost as f64, "", Target::AtMost(0.0));
    Ok(r)
}

/// Two children under load; one is killed. Returns the time from the kill to the survivor's
/// first step of a run of the killed one's partitions, and the runs not finished correctly.
async fn failover(ctx: &Ctx, runs: usize) -> anyhow::Result<(f64, usize)> {
    let db = ctx.database("scaleout-failover.db").await?;
    let store = Store::open_location(&db, StoreOptions::default()).await?;
    let dir = ctx.dir.join("scaleout");
    std::fs::create_dir_all(&dir)?;
    let (trace_a, trace_b) = (dir.join("a.txt"), dir.join("b.txt"));
    let mut a = Process::spawn(&db, "fa", 2, runs / 2, Some(&trace_a))?;
    let mut b = Process::spawn(&db, "fb", 2, runs - runs / 2, Some(&trace_b))?;
    let (a, mut b) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let ready_a = a.hear()?;
        let ready_b = b.hear()?;
        if !ready_a.starts_with("ready") || !ready_b.starts_with("ready") {
            bail!("the children said {ready_a:?} and {ready_b:?} instead of `ready`");
        }
        a.tell("go")?;
        b.tell("go")?;
        Ok((a, b))
    })
    .await??;
    let kill_after = ((runs * LEN / 2) as f64 * KILL_AT) as usize;
    let deadline = Instant::now() + GIVE_UP;
    while child::lines(&trace_a) < kill_after.max(1) {
        if Instant::now() > deadline {
            bail!("the first process never got under load");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // What the first one holds right before it dies.
    let a_holds: HashSet<i64> = store
        .partitions()
        .await?
        .into_iter()
        .filter(|p| p.owner.as_deref() == Some("fa"))
        .map(|p| p.id)
        .collect();
    let killed_at = child::wall_ms();
    a.kill()?;
    // The survivor finishes its own runs and those it takes over.
    let b = tokio::task::spawn_blocking(move || -> anyhow::Result<Process> {
        let line = b.hear()?;
        if line != "done" {
            bail!("the surviving child said {line:?} instead of `done`");
        }
        Ok(b)
    })
    .await??;
    while store.census().await?.unfinished_runs() > 0 {
        if Instant::now() > deadline {
            bail!("the runs of the killed process were not finished by the other");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.stop()?;
    // The survivor's first step of a run in the killed one's partitions.
    let mut partition_of = std::collections::HashMap::new();
    for r in store
        .runs(i64::try_from(runs * 2).unwrap_or(i64::MAX))
        .await?
    {
        partition_of.insert(r.id.clone(), r.partition);
    }
    let first = child::read(&trace_b)
        .into_iter()
        .filter(|t| {
            t.at >= killed_at
                && partition_of
                    .get(&t.run)
                    .is_some_and(|p| a_holds.contains(p))
        })
        .map(|t| t.at)
        .min()
        .context("the survivor never ran a step of a run it took over")?;
    let correct = store
        .runs(i64::try_from(runs * 2).unwrap_or(i64::MAX))
        .await?
        .iter()
        .filter(|r| {
            r.status == crate::store::RunStatus::Succeeded
                && r.outputs.as_ref().map(|o| &o["n"]) == Some(&r.inputs["n"])
        })
        .count();
    Ok(((first - killed_at) as f64, runs.saturating_sub(correct)))
}
