//! The in-process workloads: `chain`, `chain40`, `fanout` and `timers`. Each starts a fresh
//! store and engine, submits its runs at once, waits for them all to end, and reads its
//! figures from the clock, the store's commit counter and an attempt observer.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;
use tokio::sync::broadcast;

use super::report::{Report, Target, quantile};
use super::{Ctx, chain_yaml, engine, fanout_yaml};
use crate::runtime::{AttemptObserver, Engine, NewRun, RunEvent};
use crate::store::RunStatus;

/// How long any workload may take before the benchmark gives up on it.
const GIVE_UP: Duration = Duration::from_secs(300);

/// A unit (run id, key) → when its latest attempt started and finished.
type Marks = HashMap<(String, String), (Option<Instant>, Option<Instant>)>;

/// Records when worker threads start and finish attempts.
#[derive(Debug, Default)]
pub(super) struct Stopwatch {
    /// (run, key) → (start, finish) of the latest attempt.
    marks: Mutex<Marks>,
    /// Attempts started and not yet finished.
    in_flight: std::sync::atomic::AtomicI64,
}

impl AttemptObserver for Stopwatch {
    fn started(&self, run_id: &str, key: &crate::plan::UnitKey, _attempt: u32) {
        let now = Instant::now();
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut m = self.marks.lock().unwrap_or_else(PoisonError::into_inner);
        m.insert((run_id.into(), key.to_string()), (Some(now), None));
    }

    fn finished(&self, run_id: &str, key: &crate::plan::UnitKey, _attempt: u32) {
        let now = Instant::now();
        self.in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let mut m = self.marks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = m.get_mut(&(run_id.to_string(), key.to_string())) {
            e.1 = Some(now);
        }
    }
}

impl Stopwatch {
    fn marks(&self) -> Marks {
        self.marks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Submits one run per input, all at once; returns their ids once every one is accepted.
pub(super) async fn submit_all(
    engine: &Engine,
    workflow: &str,
    inputs: Vec<serde_json::Value>,
) -> anyhow::Result<Vec<String>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, inputs) in inputs.into_iter().enumerate() {
        let engine = engine.clone();
        let run = NewRun {
            workflow: workflow.into(),
            version: None,
            inputs,
            tenant: "bench".into(),
            requester: None,
            partition: None,
        };
        set.spawn(async move { (i, engine.submit(run).await) });
    }
    let mut ids = vec![String::new(); set.len()];
    while let Some(joined) = set.join_next().await {
        let (i, id) = joined.context("a submitting task failed")?;
        ids[i] = id.context("submitting a run")?;
    }
    Ok(ids)
}

/// Waits until every run of `ids` has ended (events from `rx`, subscribed before submitting,
/// so runs that ended before their id was known are still in it; the store answers when the
/// event stream lagged). Returns when the last one ended, and
/// fails if any run did not succeed.
pub(super) async fn wait_all(
    engine: &Engine,
    rx: &mut broadcast::Receiver<RunEvent>,
    ids: &[String],
) -> anyhow::Result<Instant> {
    let mut pending: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let deadline = tokio::time::Instant::now() + GIVE_UP;
    let mut last = Instant::now();
    while !pending.is_empty() {
        let event = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .with_context(|| format!("{} runs did not end within {GIVE_UP:?}", pending.len()))?;
        match event {
            Ok(e) if e.step.is_none() && is_final(&e.status) => {
                if e.status != "succeeded" {
                    bail!(
                        "run {} {}: {}",
                        e.run_id,
                        e.status,
                        e.error.unwrap_or_default()
                    );
                }
                if pending.remove(e.run_id.as_str()) {
                    last = Instant::now();
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let mut done = Vec::new();
                for id in &pending {
                    let row = engine.store().run(id).await?;
                    match row.map(|r| r.status) {
                        Some(RunStatus::Succeeded) => done.push(*id),
                        Some(s) if s.is_final() => bail!("run {id} {}", s.as_str()),
                        _ => {}
                    }
                }
                if !done.is_empty() {
                    last = Instant::now();
                }
                for id in done {
                    pending.remove(id);
                }
            }
            Err(broadcast::error::RecvError::Closed) => bail!("the executor stopped"),
        }
    }
    Ok(last)
}

fn is_final(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "cancelled")
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `chain`: many runs of a 10-step chain at once — throughput and steps per commit.
pub(super) async fn chain(ctx: &Ctx) -> anyhow::Result<Report> {
    const LEN: usize = 10;
    let runs = ctx.scaled(1_000);
    let engine = engine(ctx, "chain.db", &chain_yaml("bench-chain", LEN), None).await?;
    let mut rx = engine.subscribe();
    let commits0 = engine.store().commits();
    let t0 = Instant::now();
    let ids = submit_all(
        &engine,
        "bench-chain",
        (0..runs).map(|n| json!({ "n": n })).collect(),
    )
    .await?;
    let end = wait_all(&engine, &mut rx, &ids).await?;
    let secs = (end - t0).as_secs_f64();
    let commits = (engine.store().commits() - commits0) as f64;
    engine.shutdown().await;
    let steps = (runs * LEN) as f64;
    let per_s = steps / secs;
    let mut r = Report::new(
        "chain",
        format!("{runs} runs × {LEN} sequential echo steps, submitted at once"),
    );
    r.add("runs", runs as f64, "")
        .add("steps", steps, "")
        .add("seconds", secs, "s")
        .check("steps_per_s", per_s, "steps/s", Target::AtLeast(10_000.0))
        .add("commits", commits, "")
        .check(
            "steps_per_commit",
            steps / commits.max(1.0),
            "steps/fsync",
            Target::AtLeast(20.0),
        )
        .add(
            "steps_per_probe_fsync",
            per_s / ctx.fsyncs_per_s,
            "steps in the time of one probe fsync",
        );
    Ok(r)
}

/// `chain40`: one run of 40 steps at a time — latency of the critical path of a step.
pub(super) async fn chain40(ctx: &Ctx) -> anyhow::Result<Report> {
    const LEN: usize = 40;
    let repeats = ctx.scaled(5);
    let watch = Arc::new(Stopwatch::default());
    let engine = engine(
        ctx,
        "chain40.db",
        &chain_yaml("bench-chain40", LEN),
        Some(watch.clone()),
    )
    .await?;
    let mut gaps = Vec::new();
    let mut total = Duration::ZERO;
    let commits0 = engine.store().commits();
    for n in 0..repeats {
        let mut rx = engine.subscribe();
        let t0 = Instant::now();
        let ids = submit_all(&engine, "bench-chain40", vec![json!({ "n": n })]).await?;
        let end = wait_all(&engine, &mut rx, &ids).await?;
        total += end - t0;
        let marks = watch.marks();
        for id in &ids {
            for i in 1..LEN {
                let finish = marks.get(&(id.clone(), format!("s{i}"))).and_then(|m| m.1);
                let next = marks
                    .get(&(id.clone(), format!("s{}", i + 1)))
                    .and_then(|m| m.0);
                if let (Some(f), Some(s)) = (finish, next) {
                    gaps.push(ms(s.saturating_duration_since(f)));
                }
            }
        }
    }
    let commits = (engine.store().commits() - commits0) as f64;
    engine.shutdown().await;
    gaps.sort_by(f64::total_cmp);
    let steps = (repeats * LEN) as f64;
    let per_step = ms(total) / steps;
    let p50 = quantile(&gaps, 0.5);
    let mut r = Report::new(
        "chain40",
        format!(
            "{repeats} run(s), one after another, of 40 sequential echo steps; gap = a step's plugin call returned → the next step's call starts"
        ),
    );
    r.add("ms_per_step", per_step, "ms")
        .check("gap_p50_ms", p50, "ms", Target::AtMost(ctx.fsync_ms + 0.3))
        .add("gap_p99_ms", quantile(&gaps, 0.99), "ms")
        .add("gap_p50_in_fsyncs", p50 / ctx.fsync_ms, "fsync latencies")
        .add(
            "ms_per_step_in_fsyncs",
            per_step / ctx.fsync_ms,
            "fsync latencies",
        )
        .check(
            "commits_per_step",
            commits / steps,
            "commits",
            Target::AtMost(1.0 + 1.0 / LEN as f64),
        );
    Ok(r)
}

/// `fanout`: 1 → N parallel steps → 1 — how fast the children all start, and the whole run.
pub(super) async fn fanout(ctx: &Ctx) -> anyhow::Result<Report> {
    let width = ctx.scaled(1_000);
    let yaml = fanout_yaml("bench-fanout", width);
    let watch = Arc::new(Stopwatch::default());
    let engine = engine(ctx, "fanout.db", &yaml, Some(watch.clone())).await?;
    let mut rx = engine.subscribe();
    let commits0 = engine.store().commits();
    let t0 = Instant::now();
    let ids = submit_all(&engine, "bench-fanout", vec![json!({})]).await?;
    let end = wait_all(&engine, &mut rx, &ids).await?;
    let commits = (engine.store().commits() - commits0) as f64;
    let outputs = match ids.first() {
        Some(id) => engine.store().run(id).await?.and_then(|r| r.outputs),
        None => None,
    };
    engine.shutdown().await;
    if outputs != Some(json!({ "n": width })) {
        bail!("the fan-out run's output is {outputs:?}, not {{\"n\": {width}}}");
    }
    let marks = watch.marks();
    let child_starts: Vec<Instant> = marks
        .iter()
        .filter(|((_, key), _)| key.starts_with("fan#"))
        .filter_map(|(_, m)| m.0)
        .collect();
    if child_starts.len() != width {
        bail!(
            "{} of {width} fan-out children were seen starting",
            child_starts.len()
        );
    }
    let first_done = marks
        .iter()
        .find(|((_, key), _)| key == "first")
        .and_then(|(_, m)| m.1);
    let last_child = child_starts.iter().max().copied().unwrap_or(t0);
    let mut r = Report::new(
        "fanout",
        format!("1 → {width} parallel echo steps → 1 join, times from submission"),
    );
    r.add("children", width as f64, "")
        .check(
            "all_children_started_ms",
            ms(last_child - t0),
            "ms",
            Target::AtMost(100.0),
        )
        .add(
            "first_done_to_all_started_ms",
            first_done.map_or(0.0, |f| ms(last_child.saturating_duration_since(f))),
            "ms",
        )
        .check("total_ms", ms(end - t0), "ms", Target::AtMost(150.0))
        .add("commits", commits, "")
        .add(
            "total_in_fsyncs",
            ms(end - t0) / ctx.fsync_ms,
            "fsync latencies",
        );
    Ok(r)
}

/// Resident memory of this process, in bytes (Linux; 0 elsewhere).
fn rss_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// `timers`: many runs parked on a 1 s durable timer — memory per parked run, lateness.
pub(super) async fn timers(ctx: &Ctx) -> anyhow::Result<Report> {
    const WAIT_MS: i64 = 1_000;
    let runs = ctx.scaled(10_000);
    let yaml = "name: bench-timer\nversion: 1\nsteps:\n  - id: nap\n    wait: 1s\n";
    let watch = Arc::new(Stopwatch::default());
    let engine = engine(ctx, "timers.db", yaml, Some(watch.clone())).await?;
    let mut rx = engine.subscribe();
    // Memory is measured at the margin: parking the first tenth of the runs warms up the
    // allocator, the store's page cache and the event buffer; what the other nine tenths
    // add is what a parked run costs. Submissions go 500 at a time so that the transient
    // memory of in-flight submissions is the same at both measurements.
    let first = (runs / 10).max(1).min(runs);
    let t0 = Instant::now();
    let mut ids = Vec::with_capacity(runs);
    for chunk in (0..first).collect::<Vec<_>>().chunks(500) {
        ids.extend(submit_all(&engine, "bench-timer", vec![json!({}); chunk.len()]).await?);
    }
    let rss0 = rss_bytes();
    for chunk in (first..runs).collect::<Vec<_>>().chunks(500) {
        ids.extend(submit_all(&engine, "bench-timer", vec![json!({}); chunk.len()]).await?);
    }
    let parked_in = t0.elapsed();
    // Every run is accepted, hence on disk and parked; measure before the first one wakes.
    let rss1 = rss_bytes();
    let in_flight = watch.in_flight.load(std::sync::atomic::Ordering::Relaxed);
    let end = wait_all(&engine, &mut rx, &ids).await?;
    let mut lateness = Vec::with_capacity(runs);
    for id in &ids {
        for step in engine.store().steps(id).await? {
            if let (Some(s), Some(f)) = (step.started_at, step.finished_at) {
                lateness.push((f - s - WAIT_MS) as f64);
            }
        }
    }
    engine.shutdown().await;
    lateness.sort_by(f64::total_cmp);
    let per_run = rss1.saturating_sub(rss0) as f64 / (runs - first).max(1) as f64;
    let mut r = Report::new(
        "timers",
        format!(
            "{runs} runs each parked on `wait: 1s`, submitted 500 at a time; memory per run measured over the last {}",
            runs - first
        ),
    );
    r.add("runs", runs as f64, "")
        .add("all_parked_s", parked_in.as_secs_f64(), "s")
        .add("rss_first_tenth_parked_mib", rss0 as f64 / 1048576.0, "MiB")
        .add("rss_all_parked_mib", rss1 as f64 / 1048576.0, "MiB")
        .check(
            "rss_per_parked_run",
            per_run,
            "bytes",
            Target::AtMost(4096.0),
        )
        .check(
            "plugin_attempts_held",
            in_flight as f64,
            "",
            Target::AtMost(0.0),
        )
        .add("lateness_p50_ms", quantile(&lateness, 0.5), "ms")
        .add("lateness_p99_ms", quantile(&lateness, 0.99), "ms")
        .add(
            "lateness_max_ms",
            lateness.last().copied().unwrap_or(0.0),
            "ms",
        )
        .add("all_done_s", (end - t0).as_secs_f64(), "s");
    Ok(r)
}
