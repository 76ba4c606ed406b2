//! The history of a plugin unit's attempts: one row per finished attempt, with its times,
//! outcome, error and captured log, written in the same commit as the unit's row.

use sqlx::AssertSqlSafe;

use super::db::{Arg, Row, query};
use super::upsert::{Kind, Table};
use super::{StepRow, Store, StoreError, col};
use crate::plan::UnitKey;

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The plugin returned an output.
    Succeeded,
    /// The attempt failed; a retry may follow.
    Failed,
    /// The attempt was interrupted by a cancellation.
    Cancelled,
}

impl AttemptOutcome {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown attempt outcome `{other}`"
                )));
            }
        })
    }
}

/// One finished attempt of a plugin unit.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    /// The run.
    pub run_id: String,
    /// The unit.
    pub key: UnitKey,
    /// Its number, from 1.
    pub attempt: u32,
    /// When it was handed to a worker (ms).
    pub started_at: i64,
    /// When its result was taken (ms).
    pub finished_at: i64,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// A failure's kind (`retryable`, `timeout`, `trap`, …).
    pub kind: Option<String>,
    /// A failure's message.
    pub error: Option<String>,
    /// Its captured log (stdout, stderr and log lines), capped by the host.
    pub log: String,
}

const COLUMNS: &str = "run_id, key, attempt, started_at, finished_at, outcome, kind, error, log";

impl AttemptRow {
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        let key: String = col(row, "key")?;
        let outcome: String = col(row, "outcome")?;
        Ok(Self {
            run_id: col(row, "run_id")?,
            key: UnitKey::parse(&key)
                .ok_or_else(|| StoreError::Corrupt(format!("unit key `{key}`")))?,
            attempt: u32::try_from(col::<i64>(row, "attempt")?).unwrap_or(u32::MAX),
            started_at: col(row, "started_at")?,
            finished_at: col(row, "finished_at")?,
            outcome: AttemptOutcome::parse(&outcome)?,
            kind: col(row, "kind")?,
            error: col(row, "error")?,
            log: col(row, "log")?,
        })
    }

    /// How attempts are written in bulk (`upsert.rs`): an attempt number seen before a
    /// restart is replaced.
    pub(super) const TABLE: Table = Table {
        name: "attempts",
        columns: &[
            ("run_id", Kind::Text),
            ("key", Kind::Text),
            ("attempt", Kind::Int),
            ("started_at", Kind::Int),
            ("finished_at", Kind::Int),
            ("outcome", Kind::Text),
            ("kind", Kind::Text),
            ("error", Kind::Text),
            ("log", Kind::Text),
        ],
        key: 3,
        conflict: "ON CONFLICT (run_id, key, attempt) DO UPDATE SET \
             started_at = excluded.started_at, finished_at = excluded.finished_at, \
             outcome = excluded.outcome, kind = excluded.kind, error = excluded.error, \
             log = excluded.log",
    };

    /// Its values in [`Self::TABLE`]'s column order.
    pub(super) fn values(&self) -> Vec<Arg> {
        vec![
            self.run_id.as_str().into(),
            self.key.to_string().into(),
            i64::from(self.attempt).into(),
            self.started_at.into(),
            self.finished_at.into(),
            self.outcome.as_str().into(),
            self.kind.clone().into(),
            self.error.clone().into(),
            self.log.as_str().into(),
        ]
    }
}

impl Store {
    /// One unit of a run.
    pub async fn step(&self, run_id: &str, key: &UnitKey) -> Result<Option<StepRow>, StoreError> {
        let row = query(AssertSqlSafe(format!(
            "SELECT {} FROM steps WHERE run_id = ? AND key = ?",
            StepRow::COLUMNS
        )))
        .bind(run_id)
        .bind(key.to_string())
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(StepRow::from_row).transpose()
    }

    /// Every finished attempt of a unit, oldest first.
    pub async fn attempts(
        &self,
        run_id: &str,
        key: &UnitKey,
    ) -> Result<Vec<AttemptRow>, StoreError> {
        let rows = query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM attempts WHERE run_id = ? AND key = ? ORDER BY attempt"
        )))
        .bind(run_id)
        .bind(key.to_string())
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(AttemptRow::from_row).collect()
    }

    /// The last attempt of each unit of a run that ended failed, in unit key order: what
    /// `csmp run` shows when a run fails.
    pub async fn failed_attempts(&self, run_id: &str) -> Result<Vec<AttemptRow>, StoreError> {
        let rows = query(AssertSqlSafe(format!(
            "SELECT {} FROM attempts a WHERE a.run_id = ? AND a.outcome = 'failed' \
             AND a.attempt = (SELECT MAX(b.attempt) FROM attempts b \
                              WHERE b.run_id = a.run_id AND b.key = a.key) \
             ORDER BY a.finished_at, a.key",
            COLUMNS
                .split(", ")
                .map(|c| format!("a.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
        .bind(run_id)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(AttemptRow::from_row).collect()
    }
}
