//! The history of a plugin unit's attempts: one row per finished attempt, with its times,
//! outcome, error and captured log, written in the same commit as the unit's row.

use sqlx::AssertSqlSafe;

use super::db::{Conn, Row, query};
use super::rows::{chunks, placeholders};
use super::{Fence, StepRow, Store, StoreError, col};
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
const WIDTH: usize = 9;

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

    /// Inserts (or, for an attempt number seen before a restart, replaces) attempts, each only
    /// while `fence` holds its run. Returns how many rows were written.
    pub(super) async fn upsert_many(
        conn: &mut Conn,
        rows: &[&Self],
        fence: Option<&Fence>,
    ) -> Result<u64, StoreError> {
        const UPDATE: &str = "ON CONFLICT (run_id, key, attempt) DO UPDATE SET \
             started_at = excluded.started_at, finished_at = excluded.finished_at, \
             outcome = excluded.outcome, kind = excluded.kind, error = excluded.error, \
             log = excluded.log";
        let mut changed = 0;
        for chunk in chunks(rows) {
            let sql = match fence {
                None => format!(
                    "INSERT INTO attempts ({COLUMNS}) VALUES {} {UPDATE}",
                    placeholders(chunk.len(), WIDTH)
                ),
                // As for steps: each row carries its run's epoch and is joined to the lease.
                Some(_) => format!(
                    "INSERT INTO attempts ({COLUMNS}) SELECT v.column1, v.column2, v.column3, \
                     v.column4, v.column5, v.column6, v.column7, v.column8, v.column9 \
                     FROM (VALUES {}) AS v JOIN runs r ON r.id = v.column1 \
                     AND r.lease_owner = ? AND r.lease_epoch = v.column10 WHERE true {UPDATE}",
                    placeholders(chunk.len(), WIDTH + 1)
                ),
            };
            let mut q = query(AssertSqlSafe(sql));
            for a in chunk {
                q = q
                    .bind(&a.run_id)
                    .bind(a.key.to_string())
                    .bind(i64::from(a.attempt))
                    .bind(a.started_at)
                    .bind(a.finished_at)
                    .bind(a.outcome.as_str())
                    .bind(&a.kind)
                    .bind(&a.error)
                    .bind(&a.log);
                if let Some(f) = fence {
                    q = q.bind(f.epochs.get(&a.run_id).copied().unwrap_or(-1));
                }
            }
            if let Some(f) = fence {
                q = q.bind(&f.owner);
            }
            changed += q.execute(&mut *conn).await?.rows_affected();
        }
        Ok(changed)
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
