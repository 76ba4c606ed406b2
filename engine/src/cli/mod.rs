//! The `csmp` command line: argument parsing and dispatch, nothing else.
//!
//! Each subcommand lives in its own file and calls into the library; only this module knows
//! clap.

pub mod bench;
pub mod database;
pub mod lock;
pub mod logs;
pub mod plugin_build;
pub mod plugin_files;
pub mod plugin_inspect;
pub mod plugin_new;
pub mod plugin_publish;
pub mod plugin_try;
pub mod remote;
mod remote_client;
pub mod remote_incidents;
pub mod run;
pub mod secret;
pub mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// csmp — durable workflows for cloud operations, with sandboxed WebAssembly steps.
#[derive(Debug, Parser)]
#[command(name = "csmp", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// How the service log (standard error) is written; its level comes from RUST_LOG.
    #[arg(long, global = true, env = "CSMP_LOG_FORMAT", value_enum, default_value_t = logs::LogFormat::Text)]
    pub log_format: logs::LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: the durable executor on the embedded store, with workflows loaded.
    Serve {
        /// The database: a SQLite file (created if missing) or a `postgres://` URL.
        #[arg(long, env = "CSMP_DATABASE", default_value = "data/csmp.db")]
        database: database::Database,
        /// Workflow definitions to load at start.
        #[arg(long, env = "CSMP_WORKFLOWS", default_value = "workflows")]
        workflows: PathBuf,
        /// Catalog entries to load at start.
        #[arg(long, env = "CSMP_CATALOG", default_value = "catalog")]
        catalog: PathBuf,
        /// Alert rules to load at start.
        #[arg(long, env = "CSMP_RULES", default_value = "rules")]
        rules: PathBuf,
        /// People, teams and on-call schedules to load at start.
        #[arg(long, env = "CSMP_ONCALL", default_value = "oncall")]
        oncall: PathBuf,
        /// Synthetic availability checks to probe (`checks/*.yaml`).
        #[arg(long, env = "CSMP_CHECKS", default_value = "checks")]
        checks: PathBuf,
        /// An SNS topic (ARN) whose CloudWatch alarms are taken, each message's signature
        /// verified; repeatable (CSMP_SNS_TOPICS: comma-separated).
        #[arg(
            long = "sns-topic",
            value_name = "ARN",
            env = "CSMP_SNS_TOPICS",
            value_delimiter = ','
        )]
        sns_topics: Vec<String>,
        /// An SNS topic taken WITHOUT verifying signatures, for emulators that cannot sign
        /// (moto, LocalStack); every message is logged as unverified. Never for real AWS.
        #[arg(
            long = "sns-unverified-topic",
            value_name = "ARN",
            env = "CSMP_SNS_UNVERIFIED_TOPICS",
            value_delimiter = ','
        )]
        sns_unverified_topics: Vec<String>,
        /// Where SNS signing certificates (and SubscribeURLs) may be fetched from; repeatable.
        #[arg(
            long = "sns-cert-source",
            value_name = "ORIGIN",
            env = "CSMP_SNS_CERT_SOURCES",
            value_delimiter = ',',
            default_value = "https://sns.*.amazonaws.com"
        )]
        sns_cert_sources: Vec<String>,
        /// Operator grants for plugins (HTTP hosts, secrets, limits), YAML; read again on
        /// SIGHUP and on `POST /v1/grants/reload`.
        #[arg(long, env = "CSMP_GRANTS")]
        grants: Option<PathBuf>,
        /// A plugin component (`.wasm`) or a directory of them, loaded beside the built-ins;
        /// repeatable. CSMP_PLUGINS (paths separated by `:`) is used when none is given.
        #[arg(
            long = "plugin",
            value_name = "PATH",
            env = "CSMP_PLUGINS",
            value_delimiter = ':'
        )]
        plugins: Vec<PathBuf>,
        /// This process's name in partition leases: unique among the processes sharing a
        /// PostgreSQL database (a second live process under a name it already has is refused). A
        /// process restarted under its name takes its partitions back at once; others take them
        /// over when their lease runs out.
        #[arg(long, env = "CSMP_OWNER", default_value = "local")]
        owner: String,
        /// What this process does: `all` (the REST API, the console and the executor), `api`
        /// (the REST API and the console; runs are executed by the processes holding their
        /// partitions) or `executor` (executes runs; serves only /healthz, /readyz and
        /// /metrics).
        #[arg(long, env = "CSMP_ROLE", value_enum, default_value_t = ServeRole::All)]
        role: ServeRole,
        /// How long a partition's lease lasts: a process not heard from for this long has its
        /// partitions (and their runs) taken over by the others, within this plus a third of it.
        #[arg(long, env = "CSMP_LEASE", default_value = "10s", value_parser = duration)]
        lease: std::time::Duration,
        /// Address of the REST API (`127.0.0.1:0` picks a free port).
        #[arg(long, env = "CSMP_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// How long a commit waits for a write lock held by another process (`csmp token
        /// create`, a backup tool) before the database counts as busy; busy commits are
        /// retried and shown on /readyz.
        #[arg(long, env = "CSMP_SQLITE_BUSY_TIMEOUT", default_value = "10s", value_parser = duration)]
        sqlite_busy_timeout: std::time::Duration,
        /// Most run event streams open at once; past it a new one is answered 503 with
        /// Retry-After (each holds a connection and a subscription).
        #[arg(long, env = "CSMP_MAX_EVENT_STREAMS", default_value_t = 1024)]
        max_event_streams: usize,
        /// Most client connections open at once; past it a new one is answered 503 with
        /// Retry-After and closed.
        #[arg(long, env = "CSMP_MAX_CONNECTIONS", default_value_t = crate::api::DEFAULT_MAX_CONNECTIONS)]
        max_connections: usize,
        /// Calls per second each token may make, in bursts of twice that; past it 429 with
        /// Retry-After. 0: no limit.
        #[arg(long, env = "CSMP_RATE_LIMIT", default_value_t = crate::api::DEFAULT_RATE_LIMIT)]
        rate_limit: u32,
    },
    /// API tokens.
    Token {
        /// What to do with tokens.
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Run one workflow locally with live progress; the exit code is the outcome.
    Run {
        /// The workflow file.
        file: PathBuf,
        /// An input, `KEY=VALUE` (VALUE read as JSON when it parses); repeatable.
        #[arg(long = "input", value_name = "KEY=VALUE")]
        input: Vec<String>,
        /// A YAML or JSON file of inputs.
        #[arg(long)]
        inputs: Option<PathBuf>,
        /// The database: a SQLite file (created if missing) or a `postgres://` URL.
        #[arg(long, env = "CSMP_DATABASE", default_value = "data/csmp.db")]
        database: database::Database,
        /// Operator grants for plugins (HTTP hosts, secrets, limits), YAML.
        #[arg(long, env = "CSMP_GRANTS")]
        grants: Option<PathBuf>,
        /// A plugin component (`.wasm`) or a directory of them, loaded beside the built-ins;
        /// repeatable. CSMP_PLUGINS (paths separated by `:`) is used when none is given.
        #[arg(
            long = "plugin",
            value_name = "PATH",
            env = "CSMP_PLUGINS",
            value_delimiter = ':'
        )]
        plugins: Vec<PathBuf>,
    },
    /// Secrets stored encrypted in the service's database.
    Secret {
        /// What to do with secrets.
        #[command(subcommand)]
        command: secret::SecretCommand,
    },
    /// Plugin development.
    Plugin {
        /// What to do with plugins.
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Check workflow and catalog files; print every problem with file:line:column.
    Validate {
        /// Files or directories (searched for *.yaml and *.yml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// A plugin component (`.wasm`) or a directory of them, loaded beside the built-ins;
        /// repeatable. CSMP_PLUGINS (paths separated by `:`) is used when none is given.
        #[arg(
            long = "plugin",
            value_name = "PATH",
            env = "CSMP_PLUGINS",
            value_delimiter = ':'
        )]
        plugins: Vec<PathBuf>,
    },
    /// Runs on a running service: list, show (--follow), start, retry, cancel, pause, resume,
    /// logs.
    Runs {
        /// The service and the caller.
        #[command(flatten)]
        server: remote::Server,
        /// What to do with runs.
        #[command(subcommand)]
        command: remote::RunsCommand,
    },
    /// What waits on your role (approval steps, request gates), and deciding it.
    Approvals {
        /// The service and the caller.
        #[command(flatten)]
        server: remote::Server,
        /// What to do with approvals.
        #[command(subcommand)]
        command: remote::ApprovalsCommand,
    },
    /// Incidents on a running service: list, show, ack, resolve, reopen, note, and the
    /// post-incident review.
    Incidents {
        /// The service and the caller.
        #[command(flatten)]
        server: remote::Server,
        /// What to do with incidents.
        #[command(subcommand)]
        command: remote_incidents::IncidentsCommand,
    },
    /// Catalog requests on a running service.
    Requests {
        /// The service and the caller.
        #[command(flatten)]
        server: remote::Server,
        /// What to do with requests.
        #[command(subcommand)]
        command: remote::RequestsCommand,
    },
    /// Measure the durable core (throughput, latency, fan-out, timers, kill -9 recovery)
    /// against the disk's fsync rate, on fresh temporary databases.
    Bench(bench::BenchArgs),
}

/// `csmp plugin …` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Create a plugin crate that builds and whose test passes out of the box.
    New {
        /// The plugin's name: lowercase letters, digits and `-`.
        name: String,
        /// Directory to create the crate in (the crate goes in DIR/NAME).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Path of the csmp SDK crate the new plugin depends on.
        #[arg(long)]
        sdk_path: Option<PathBuf>,
    },
    /// Build the plugin crate in the current directory (or --manifest-path) to a component,
    /// installing the wasm32-wasip2 target if it is missing; print its path, size and
    /// descriptor.
    Build(plugin_build::BuildArgs),
    /// Show what a component is: name, version, schemas, imports, requested capabilities and,
    /// with --grants, what is granted.
    Inspect(plugin_inspect::InspectArgs),
    /// Run one attempt of a component in the real sandbox: output, log, error, time, memory.
    Try(plugin_try::TryArgs),
    /// Upload a component to a running `csmp serve` (admin token) and print its verdict.
    Publish(plugin_publish::PublishArgs),
}

/// `csmp token …` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a bearer token and print it (once; only its hash is stored). Works while
    /// `csmp serve` runs on the same database; the first admin token is made this way.
    Create {
        /// What the token may do.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The tenant a client token is bound to (created when new).
        #[arg(long)]
        tenant: Option<String>,
        /// A label for people.
        #[arg(long)]
        name: Option<String>,
        /// The database of the service: a SQLite file or a `postgres://` URL.
        #[arg(long, env = "CSMP_DATABASE", default_value = "data/csmp.db")]
        database: database::Database,
    },
}

/// What one `csmp serve` process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServeRole {
    /// The REST API, the console and the executor.
    All,
    /// The REST API and the console; holds no partition.
    Api,
    /// The executor; serves only /healthz, /readyz and /metrics.
    Executor,
}

impl ServeRole {
    /// Its name among the members.
    pub fn name(self) -> &'static str {
        match self {
            ServeRole::All => "all",
            ServeRole::Api => "api",
            ServeRole::Executor => "executor",
        }
    }
}

/// Token roles on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Everything: tokens, tenants, plugins, the audit log.
    Admin,
    /// Runs, approvals, signals, workflows, incidents, for every tenant.
    Operator,
    /// One tenant's catalog, requests, runs and incidents (needs --tenant).
    Client,
    /// Sends alerts to /v1/events/{source}.
    Integration,
}

/// How `validate` prints its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Compiler-style text for people.
    Text,
    /// One JSON document for tools.
    Json,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands whose output is a report of their own log only what goes wrong.
    let reports = matches!(
        cli.command,
        Command::Plugin { .. } | Command::Validate { .. }
    );
    logs::install(cli.log_format, if reports { "warn" } else { "info" });
    match cli.command {
        Command::Runs { server, command } => remote::runs(&server, command),
        Command::Approvals { server, command } => remote::approvals(&server, command),
        Command::Requests { server, command } => remote::requests(&server, command),
        Command::Incidents { server, command } => remote_incidents::incidents(&server, command),
        Command::Bench(args) => match bench::main(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Validate {
            paths,
            format,
            plugins,
        } => run_validate(&paths, format, &plugins),
        Command::Plugin {
            command: PluginCommand::Build(args),
        } => plugin_build::main(args),
        Command::Plugin {
            command: PluginCommand::Inspect(args),
        } => plugin_inspect::main(args),
        Command::Plugin {
            command: PluginCommand::Try(args),
        } => plugin_try::main(args),
        Command::Plugin {
            command: PluginCommand::Publish(args),
        } => plugin_publish::main(args),
        Command::Plugin {
            command:
                PluginCommand::New {
                    name,
                    dir,
                    sdk_path,
                },
        } => {
            let sdk = sdk_path.unwrap_or_else(plugin_new::default_sdk_path);
            let dest = dir.join(&name);
            match plugin_new::scaffold(&name, &dest, &sdk) {
                Ok(()) => {
                    println!("created plugin `{name}` in {}", dest.display());
                    println!("next: cd {} && cargo test", dest.display());
                    println!("build it: csmp plugin build");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    role,
                    tenant,
                    name,
                    database,
                },
        } => {
            use crate::api::auth::Role;
            let role = match role {
                RoleArg::Admin => Role::Admin,
                RoleArg::Operator => Role::Operator,
                RoleArg::Client => Role::Client,
                RoleArg::Integration => Role::Integration,
            };
            let opts = run::TokenOptions {
                database,
                role,
                tenant,
                name,
            };
            match runtime().and_then(|rt| rt.block_on(run::create_token(opts))) {
                Ok(secret) => {
                    let article = if matches!(role, Role::Client) {
                        "a"
                    } else {
                        "an"
                    };
                    eprintln!(
                        "created {article} {} token; it is shown once, only its hash is stored:",
                        role.as_str()
                    );
                    println!("{secret}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Secret { command } => {
            match runtime().and_then(|rt| rt.block_on(secret::run(command))) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Serve {
            database,
            workflows,
            catalog,
            rules,
            oncall,
            checks,
            sns_topics,
            sns_unverified_topics,
            sns_cert_sources,
            grants,
            plugins,
            owner,
            role,
            lease,
            listen,
            sqlite_busy_timeout,
            max_event_streams,
            max_connections,
            rate_limit,
        } => {
            let opts = run::ServeOptions {
                max_event_streams,
                max_connections,
                rate_limit: std::num::NonZeroU32::new(rate_limit),
                database,
                workflows,
                catalog,
                rules,
                oncall,
                checks,
                sns: crate::alerts::sns::SnsPolicy {
                    topics: sns_topics,
                    unverified: sns_unverified_topics,
                    cert_sources: sns_cert_sources,
                },
                grants,
                plugins,
                owner,
                role,
                lease,
                listen,
                busy_timeout: sqlite_busy_timeout,
            };
            match runtime().and_then(|rt| rt.block_on(run::serve(opts))) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // The service speaks through its log, so a log shipper sees why it stopped.
                    tracing::error!("csmp serve cannot run: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run {
            file,
            input,
            inputs,
            database,
            grants,
            plugins,
        } => {
            let result = run::inputs(&input, inputs.as_deref()).and_then(|inputs| {
                let opts = run::RunOptions {
                    file,
                    inputs,
                    database,
                    grants,
                    plugins,
                };
                runtime()?.block_on(run::run(opts))
            });
            match result {
                Ok(crate::store::RunStatus::Succeeded) => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// A duration argument: `500ms`, `10s`, `2m`.
fn duration(text: &str) -> Result<std::time::Duration, String> {
    crate::dsl::parse_duration(text)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn run_validate(paths: &[PathBuf], format: Format, plugin_paths: &[PathBuf]) -> ExitCode {
    let files = match validate::collect_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let plugins = match plugin_index(plugin_paths) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let outcome = validate::validate_files(&files, &plugins);
    match format {
        Format::Text => print!("{}", validate::render_text(&outcome)),
        Format::Json => println!("{}", validate::render_json(&outcome)),
    }
    if outcome.errors() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The built-in plugins' descriptors (see [`plugin_index`]).
pub fn builtin_plugins() -> anyhow::Result<crate::plugin::PluginIndex> {
    plugin_index(&[])
}

/// The descriptors of the built-in plugins and of the plugin files named by `paths`, loaded
/// through the real host so validation sees exactly the schemas the engine will enforce.
pub fn plugin_index(paths: &[PathBuf]) -> anyhow::Result<crate::plugin::PluginIndex> {
    let (host, mut origins) = plugin_files::dev_host(None)?;
    let files = plugin_files::wasm_files(paths)?;
    plugin_files::load(&host, &files, &mut origins)?;
    Ok(host.index())
}

/// Where compiled plugins are cached for commands that run without a data directory:
/// `CSMP_CACHE_DIR`, else `csmp-plugin-cache` in the system's temporary directory.
fn cache_dir() -> PathBuf {
    cache_dir_or(std::env::temp_dir().join("csmp-plugin-cache"))
}

/// `CSMP_CACHE_DIR` when it is set, else `default`. Compiled code is keyed by the plugin's
/// bytes and the compiler's settings, so processes may share one directory.
fn cache_dir_or(default: PathBuf) -> PathBuf {
    std::env::var_os("CSMP_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or(default)
}
