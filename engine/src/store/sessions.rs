//! Console sessions: a signed-in browser's random id (kept as its sha256), the token it signed
//! in with (kept as that token's hash) and the anti-forgery value its forms send back.

use super::db::query;
use super::{Store, StoreError};

/// One console session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// sha256 of the cookie's value.
    pub id_hash: String,
    /// sha256 of the token signed in with.
    pub token_hash: String,
    /// What every form of the session must carry.
    pub csrf: String,
    /// Signed in (ms).
    pub created_at: i64,
    /// Ends (ms).
    pub expires_at: i64,
}

impl Store {
    /// Stores a new session, and forgets every session that ended before `now_ms`.
    pub async fn put_session(&self, s: &SessionRow, now_ms: i64) -> Result<(), StoreError> {
        self.write_transaction(async |conn| {
            query("DELETE FROM console_sessions WHERE expires_at < ?")
                .bind(now_ms)
                .execute(&mut *conn)
                .await?;
            query(
                "INSERT INTO console_sessions (id_hash, token_hash, csrf, created_at, expires_at) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&s.id_hash)
            .bind(&s.token_hash)
            .bind(&s.csrf)
            .bind(s.created_at)
            .bind(s.expires_at)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
        .await
    }

    /// The session with this id hash, unless it ended before `now_ms`.
    pub async fn session(
        &self,
        id_hash: &str,
        now_ms: i64,
    ) -> Result<Option<SessionRow>, StoreError> {
        let row = query(
            "SELECT id_hash, token_hash, csrf, created_at, expires_at FROM console_sessions \
             WHERE id_hash = ? AND expires_at >= ?",
        )
        .bind(id_hash)
        .bind(now_ms)
        .fetch_optional(&self.db)
        .await?;
        row.map(|r| {
            Ok(SessionRow {
                id_hash: r.try_get("id_hash")?,
                token_hash: r.try_get("token_hash")?,
                csrf: r.try_get("csrf")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Ends a session (signing out).
    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        query("DELETE FROM console_sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&self.db)
            .await?;
        Ok(())
    }
}
