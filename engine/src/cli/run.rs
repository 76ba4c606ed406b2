//! `csmp run FILE` and `csmp serve`: start the executor on the embedded store.
//!
//! Reads files and the environment, prints progress; the work is `runtime`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde_json::Value as Json;

use crate::cli::plugin_files::{self, Origins};
use crate::cli::validate;
use crate::plan::{Env, validate_workflow};
use crate::plugin::{Grants, HostConfig, PluginHost};
use crate::runtime::{Definitions, Engine, EngineConfig, NewRun, TokioClock};
use crate::store::{Durability, RunStatus, Store, StoreOptions};

/// Secrets come from the environment: `CSMP_SECRET_CLOUD_API=…` is `secrets.cloud_api`.
pub fn secrets_from_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter_map(|(k, v)| {
            k.strip_prefix("CSMP_SECRET_")
                .map(|name| (name.to_lowercase(), v))
        })
        .collect()
}

/// A plugin host with the built-ins loaded, under the operator's grants (if a file is given),
/// and where each loaded plugin came from.
pub fn host(data: &Path, grants: Option<&Path>) -> anyhow::Result<(PluginHost, Origins)> {
    let grants = match grants {
        Some(path) => Grants::load(path)?,
        None => Grants::default(),
    };
    let data =
        std::path::absolute(data).with_context(|| format!("resolving {}", data.display()))?;
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let cache = super::cache_dir_or(data.join("plugin-cache"));
    let host = PluginHost::new(HostConfig::new(cache, grants))?;
    let builtins = host.load_builtins()?;
    let mut origins = Origins::default();
    origins.note(&builtins, "a built-in plugin");
    Ok((host, origins))
}

/// Stores every workflow file of `dir` (new versions only) and plans every stored version.
pub async fn load_definitions(
    store: &Store,
    host: &PluginHost,
    dir: Option<&Path>,
) -> anyhow::Result<Definitions> {
    let index = host.index();
    let now = TokioClock::new();
    let now = crate::runtime::Clock::now_ms(&now);
    if let Some(dir) = dir {
        let files = validate::collect_files(&[dir.to_path_buf()]).map_err(anyhow::Error::msg)?;
        let outcome = validate::validate_files(&files, &index);
        if outcome.errors() > 0 {
            tracing::error!("{}", validate::render_text(&outcome).trim_end());
            bail!(
                "fix the workflows in {} (or run `csmp validate {}`)",
                dir.display(),
                dir.display()
            );
        }
        for file in &files {
            let source = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let mut ignored = crate::diag::Diagnostics::default();
            if let Some(crate::dsl::Definition::Workflow(wf)) =
                crate::dsl::decode_any(source.as_bytes(), &mut ignored)
            {
                store
                    .put_workflow(&wf.name.value, wf.version.value, &source, now, None)
                    .await
                    .with_context(|| format!("storing {}", file.display()))?;
            }
        }
    }
    let mut defs = Definitions::default();
    for row in store.workflows().await? {
        match validate_workflow(
            row.source.as_bytes(),
            Env {
                plugins: &index,
                workflows: None,
            },
        ) {
            Ok(plan) => defs.insert(plan),
            Err(d) => {
                let reason = crate::plan::summarize(&d);
                tracing::warn!(
                    workflow = %row.name,
                    version = row.version,
                    "stored workflow {}@{} no longer validates ({reason}); its runs wait until it does",
                    row.name,
                    row.version,
                );
                defs.insert_unplanned(
                    &row.name,
                    row.version,
                    crate::runtime::Unplanned {
                        source: row.source.into(),
                        reason,
                    },
                );
            }
        }
    }
    Ok(defs)
}

/// Parses `--input k=v` pairs (values read as JSON when they parse, else as text) over the
/// contents of `--inputs FILE` (YAML or JSON).
pub fn inputs(pairs: &[String], file: Option<&Path>) -> anyhow::Result<Json> {
    let mut map = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            match serde_norway::from_str::<Json>(&text)
                .with_context(|| format!("{} is not YAML or JSON", path.display()))?
            {
                Json::Object(m) => m,
                _ => bail!(
                    "{} must hold a mapping of input names to values",
                    path.display()
                ),
            }
        }
        None => serde_json::Map::new(),
    };
    for pair in pairs {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("`--input {pair}` is not KEY=VALUE");
        };
        let value = serde_json::from_str(v).unwrap_or_else(|_| Json::String(v.to_string()));
        map.insert(k.to_string(), value);
    }
    Ok(Json::Object(map))
}

/// Options of `csmp run`.
#[derive(Debug)]
pub struct RunOptions {
    /// The workflow file.
    pub file: PathBuf,
    /// Its inputs.
    pub inputs: Json,
    /// The database file.
    pub database: super::database::Database,
    /// The operator's plugin grants.
    pub grants: Option<PathBuf>,
    /// Plugin files and directories to load beside the built-ins.
    pub plugins: Vec<PathBuf>,
}

/// Runs one workflow to its end, printing each step as it starts and finishes. Returns the
/// run's final status.
pub async fn run(opts: RunOptions) -> anyhow::Result<RunStatus> {
    let data = opts.database.data_dir();
    let (host, mut origins) = host(&data, opts.grants.as_deref())?;
    let files = plugin_files::wasm_files(&opts.plugins)?;
    plugin_files::load(&host, &files, &mut origins)?;
    let bytes =
        std::fs::read(&opts.file).with_context(|| format!("reading {}", opts.file.display()))?;
    let plan = match validate_workflow(
        &bytes,
        Env {
            plugins: &host.index(),
            workflows: None,
        },
    ) {
        Ok(plan) => plan,
        Err(diagnostics) => {
            let report = crate::diag::FileReport {
                file: opts.file.display().to_string(),
                diagnostics,
            };
            eprint!("{}", report.render(std::str::from_utf8(&bytes).ok()));
            bail!("{} is not valid", opts.file.display());
        }
    };
    let store = opts.database.open(StoreOptions::default()).await?;
    let (secrets, _) = super::secret::startup_secrets(&store, &opts.database).await?;
    super::logs::set_log_secrets(&secrets);
    let source = String::from_utf8_lossy(&bytes).into_owned();
    store
        .put_workflow(
            plan.name(),
            plan.version(),
            &source,
            crate::runtime::Clock::now_ms(&TokioClock::new()),
            None,
        )
        .await?;
    let mut defs = load_definitions(&store, &host, None).await?;
    let (name, version) = (plan.name().to_string(), plan.version());
    defs.insert(plan);
    let config = EngineConfig {
        secrets,
        // A lease name and a partition of its own, and no other run: a `csmp serve` on the
        // same database keeps its runs, and is the one that finishes this run if this process
        // dies (once the lease runs out) or is interrupted (at once: the partition is given
        // back).
        owner: format!("run-{}-{:08x}", std::process::id(), rand_u32()),
        ownership: crate::runtime::Ownership::Private,
        role: "run",
        // One workflow, run now: the triggers of the stored workflows are `csmp serve`'s job.
        cron: false,
        ..EngineConfig::default()
    };
    let engine = Engine::start(store, host, defs, Arc::new(TokioClock::new()), config).await?;
    let mut events = engine.subscribe();
    let started = Instant::now();
    let id = engine
        .submit(NewRun {
            workflow: name.clone(),
            version: Some(version),
            inputs: opts.inputs,
            tenant: "local".into(),
            requester: None,
            partition: None,
        })
        .await?;
    println!("run {id} of {name}@{version} started");
    // Fan-out steps get a progress bar instead of a line per item.
    let mut fan_total: HashMap<String, usize> = HashMap::new();
    let mut fan_done: HashMap<String, usize> = HashMap::new();
    loop {
        let e = match events.recv().await {
            Ok(e) if e.run_id == id => e,
            Ok(_) => continue,
            // Too far behind (a wide fan-out): the lines missed are gone, but not the end.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                match engine.store().run(&id).await? {
                    Some(r) if r.status.is_final() => break,
                    _ => continue,
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => bail!("the executor stopped"),
        };
        let Some(step) = &e.step else {
            if parse_status(&e.status).is_final() {
                break;
            }
            continue;
        };
        let status = e.status.as_str();
        if let Some((parent, _)) = step.split_once('#').filter(|_| !step.starts_with('~')) {
            let finished = matches!(status, "succeeded" | "failed" | "skipped" | "cancelled");
            if finished {
                let done = fan_done.entry(parent.to_string()).or_default();
                *done += 1;
                let total = fan_total.get(parent).copied().unwrap_or(*done).max(*done);
                println!("  ⇉ {parent:<24} {} {done}/{total}", bar(*done, total));
            }
            if let (Some(err), "failed" | "retrying") = (&e.error, status) {
                println!("  ✗ {step:<24} {status}: {err}");
            }
            continue;
        }
        if status == "waiting" && !fan_total.contains_key(step.as_str()) {
            let units = engine.store().steps(&id).await?;
            let items = units
                .iter()
                .find(|u| u.key.to_string() == *step)
                .and_then(|u| u.state.as_ref()?.get("items")?.as_array().map(Vec::len));
            if let Some(n) = items {
                fan_total.insert(step.clone(), n);
                println!("  ⇉ {step:<24} {} 0/{n}", bar(0, n));
                continue;
            }
        }
        let mark = match status {
            "succeeded" => "✓",
            "failed" => "✗",
            "skipped" => "-",
            "running" => "▶",
            "waiting" => "…",
            "retrying" => "↻",
            _ => "·",
        };
        match &e.error {
            Some(err) if status == "failed" || status == "retrying" => {
                println!("  {mark} {step:<24} {status}: {err}")
            }
            _ => println!("  {mark} {step:<24} {status}"),
        }
    }
    let row = engine.store().run(&id).await?.context("the run vanished")?;
    let failed_attempts = if row.status == RunStatus::Succeeded {
        Vec::new()
    } else {
        engine.store().failed_attempts(&id).await?
    };
    engine.shutdown().await;
    let took = started.elapsed();
    match row.status {
        RunStatus::Succeeded => {
            println!("run {id} succeeded in {took:.1?}");
            if let Some(out) = &row.outputs {
                println!("{}", serde_json::to_string_pretty(out).unwrap_or_default());
            }
        }
        other => {
            print_failed_logs(&failed_attempts);
            println!(
                "run {id} {} after {took:.1?}: {}",
                other.as_str(),
                row.error.unwrap_or_default()
            );
        }
    }
    Ok(row.status)
}

/// Most failed units whose log `csmp run` prints; the rest are counted.
const FAILED_LOGS_SHOWN: usize = 5;

/// The captured log of each unit whose last attempt failed (the first few of a wide
/// fan-out), so the reason is on the screen without another command.
fn print_failed_logs(attempts: &[crate::store::AttemptRow]) {
    for a in attempts.iter().take(FAILED_LOGS_SHOWN) {
        let log = a.log.trim_end();
        if log.is_empty() {
            println!("  {} attempt {} wrote no log", a.key, a.attempt);
            continue;
        }
        println!("  log of {} attempt {}:", a.key, a.attempt);
        for line in log.lines() {
            println!("    │ {line}");
        }
    }
    if attempts.len() > FAILED_LOGS_SHOWN {
        println!(
            "  … and {} more failed units (each with its attempts and logs: GET /v1/runs/{{id}}/steps/{{key}} on a serve of this database)",
            attempts.len() - FAILED_LOGS_SHOWN
        );
    }
}

/// 32 random bits for names that must differ between processes.
fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b) ^ std::process::id().rotate_left(16)
}

/// A text progress bar: `[######----]`.
fn bar(done: usize, total: usize) -> String {
    const WIDTH: usize = 20;
    let filled = (done.min(total) * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(WIDTH - filled))
}

fn parse_status(s: &str) -> RunStatus {
    match s {
        "succeeded" => RunStatus::Succeeded,
        "failed" => RunStatus::Failed,
        "cancelled" => RunStatus::Cancelled,
        _ => RunStatus::Running,
    }
}

/// Options of `csmp serve`.
#[derive(Debug)]
pub struct ServeOptions {
    /// The database file.
    pub database: super::database::Database,
    /// Workflow definitions to load at start.
    pub workflows: PathBuf,
    /// Catalog entries to load at start.
    pub catalog: PathBuf,
    /// Alert rules to load at start.
    pub rules: PathBuf,
    /// People, teams and on-call schedules to load at start.
    pub oncall: PathBuf,
    /// Synthetic checks to probe.
    pub checks: PathBuf,
    /// Which SNS topics and certificate sources CloudWatch alarms may come through.
    pub sns: crate::alerts::sns::SnsPolicy,
    /// The operator's plugin grants (read again on SIGHUP and `POST /v1/grants/reload`).
    pub grants: Option<PathBuf>,
    /// Plugin files and directories to load beside the built-ins and the uploaded plugins.
    pub plugins: Vec<PathBuf>,
    /// This process's name in partition leases.
    pub owner: String,
    /// What this process does.
    pub role: super::ServeRole,
    /// How long a partition's lease lasts.
    pub lease: std::time::Duration,
    /// Address to listen on.
    pub listen: String,
    /// How long a commit waits for another process's write lock.
    pub busy_timeout: std::time::Duration,
    /// Most run event streams open at once.
    pub max_event_streams: usize,
    /// Most client connections open at once.
    pub max_connections: usize,
    /// Calls per second per token; `None`: no limit.
    pub rate_limit: Option<std::num::NonZeroU32>,
}

/// Every loaded workflow name with its versions.
fn workflow_names(defs: &Definitions) -> crate::plan::WorkflowNames {
    let mut names = crate::plan::WorkflowNames::new();
    for p in defs.plans() {
        names
            .entry(p.name().to_string())
            .or_default()
            .push(p.version());
    }
    names
}

/// Validates every catalog entry in `dir` against the loaded workflows.
pub fn load_catalog(
    dir: &Path,
    defs: &Definitions,
) -> anyhow::Result<BTreeMap<String, crate::plan::CatalogPlan>> {
    let names = workflow_names(defs);
    let mut entries = BTreeMap::new();
    if !dir.is_dir() {
        return Ok(entries);
    }
    let files = validate::collect_files(&[dir.to_path_buf()]).map_err(anyhow::Error::msg)?;
    let mut failed = 0;
    for file in files {
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        match crate::plan::validate_catalog(&bytes, Some(&names)) {
            Ok(entry) => {
                if let Some(old) = entries.insert(entry.id.clone(), entry) {
                    bail!(
                        "catalog id `{}` is used twice (again in {})",
                        old.id,
                        file.display()
                    );
                }
            }
            Err(diagnostics) => {
                failed += 1;
                let report = crate::diag::FileReport {
                    file: file.display().to_string(),
                    diagnostics,
                };
                tracing::error!(
                    "{}",
                    report.render(std::str::from_utf8(&bytes).ok()).trim_end()
                );
            }
        }
    }
    if failed > 0 {
        bail!(
            "fix the catalog entries in {} (or run `csmp validate {} {}`)",
            dir.display(),
            dir.display(),
            "workflows/"
        );
    }
    Ok(entries)
}

/// Validates every check file in `dir` (a missing directory is no checks).
pub fn load_checks(dir: &Path) -> anyhow::Result<Vec<crate::checks::CheckPlan>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let files = validate::collect_files(&[dir.to_path_buf()]).map_err(anyhow::Error::msg)?;
    let outcome = validate::validate_files(&files, &crate::plugin::PluginIndex::default());
    if outcome.errors() > 0 {
        tracing::error!("{}", validate::render_text(&outcome).trim_end());
        bail!(
            "fix the checks in {} (or run `csmp validate {}`)",
            dir.display(),
            dir.display()
        );
    }
    let mut names = std::collections::BTreeSet::new();
    for c in &outcome.checks {
        if !names.insert(c.name.clone()) {
            bail!("check `{}` is defined twice in {}", c.name, dir.display());
        }
    }
    Ok(outcome.checks)
}

/// Runs the executor and the REST API until interrupted (Ctrl-C or SIGTERM); then stops
/// taking calls, lets calls in flight finish, and stops the executor after its current turn.
pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    let data = opts.database.data_dir();
    // One service per database: a second one would execute the same runs.
    let _lock = match opts.database.file() {
        Some(file) => Some(super::lock::ServeLock::take(file)?),
        None => None,
    };
    let signalled = shutdown_signal()?;
    let store = opts
        .database
        .open(StoreOptions {
            durability: Durability::Full,
            busy_timeout: opts.busy_timeout,
        })
        .await?;
    // One live process per lease name on a shared database.
    let _name = store.hold_owner_lock(&opts.owner).await?;
    let (host, mut origins) = host(&data, opts.grants.as_deref())?;
    for p in store.plugins().await? {
        match host.load(&p.wasm) {
            Ok(d) => origins.note([&d], "the plugin uploaded to this service"),
            Err(e) => tracing::warn!(
                plugin = %p.name,
                version = %p.version,
                "uploaded plugin {}@{} no longer loads: {e}",
                p.name,
                p.version
            ),
        }
    }
    let files = plugin_files::wasm_files(&opts.plugins)?;
    for d in plugin_files::load(&host, &files, &mut origins)? {
        tracing::info!(plugin = %d.name, version = %d.version, "plugin {}@{} loaded from a file", d.name, d.version);
    }
    let dir = opts.workflows.is_dir().then_some(opts.workflows.as_path());
    let defs = load_definitions(&store, &host, dir).await?;
    let mut catalog = load_catalog(&opts.catalog, &defs)?;
    crate::api::overlay_catalog(&store, &mut catalog, &workflow_names(&defs)).await?;
    let rules = crate::api::load_rules(&store, Some(&opts.rules), &workflow_names(&defs)).await?;
    let (oncall, oncall_sources) = crate::api::load_oncall(&store, Some(&opts.oncall)).await?;
    if let Err(problems) = opts.sns.validate() {
        bail!("the SNS settings are not valid: {}", problems.join("; "));
    }
    for topic in &opts.sns.unverified {
        tracing::warn!(%topic, "SNS topic {topic} is taken WITHOUT verifying signatures (--sns-unverified-topic): for emulators only");
    }
    let count = defs.plans().count();
    let (secrets, master_key) = super::secret::startup_secrets(&store, &opts.database).await?;
    super::logs::set_log_secrets(&secrets);
    let config = EngineConfig {
        secrets,
        owner: opts.owner.clone(),
        lease: opts.lease,
        role: opts.role.name(),
        ownership: match opts.role {
            super::ServeRole::Api => crate::runtime::Ownership::Nothing,
            _ => crate::runtime::Ownership::Shared,
        },
        ..EngineConfig::default()
    };
    let clock: Arc<dyn crate::runtime::Clock> = Arc::new(TokioClock::new());
    let engine = Engine::start(
        store.clone(),
        host.clone(),
        defs.clone(),
        clock.clone(),
        config,
    )
    .await?;
    let grants_file = match &opts.grants {
        Some(f) => {
            Some(std::path::absolute(f).with_context(|| format!("resolving {}", f.display()))?)
        }
        None => None,
    };
    let state = crate::api::AppState::new(
        engine.clone(),
        host,
        clock,
        catalog,
        defs,
        crate::api::ApiConfig {
            grants_file,
            master_key: Some(master_key),
            max_event_streams: opts.max_event_streams,
            max_connections: opts.max_connections,
            rate_limit: opts.rate_limit,
            sns: opts.sns.clone(),
            health_only: opts.role == super::ServeRole::Executor,
            sources: crate::api::sync::Sources {
                catalog: Some(opts.catalog.clone()),
                rules: Some(opts.rules.clone()),
                oncall: Some(opts.oncall.clone()),
            },
            ..crate::api::ApiConfig::default()
        },
    );
    let rule_count = rules.len();
    state.alerts.rules.set(rules);
    state.set_oncall_files(oncall, oncall_sources);
    state.set_checks(load_checks(&opts.checks)?);
    state.alerts.wake();
    reload_on_sighup(state.clone())?;
    // Requests accepted before a crash get their runs from the process that fires the
    // triggers (so two processes starting together start each once): at once when no other
    // executor is alive, else those untouched for a while (another process may be starting
    // one right now); the holder of that partition sweeps them again every half minute.
    let restarted = if engine.leads() {
        let now = crate::runtime::Clock::now_ms(&TokioClock::new());
        let alone = store.live_executors(now - engine.lease_ms()).await? <= 1;
        let changed_by = if alone {
            i64::MAX
        } else {
            now - crate::api::PENDING_AFTER_MS
        };
        crate::api::start_pending(&state, changed_by).await?
    } else {
        0
    };
    let listener = tokio::net::TcpListener::bind(&opts.listen)
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        database = %opts.database,
        workflows = count,
        catalog = state.catalog().len(),
        rules = rule_count,
        "executor running on {} with {count} workflow versions, {} catalog entries and {rule_count} alert rules; unfinished runs resumed",
        opts.database,
        state.catalog().len()
    );
    if restarted > 0 {
        tracing::info!("started the runs of {restarted} accepted requests");
    }
    if store.tokens().await?.is_empty() {
        tracing::info!(
            "no API tokens yet; create the first admin token with `csmp token create --role admin --database {}`",
            opts.database
        );
    }
    tracing::info!(
        %addr,
        "listening on http://{addr} (API description at /openapi.json); stop with Ctrl-C"
    );
    let stopping = engine.clone();
    let shutdown = async move {
        signalled.await;
        tracing::info!("stopping: no new calls; calls in flight finish");
        stopping.begin_shutdown();
    };
    crate::api::serve(listener, state, shutdown).await?;
    engine.shutdown().await;
    tracing::info!("stopped; every acknowledged transition is on disk");
    Ok(())
}

/// Reads the grants file again each time the process gets SIGHUP (as `POST /v1/grants/reload`
/// does); a file that does not read changes nothing and is logged as an error.
fn reload_on_sighup(state: crate::api::AppState) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot handle SIGHUP")?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match crate::api::reload_grants(&state, crate::api::ReloadedBy::Signal).await {
                    Ok((_, changes, _)) if changes.is_empty() => {
                        tracing::info!("SIGHUP: the grants file is unchanged");
                    }
                    Ok(_) => {}
                    Err(problem) => {
                        tracing::error!("SIGHUP: grants not reloaded: {}", problem.detail)
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    drop(state);
    Ok(())
}

/// Options of `csmp token create`.
#[derive(Debug)]
pub struct TokenOptions {
    /// The database file.
    pub database: super::database::Database,
    /// The role.
    pub role: crate::api::auth::Role,
    /// The tenant, for clients.
    pub tenant: Option<String>,
    /// A label.
    pub name: Option<String>,
}

/// Creates a token in the database and returns its secret (shown once).
pub async fn create_token(opts: TokenOptions) -> anyhow::Result<String> {
    crate::api::check_token_request(opts.role, opts.tenant.as_deref())
        .map_err(anyhow::Error::msg)?;
    let store = opts.database.open(StoreOptions::default()).await?;
    let now = crate::runtime::Clock::now_ms(&TokioClock::new());
    let token = crate::api::auth::mint(opts.role, opts.tenant, opts.name, now)
        .map_err(|e| anyhow::anyhow!("no randomness available: {e}"))?;
    // The token's tenant is created with it when missing.
    store.insert_token(&token.row, None).await?;
    Ok(token.secret)
}

/// Ctrl-C or SIGTERM. The handlers are installed when this is called, not when the future is
/// first polled: a signal that arrives after `serve` says it listens must stop it cleanly, not
/// kill it with the default action.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot handle SIGTERM")?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot handle SIGINT")?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    })
}
