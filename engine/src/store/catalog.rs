//! Catalog entries set or deleted over the API, kept so they outlive a restart.

use sqlx::Row;

use super::{Store, StoreError};

/// A stored catalog entry: its YAML, or `None` once deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRow {
    /// The entry's id.
    pub id: String,
    /// Its YAML; `None` for a deletion.
    pub source: Option<String>,
    /// When (ms).
    pub updated_at: i64,
    /// The token id that changed it.
    pub updated_by: String,
}

impl Store {
    /// Stores an entry (or, with no source, its deletion) with the call's audit entry.
    pub async fn put_catalog_entry(
        &self,
        row: &CatalogRow,
        audit: Option<&super::AuditFor<'_, ()>>,
    ) -> Result<(), StoreError> {
        self.audited(audit, async |conn| {
            sqlx::query(
                "INSERT INTO catalog_entries (id, source, updated_at, updated_by) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (id) DO UPDATE SET source = excluded.source, \
                 updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            )
            .bind(&row.id)
            .bind(&row.source)
            .bind(row.updated_at)
            .bind(&row.updated_by)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
        .await
    }

    /// Every stored entry and deletion, by id.
    pub async fn catalog_entries(&self) -> Result<Vec<CatalogRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, source, updated_at, updated_by FROM catalog_entries ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CatalogRow {
                    id: r.try_get("id")?,
                    source: r.try_get("source")?,
                    updated_at: r.try_get("updated_at")?,
                    updated_by: r.try_get("updated_by")?,
                })
            })
            .collect()
    }
}
