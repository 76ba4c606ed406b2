//! The audit log's table: entries written with the change they record (in that change's
//! transaction, see [`Store::audited`]), in batches (the API's queue of refused calls), or on
//! their own; read newest call first.

use super::col;
use super::db::{Conn, query};
use super::{Store, StoreError};

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditRow {
    /// Sequence number.
    pub id: i64,
    /// When (ms).
    pub at: i64,
    /// The call's place among this process's calls, for calls within one millisecond.
    pub seq: i64,
    /// The token id, when the caller presented a valid one.
    pub actor: Option<String>,
    /// Its role.
    pub role: Option<String>,
    /// Its tenant.
    pub tenant: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Path (without the query).
    pub path: String,
    /// Response status.
    pub status: u16,
    /// The peer address.
    pub remote: String,
}

impl Store {
    /// Appends an audit entry on its own (the grants reload's per-scope entries).
    pub async fn audit(&self, e: &AuditRow) -> Result<(), StoreError> {
        self.write_statement(async |conn| insert_audit(conn, e).await)
            .await
    }

    /// Appends audit entries in one transaction: the entries of calls that changed nothing
    /// (refused, unauthenticated, invalid), written in batches rather than one fsync each.
    pub async fn audit_many(&self, entries: &[AuditRow]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.write_transaction(async |conn| {
            for e in entries {
                insert_audit(conn, e).await?;
            }
            Ok(())
        })
        .await
    }

    /// Runs the writes of `body` and, when given, the audit entry of the call that asked for
    /// them, in one transaction: the change and its entry are both durable, or neither.
    pub(super) async fn audited<T>(
        &self,
        audit: Option<&super::AuditFor<'_, T>>,
        body: impl AsyncFnOnce(&mut Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.audited_if(audit, body, |_| true).await
    }

    /// [`Store::audited`], writing the entry only when `changed` says the body changed
    /// something (a call that changed nothing is audited by the caller, with its real answer).
    pub(super) async fn audited_if<T>(
        &self,
        audit: Option<&super::AuditFor<'_, T>>,
        body: impl AsyncFnOnce(&mut Conn) -> Result<T, StoreError>,
        changed: impl FnOnce(&T) -> bool,
    ) -> Result<T, StoreError> {
        match audit {
            None => self.write_statement(body).await,
            Some(entry) => {
                self.write_transaction(async |conn| {
                    let value = body(conn).await?;
                    if changed(&value) {
                        insert_audit(conn, &entry(&value)).await?;
                    }
                    Ok(value)
                })
                .await
            }
        }
    }

    /// Audit entries, the newest call first (entries of refused calls are written in batches,
    /// so ids do not follow the calls' order), after the entry `before` when given.
    pub async fn audit_page(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let rows = query(
            "SELECT id, at, seq, actor, role, tenant, method, path, status, remote FROM audit \
             WHERE (? IS NULL OR (at, seq, id) < (SELECT at, seq, id FROM audit WHERE id = ?)) \
             ORDER BY at DESC, seq DESC, id DESC LIMIT ?",
        )
        .bind(before)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|row| {
                let status: i64 = col(row, "status")?;
                Ok(AuditRow {
                    id: col(row, "id")?,
                    at: col(row, "at")?,
                    seq: col(row, "seq")?,
                    actor: col(row, "actor")?,
                    role: col(row, "role")?,
                    tenant: col(row, "tenant")?,
                    method: col(row, "method")?,
                    path: col(row, "path")?,
                    status: u16::try_from(status).unwrap_or(0),
                    remote: col(row, "remote")?,
                })
            })
            .collect()
    }
}

/// Inserts one audit entry on `conn` (inside the caller's transaction, if any).
pub(super) async fn insert_audit(conn: &mut Conn, e: &AuditRow) -> Result<(), StoreError> {
    query(
        "INSERT INTO audit (at, seq, actor, role, tenant, method, path, status, remote) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.at)
    .bind(e.seq)
    .bind(&e.actor)
    .bind(&e.role)
    .bind(&e.tenant)
    .bind(&e.method)
    .bind(&e.path)
    .bind(i64::from(e.status))
    .bind(&e.remote)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
