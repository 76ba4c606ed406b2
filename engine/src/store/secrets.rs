//! The operator's secrets as stored: sealed (see `vault`), never in the clear.

use super::db::{Conn, Row, query};
use super::{Store, StoreError, col};

/// One sealed secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// Its name (`secrets.NAME` in templates).
    pub name: String,
    /// The AEAD nonce.
    pub nonce: Vec<u8>,
    /// The value sealed, with its tag.
    pub ciphertext: Vec<u8>,
    /// Which master key sealed it.
    pub key_id: String,
    /// Who set it: `cli`, or the admin token's id.
    pub set_by: String,
    /// When (ms).
    pub set_at: i64,
}

impl SealedSecret {
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(Self {
            name: col(row, "name")?,
            nonce: col(row, "nonce")?,
            ciphertext: col(row, "ciphertext")?,
            key_id: col(row, "key_id")?,
            set_by: col(row, "set_by")?,
            set_at: col(row, "set_at")?,
        })
    }
}

const UPSERT: &str = "INSERT INTO secrets (name, nonce, ciphertext, key_id, set_by, set_at) \
     VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET nonce = excluded.nonce, \
     ciphertext = excluded.ciphertext, key_id = excluded.key_id, set_by = excluded.set_by, \
     set_at = excluded.set_at";

impl Store {
    /// Stores (or replaces) one sealed secret, with the audit entry of the call that set it.
    pub async fn put_secret(
        &self,
        s: &SealedSecret,
        audit: Option<&super::AuditFor<'_, ()>>,
    ) -> Result<(), StoreError> {
        self.audited(audit, async |conn| upsert(conn, s).await)
            .await
    }

    /// Every sealed secret, by name.
    pub async fn sealed_secrets(&self) -> Result<Vec<SealedSecret>, StoreError> {
        let rows = query(
            "SELECT name, nonce, ciphertext, key_id, set_by, set_at FROM secrets ORDER BY name",
        )
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(SealedSecret::from_row).collect()
    }

    /// Replaces the sealed form of these secrets, all in one transaction (a key rotation).
    pub async fn replace_secrets(&self, rows: &[SealedSecret]) -> Result<(), StoreError> {
        self.write_transaction(async |conn| {
            for s in rows {
                upsert(conn, s).await?;
            }
            Ok(())
        })
        .await
    }
}

async fn upsert(conn: &mut Conn, s: &SealedSecret) -> Result<(), StoreError> {
    query(UPSERT)
        .bind(&s.name)
        .bind(&s.nonce)
        .bind(&s.ciphertext)
        .bind(&s.key_id)
        .bind(&s.set_by)
        .bind(s.set_at)
        .execute(conn)
        .await?;
    Ok(())
}
