//! What a run started over the API carries beside its row: labels and the Idempotency-Key it
//! was started with (both written once, in the commit that creates the run), and run lists
//! filtered by them and by status, workflow, tenant and time.

use std::collections::{BTreeMap, HashMap};

use sqlx::AssertSqlSafe;

use super::db::{Conn, query};
use super::rows::RunRow;
use super::{Cursor, RunStatus, Store, StoreError};

/// The Idempotency-Key a run was started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunKey {
    /// The token id that started it.
    pub requester: String,
    /// The key.
    pub key: String,
    /// sha256 of what was asked (workflow, version, inputs, tenant, labels).
    pub body_hash: String,
}

/// Which runs a list shows; every field narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only this tenant's.
    pub tenant: Option<String>,
    /// Only runs in this status.
    pub status: Option<StatusFilter>,
    /// Only runs of this workflow.
    pub workflow: Option<String>,
    /// Only runs carrying every one of these labels.
    pub labels: BTreeMap<String, String>,
    /// Created at or after (ms).
    pub created_after: Option<i64>,
    /// Created before (ms).
    pub created_before: Option<i64>,
}

/// A status a run list is narrowed to, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Stored in this status (and, while unfinished, not blocked).
    Is(RunStatus),
    /// Unfinished and waiting because its workflow version does not plan.
    Blocked,
    /// Running but paused.
    Paused,
}

/// Writes a new run's labels and key (inside the commit that creates it). A key already taken
/// is left as it is: the API checks keys before it starts a run.
pub(super) async fn insert(
    conn: &mut Conn,
    run_id: &str,
    labels: &BTreeMap<String, String>,
    key: Option<&RunKey>,
    at: i64,
) -> Result<(), StoreError> {
    if !labels.is_empty() {
        let sql = format!(
            "INSERT INTO run_labels (run_id, key, value) VALUES {} ON CONFLICT DO NOTHING",
            vec!["(?, ?, ?)"; labels.len()].join(", ")
        );
        let mut q = query(AssertSqlSafe(sql));
        for (k, v) in labels {
            q = q.bind(run_id).bind(k).bind(v);
        }
        q.execute(&mut *conn).await?;
    }
    if let Some(k) = key {
        query(
            "INSERT INTO run_keys (requester, key, body_hash, run_id, created_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&k.requester)
        .bind(&k.key)
        .bind(&k.body_hash)
        .bind(run_id)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl Store {
    /// The run `requester` started with Idempotency-Key `key`, and the hash of what it asked.
    pub async fn run_by_key(
        &self,
        requester: &str,
        key: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let row = query("SELECT run_id, body_hash FROM run_keys WHERE requester = ? AND key = ?")
            .bind(requester)
            .bind(key)
            .fetch_optional(&self.db)
            .await?;
        row.map(|r| Ok((r.try_get("run_id")?, r.try_get("body_hash")?)))
            .transpose()
    }

    /// The labels of each of `runs` (runs without labels are left out).
    pub async fn labels_of(
        &self,
        runs: &[&str],
    ) -> Result<HashMap<String, BTreeMap<String, String>>, StoreError> {
        let mut out: HashMap<String, BTreeMap<String, String>> = HashMap::new();
        for chunk in runs.chunks(500) {
            let sql = format!(
                "SELECT run_id, key, value FROM run_labels WHERE run_id IN ({})",
                vec!["?"; chunk.len()].join(", ")
            );
            let mut q = query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&self.db).await? {
                out.entry(row.try_get("run_id")?)
                    .or_default()
                    .insert(row.try_get("key")?, row.try_get("value")?);
            }
        }
        Ok(out)
    }

    /// A page of the runs `filter` lets through, newest first, after `cursor`.
    pub async fn runs_filtered(
        &self,
        filter: &RunFilter,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<RunRow>, StoreError> {
        let mut sql = format!(
            "SELECT {} FROM runs r WHERE 1 = 1",
            super::api::prefixed("r", RunRow::COLUMNS)
        );
        if filter.tenant.is_some() {
            sql.push_str(" AND r.tenant = ?");
        }
        match filter.status {
            Some(StatusFilter::Is(s)) if s.is_final() => sql.push_str(" AND r.status = ?"),
            Some(StatusFilter::Is(_)) => {
                sql.push_str(" AND r.status = ? AND r.blocked IS NULL AND r.paused_at IS NULL");
            }
            Some(StatusFilter::Paused) => sql.push_str(
                " AND r.status = 'running' AND r.blocked IS NULL AND r.paused_at IS NOT NULL",
            ),
            Some(StatusFilter::Blocked) => sql.push_str(
                " AND r.blocked IS NOT NULL AND r.status IN ('running', 'failing', 'cancelling')",
            ),
            None => {}
        }
        if filter.workflow.is_some() {
            sql.push_str(" AND r.workflow = ?");
        }
        if filter.created_after.is_some() {
            sql.push_str(" AND r.created_at >= ?");
        }
        if filter.created_before.is_some() {
            sql.push_str(" AND r.created_at < ?");
        }
        for _ in &filter.labels {
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM run_labels l WHERE l.run_id = r.id AND l.key = ? AND l.value = ?)",
            );
        }
        if cursor.is_some() {
            sql.push_str(" AND (r.created_at < ? OR (r.created_at = ? AND r.id < ?))");
        }
        sql.push_str(" ORDER BY r.created_at DESC, r.id DESC LIMIT ?");
        let mut q = query(AssertSqlSafe(sql));
        if let Some(t) = &filter.tenant {
            q = q.bind(t);
        }
        if let Some(StatusFilter::Is(s)) = filter.status {
            q = q.bind(s.as_str());
        }
        if let Some(w) = &filter.workflow {
            q = q.bind(w);
        }
        if let Some(a) = filter.created_after {
            q = q.bind(a);
        }
        if let Some(b) = filter.created_before {
            q = q.bind(b);
        }
        for (k, v) in &filter.labels {
            q = q.bind(k).bind(v);
        }
        if let Some(c) = cursor {
            q = q.bind(c.created_at).bind(c.created_at).bind(&c.id);
        }
        let rows = q.bind(i64::from(limit)).fetch_all(&self.db).await?;
        rows.iter().map(RunRow::from_row).collect()
    }

    /// How many runs created at or after `since_ms` are in each status (paused runs count as
    /// `running`), for the console's overview.
    pub async fn run_counts_since(&self, since_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = query(
            "SELECT status, COUNT(*) AS n FROM runs WHERE created_at >= ? GROUP BY status ORDER BY status",
        )
        .bind(since_ms)
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect()
    }
}
