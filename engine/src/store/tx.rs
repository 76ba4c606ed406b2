//! Write transactions, begun and ended here rather than by the pool.
//!
//! On SQLite `BEGIN IMMEDIATE` takes the write lock up front, so a busy database fails the
//! transaction at its start instead of half-way through. On PostgreSQL a write transaction takes
//! one transaction-scoped advisory lock first: write transactions follow one another as they do
//! on SQLite, so every read-then-write the store makes inside one sees what the previous one
//! committed (single statements, the executor's hot path, take no such lock).
//!
//! A connection that any write failed on is closed, not handed back to the pool: after a full
//! disk or an I/O error the database may or may not have rolled the transaction back, and a
//! connection left inside one keeps its locks from every other connection until it is next used.

use super::db::{Backend, Conn, query};
use super::{Store, StoreError};

/// The advisory lock key write transactions take on PostgreSQL ("csmp" in ASCII).
const WRITE_LOCK: i64 = 0x63_73_6d_70;

/// The advisory lock key a `csmp serve` on PostgreSQL holds for its lifetime ("csmp" "serv").
const SERVICE_LOCK: i64 = 0x63_73_6d_70_73_65_72_76;

/// While held, no other `csmp serve` runs on this PostgreSQL database: the session-scoped
/// advisory lock lives as long as this connection, so a process that dies, however it dies,
/// lets go of it when the server sees the connection close.
#[derive(Debug)]
pub struct ServiceLock {
    _conn: Option<sqlx::PgConnection>,
}

impl Store {
    /// A connection from the pool.
    pub(super) async fn acquire(&self) -> Result<Conn, StoreError> {
        Ok(match &self.db {
            Backend::Sqlite(p) => Backend::Sqlite(p.acquire().await?),
            Backend::Postgres(p) => Backend::Postgres(p.acquire().await?),
        })
    }

    /// On PostgreSQL, takes the lock one `csmp serve` holds on its database, or says that
    /// another holds it. (On SQLite the serve's lock file beside the database does this.)
    pub async fn hold_service_lock(&self) -> Result<ServiceLock, StoreError> {
        let Backend::Postgres(pool) = &self.db else {
            return Ok(ServiceLock { _conn: None });
        };
        let mut conn = pool.acquire().await?.detach();
        let got: bool = super::db::query_scalar("SELECT pg_try_advisory_lock(?)")
            .bind(SERVICE_LOCK)
            .fetch_one(&mut conn)
            .await?;
        if got {
            Ok(ServiceLock { _conn: Some(conn) })
        } else {
            Err(StoreError::Conflict(
                "another csmp serve is using this PostgreSQL database; stop it first, or give \
                 this one another --database"
                    .into(),
            ))
        }
    }

    /// Runs `body` in one write transaction: committed when it returns `Ok`, rolled back (and
    /// its connection closed) when it or the commit fails.
    pub(super) async fn write_transaction<T>(
        &self,
        body: impl AsyncFnOnce(&mut Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.acquire().await?;
        let result = async {
            match conn {
                Backend::Sqlite(_) => {
                    query("BEGIN IMMEDIATE").execute(&mut conn).await?;
                }
                Backend::Postgres(_) => {
                    query("BEGIN").execute(&mut conn).await?;
                    query("SELECT pg_advisory_xact_lock(?)")
                        .bind(WRITE_LOCK)
                        .execute(&mut conn)
                        .await?;
                }
            }
            let value = body(&mut conn).await?;
            query("COMMIT").execute(&mut conn).await?;
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
        body: impl AsyncFnOnce(&mut Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.acquire().await?;
        let result = body(&mut conn).await;
        if result.is_err() {
            discard(conn).await;
        }
        result
    }
}

/// Ends whatever transaction a failed write left open and closes the connection; the pool opens
/// a fresh one when it needs it.
async fn discard(mut conn: Conn) {
    // Fails harmlessly when the database already rolled back (or nothing was begun).
    let _ = query("ROLLBACK").execute(&mut conn).await;
    let closed = match conn {
        Backend::Sqlite(c) => c.close().await,
        Backend::Postgres(c) => c.close().await,
    };
    if let Err(e) = closed {
        tracing::debug!("closing a connection after a failed write: {e}");
    }
}
