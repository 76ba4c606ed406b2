//! Catalog entries set or deleted over the API, kept so they outlive a restart.

use super::db::query;
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

/// A definition set or deleted over the API, as both `catalog_entries` and `alert_rules` keep
/// it: its key, its YAML (`None` once deleted), when and by whom.
pub(super) type OverlayRow = (String, Option<String>, i64, String);

impl Store {
    /// Stores a definition (or its deletion) in `table`, keyed by `key`, with the call's audit
    /// entry.
    pub(super) async fn put_overlay(
        &self,
        table: &'static str,
        key: &'static str,
        row: (&str, Option<&str>, i64, &str),
        audit: Option<&super::AuditFor<'_, ()>>,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO {table} ({key}, source, updated_at, updated_by) VALUES (?, ?, ?, ?) \
             ON CONFLICT ({key}) DO UPDATE SET source = excluded.source, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by"
        );
        self.audited(audit, async |conn| {
            query(sqlx::AssertSqlSafe(sql))
                .bind(row.0)
                .bind(row.1)
                .bind(row.2)
                .bind(row.3)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
        .await
    }

    /// Every definition and deletion of `table`, by key.
    pub(super) async fn overlay_rows(
        &self,
        table: &'static str,
        key: &'static str,
    ) -> Result<Vec<OverlayRow>, StoreError> {
        let rows = query(sqlx::AssertSqlSafe(format!(
            "SELECT {key}, source, updated_at, updated_by FROM {table} ORDER BY {key}"
        )))
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(key)?,
                    r.try_get("source")?,
                    r.try_get("updated_at")?,
                    r.try_get("updated_by")?,
                ))
            })
            .collect()
    }

    /// Stores an entry (or, with no source, its deletion) with the call's audit entry.
    pub async fn put_catalog_entry(
        &self,
        row: &CatalogRow,
        audit: Option<&super::AuditFor<'_, ()>>,
    ) -> Result<(), StoreError> {
        let fields = (
            row.id.as_str(),
            row.source.as_deref(),
            row.updated_at,
            row.updated_by.as_str(),
        );
        self.put_overlay("catalog_entries", "id", fields, audit)
            .await
    }

    /// Every stored entry and deletion, by id.
    pub async fn catalog_entries(&self) -> Result<Vec<CatalogRow>, StoreError> {
        let rows = self.overlay_rows("catalog_entries", "id").await?;
        Ok(rows
            .into_iter()
            .map(|(id, source, updated_at, updated_by)| CatalogRow {
                id,
                source,
                updated_at,
                updated_by,
            })
            .collect())
    }
}

/// An on-call file set over the API (its YAML), or its deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnCallFileRow {
    /// The file's name (`platform` for `oncall/platform.yaml`).
    pub name: String,
    /// Its YAML; `None` for a deletion.
    pub source: Option<String>,
    /// When (ms).
    pub updated_at: i64,
    /// The token id that changed it.
    pub updated_by: String,
}

impl Store {
    /// Stores an on-call file (or, with no source, its deletion) with the call's audit entry.
    pub async fn put_oncall_file(
        &self,
        row: &OnCallFileRow,
        audit: Option<&super::AuditFor<'_, ()>>,
    ) -> Result<(), StoreError> {
        let fields = (
            row.name.as_str(),
            row.source.as_deref(),
            row.updated_at,
            row.updated_by.as_str(),
        );
        self.put_overlay("oncall_files", "name", fields, audit)
            .await
    }

    /// Every on-call file and deletion stored, by name.
    pub async fn oncall_file_rows(&self) -> Result<Vec<OnCallFileRow>, StoreError> {
        let rows = self.overlay_rows("oncall_files", "name").await?;
        Ok(rows
            .into_iter()
            .map(|(name, source, updated_at, updated_by)| OnCallFileRow {
                name,
                source,
                updated_at,
                updated_by,
            })
            .collect())
    }
}
