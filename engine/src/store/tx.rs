//! Write transactions on SQLite, begun and ended here rather than by the pool.
//!
//! `BEGIN IMMEDIATE` takes the write lock up front, so a busy database fails the transaction at
//! its start instead of half-way through. A connection that any write failed on is closed, not
//! handed back to the pool: after a full disk or an I/O error SQLite may or may not have rolled
//! the transaction back, and a connection left inside one keeps the write lock from every other
//! connection until it is next used.

use sqlx::SqliteConnection;
use sqlx::pool::PoolConnection;

use super::{Store, StoreError};

impl Store {
    /// Runs `body` in one write transaction: committed when it returns `Ok`, rolled back (and
    /// its connection closed) when it or the commit fails.
    pub(super) async fn write_transaction<T>(
        &self,
        body: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let result = async {
            sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
            let value = body(&mut conn).await?;
            sqlx::query("COMMIT").execute(&mut *conn).await?;
            Ok(value)
        }
        .await;
        if result.is_err() {
            discard(conn).await;
        }
        result
    }

    /// Runs `body`, one autocommit statement (atomic and durable by itself); its connection is
    /// closed when it fails.
    pub(super) async fn write_statement<T>(
        &self,
        body: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let result = body(&mut conn).await;
        if result.is_err() {
            discard(conn).await;
        }
        result
    }
}

/// Ends whatever transaction a failed write left open and closes the connection; the pool opens
/// a fresh one when it needs it.
async fn discard(mut conn: PoolConnection<sqlx::Sqlite>) {
    // Fails harmlessly when SQLite already rolled back (or nothing was begun).
    let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    if let Err(e) = conn.close().await {
        tracing::debug!("closing a connection after a failed write: {e}");
    }
}
