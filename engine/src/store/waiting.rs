//! Steps that wait on a person: `approval:` steps of unfinished runs, with what they say.

use super::db::query;
use super::rows::json_col;
use super::{Store, StoreError};
use crate::plan::UnitKey;

/// An `approval:` step waiting for its decision.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingApproval {
    /// Its run.
    pub run_id: String,
    /// The run's workflow and version (the step's roles are in its plan).
    pub workflow: String,
    /// The version.
    pub version: u32,
    /// The run's tenant.
    pub tenant: String,
    /// The step's key.
    pub key: UnitKey,
    /// Its rendered `message`, if it has one.
    pub message: Option<String>,
    /// Since when it waits (ms).
    pub since: Option<i64>,
    /// When it times out (ms), if it has a timeout.
    pub until: Option<i64>,
}

impl Store {
    /// Approval steps waiting now in unfinished runs, oldest first (of `tenant` only, when
    /// given).
    pub async fn waiting_approvals(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<WaitingApproval>, StoreError> {
        let sql = format!(
            "SELECT s.run_id, s.key, s.state, s.started_at, s.wake_at, r.workflow, r.version, r.tenant \
             FROM steps s JOIN runs r ON r.id = s.run_id \
             WHERE s.status = 'waiting' AND {} IS NOT NULL \
               AND r.status IN ('running', 'failing') AND r.blocked IS NULL \
               AND (? IS NULL OR r.tenant = ?) \
             ORDER BY s.started_at, s.run_id, s.key LIMIT ?",
            self.db.dialect().pick(
                "json_type(s.state, '$.approval')",
                "(s.state::jsonb -> 'approval')"
            )
        );
        let rows = query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(tenant)
            .bind(i64::from(limit))
            .fetch_all(&self.db)
            .await?;
        rows.iter()
            .map(|row| {
                let key: String = row.try_get("key")?;
                let version: i64 = row.try_get("version")?;
                Ok(WaitingApproval {
                    run_id: row.try_get("run_id")?,
                    workflow: row.try_get("workflow")?,
                    version: u32::try_from(version)
                        .map_err(|_| StoreError::Corrupt(format!("run version {version}")))?,
                    tenant: row.try_get("tenant")?,
                    key: UnitKey::parse(&key)
                        .ok_or_else(|| StoreError::Corrupt(format!("step key `{key}`")))?,
                    message: json_col(row, "state")?
                        .and_then(|s| s.get("approval").and_then(|m| m.as_str().map(String::from))),
                    since: row.try_get("started_at")?,
                    until: row.try_get("wake_at")?,
                })
            })
            .collect()
    }
}
