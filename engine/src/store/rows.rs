//! The stored records and their SQL mapping.

use serde_json::Value as Json;
use sqlx::AssertSqlSafe;

use super::db::{Arg, Conn, Row, query};
use super::upsert::{Kind, Rows, Table};
use super::{StoreError, col};
use crate::plan::UnitKey;

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Steps are being executed.
    Running,
    /// A step failed: compensations and `on_failure` steps are running.
    Failing,
    /// Cancellation was asked: running steps are being interrupted.
    Cancelling,
    /// Every step finished without failing the run.
    Succeeded,
    /// A step failed the run.
    Failed,
    /// The run was cancelled.
    Cancelled,
}

impl RunStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Failing => "failing",
            RunStatus::Cancelling => "cancelling",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the run is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    pub(super) fn parse(s: &str) -> Result<Self, StoreError> {
        Self::named(s).ok_or_else(|| StoreError::Corrupt(format!("unknown run status `{s}`")))
    }

    /// The status with this stored spelling.
    pub fn named(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RunStatus::Running,
            "failing" => RunStatus::Failing,
            "cancelling" => RunStatus::Cancelling,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }
}

/// Where a step is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Dispatched to a plugin worker (or being acted on).
    Running,
    /// Parked: a timer, an approval, a signal, a child run or fan-out items.
    Waiting,
    /// Failed an attempt; the next one starts at `wake_at`.
    Retrying,
    /// Finished with an output.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Not run: its `when` was false, or everything it needs was skipped.
    Skipped,
    /// Interrupted by cancellation.
    Cancelled,
}

impl StepStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Running => "running",
            StepStatus::Waiting => "waiting",
            StepStatus::Retrying => "retrying",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the step is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded
                | StepStatus::Failed
                | StepStatus::Skipped
                | StepStatus::Cancelled
        )
    }

    pub(super) fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "running" => StepStatus::Running,
            "waiting" => StepStatus::Waiting,
            "retrying" => StepStatus::Retrying,
            "succeeded" => StepStatus::Succeeded,
            "failed" => StepStatus::Failed,
            "skipped" => StepStatus::Skipped,
            "cancelled" => StepStatus::Cancelled,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown step status `{other}`"
                )));
            }
        })
    }
}

pub(super) fn json_col(row: &Row, name: &str) -> Result<Option<Json>, StoreError> {
    let text: Option<String> = col(row, name)?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("column `{name}`: {e}")))
    })
    .transpose()
}

fn json_text(v: &Option<Json>) -> Option<String> {
    v.as_ref().map(Json::to_string)
}

/// Most rows in one multi-row statement (20 columns × 128 stays far below SQLite's limit of
/// 32,766 parameters).
const MAX_ROWS_PER_STATEMENT: usize = 128;

/// Splits `rows` into chunks of 128, 64, 32, … 1 rows: few statements per batch, and few
/// distinct statement texts, so every one stays in the connection's prepared-statement cache.
pub(super) fn chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let n = if rows.len() >= MAX_ROWS_PER_STATEMENT {
            MAX_ROWS_PER_STATEMENT
        } else {
            1 << rows.len().ilog2()
        };
        let (chunk, rest) = rows.split_at(n);
        rows = rest;
        Some(chunk)
    })
}

/// `(?, ?, …), (?, ?, …), …`: `rows` groups of `columns` placeholders.
pub(super) fn placeholders(rows: usize, columns: usize) -> String {
    let one = format!("({})", vec!["?"; columns].join(", "));
    vec![one; rows].join(", ")
}

/// A stored workflow definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRow {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// sha256 of the source.
    pub hash: String,
    /// The YAML as uploaded.
    pub source: String,
}

impl WorkflowRow {
    pub(super) fn from_row(row: &Row) -> Result<Self, StoreError> {
        let version: i64 = col(row, "version")?;
        Ok(Self {
            name: col(row, "name")?,
            version: u32::try_from(version)
                .map_err(|_| StoreError::Corrupt(format!("workflow version {version}")))?,
            hash: col(row, "hash")?,
            source: col(row, "source")?,
        })
    }
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// The run's id.
    pub id: String,
    /// Workflow name.
    pub workflow: String,
    /// Workflow version it started on.
    pub version: u32,
    /// The tenant it runs for.
    pub tenant: String,
    /// Who started it.
    pub requester: Option<String>,
    /// Its validated inputs.
    pub inputs: Json,
    /// Where it is.
    pub status: RunStatus,
    /// Rendered outputs once succeeded.
    pub outputs: Option<Json>,
    /// Why it failed.
    pub error: Option<String>,
    /// The parent run, for a sub-workflow.
    pub parent_run: Option<String>,
    /// The parent's unit waiting on this run.
    pub parent_step: Option<UnitKey>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
    /// End time (ms).
    pub finished_at: Option<i64>,
    /// The partition it lives in (its id's hash, its parent's, or a `csmp run` process's
    /// own); whoever holds that partition's lease executes it.
    pub partition: i64,
    /// Why the run cannot go on, while its workflow version does not plan; it resumes when
    /// the cause is fixed.
    pub blocked: Option<String>,
    /// While cancelling: whether compensations and `on_failure` steps run first.
    pub cancel_compensates: bool,
    /// Since when it is paused (ms): it dispatches nothing new until resumed.
    pub paused_at: Option<i64>,
}

impl RunRow {
    pub(super) const COLUMNS: &'static str = "id, workflow, version, tenant, requester, inputs, status, outputs, error, parent_run, parent_step, created_at, updated_at, finished_at, partition, blocked, cancel_compensates, paused_at";

    pub(super) fn from_row(row: &Row) -> Result<Self, StoreError> {
        let version: i64 = col(row, "version")?;
        let status: String = col(row, "status")?;
        Ok(Self {
            id: col(row, "id")?,
            workflow: col(row, "workflow")?,
            version: u32::try_from(version)
                .map_err(|_| StoreError::Corrupt(format!("run version {version}")))?,
            tenant: col(row, "tenant")?,
            requester: col(row, "requester")?,
            inputs: json_col(row, "inputs")?.unwrap_or(Json::Null),
            status: RunStatus::parse(&status)?,
            outputs: json_col(row, "outputs")?,
            error: col(row, "error")?,
            parent_run: col(row, "parent_run")?,
            parent_step: {
                let key: Option<String> = col(row, "parent_step")?;
                key.map(|k| {
                    UnitKey::parse(&k)
                        .ok_or_else(|| StoreError::Corrupt(format!("parent step `{k}`")))
                })
                .transpose()?
            },
            created_at: col(row, "created_at")?,
            updated_at: col(row, "updated_at")?,
            finished_at: col(row, "finished_at")?,
            partition: col(row, "partition")?,
            blocked: col(row, "blocked")?,
            cancel_compensates: col::<i64>(row, "cancel_compensates")? != 0,
            paused_at: col(row, "paused_at")?,
        })
    }

    /// How runs are written in bulk (`upsert.rs`).
    pub(super) const TABLE: Table = Table {
        name: "runs",
        columns: &[
            ("id", Kind::Text),
            ("workflow", Kind::Text),
            ("version", Kind::Int),
            ("tenant", Kind::Text),
            ("requester", Kind::Text),
            ("inputs", Kind::Text),
            ("status", Kind::Text),
            ("outputs", Kind::Text),
            ("error", Kind::Text),
            ("parent_run", Kind::Text),
            ("parent_step", Kind::Text),
            ("created_at", Kind::Int),
            ("updated_at", Kind::Int),
            ("finished_at", Kind::Int),
            ("partition", Kind::Int),
            ("blocked", Kind::Text),
            ("cancel_compensates", Kind::Int),
            ("paused_at", Kind::Int),
        ],
        key: 1,
        conflict: "ON CONFLICT (id) DO UPDATE SET status = excluded.status, outputs = excluded.outputs, \
             error = excluded.error, updated_at = excluded.updated_at, finished_at = excluded.finished_at, \
             blocked = excluded.blocked, cancel_compensates = excluded.cancel_compensates, \
             paused_at = excluded.paused_at",
    };

    /// Its values in [`Self::TABLE`]'s column order.
    pub(super) fn values(&self) -> Vec<Arg> {
        vec![
            self.id.as_str().into(),
            self.workflow.as_str().into(),
            i64::from(self.version).into(),
            self.tenant.as_str().into(),
            self.requester.clone().into(),
            self.inputs.to_string().into(),
            self.status.as_str().into(),
            json_text(&self.outputs).into(),
            self.error.clone().into(),
            self.parent_run.clone().into(),
            self.parent_step.as_ref().map(UnitKey::to_string).into(),
            self.created_at.into(),
            self.updated_at.into(),
            self.finished_at.into(),
            self.partition.into(),
            self.blocked.clone().into(),
            i64::from(self.cancel_compensates).into(),
            self.paused_at.into(),
        ]
    }
}

/// A step (or fan-out item, or compensation) as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    /// The run.
    pub run_id: String,
    /// Which unit: a step, a fan-out item, an `on_failure` step or a compensation (stored as
    /// its text form, beside the step's id and item).
    pub key: UnitKey,
    /// Where its step comes in the plan (main steps in order, then `on_failure` steps, then
    /// compensations), for listing units in plan order.
    pub position: u32,
    /// Where it is.
    pub status: StepStatus,
    /// Attempts started so far.
    pub attempt: u32,
    /// Its output once succeeded.
    pub output: Option<Json>,
    /// Its error once failed.
    pub error: Option<String>,
    /// Kind-specific state (fan-out items, child run id, approval decision).
    pub state: Option<Json>,
    /// Durable timer (ms): wait end, retry time, approval or signal timeout.
    pub wake_at: Option<i64>,
    /// First start (ms).
    pub started_at: Option<i64>,
    /// End (ms).
    pub finished_at: Option<i64>,
}

impl StepRow {
    pub(super) const COLUMNS: &'static str = "run_id, key, step_id, status, attempt, output, error, state, wake_at, started_at, finished_at, position, item";

    pub(super) fn from_row(row: &Row) -> Result<Self, StoreError> {
        let status: String = col(row, "status")?;
        let attempt: i64 = col(row, "attempt")?;
        let key: String = col(row, "key")?;
        Ok(Self {
            run_id: col(row, "run_id")?,
            key: UnitKey::parse(&key)
                .ok_or_else(|| StoreError::Corrupt(format!("unit key `{key}`")))?,
            position: u32::try_from(col::<i64>(row, "position")?).unwrap_or(u32::MAX),
            status: StepStatus::parse(&status)?,
            attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
            output: json_col(row, "output")?,
            error: col(row, "error")?,
            state: json_col(row, "state")?,
            wake_at: col(row, "wake_at")?,
            started_at: col(row, "started_at")?,
            finished_at: col(row, "finished_at")?,
        })
    }

    /// How units are written in bulk (`upsert.rs`).
    pub(super) const TABLE: Table = Table {
        name: "steps",
        columns: &[
            ("run_id", Kind::Text),
            ("key", Kind::Text),
            ("step_id", Kind::Text),
            ("status", Kind::Text),
            ("attempt", Kind::Int),
            ("output", Kind::Text),
            ("error", Kind::Text),
            ("state", Kind::Text),
            ("wake_at", Kind::Int),
            ("started_at", Kind::Int),
            ("finished_at", Kind::Int),
            ("position", Kind::Int),
            ("item", Kind::Int),
        ],
        key: 2,
        conflict: "ON CONFLICT (run_id, key) DO UPDATE SET status = excluded.status, attempt = excluded.attempt, \
             output = excluded.output, error = excluded.error, state = excluded.state, \
             wake_at = excluded.wake_at, started_at = excluded.started_at, finished_at = excluded.finished_at",
    };

    /// Its values in [`Self::TABLE`]'s column order.
    pub(super) fn values(&self) -> Vec<Arg> {
        vec![
            self.run_id.as_str().into(),
            self.key.to_string().into(),
            self.key.step_id().into(),
            self.status.as_str().into(),
            i64::from(self.attempt).into(),
            json_text(&self.output).into(),
            self.error.clone().into(),
            json_text(&self.state).into(),
            self.wake_at.into(),
            self.started_at.into(),
            self.finished_at.into(),
            i64::from(self.position).into(),
            self.key
                .item()
                .and_then(|i| i64::try_from(i).ok())
                .unwrap_or(-1)
                .into(),
        ]
    }

    /// Inserts or updates `rows` unfenced (a retry's reset units, written under its own check).
    pub(super) async fn upsert_many(conn: &mut Conn, rows: &[&Self]) -> Result<u64, StoreError> {
        let rows = Rows {
            table: &Self::TABLE,
            values: rows.iter().map(|r| r.values()).collect(),
            fence: None,
        };
        Ok(super::upsert::write(conn, vec![rows])
            .await?
            .iter()
            .map(|w| w.changed)
            .sum())
    }
}

/// A signal delivered to a run.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalRow {
    /// Its id (assigned by the store's sequence).
    pub id: i64,
    /// The run it is for.
    pub run_id: String,
    /// Its name (`ack`, `approval:STEP`, …).
    pub name: String,
    /// What came with it.
    pub payload: Json,
    /// Arrival (ms).
    pub created_at: i64,
}

impl SignalRow {
    pub(super) fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(Self {
            id: col(row, "id")?,
            run_id: col(row, "run_id")?,
            name: col(row, "name")?,
            payload: json_col(row, "payload")?.unwrap_or(Json::Null),
            created_at: col(row, "created_at")?,
        })
    }

    /// Inserts the signal; returns the rows changed (1).
    pub(super) async fn insert(&self, conn: &mut Conn) -> Result<u64, StoreError> {
        Ok(query(
            "INSERT INTO signals (id, run_id, name, payload, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(self.id)
        .bind(&self.run_id)
        .bind(&self.name)
        .bind(self.payload.to_string())
        .bind(self.created_at)
        .execute(&mut *conn)
        .await?
        .rows_affected())
    }

    /// Inserts the signal only while `held` (an `EXISTS` taking partition, owner and epoch) is
    /// true; returns the rows changed.
    pub(super) async fn insert_fenced(
        &self,
        conn: &mut Conn,
        held: &str,
        lease: (&str, i64, i64),
    ) -> Result<u64, StoreError> {
        Ok(query(AssertSqlSafe(format!(
            "INSERT INTO signals (id, run_id, name, payload, created_at) SELECT ?, ?, ?, ?, ? WHERE {held}"
        )))
        .bind(self.id)
        .bind(&self.run_id)
        .bind(&self.name)
        .bind(self.payload.to_string())
        .bind(self.created_at)
        .bind(lease.1)
        .bind(lease.0)
        .bind(lease.2)
        .execute(&mut *conn)
        .await?
        .rows_affected())
    }
}

/// An incident.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IncidentRow {
    /// Its id.
    pub id: String,
    /// The run that opened it.
    pub run_id: Option<String>,
    /// The tenant it concerns.
    pub tenant: String,
    /// Title.
    pub title: String,
    /// `sev1`..`sev4`.
    pub severity: String,
    /// Affected service.
    pub service: Option<String>,
    /// `open`, `acknowledged` or `resolved`.
    pub status: String,
    /// `[{at, by, kind, note, public}]` (see `incidents::entry`).
    pub timeline: Json,
    /// The ticket's other fields (`incidents::Details` as JSON).
    pub details: Json,
    /// Creation (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
    /// The partition it lives in: its opening run's, or its id's hash. Its holder applies
    /// what people do to it.
    #[serde(default, skip_serializing)]
    pub partition: i64,
}

impl IncidentRow {
    pub(super) const COLUMNS: &'static str = "id, run_id, tenant, title, severity, service, status, timeline, created_at, updated_at, details, partition";

    pub(super) fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(Self {
            id: col(row, "id")?,
            run_id: col(row, "run_id")?,
            tenant: col(row, "tenant")?,
            title: col(row, "title")?,
            severity: col(row, "severity")?,
            service: col(row, "service")?,
            status: col(row, "status")?,
            timeline: json_col(row, "timeline")?.unwrap_or(Json::Array(Vec::new())),
            created_at: col(row, "created_at")?,
            updated_at: col(row, "updated_at")?,
            details: json_col(row, "details")?.unwrap_or_else(|| Json::Object(Default::default())),
            partition: col(row, "partition")?,
        })
    }

    const UPDATE: &'static str = "ON CONFLICT (id) DO UPDATE SET title = excluded.title, severity = excluded.severity, \
         service = excluded.service, status = excluded.status, timeline = excluded.timeline, \
         updated_at = excluded.updated_at, details = excluded.details";

    /// Inserts or updates the incident; returns the rows changed (1).
    pub(super) async fn upsert(&self, conn: &mut Conn) -> Result<u64, StoreError> {
        let sql = format!(
            "INSERT INTO incidents ({}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) {}",
            Self::COLUMNS,
            Self::UPDATE
        );
        Ok(self
            .bind(query(AssertSqlSafe(sql)))
            .execute(&mut *conn)
            .await?
            .rows_affected())
    }

    /// Upserts the incident only while `held` (an `EXISTS` taking partition, owner and epoch)
    /// is true; returns the rows changed.
    pub(super) async fn upsert_fenced(
        &self,
        conn: &mut Conn,
        held: &str,
        lease: (&str, i64, i64),
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "INSERT INTO incidents ({}) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE {held} {}",
            Self::COLUMNS,
            Self::UPDATE
        );
        Ok(self
            .bind(query(AssertSqlSafe(sql)))
            .bind(lease.1)
            .bind(lease.0)
            .bind(lease.2)
            .execute(&mut *conn)
            .await?
            .rows_affected())
    }

    fn bind(&self, q: super::db::Statement) -> super::db::Statement {
        q.bind(&self.id)
            .bind(&self.run_id)
            .bind(&self.tenant)
            .bind(&self.title)
            .bind(&self.severity)
            .bind(&self.service)
            .bind(&self.status)
            .bind(self.timeline.to_string())
            .bind(self.created_at)
            .bind(self.updated_at)
            .bind(self.details.to_string())
            .bind(self.partition)
    }
}
