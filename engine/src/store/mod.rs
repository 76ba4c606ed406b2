//! Durable storage: workflow definitions, runs, steps, signals and incidents.
//!
//! The only module that knows SQL. The executor hands it batches of [`Write`]s, and each batch
//! is one transaction: one fsync however many transitions it carries (group commit). The
//! database is SQLite (WAL; `synchronous=FULL` unless configured otherwise) or PostgreSQL
//! (`synchronous_commit` as the server has it), behind the same methods: every statement is
//! written once and run on either driver (`db.rs`), with the schemas in `migrations/`.

mod alerts;
mod api;
mod attempts;
mod audit;
mod batch;
mod catalog;
mod checks;
mod cron;
mod db;
mod inbox;
mod listen;
mod partitions;
mod recovery;
mod requests;
mod retry;
mod rows;
mod run_meta;
mod secrets;
mod sessions;
mod tx;
mod upsert;
mod waiting;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use db::Row;
use db::{Backend, Db, query, query_scalar};

pub use alerts::{
    AlertFilter, AlertLink, AlertRow, GroupRow, IntakeWrite, LinkRow, MatchRow, RuleRow,
    SilenceRow, key_text,
};
pub use api::{Cursor, EventRow, PluginRow, RequestCensus, TenantRow, TokenRow};
pub use attempts::{AttemptOutcome, AttemptRow};
pub use audit::AuditRow;
pub use batch::Fence;
pub use catalog::{CatalogRow, OnCallFileRow};
pub use checks::{CheckResultRow, CheckStateRow};
pub use cron::{CRON_PARTITION, CronClaim, CronFire};
pub use inbox::InboxRow;
pub use listen::Listener;
pub use partitions::{Claim, Lease, MemberRow, PartitionRow, partition_of};
pub use requests::{NewRequest, RequestRow, RequestView};
pub use retry::{Retry, RetryRow};
pub use rows::{IncidentRow, RunRow, RunStatus, SignalRow, StepRow, StepStatus, WorkflowRow};
pub use run_meta::{RunFilter, RunKey, StatusFilter};
pub use secrets::SealedSecret;
pub use sessions::SessionRow;
pub use tx::OwnerLock;
pub use waiting::WaitingApproval;

/// What went wrong, grouped by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or written for now — busy, locked, an I/O error, a
    /// full disk, a read-only file: retrying later may work, and nothing was written.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database refuses this write for good (a constraint, a row it cannot hold):
    /// retrying the same write fails again; nothing was written.
    #[error("the database refuses the write: {0}")]
    Rejected(String),
    /// The write contradicts what is stored (e.g. a workflow version with other content).
    #[error("{0}")]
    Conflict(String),
    /// Stored data could not be read back (a bug or a hand-edited database).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// SQLite's primary result codes that say the data itself is at fault, not the moment.
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_TOOBIG: i64 = 18;
const SQLITE_CONSTRAINT: i64 = 19;
const SQLITE_MISMATCH: i64 = 20;
const SQLITE_NOTADB: i64 = 26;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db)
                if db
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some() =>
            {
                let code = db.code().unwrap_or_default();
                if postgres_rejects(&code) {
                    StoreError::Rejected(db.message().to_string())
                } else if code == "XX001" || code == "XX002" {
                    StoreError::Corrupt(db.message().to_string())
                } else {
                    StoreError::Unavailable(format!("{} (SQLSTATE {code})", db.message()))
                }
            }
            sqlx::Error::Database(db) => {
                // SQLite reports extended result codes; the low byte is the primary code.
                let primary = db
                    .code()
                    .and_then(|c| c.parse::<i64>().ok())
                    .map(|c| c & 0xff);
                match primary {
                    Some(SQLITE_TOOBIG | SQLITE_CONSTRAINT | SQLITE_MISMATCH) => {
                        StoreError::Rejected(db.message().to_string())
                    }
                    Some(SQLITE_CORRUPT | SQLITE_NOTADB) => {
                        StoreError::Corrupt(db.message().to_string())
                    }
                    _ => StoreError::Unavailable(describe(db.as_ref())),
                }
            }
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Unavailable(e.to_string()),
        }
    }
}

/// Whether `location` names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// `url` without its password, fit for a log line or an error.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// PostgreSQL's SQLSTATE classes that say the data itself is at fault, not the moment: data
/// exceptions (`22…`) and integrity constraint violations (`23…`).
fn postgres_rejects(code: &str) -> bool {
    code.starts_with("22") || code.starts_with("23")
}

/// A database error in words an operator acts on: SQLite's message, and its code's name.
fn describe(db: &dyn sqlx::error::DatabaseError) -> String {
    let name = match db.code().and_then(|c| c.parse::<i64>().ok()) {
        Some(5) => " (SQLITE_BUSY: another connection holds the write lock)",
        Some(6) => " (SQLITE_LOCKED)",
        Some(8) => " (SQLITE_READONLY: the file or its directory is read-only)",
        Some(13) => " (SQLITE_FULL: the disk is full)",
        Some(c) if c & 0xff == 10 => " (SQLITE_IOERR: the file cannot be read or written)",
        Some(14) => " (SQLITE_CANTOPEN)",
        _ => "",
    };
    format!("{}{name}", db.message())
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Unavailable(format!("cannot apply the schema: {e}"))
    }
}

/// How hard SQLite works to make a commit durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync on every commit (`synchronous=FULL`): a power cut loses nothing acknowledged.
    #[default]
    Full,
    /// fsync at checkpoints (`synchronous=NORMAL`): survives a crash of the process, not of
    /// the machine.
    Normal,
}

/// How the database is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// fsync policy.
    pub durability: Durability,
    /// How long a statement waits for a write lock another connection or process holds
    /// before the database counts as busy (a transient fault: retried, shown on `/readyz`).
    pub busy_timeout: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            busy_timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// One state change, written as part of a batch.
#[derive(Debug, Clone)]
pub enum Write {
    /// Insert or replace a run.
    Run(RunRow),
    /// Insert or replace a step.
    Step(StepRow),
    /// Record a finished attempt of a plugin unit.
    Attempt(AttemptRow),
    /// Buffer a signal for a run.
    Signal(SignalRow),
    /// Mark a buffered signal as taken by a step.
    ConsumeSignal {
        /// The run the signal was for.
        run_id: String,
        /// The signal's id.
        id: i64,
        /// The step key that took it.
        by: String,
    },
    /// Insert or replace an incident; fenced by the run whose step wrote it, if any (an
    /// incident a person steers through the API belongs to no run's lease).
    Incident {
        /// The incident as it is now.
        row: IncidentRow,
        /// The run whose step changed it.
        by_run: Option<String>,
        /// A new incident no run opened (an alert rule's, a check's): nobody else knows it
        /// yet, so it is written whoever holds its partition.
        opened: bool,
    },
    /// A new request whose run is created in the same transaction (`run_id` set, status
    /// `started`).
    Request(Box<RequestRow>),
    /// A request's run was created (in the same transaction as the run itself).
    StartRequest {
        /// The request.
        request_id: String,
        /// Its run.
        run_id: String,
        /// When (ms).
        at: i64,
    },
    /// A new run's labels and Idempotency-Key (in the commit that creates it).
    RunMeta {
        /// The run.
        run_id: String,
        /// Its labels.
        labels: std::collections::BTreeMap<String, String>,
        /// The key it was started with.
        key: Option<RunKey>,
        /// When (ms).
        at: i64,
    },
    /// The audit entry of the API call that asked for a change in this batch, written in the
    /// same transaction as the change.
    Audit {
        /// The entry.
        row: AuditRow,
        /// The run the change was for: the entry is kept with that run's writes.
        run: Option<String>,
    },
    /// What an alert group's dispatcher asked to be written with this change.
    AlertLink {
        /// The write.
        link: AlertLink,
        /// The run it concerns: kept with that run's writes.
        run: Option<String>,
    },
    /// A new run in a partition another process holds, written by the process that took the
    /// call (unfenced: nobody executes it yet); an [`Write::Inbox`] command tells the holder.
    ForeignRun(RunRow),
    /// A command for the holder of another partition.
    Inbox {
        /// The command.
        row: InboxRow,
        /// The run whose step sent it: written only with that run's writes.
        by_run: Option<String>,
    },
    /// A command of the inbox applied: its answer (JSON) for the sender, or `None` to delete
    /// it (nobody waits). Fenced by the command's partition.
    Answer {
        /// The command.
        id: String,
        /// Its partition.
        partition: i64,
        /// What the sender is told.
        answer: Option<String>,
        /// When (ms).
        at: i64,
    },
}

impl Write {
    /// The run the write belongs to; `None` for an incident no run owns.
    pub fn run_id(&self) -> Option<&str> {
        match self {
            Write::Run(r) => Some(&r.id),
            Write::Step(s) => Some(&s.run_id),
            Write::Attempt(a) => Some(&a.run_id),
            Write::Signal(s) => Some(&s.run_id),
            Write::ConsumeSignal { run_id, .. }
            | Write::StartRequest { run_id, .. }
            | Write::RunMeta { run_id, .. } => Some(run_id),
            Write::Incident { by_run, .. } => by_run.as_deref(),
            Write::Audit { run, .. } | Write::AlertLink { run, .. } => run.as_deref(),
            Write::Request(r) => r.run_id.as_deref(),
            Write::ForeignRun(r) => Some(&r.id),
            Write::Inbox { by_run, .. } => by_run.as_deref(),
            Write::Answer { .. } => None,
        }
    }
}

/// Makes the audit entry of a call, from the outcome of its change (`201` for a new version,
/// `200` for the same one again, say), inside the transaction of the change: called only when
/// the entry is written.
pub type AuditFor<'a, T> = dyn Fn(&T) -> AuditRow + Send + Sync + 'a;

/// The outcome of storing a workflow definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutWorkflow {
    /// A new version was stored.
    Inserted,
    /// The same content was already stored under this name and version.
    Unchanged,
}

/// The database handle. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    /// The connection pool: SQLite's (one writer at a time, as SQLite requires) or
    /// PostgreSQL's.
    db: Db,
    /// Transactions committed, for the benchmark's steps-per-commit figure.
    commits: Arc<AtomicU64>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and applies the schema.
    pub async fn open(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        Self::open_with(
            path,
            StoreOptions {
                durability,
                ..StoreOptions::default()
            },
        )
        .await
    }

    /// Opens the database at `path` with `options`.
    pub async fn open_with(path: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        let StoreOptions {
            durability,
            busy_timeout,
        } = options;
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Full => SqliteSynchronous::Full,
                Durability::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(busy_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // An embedded database cannot hang up: skip the ping (a round trip to SQLite's
            // thread) that would otherwise precede every statement and every commit.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        Ok(Self {
            db: Backend::Sqlite(pool),
            commits: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://user@host:port/db`) and
    /// applies the schema. Commits are durable as the server's `synchronous_commit` makes them
    /// (on by default: flushed to its WAL before the answer).
    pub async fn open_postgres(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Unavailable(format!("`{}` is not a PostgreSQL URL: {e}", redact(url)))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot connect to {}: {e}", redact(url)))
            })?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(Self {
            db: Backend::Postgres(pool),
            commits: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Opens the database `location` names: a `postgres://` (or `postgresql://`) URL, or
    /// else the path of a SQLite file.
    pub async fn open_location(location: &str, options: StoreOptions) -> Result<Self, StoreError> {
        if is_postgres(location) {
            Self::open_postgres(location).await
        } else {
            Self::open_with(Path::new(location), options).await
        }
    }

    /// Which database this handle speaks to: `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.db {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Transactions committed since this handle was opened.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Stores a workflow definition under its name and version. The same content twice is a
    /// no-op; other content under an existing version is a conflict (bump the version).
    pub async fn put_workflow(
        &self,
        name: &str,
        version: u32,
        source: &str,
        now_ms: i64,
        audit: Option<&AuditFor<'_, PutWorkflow>>,
    ) -> Result<PutWorkflow, StoreError> {
        let hash = hex_sha256(source.as_bytes());
        // Checked and written in one transaction, with the call's audit entry.
        let put = self
            .write_transaction(async |conn| {
                let existing: Option<String> =
                    query_scalar("SELECT hash FROM workflows WHERE name = ? AND version = ?")
                        .bind(name)
                        .bind(i64::from(version))
                        .fetch_optional(&mut *conn)
                        .await?;
                let put = match existing {
                    Some(h) if h == hash => PutWorkflow::Unchanged,
                    Some(_) => {
                        return Err(StoreError::Conflict(format!(
                            "workflow `{name}` version {version} is already stored with other content; bump `version` to change it"
                        )));
                    }
                    None => {
                        query(
                            "INSERT INTO workflows (name, version, hash, source, created_at) VALUES (?, ?, ?, ?, ?)",
                        )
                        .bind(name)
                        .bind(i64::from(version))
                        .bind(&hash)
                        .bind(source)
                        .bind(now_ms)
                        .execute(&mut *conn)
                        .await?;
                        PutWorkflow::Inserted
                    }
                };
                if let Some(entry) = audit {
                    audit::insert_audit(conn, &entry(&put)).await?;
                }
                Ok(put)
            })
            .await?;
        if put == PutWorkflow::Inserted {
            self.commits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(put)
    }

    /// Deletes every stored version of workflow `name`, with the call's audit entry; how many.
    pub async fn delete_workflow(
        &self,
        name: &str,
        audit: Option<&AuditFor<'_, u64>>,
    ) -> Result<u64, StoreError> {
        self.audited(audit, async |conn| {
            let done = query("DELETE FROM workflows WHERE name = ?")
                .bind(name)
                .execute(&mut *conn)
                .await?;
            Ok(done.rows_affected())
        })
        .await
    }

    /// How many unfinished runs (any process's) run a version of workflow `name`.
    pub async fn unfinished_runs_of(&self, name: &str) -> Result<u64, StoreError> {
        let n: i64 = query_scalar(
            "SELECT COUNT(*) FROM runs WHERE workflow = ? AND status IN ('running', 'failing', 'cancelling')",
        )
        .bind(name)
        .fetch_one(&self.db)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The (name, version) of every stored workflow version, without their sources.
    pub async fn workflow_versions(&self) -> Result<Vec<(String, u32)>, StoreError> {
        let rows = query("SELECT name, version FROM workflows ORDER BY name, version")
            .fetch_all(&self.db)
            .await?;
        rows.iter()
            .map(|r| {
                let version: i64 = col(r, "version")?;
                Ok((
                    col(r, "name")?,
                    u32::try_from(version)
                        .map_err(|_| StoreError::Corrupt(format!("workflow version {version}")))?,
                ))
            })
            .collect()
    }

    /// Every stored workflow version.
    pub async fn workflows(&self) -> Result<Vec<WorkflowRow>, StoreError> {
        let rows =
            query("SELECT name, version, hash, source FROM workflows ORDER BY name, version")
                .fetch_all(&self.db)
                .await?;
        rows.iter().map(WorkflowRow::from_row).collect()
    }

    /// One run.
    pub async fn run(&self, id: &str) -> Result<Option<RunRow>, StoreError> {
        let row = query(AssertSqlSafe(format!(
            "SELECT {} FROM runs WHERE id = ?",
            RunRow::COLUMNS
        )))
        .bind(id)
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(RunRow::from_row).transpose()
    }

    /// Every run, newest first (at most `limit`).
    pub async fn runs(&self, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        let rows = query(AssertSqlSafe(format!(
            "SELECT {} FROM runs ORDER BY created_at DESC, id DESC LIMIT ?",
            RunRow::COLUMNS
        )))
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(RunRow::from_row).collect()
    }

    /// Every unit of a run, in plan order (see [`StepRow::position`]).
    pub async fn steps(&self, run_id: &str) -> Result<Vec<StepRow>, StoreError> {
        let rows = query(AssertSqlSafe(format!(
            "SELECT {} FROM steps WHERE run_id = ? ORDER BY position, item, key",
            StepRow::COLUMNS
        )))
        .bind(run_id)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(StepRow::from_row).collect()
    }

    /// At most `limit` units of a run in plan order, after `after` (the last unit of the
    /// previous page).
    pub async fn steps_page(
        &self,
        run_id: &str,
        after: Option<&StepCursor>,
        limit: u32,
    ) -> Result<Vec<StepRow>, StoreError> {
        let (position, item, key) = after.map_or((-1, -2, String::new()), |c| {
            (i64::from(c.position), c.item, c.key.clone())
        });
        let rows = query(AssertSqlSafe(format!(
            "SELECT {} FROM steps WHERE run_id = ? AND (position, item, key) > (?, ?, ?) \
             ORDER BY position, item, key LIMIT ?",
            StepRow::COLUMNS
        )))
        .bind(run_id)
        .bind(position)
        .bind(item)
        .bind(key)
        .bind(i64::from(limit))
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(StepRow::from_row).collect()
    }

    /// How many units of each step of a run are in each status: `(step id, status, count)`,
    /// in plan order (a fan-out of any width is a handful of rows here).
    pub async fn step_counts(
        &self,
        run_id: &str,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = query(
            "SELECT step_id, status, COUNT(*) AS n, MIN(position) AS p FROM steps WHERE run_id = ? \
             GROUP BY step_id, status ORDER BY p, step_id, status",
        )
        .bind(run_id)
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|r| Ok((col(r, "step_id")?, col(r, "status")?, col(r, "n")?)))
            .collect()
    }

    /// Signals delivered to a run and not yet taken by a step, oldest first.
    pub async fn pending_signals(&self, run_id: &str) -> Result<Vec<SignalRow>, StoreError> {
        let rows = query(
            "SELECT id, run_id, name, payload, created_at FROM signals \
             WHERE run_id = ? AND consumed_by IS NULL ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(SignalRow::from_row).collect()
    }

    /// One incident.
    pub async fn incident(&self, id: &str) -> Result<Option<IncidentRow>, StoreError> {
        let row = query(AssertSqlSafe(format!(
            "SELECT {} FROM incidents WHERE id = ?",
            IncidentRow::COLUMNS
        )))
        .bind(id)
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(IncidentRow::from_row).transpose()
    }

    /// Every incident not resolved.
    pub async fn open_incidents(&self) -> Result<Vec<IncidentRow>, StoreError> {
        let rows = query(AssertSqlSafe(format!(
            "SELECT {} FROM incidents WHERE status <> 'resolved' ORDER BY created_at, id",
            IncidentRow::COLUMNS
        )))
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(IncidentRow::from_row).collect()
    }

    /// Every incident, newest first.
    pub async fn incidents(&self) -> Result<Vec<IncidentRow>, StoreError> {
        let rows = query(AssertSqlSafe(format!(
            "SELECT {} FROM incidents ORDER BY created_at DESC, id",
            IncidentRow::COLUMNS
        )))
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(IncidentRow::from_row).collect()
    }

    /// How many runs and steps are in each status (for the benchmark and health checks).
    pub async fn census(&self) -> Result<Census, StoreError> {
        let mut census = Census::default();
        for (table, into) in [("runs", &mut census.runs), ("steps", &mut census.steps)] {
            let rows = query(AssertSqlSafe(format!(
                "SELECT status, COUNT(*) AS n FROM {table} GROUP BY status"
            )))
            .fetch_all(&self.db)
            .await?;
            for row in &rows {
                into.insert(col(row, "status")?, col(row, "n")?);
            }
        }
        Ok(census)
    }
}

/// Where a page of a run's units ended: the last unit's place in plan order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepCursor {
    /// Its step's position.
    pub position: u32,
    /// Its item, -1 for none.
    pub item: i64,
    /// Its key's text.
    pub key: String,
}

impl StepCursor {
    /// The cursor after `row`.
    pub fn after(row: &StepRow) -> Self {
        Self {
            position: row.position,
            item: row
                .key
                .item()
                .and_then(|i| i64::try_from(i).ok())
                .unwrap_or(-1),
            key: row.key.to_string(),
        }
    }

    /// An opaque text form for APIs, safe in a URL (the key, which may hold `#`, in hex).
    pub fn encode(&self) -> String {
        let key: String = self.key.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{}.{}.{key}", self.position, self.item)
    }

    /// Reads [`StepCursor::encode`]'s form; `None` when it is not one.
    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, '.');
        let position = parts.next()?.parse().ok()?;
        let item = parts.next()?.parse().ok()?;
        let hex = parts.next()?.as_bytes();
        if hex.len() % 2 != 0 {
            return None;
        }
        let bytes = hex
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        let key = String::from_utf8(bytes).ok()?;
        crate::plan::UnitKey::parse(&key)?;
        Some(Self {
            position,
            item,
            key,
        })
    }
}

/// Counts of runs and steps by stored status (`running`, `succeeded`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// Runs by status.
    pub runs: std::collections::BTreeMap<String, i64>,
    /// Steps (units) by status.
    pub steps: std::collections::BTreeMap<String, i64>,
}

impl Census {
    /// Runs not yet in a final status.
    pub fn unfinished_runs(&self) -> i64 {
        ["running", "failing", "cancelling"]
            .iter()
            .filter_map(|s| self.runs.get(*s))
            .sum()
    }
}

/// Hex sha256 of `bytes`.
pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads one column of one row, mapping a decoding failure to [`StoreError::Corrupt`].
fn col<T: db::Value>(row: &Row, name: &str) -> Result<T, StoreError> {
    row.get(name)
}

#[cfg(test)]
mod tests;
