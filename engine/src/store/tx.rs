//! Write transactions, begun and ended here rather than by the pool.
//!
//! On SQLite `BEGIN IMMEDIATE` takes the write lock up front, so a busy database fails the
//! transaction at its start instead of half-way through. On PostgreSQL a write transaction takes
//! one transaction-scoped advisory lock first: write transactions follow one another as they do
//! on SQLite, so every read-then-write the store makes inside one sees what the previous one
//! committed. Single statements and the executor's commits — which read nothing to decide
//! what they write, every check being in the statement that writes — take no such lock, so
//! the processes sharing a database commit side by side.
//!
//! A connection that any write failed on is closed, not handed back to the pool: after a full
//! disk or an I/O error the database may or may not have rolled the transaction back, and a
//! connection left inside one keeps its locks from every other connection until it is next used.

use super::db::{Backend, Conn, query};
use super::{Store, StoreError};

/// The advisory lock key write transactions take on PostgreSQL ("csmp" in ASCII).
const WRITE_LOCK: i64 = 0x63_73_6d_70;

/// Whether a write transaction on PostgreSQL waits for the others (see [`WRITE_LOCK`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Serial {
    /// It reads, then writes what it read decided: after the others.
    Yes,
    /// It only writes, every check in the statement that writes: beside the others.
    No,
}

/// While held, no other process runs under this lease name on this PostgreSQL database: the
/// session-scoped advisory lock lives as long as this connection, so a process that dies,
/// however it dies, lets go of it when the server sees the connection close, and its restart
/// under the same name takes its partitions back at once.
#[derive(Debug)]
pub struct OwnerLock {
    _conn: Option<sqlx::PgConnection>,
}

/// The advisory lock key of lease name `owner` (FNV-1a of `csmp-owner:NAME`).
fn owner_key(owner: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "csmp-owner:".bytes().chain(owner.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

impl Store {
    /// A connection from the pool.
    pub(super) async fn acquire(&self) -> Result<Conn, StoreError> {
        Ok(match &self.db {
            Backend::Sqlite(p) => Backend::Sqlite(p.acquire().await?),
            Backend::Postgres(p) => Backend::Postgres(p.acquire().await?),
        })
    }

    /// On PostgreSQL, takes the lock of lease name `owner` for this process's lifetime, or says
    /// that a live process already runs under that name. (On SQLite the serve's lock file
    /// beside the database keeps it to one service.)
    pub async fn hold_owner_lock(&self, owner: &str) -> Result<OwnerLock, StoreError> {
        let Backend::Postgres(pool) = &self.db else {
            return Ok(OwnerLock { _conn: None });
        };
        let mut conn = pool.acquire().await?.detach();
        let got: bool = super::db::query_scalar("SELECT pg_try_advisory_lock(?)")
            .bind(owner_key(owner))
            .fetch_one(&mut conn)
            .await?;
        if got {
            Ok(OwnerLock { _conn: Some(conn) })
        } else {
            Err(StoreError::Conflict(format!(
                "another csmp process is running as `{owner}` on this PostgreSQL database; give \
                 each process its own --owner (CSMP_OWNER), or stop that one first"
            )))
        }
    }

    /// Runs `body` in one write transaction: committed when it returns `Ok`, rolled back (and
    /// its connection closed) when it or the commit fails.
    pub(super) async fn write_transaction<T>(
        &self,
        body: impl AsyncFnOnce(&mut Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.transaction(Serial::Yes, body).await
    }

    /// [`Store::write_transaction`], after the other write transactions on PostgreSQL only
    /// when `serial` says so: a body that only writes (every check in the statement that
    /// writes, as the executor's fenced commits) runs beside them.
    async fn transaction<T>(
        &self,
        serial: Serial,
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
                    if serial == Serial::Yes {
                        query("SELECT pg_advisory_xact_lock(?)")
                            .bind(WRITE_LOCK)
                            .execute(&mut conn)
                            .await?;
                    }
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

    /// Runs `body` while holding the database-wide lock `key`, so that no other process
    /// sharing the database runs a body under the same key at the same time (PostgreSQL: a
    /// session advisory lock on a connection of its own, let go when the body ends or the
    /// process dies; SQLite has one process). The body reads and writes through the store as
    /// usual; what it committed is seen by the next holder.
    pub async fn serialized<T>(
        &self,
        key: i64,
        body: impl AsyncFnOnce() -> T,
    ) -> Result<T, StoreError> {
        let Backend::Postgres(pool) = &self.db else {
            return Ok(body().await);
        };
        let mut conn = pool.acquire().await?;
        query("SELECT pg_advisory_lock(?)")
            .bind(key)
            .execute(&mut *conn)
            .await?;
        let value = body().await;
        if let Err(e) = query("SELECT pg_advisory_unlock(?)")
            .bind(key)
            .execute(&mut *conn)
            .await
        {
            // The lock dies with the connection: close it rather than hand it back holding it.
            tracing::warn!("cannot let go of a database lock ({e}); closing its connection");
            drop(conn.detach());
        }
        Ok(value)
    }

    /// Runs `body` in one write transaction, committed when it returns `Ok((value, true))`
    /// and rolled back when it returns `Ok((value, false))` (its connection kept) or fails
    /// (its connection closed).
    pub(super) async fn write_transaction_or_undo<T>(
        &self,
        serial: Serial,
        body: impl AsyncFnOnce(&mut Conn) -> Result<(T, bool), StoreError>,
    ) -> Result<T, StoreError> {
        self.transaction(serial, async |conn| {
            let (value, commit) = body(conn).await?;
            if !commit {
                query("ROLLBACK").execute(&mut *conn).await?;
                // Begun again, empty, so the commit that ends it writes nothing.
                query("BEGIN").execute(&mut *conn).await?;
            }
            Ok(value)
        })
        .await
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
