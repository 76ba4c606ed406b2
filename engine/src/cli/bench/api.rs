//! The REST path end to end: each workload starts a real `csmp serve` (this binary) on
//! loopback with a fresh database, and drives it with a client of its own — catalog orders
//! placed over HTTP, each awaited on its run's event stream, as a user of the API would. The
//! server's commits are read from its `/metrics`; its real fsync calls are counted with
//! `perf stat` on its process when `perf` is on PATH and allowed to trace it.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::report::{Report, Target, quantile};
use super::{Ctx, chain_yaml, fanout_yaml};

/// Orders in flight at once in `api-chain` (the harness the peers were measured with).
const IN_FLIGHT: usize = 100;

/// A `csmp serve` of this binary on a scratch directory.
pub(super) struct Server {
    child: Child,
    /// Where it listens (`http://127.0.0.1:PORT`).
    pub(super) base: String,
    /// A client token of tenant `bench`.
    pub(super) token: String,
    /// Its database.
    pub(super) db: PathBuf,
    agent: ureq::Agent,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .new_agent()
}

impl Server {
    /// Writes `yaml` as the only workflow, with an ungated catalog entry of the same name,
    /// makes a client token and starts the service; returns once it listens.
    pub(super) fn start(scratch: &Path, name: &str, yaml: &str) -> anyhow::Result<Self> {
        let dir = scratch.join(name);
        for sub in ["workflows", "catalog"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        std::fs::write(dir.join("workflows").join(format!("{name}.yaml")), yaml)?;
        std::fs::write(
            dir.join("catalog").join(format!("{name}.yaml")),
            format!("id: {name}\ntitle: {name}\nworkflow: {name}\ntenants: [\"*\"]\n"),
        )?;
        let db = dir.join("csmp.db");
        let exe = std::env::current_exe().context("finding this binary")?;
        let token = create_token(&db, &["--role", "client", "--tenant", "bench"])?;
        let mut child = Command::new(&exe)
            .args(["serve", "--listen", "127.0.0.1:0", "--owner", "bench-api"])
            .args(["--rate-limit", "0", "--max-event-streams", "100000"])
            .arg("--database")
            .arg(&db)
            .arg("--workflows")
            .arg(dir.join("workflows"))
            .arg("--catalog")
            .arg(dir.join("catalog"))
            .arg("--rules")
            .arg(dir.join("rules"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting csmp serve")?;
        let stderr = child.stderr.take().context("the service's stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let base = loop {
            let Some(line) = lines.next() else {
                let _ = child.wait();
                bail!("csmp serve ended before it listened");
            };
            let line = line?;
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .context("an address after `listening on`")?
                    .to_string();
            }
        };
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Self {
            child,
            base,
            token,
            db,
            agent: agent(),
        })
    }

    /// `csmp_store_commits_total` from the service's `/metrics`.
    fn commits(&self) -> anyhow::Result<f64> {
        let mut r = self.agent.get(format!("{}/metrics", self.base)).call()?;
        let text = r.body_mut().read_to_string()?;
        text.lines()
            .find_map(|l| l.strip_prefix("csmp_store_commits_total "))
            .and_then(|v| v.trim().parse().ok())
            .context("no csmp_store_commits_total in /metrics")
    }
}

/// A token made with `csmp token create ARGS` (this binary) on `db`.
pub(super) fn create_token(db: &Path, args: &[&str]) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("finding this binary")?;
    let made = Command::new(&exe)
        .args(["token", "create"])
        .args(args)
        .arg("--database")
        .arg(db)
        .output()
        .context("csmp token create")?;
    if !made.status.success() {
        bail!(
            "csmp token create failed: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&made.stdout).trim().to_string())
}

/// Places one order and follows its run's event stream to the end; the time it took.
fn order(
    agent: &ureq::Agent,
    server: &Server,
    catalog_id: &str,
    n: usize,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let mut placed = agent
        .post(format!("{}/v1/requests", server.base))
        .header("Authorization", &format!("Bearer {}", server.token))
        .header("Content-Type", "application/json")
        .send(json!({ "catalog_id": catalog_id, "inputs": { "n": n } }).to_string())?;
    let body: Value = serde_json::from_str(&placed.body_mut().read_to_string()?)?;
    let Some(run) = body["run_id"].as_str() else {
        bail!("the order was not accepted: {body}");
    };
    let stream = agent
        .get(format!("{}/v1/runs/{run}/events", server.base))
        .header("Authorization", &format!("Bearer {}", server.token))
        .call()?;
    let mut text = String::new();
    stream.into_body().into_reader().read_to_string(&mut text)?;
    let took = t0.elapsed();
    // The stream ends after the run's final event (or a snapshot of a run already over).
    let last = text
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|e| e.get("step").is_none_or(Value::is_null));
    match last.as_ref().and_then(|e| e["status"].as_str()) {
        Some("succeeded") => Ok(took),
        other => bail!("run {run} ended {other:?}: {last:?}"),
    }
}

/// Places `orders` orders of `catalog_id`, [`IN_FLIGHT`] at a time, each awaited to its run's
/// end on the event stream; each order's time in ms, in the order they ended.
pub(super) fn orders_in_flight(
    server: &Server,
    catalog_id: &str,
    orders: usize,
) -> anyhow::Result<Vec<f64>> {
    let next = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(orders));
    let failure = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..IN_FLIGHT.min(orders) {
            s.spawn(|| {
                let agent = agent();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= orders {
                        return;
                    }
                    match order(&agent, server, catalog_id, n) {
                        Ok(d) => latencies
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(d.as_secs_f64() * 1000.0),
                        Err(e) => {
                            *failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(e);
    }
    Ok(latencies
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner))
}

/// Counts the fsync and fdatasync calls of a process, with `perf stat` attached to it.
struct FsyncCounter {
    perf: Child,
    out: PathBuf,
}

impl FsyncCounter {
    /// `None` when perf is missing or may not trace the process (it says so at once).
    fn attach(pid: u32, out: PathBuf) -> Option<Self> {
        let perf = Command::new("perf")
            .args(["stat", "-x", ",", "-e"])
            .arg("syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync")
            .arg("-p")
            .arg(pid.to_string())
            .arg("-o")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        // Give it time to attach (or to fail).
        std::thread::sleep(Duration::from_millis(500));
        let mut c = Self { perf, out };
        match c.perf.try_wait() {
            Ok(None) => Some(c),
            _ => {
                let _ = c.perf.wait();
                None
            }
        }
    }

    /// Stops counting; the calls counted, if perf reported them.
    fn finish(mut self) -> Option<f64> {
        let _ = Command::new("kill")
            .args(["-INT", &self.perf.id().to_string()])
            .status();
        let _ = self.perf.wait();
        let text = std::fs::read_to_string(&self.out).ok()?;
        let counts: Vec<f64> = text
            .lines()
            .filter(|l| l.contains("syscalls:sys_enter_f"))
            .filter_map(|l| l.split(',').next()?.trim().parse().ok())
            .collect();
        (!counts.is_empty()).then(|| counts.iter().sum())
    }
}

/// Figures common to the API workloads: the service's commits, and its fsync calls when perf
/// could count them (else steps per commit stand in, each commit being one fsync of the WAL).
fn add_durability(
    r: &mut Report,
    steps: f64,
    orders: f64,
    commits: f64,
    fsyncs: Option<f64>,
    target: Option<Target>,
) {
    r.add("commits", commits, "")
        .add("commits_per_order", commits / orders.max(1.0), "");
    let (key, per, unit) = match fsyncs {
        Some(f) => {
            r.add("fsyncs", f, "fsync + fdatasync calls, counted by perf");
            ("steps_per_fsync", steps / f.max(1.0), "steps/fsync")
        }
        None => (
            "steps_per_commit",
            steps / commits.max(1.0),
            "steps/commit (perf could not count fsyncs)",
        ),
    };
    match target {
        Some(t) => r.check(key, per, unit, t),
        None => r.add(key, per, unit),
    };
}

/// `api-chain`: 1,000 orders of 10 sequential steps, 100 in flight, each awaited on its
/// event stream.
pub(super) async fn chain(ctx: &Ctx) -> anyhow::Result<Report> {
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || chain_blocking(&ctx)).await?
}

fn chain_blocking(ctx: &Ctx) -> anyhow::Result<Report> {
    const LEN: usize = 10;
    let orders = ctx.scaled(1_000);
    let server = Server::start(&ctx.dir, "api-chain", &chain_yaml("api-chain", LEN))?;
    // A first order warms the service (plugin instances, connections) outside the figures.
    order(&server.agent, &server, "api-chain", 0)?;
    let commits0 = server.commits()?;
    let counter = FsyncCounter::attach(server.child.id(), ctx.dir.join("api-chain.perf"));
    let t0 = Instant::now();
    let placed = orders_in_flight(&server, "api-chain", orders);
    let secs = t0.elapsed().as_secs_f64();
    let fsyncs = counter.and_then(FsyncCounter::finish);
    let mut lat = placed.context("an order of api-chain failed")?;
    let commits = server.commits()? - commits0;
    lat.sort_by(f64::total_cmp);
    let steps = (orders * LEN) as f64;
    let mut r = Report::new(
        "api-chain",
        format!(
            "{orders} orders × {LEN} sequential echo steps over HTTP, {IN_FLIGHT} in flight, each awaited on its event stream"
        ),
    );
    r.add("orders", orders as f64, "")
        .add("seconds", secs, "s")
        .check(
            "steps_per_s",
            steps / secs,
            "steps/s",
            Target::AtLeast(15_000.0),
        )
        .add("order_p50_ms", quantile(&lat, 0.5), "ms")
        .add("order_p99_ms", quantile(&lat, 0.99), "ms");
    add_durability(
        &mut r,
        steps,
        orders as f64,
        commits,
        fsyncs,
        Some(Target::AtLeast(20.0)),
    );
    Ok(r)
}

/// `api-chain40`: one order of 40 sequential steps at a time — the REST path's latency per step.
pub(super) async fn chain40(ctx: &Ctx) -> anyhow::Result<Report> {
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || one_at_a_time(&ctx, Shape::Chain40)).await?
}

/// `api-fanout`: one order of 1 → 1,000 → 1 at a time, from the order to its final event.
pub(super) async fn fanout(ctx: &Ctx) -> anyhow::Result<Report> {
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || one_at_a_time(&ctx, Shape::Fanout)).await?
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    Chain40,
    Fanout,
}

fn one_at_a_time(ctx: &Ctx, shape: Shape) -> anyhow::Result<Report> {
    let repeats = ctx.scaled(10);
    let (name, yaml, steps_per_run) = match shape {
        Shape::Chain40 => ("api-chain40", chain_yaml("api-chain40", 40), 40),
        Shape::Fanout => {
            let width = ctx.scaled(1_000);
            ("api-fanout", fanout_yaml("api-fanout", width), width + 2)
        }
    };
    let server = Server::start(&ctx.dir, name, &yaml)?;
    order(&server.agent, &server, name, 0)?;
    let commits0 = server.commits()?;
    let counter = FsyncCounter::attach(server.child.id(), ctx.dir.join(format!("{name}.perf")));
    let mut runs = Vec::with_capacity(repeats);
    for n in 0..repeats {
        runs.push(order(&server.agent, &server, name, n + 1)?.as_secs_f64() * 1000.0);
    }
    let fsyncs = counter.and_then(FsyncCounter::finish);
    let commits = server.commits()? - commits0;
    runs.sort_by(f64::total_cmp);
    let steps = (repeats * steps_per_run) as f64;
    let mut r = match shape {
        Shape::Chain40 => {
            let mut r = Report::new(
                name,
                format!(
                    "{repeats} orders of 40 sequential echo steps over HTTP, one at a time, each awaited on its event stream"
                ),
            );
            r.add("orders", repeats as f64, "")
                .add("order_p50_ms", quantile(&runs, 0.5), "ms")
                .check(
                    "ms_per_step_p50",
                    quantile(&runs, 0.5) / 40.0,
                    "ms",
                    Target::AtMost(0.45),
                )
                .add(
                    "ms_per_step_p50_per_fsync",
                    quantile(&runs, 0.5) / 40.0 / ctx.fsync_ms,
                    "× probe fsync",
                );
            r
        }
        Shape::Fanout => {
            let mut r = Report::new(
                name,
                format!(
                    "{repeats} orders of 1 → {} → 1 echo steps over HTTP, one at a time, from the order to the final event",
                    steps_per_run - 2
                ),
            );
            r.add("orders", repeats as f64, "")
                .check(
                    "order_p50_ms",
                    quantile(&runs, 0.5),
                    "ms",
                    Target::AtMost(30.0),
                )
                .add("order_max_ms", quantile(&runs, 1.0), "ms");
            r
        }
    };
    add_durability(&mut r, steps, repeats as f64, commits, fsyncs, None);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fanout_workflow_validates() {
        let host = super::super::bench_host(&std::env::temp_dir()).expect("host");
        let plan = super::super::plan(&host, &fanout_yaml("f", 10)).expect("valid");
        assert_eq!(plan.steps().len(), 3);
    }
}
