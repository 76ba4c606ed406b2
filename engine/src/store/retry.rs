//! Putting a failed run back to running (`POST /v1/runs/{id}/retry`): its failed and
//! interrupted units are put back, its `on_failure` units forgotten, the run claimed by the
//! process that retries it, and the retry recorded in the run's history — one transaction.

use super::audit::insert_audit;
use super::db::{query, query_scalar};
use super::rows::{RunRow, StepRow};
use super::{AuditRow, Lease, Store, StoreError};
use crate::plan::UnitKey;

/// What a retry changes.
#[derive(Debug, Clone)]
pub struct Retry {
    /// The run.
    pub run_id: String,
    /// Units put back as they should run again (a plugin unit `retrying` and due now, a
    /// fan-out `waiting` for its items).
    pub reset: Vec<StepRow>,
    /// Units forgotten, to start afresh (steps that are not plugin calls, `on_failure` steps).
    pub dropped: Vec<UnitKey>,
    /// Who asked.
    pub by: String,
    /// When (ms).
    pub at: i64,
}

/// One retry in a run's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryRow {
    /// 1 for the first.
    pub n: i64,
    /// When (ms).
    pub at: i64,
    /// Who asked.
    pub by: String,
    /// The unit keys run again.
    pub units: Vec<String>,
}

impl Store {
    /// Applies `retry` if the run is still `failed` and `owner` still holds `lease` on its
    /// partition: the run becomes `running` again. Returns the run as it is now, or `None` when
    /// it was not failed any more (retried already, say) or the partition changed hands, and
    /// nothing was written.
    pub async fn retry_run(
        &self,
        retry: &Retry,
        owner: &str,
        lease: Lease,
        audit: Option<&AuditRow>,
    ) -> Result<Option<RunRow>, StoreError> {
        self.write_transaction(async |conn| {
            let held = super::batch::held(conn.dialect());
            let done = query(sqlx::AssertSqlSafe(format!(
                "UPDATE runs SET status = 'running', error = NULL, outputs = NULL, finished_at = NULL, \
                 updated_at = ?, paused_at = NULL, cancel_compensates = 1 \
                 WHERE id = ? AND status = 'failed' AND partition = ? AND {held}"
            )))
            .bind(retry.at)
            .bind(&retry.run_id)
            .bind(lease.partition)
            .bind(lease.partition)
            .bind(owner)
            .bind(lease.epoch)
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(None);
            }
            for key in &retry.dropped {
                query("DELETE FROM steps WHERE run_id = ? AND key = ?")
                    .bind(&retry.run_id)
                    .bind(key.to_string())
                    .execute(&mut *conn)
                    .await?;
            }
            if !retry.reset.is_empty() {
                let rows: Vec<&StepRow> = retry.reset.iter().collect();
                StepRow::upsert_many(conn, &rows).await?;
            }
            let n: i64 = query_scalar(
                "SELECT COALESCE(MAX(n), 0) + 1 FROM run_retries WHERE run_id = ?",
            )
            .bind(&retry.run_id)
            .fetch_one(&mut *conn)
            .await?;
            let units: Vec<String> = retry
                .reset
                .iter()
                .map(|u| u.key.to_string())
                .chain(retry.dropped.iter().map(UnitKey::to_string))
                .collect();
            query("INSERT INTO run_retries (run_id, n, at, by, units) VALUES (?, ?, ?, ?, ?)")
                .bind(&retry.run_id)
                .bind(n)
                .bind(retry.at)
                .bind(&retry.by)
                .bind(serde_json::to_string(&units).unwrap_or_else(|_| "[]".into()))
                .execute(&mut *conn)
                .await?;
            if let Some(entry) = audit {
                insert_audit(conn, entry).await?;
            }
            let row = query(sqlx::AssertSqlSafe(format!(
                "SELECT {} FROM runs WHERE id = ?",
                RunRow::COLUMNS
            )))
            .bind(&retry.run_id)
            .fetch_one(&mut *conn)
            .await?;
            RunRow::from_row(&row).map(Some)
        })
        .await
    }

    /// A run's retries, oldest first.
    pub async fn retries(&self, run_id: &str) -> Result<Vec<RetryRow>, StoreError> {
        let rows = query("SELECT n, at, by, units FROM run_retries WHERE run_id = ? ORDER BY n")
            .bind(run_id)
            .fetch_all(&self.db)
            .await?;
        rows.iter()
            .map(|r| {
                let units: String = r.try_get("units")?;
                Ok(RetryRow {
                    n: r.try_get("n")?,
                    at: r.try_get("at")?,
                    by: r.try_get("by")?,
                    units: serde_json::from_str(&units)
                        .map_err(|e| StoreError::Corrupt(format!("retry units: {e}")))?,
                })
            })
            .collect()
    }
}
