//! What the workloads that run `csmp` child processes share: the engine a child starts on the
//! database it is given, and the trace it keeps of its attempts.
//!
//! A child (this binary, re-run with hidden arguments) appends one line per attempt start to
//! its trace file — `MS RUN KEY ATTEMPT`, wall-clock milliseconds first — with an unbuffered
//! write, so the page cache keeps every line even of a child killed with SIGKILL.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use super::{bench_host, chain_yaml, plan};
use crate::runtime::{AttemptObserver, Definitions, Engine, EngineConfig, TokioClock};
use crate::store::{Store, StoreOptions};

/// Appends `MS RUN KEY ATTEMPT` to a file as each attempt starts.
#[derive(Debug)]
struct TraceFile(Mutex<std::fs::File>);

impl AttemptObserver for TraceFile {
    fn started(&self, run_id: &str, key: &crate::plan::UnitKey, attempt: u32) {
        let line = format!("{} {run_id} {key} {attempt}\n", wall_ms());
        let mut f = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = f.write_all(line.as_bytes()) {
            tracing::warn!("cannot write the benchmark trace: {e}");
        }
    }

    fn finished(&self, _run_id: &str, _key: &crate::plan::UnitKey, _attempt: u32) {}
}

/// Milliseconds since the Unix epoch, as a trace line has them.
pub(super) fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Starts the engine of a child on `db` under `config`, with the chain workflow `workflow` of
/// `len` steps stored and defined, its attempts traced to `trace`.
pub(super) async fn engine(
    db: &str,
    workflow: &str,
    len: usize,
    trace: Option<&Path>,
    mut config: EngineConfig,
) -> anyhow::Result<Engine> {
    let scratch = trace
        .and_then(Path::parent)
        .map_or_else(std::env::temp_dir, Path::to_path_buf);
    let host = bench_host(&scratch)?;
    let yaml = chain_yaml(workflow, len);
    let store = Store::open_location(db, StoreOptions::default()).await?;
    let plan = plan(&host, &yaml)?;
    store
        .put_workflow(plan.name(), plan.version(), &yaml, 0, None)
        .await?;
    let mut defs = Definitions::default();
    defs.insert(plan);
    if let Some(path) = trace {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        config.observer = Some(Arc::new(TraceFile(Mutex::new(file))));
    }
    Ok(Engine::start(store, host, defs, Arc::new(TokioClock::new()), config).await?)
}

/// One line of a trace: when, which run, which unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Traced {
    /// Wall-clock ms.
    pub(super) at: i64,
    /// The run.
    pub(super) run: String,
    /// The unit key.
    pub(super) key: String,
}

/// The lines of a trace file (none while it does not exist).
pub(super) fn read(path: &Path) -> Vec<Traced> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut parts = l.split(' ');
            Some(Traced {
                at: parts.next()?.parse().ok()?,
                run: parts.next()?.to_string(),
                key: parts.next()?.to_string(),
            })
        })
        .collect()
}

/// How many lines a trace file has (0 while it does not exist).
pub(super) fn lines(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}
