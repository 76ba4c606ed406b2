//! Synthetic checks' results and standing.

use super::db::{Conn, query};
use super::{Store, StoreError, col};

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResultRow {
    /// The check.
    pub check: String,
    /// When (ms).
    pub at: i64,
    /// Whether every condition held.
    pub passed: bool,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// Milliseconds taken.
    pub latency_ms: u64,
    /// Why it failed.
    pub error: Option<String>,
}

/// Where a check stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckStateRow {
    /// The check.
    pub check: String,
    /// Up, down, or not known yet.
    pub up: Option<bool>,
    /// Failed probes in a row.
    pub fails: u32,
    /// Passed probes in a row.
    pub passes: u32,
    /// The incident it opened while down, when no rule took its alert.
    pub incident_id: Option<String>,
    /// Last change (ms).
    pub changed_at: i64,
}

impl Store {
    /// Stores a probe's result with the check's standing after it, in one transaction.
    pub async fn record_check(
        &self,
        r: &CheckResultRow,
        s: &CheckStateRow,
    ) -> Result<(), StoreError> {
        self.write_transaction(async |conn| {
            query(
                "INSERT INTO check_results (check_name, at, passed, status, latency_ms, error) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&r.check)
            .bind(r.at)
            .bind(i64::from(r.passed))
            .bind(r.status.map(i64::from))
            .bind(i64::try_from(r.latency_ms).unwrap_or(i64::MAX))
            .bind(&r.error)
            .execute(&mut *conn)
            .await?;
            put_state(conn, s).await
        })
        .await
    }

    /// Stores a check's standing alone (the incident it opened or resolved).
    pub async fn put_check_state(&self, s: &CheckStateRow) -> Result<(), StoreError> {
        self.write_statement(async |conn| put_state(conn, s).await)
            .await
    }

    /// Every check's standing, by name.
    pub async fn check_states(&self) -> Result<Vec<CheckStateRow>, StoreError> {
        let rows = query(
            "SELECT check_name, up, fails, passes, incident_id, changed_at FROM check_state ORDER BY check_name",
        )
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|r| {
                let up: Option<i64> = col(r, "up")?;
                let fails: i64 = col(r, "fails")?;
                let passes: i64 = col(r, "passes")?;
                Ok(CheckStateRow {
                    check: col(r, "check_name")?,
                    up: up.map(|u| u != 0),
                    fails: u32::try_from(fails).unwrap_or(u32::MAX),
                    passes: u32::try_from(passes).unwrap_or(u32::MAX),
                    incident_id: col(r, "incident_id")?,
                    changed_at: col(r, "changed_at")?,
                })
            })
            .collect()
    }

    /// `(at, passed)` of a check's results at or after `since`, oldest first.
    pub async fn check_results(
        &self,
        check: &str,
        since: i64,
    ) -> Result<Vec<(i64, bool)>, StoreError> {
        let rows = query(
            "SELECT at, passed FROM check_results WHERE check_name = ? AND at >= ? ORDER BY at",
        )
        .bind(check)
        .bind(since)
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|r| {
                let passed: i64 = r.try_get("passed")?;
                Ok((r.try_get("at")?, passed != 0))
            })
            .collect()
    }

    /// Deletes results older than `before` (ms); how many.
    pub async fn prune_check_results(&self, before: i64) -> Result<u64, StoreError> {
        let done = query("DELETE FROM check_results WHERE at < ?")
            .bind(before)
            .execute(&self.db)
            .await?;
        Ok(done.rows_affected())
    }
}

async fn put_state(conn: &mut Conn, s: &CheckStateRow) -> Result<(), StoreError> {
    query(
        "INSERT INTO check_state (check_name, up, fails, passes, incident_id, changed_at) \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (check_name) DO UPDATE SET up = excluded.up, \
         fails = excluded.fails, passes = excluded.passes, incident_id = excluded.incident_id, \
         changed_at = excluded.changed_at",
    )
    .bind(&s.check)
    .bind(s.up.map(i64::from))
    .bind(i64::from(s.fails))
    .bind(i64::from(s.passes))
    .bind(&s.incident_id)
    .bind(s.changed_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
