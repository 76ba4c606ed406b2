//! `csmp bench`: measures the durable core against the disk it runs on.
//!
//! Every run first probes the disk (`disk.rs`: appending 4 KiB writes, each made durable with
//! `fdatasync`, next to the databases), then runs the chosen workloads (`workloads.rs` in this
//! process, `recovery.rs` with a real `csmp` child process killed with SIGKILL), each on a
//! fresh SQLite file in a temporary directory, and prints a table and one JSON line per
//! workload. Figures are also given as ratios to the probe: steps per fsync, latencies in fsync
//! latencies. Knows the engine's public API only; nothing here changes how runs execute.

mod api;
mod child;
mod console;
mod disk;
mod postgres;
mod recovery;
mod report;
mod scaleout;
mod scaling;
mod workloads;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::ValueEnum;

use crate::plan::{Env, Plan, validate_workflow};
use crate::plugin::{HostConfig, PluginHost};
use crate::runtime::{AttemptObserver, Definitions, Engine, EngineConfig, TokioClock};
use crate::store::Store;

pub use report::{Metric, Report, Target};

/// `csmp bench` arguments.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Workloads to run, in this order (all of them when none is named).
    #[arg(value_enum)]
    pub workloads: Vec<Workload>,
    /// Print only JSON: one line for the disk probe, then one per workload.
    #[arg(long)]
    pub json: bool,
    /// Multiply run counts and the fan-out width by this factor (e.g. 0.01 for a smoke test).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Where to create the temporary directory for the databases and the disk probe
    /// (default: the system's temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// A PostgreSQL server to run the workloads on instead of SQLite files
    /// (`postgres://user:password@host:port/db`, a user allowed to create databases): each
    /// workload gets a database of its own there, dropped at the end. The `api-*` and
    /// `console` workloads run on SQLite only.
    #[arg(long)]
    pub database: Option<String>,
    /// Internal: run as the recovery workload's child process on this database.
    #[arg(long, hide = true)]
    pub child_db: Option<String>,
    /// Internal: the child appends a line here as each plugin attempt starts.
    #[arg(long, hide = true)]
    pub child_trace: Option<PathBuf>,
    /// Internal: how many runs the child submits before it reports ready.
    #[arg(long, hide = true, default_value_t = 0)]
    pub child_submit: usize,
    /// Internal: the scaleout workload's child, under this lease name.
    #[arg(long, hide = true)]
    pub child_owner: Option<String>,
    /// Internal: how many scaleout children share the database.
    #[arg(long, hide = true, default_value_t = 1)]
    pub child_of: usize,
}

/// The workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// 1,000 workflows × 10 sequential `echo` steps, submitted at once: steps per second.
    Chain,
    /// One workflow of 40 sequential `echo` steps: latency from a step's end to the next start.
    Chain40,
    /// 1 → 1,000 parallel `echo` steps → 1 join: time until every child started, and in total.
    Fanout,
    /// 1 → N → 1 at N = 1,000 and 10,000: the cost per item as the fan-out grows.
    Fanout10k,
    /// One run of N independent steps at N = 100 and 1,000: the cost per step as it grows.
    Wide,
    /// 10,000 runs each waiting 1 s: memory per parked run and lateness of the wake-ups.
    Timers,
    /// kill -9 of a real `csmp` process under load, then a restart on the same database.
    Recovery,
    /// PostgreSQL only: the same chains on one and on two `csmp` processes sharing the
    /// database, and the failover time when one of two is killed.
    Scaleout,
    /// Over HTTP to a real `csmp serve`: 1,000 orders × 10 steps, 100 in flight, each awaited
    /// on its event stream.
    ApiChain,
    /// Over HTTP: orders of 40 sequential steps, one at a time: latency per step.
    ApiChain40,
    /// Over HTTP: orders of 1 → 1,000 → 1, one at a time: time from order to final event.
    ApiFanout,
    /// The web console's pages on a database of 10,000 runs: time per page.
    Console,
}

impl Workload {
    /// Whether it starts a real `csmp serve` (on a SQLite file).
    fn serves(self) -> bool {
        matches!(
            self,
            Workload::ApiChain | Workload::ApiChain40 | Workload::ApiFanout | Workload::Console
        )
    }

    const ALL: [Workload; 12] = [
        Workload::Chain,
        Workload::Chain40,
        Workload::Fanout,
        Workload::Fanout10k,
        Workload::Wide,
        Workload::Timers,
        Workload::Recovery,
        Workload::Scaleout,
        Workload::ApiChain,
        Workload::ApiChain40,
        Workload::ApiFanout,
        Workload::Console,
    ];
}

/// Runs `csmp bench`. Missed targets are reported, not errors: the exit code says whether
/// the benchmark could run, the figures say how it went.
pub fn main(args: BenchArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let (Some(db), Some(owner)) = (&args.child_db, &args.child_owner) {
        rt.block_on(scaleout::child(scaleout::ChildArgs {
            db,
            owner,
            of: args.child_of,
            submit: args.child_submit,
            trace: args.child_trace.as_deref(),
        }))?;
        return Ok(());
    }
    if let Some(db) = &args.child_db {
        rt.block_on(recovery::child(
            db,
            args.child_trace.as_deref(),
            args.child_submit,
        ))?;
        return Ok(());
    }
    if !(args.scale > 0.0 && args.scale.is_finite()) {
        anyhow::bail!(
            "`--scale {}` must be a positive number (1 is the full benchmark)",
            args.scale
        );
    }
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("csmp-bench-")
        .tempdir_in(&base)
        .with_context(|| format!("creating a temporary directory in {}", base.display()))?;
    let postgres = match &args.database {
        Some(url) if crate::store::is_postgres(url) => {
            Some(Arc::new(postgres::Server::new(url.clone())))
        }
        Some(other) => anyhow::bail!(
            "`--database {other}` is not a postgres:// URL (without --database the workloads run on SQLite files)"
        ),
        None => None,
    };
    let workloads = if args.workloads.is_empty() {
        Workload::ALL
            .iter()
            .copied()
            .filter(|w| match postgres {
                None => *w != Workload::Scaleout,
                Some(_) => !w.serves(),
            })
            .collect()
    } else {
        args.workloads.clone()
    };
    if postgres.is_some()
        && let Some(w) = workloads.iter().find(|w| w.serves())
    {
        anyhow::bail!(
            "the {} workload starts a `csmp serve` on SQLite; run it without --database",
            w.to_possible_value()
                .map_or_else(String::new, |v| v.get_name().to_string())
        );
    }
    let say = |line: String| {
        if !args.json {
            println!("{line}");
        }
    };
    say(format!(
        "csmp bench: {} on {} cores, {}, scratch directory {}",
        workloads
            .iter()
            .filter_map(|w| w.to_possible_value().map(|v| v.get_name().to_string()))
            .collect::<Vec<_>>()
            .join(", "),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        postgres.as_ref().map_or_else(
            || "SQLite files".to_string(),
            |p| format!("PostgreSQL at {}", p.shown())
        ),
        tmp.path().display()
    ));
    say("probing the disk: 2,000 × (4 KiB append + fdatasync) …".into());
    let disk = disk::probe(tmp.path(), disk::PROBE_WRITES)
        .with_context(|| format!("probing the disk under {}", tmp.path().display()))?;
    let disk_report = disk.report();
    emit(&disk_report, args.json);

    let host = bench_host(tmp.path())?;
    let mut missed = Vec::new();
    for w in workloads {
        let ctx = Ctx {
            dir: tmp.path().to_path_buf(),
            host: host.clone(),
            scale: args.scale,
            fsync_ms: disk.p50_ms(),
            fsyncs_per_s: disk.per_second(),
            postgres: postgres.clone(),
        };
        if let Some(name) = w.to_possible_value() {
            say(format!("\nrunning {} …", name.get_name()));
        }
        let report = rt.block_on(async {
            match w {
                Workload::Chain => workloads::chain(&ctx).await,
                Workload::Chain40 => workloads::chain40(&ctx).await,
                Workload::Fanout => workloads::fanout(&ctx).await,
                Workload::Fanout10k => scaling::fanout10k(&ctx).await,
                Workload::Wide => scaling::wide(&ctx).await,
                Workload::Timers => workloads::timers(&ctx).await,
                Workload::Recovery => recovery::parent(&ctx).await,
                Workload::Scaleout => scaleout::parent(&ctx).await,
                Workload::ApiChain => api::chain(&ctx).await,
                Workload::ApiChain40 => api::chain40(&ctx).await,
                Workload::ApiFanout => api::fanout(&ctx).await,
                Workload::Console => console::pages(&ctx).await,
            }
        })?;
        missed.extend(report.missed());
        emit(&report, args.json);
    }
    if let Some(p) = &postgres {
        rt.block_on(p.drop_all())?;
    }
    drop(rt);
    tmp.close().context("removing the scratch directory")?;
    if missed.is_empty() {
        say("\nevery target met".into());
    } else {
        say(format!("\ntargets missed: {}", missed.join(", ")));
    }
    Ok(())
}

fn emit(report: &Report, json: bool) {
    if !json {
        print!("{}", report.table());
    }
    println!("{}", report.json());
}

/// What every workload gets.
#[derive(Debug, Clone)]
struct Ctx {
    /// The scratch directory (databases go here, next to the disk probe's file).
    dir: PathBuf,
    /// The plugin host with the built-ins loaded (shared: compiled once).
    host: PluginHost,
    /// The `--scale` factor.
    scale: f64,
    /// The probe's median write + fdatasync latency: "one fsync latency" in the ratios.
    fsync_ms: f64,
    /// The probe's fsyncs per second.
    fsyncs_per_s: f64,
    /// The PostgreSQL server the workloads run on, when not SQLite files.
    postgres: Option<Arc<postgres::Server>>,
}

impl Ctx {
    /// `n` scaled, at least 1.
    fn scaled(&self, n: usize) -> usize {
        ((n as f64 * self.scale).round() as usize).max(1)
    }

    /// Where the workload's database `file` (`chain.db`) is: a new SQLite file in the scratch
    /// directory, or a new database on the PostgreSQL server.
    async fn database(&self, file: &str) -> anyhow::Result<String> {
        match &self.postgres {
            Some(p) => p.fresh(file).await,
            None => Ok(self.dir.join(file).display().to_string()),
        }
    }
}

/// The built-in plugins in a host whose compiled code is cached where `csmp validate` keeps
/// it, so a benchmark run does not pay compilation twice.
fn bench_host(scratch: &std::path::Path) -> anyhow::Result<PluginHost> {
    let cache = super::cache_dir();
    let cache = if std::fs::create_dir_all(&cache).is_ok() {
        cache
    } else {
        scratch.join("plugin-cache")
    };
    let host = PluginHost::new(HostConfig::new(cache, Default::default()))?;
    host.load_builtins()?;
    Ok(host)
}

/// A plan from YAML the benchmark writes itself.
fn plan(host: &PluginHost, yaml: &str) -> anyhow::Result<Plan> {
    validate_workflow(
        yaml.as_bytes(),
        Env {
            plugins: &host.index(),
            workflows: None,
        },
    )
    .map_err(|d| anyhow::anyhow!("a benchmark workflow does not validate: {d:?}"))
}

/// A fresh store and a started engine running `yaml`'s workflow.
async fn engine(
    ctx: &Ctx,
    db: &str,
    yaml: &str,
    observer: Option<Arc<dyn AttemptObserver>>,
) -> anyhow::Result<Engine> {
    let store = Store::open_location(
        &ctx.database(db).await?,
        crate::store::StoreOptions::default(),
    )
    .await?;
    let plan = plan(&ctx.host, yaml)?;
    store
        .put_workflow(plan.name(), plan.version(), yaml, 0, None)
        .await?;
    let mut defs = Definitions::default();
    defs.insert(plan);
    let config = EngineConfig {
        owner: "bench".into(),
        observer,
        ..EngineConfig::default()
    };
    Ok(Engine::start(
        store,
        ctx.host.clone(),
        defs,
        Arc::new(TokioClock::new()),
        config,
    )
    .await?)
}

/// `first` → `width` parallel `echo` items (`fan`) → `join`, the fan-out workloads' shape.
fn fanout_yaml(name: &str, width: usize) -> String {
    format!(
        r#"name: {name}
version: 1
steps:
  - id: first
    uses: echo@^1
    with: {{ count: {width} }}
  - id: fan
    needs: [first]
    for_each: "{{{{ range steps.first.output.count }}}}"
    uses: echo@^1
    with: {{ i: "{{{{ item }}}}" }}
  - id: join
    needs: [fan]
    uses: echo@^1
    with: {{ n: "{{{{ len steps.fan.output }}}}" }}
outputs:
  n: "{{{{ steps.join.output.n }}}}"
"#
    )
}

/// A workflow of `len` sequential `echo` steps `s1`…`sN`, each passing `n` on.
fn chain_yaml(name: &str, len: usize) -> String {
    let mut y = format!(
        "name: {name}\nversion: 1\ninputs:\n  type: object\n  required: [n]\n  properties:\n    n: {{ type: integer }}\nsteps:\n  - id: s1\n    uses: echo@^1\n    with: {{ n: \"{{{{ inputs.n }}}}\" }}\n"
    );
    for i in 2..=len {
        y.push_str(&format!(
            "  - id: s{i}\n    needs: [s{p}]\n    uses: echo@^1\n    with: {{ n: \"{{{{ steps.s{p}.output.n }}}}\" }}\n",
            p = i - 1
        ));
    }
    y.push_str(&format!(
        "outputs:\n  n: \"{{{{ steps.s{len}.output.n }}}}\"\n"
    ));
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_yaml_is_a_valid_chain() {
        let host = bench_host(&std::env::temp_dir()).expect("host");
        let plan = plan(&host, &chain_yaml("c", 5)).expect("valid");
        assert_eq!(plan.steps().len(), 5);
        assert_eq!(plan.steps()[4].needs, vec![3]);
    }
}
