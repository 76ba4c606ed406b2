//! What the REST API stores beside runs: tenants, tokens, inbound events and uploaded plugins,
//! and the request and SLA census (requests are `requests.rs`, the audit log `audit.rs`).
//! Schema: `migrations/sqlite/0003_api.sql`.

use serde_json::Value as Json;
use sqlx::AssertSqlSafe;

use super::audit::insert_audit;
use super::db::{Conn, Dialect, Row, query, query_scalar};
use super::rows::json_col;
use super::{RunRow, Store, StoreError, col};

/// A page position: rows strictly after `(created_at, id)` in newest-first order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Creation time (ms) of the last row seen.
    pub created_at: i64,
    /// Id of the last row seen.
    pub id: String,
}

impl Cursor {
    /// The opaque text handed to clients.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at, self.id)
    }

    /// Reads a cursor a client sent back; `None` when it is not one of ours.
    pub fn decode(text: &str) -> Option<Self> {
        let (at, id) = text.split_once('.')?;
        let created_at = at.parse().ok()?;
        (!id.is_empty() && id.len() <= 64).then(|| Self {
            created_at,
            id: id.to_string(),
        })
    }
}

/// A tenant: a client organisation of the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRow {
    /// Its id (`[a-z0-9-]+`).
    pub id: String,
    /// CIDRs its clients' tokens may be used from; empty = anywhere.
    pub allowlist: Vec<String>,
    /// Creation (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
}

impl TenantRow {
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        let allowlist = json_col(row, "allowlist")?
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        Ok(Self {
            id: col(row, "id")?,
            allowlist,
            created_at: col(row, "created_at")?,
            updated_at: col(row, "updated_at")?,
        })
    }
}

/// A bearer token, as stored: only the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// Public id (the prefix of the token), shown in audit entries.
    pub id: String,
    /// sha256 (hex) of the whole token.
    pub hash: String,
    /// `admin`, `operator`, `client` or `integration`.
    pub role: String,
    /// The tenant a client token is bound to.
    pub tenant: Option<String>,
    /// A label for people.
    pub name: Option<String>,
    /// Creation (ms).
    pub created_at: i64,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
}

impl TokenRow {
    const COLUMNS: &'static str = "id, hash, role, tenant, name, created_at, revoked_at";

    fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(Self {
            id: col(row, "id")?,
            hash: col(row, "hash")?,
            role: col(row, "role")?,
            tenant: col(row, "tenant")?,
            name: col(row, "name")?,
            created_at: col(row, "created_at")?,
            revoked_at: col(row, "revoked_at")?,
        })
    }
}

/// An inbound event (an alert notification), as received.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// Its id.
    pub id: String,
    /// `alertmanager` or `grafana`.
    pub source: String,
    /// Arrival (ms).
    pub received_at: i64,
    /// The token that sent it.
    pub received_by: String,
    /// The notification's status as sent (`firing`, `resolved`).
    pub status: Option<String>,
    /// How many alerts it carried.
    pub alerts: u32,
    /// The payload.
    pub payload: Json,
}

impl EventRow {
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        let alerts: i64 = col(row, "alerts")?;
        Ok(Self {
            id: col(row, "id")?,
            source: col(row, "source")?,
            received_at: col(row, "received_at")?,
            received_by: col(row, "received_by")?,
            status: col(row, "status")?,
            alerts: u32::try_from(alerts).unwrap_or(u32::MAX),
            payload: json_col(row, "payload")?.unwrap_or(Json::Null),
        })
    }
}

/// An uploaded plugin binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRow {
    /// Declared name.
    pub name: String,
    /// Declared version.
    pub version: String,
    /// sha256 of the binary.
    pub hash: String,
    /// The component.
    pub wasm: Vec<u8>,
    /// Token id of the uploader.
    pub uploaded_by: String,
    /// Upload time (ms).
    pub created_at: i64,
}

/// Requests by public status, and SLA breaches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCensus {
    /// Requests by public status (`started` split by the run's status).
    pub by_status: Vec<(String, i64)>,
    /// Requests whose SLA deadline passed before fulfilment.
    pub sla_breaches: i64,
}

pub(super) fn page_clause(cursor: Option<&Cursor>, alias: &str) -> String {
    match cursor {
        Some(_) => {
            format!("({alias}.created_at < ? OR ({alias}.created_at = ? AND {alias}.id < ?))")
        }
        None => "1 = 1".into(),
    }
}

impl Store {
    // ----- tenants -----

    /// Creates a tenant, or replaces its allowlist.
    pub async fn put_tenant(
        &self,
        id: &str,
        allowlist: &[String],
        now_ms: i64,
        audit: Option<&super::AuditFor<'_, ()>>,
    ) -> Result<TenantRow, StoreError> {
        let list = serde_json::to_string(allowlist)
            .map_err(|e| StoreError::Corrupt(format!("allowlist: {e}")))?;
        self.audited(audit, async |conn| {
            query(
                "INSERT INTO tenants (id, allowlist, created_at, updated_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (id) DO UPDATE SET allowlist = excluded.allowlist, updated_at = excluded.updated_at",
            )
            .bind(id)
            .bind(&list)
            .bind(now_ms)
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
        .await?;
        self.tenant(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("tenant `{id}` vanished")))
    }

    /// Creates a tenant with no allowlist unless it exists.
    pub async fn ensure_tenant(&self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        query(
            "INSERT INTO tenants (id, allowlist, created_at, updated_at) VALUES (?, '[]', ?, ?) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(now_ms)
        .bind(now_ms)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// One tenant.
    pub async fn tenant(&self, id: &str) -> Result<Option<TenantRow>, StoreError> {
        let row = query("SELECT id, allowlist, created_at, updated_at FROM tenants WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.db)
            .await?;
        row.as_ref().map(TenantRow::from_row).transpose()
    }

    /// Every tenant, by id.
    pub async fn tenants(&self) -> Result<Vec<TenantRow>, StoreError> {
        let rows = query("SELECT id, allowlist, created_at, updated_at FROM tenants ORDER BY id")
            .fetch_all(&self.db)
            .await?;
        rows.iter().map(TenantRow::from_row).collect()
    }

    // ----- tokens -----

    /// Stores a new token (its hash only), and its tenant (with no allowlist) unless that
    /// exists.
    pub async fn insert_token(
        &self,
        token: &TokenRow,
        audit: Option<&super::AuditFor<'_, ()>>,
    ) -> Result<(), StoreError> {
        let write = async |conn: &mut Conn| {
            if let Some(tenant) = &token.tenant {
                query(
                    "INSERT INTO tenants (id, allowlist, created_at, updated_at) VALUES (?, '[]', ?, ?) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(tenant)
                .bind(token.created_at)
                .bind(token.created_at)
                .execute(&mut *conn)
                .await?;
            }
            query(AssertSqlSafe(format!(
                "INSERT INTO tokens ({}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                TokenRow::COLUMNS
            )))
            .bind(&token.id)
            .bind(&token.hash)
            .bind(&token.role)
            .bind(&token.tenant)
            .bind(&token.name)
            .bind(token.created_at)
            .bind(token.revoked_at)
            .execute(&mut *conn)
            .await?;
            Ok(())
        };
        match (audit, &token.tenant) {
            (None, None) => self.write_statement(write).await,
            // Two statements: one transaction, audited or not.
            _ => {
                self.write_transaction(async |conn| {
                    write(conn).await?;
                    if let Some(entry) = audit {
                        insert_audit(conn, &entry(&())).await?;
                    }
                    Ok(())
                })
                .await
            }
        }
    }

    /// The live (not revoked) token with this hash.
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>, StoreError> {
        let row = query(AssertSqlSafe(format!(
            "SELECT {} FROM tokens WHERE hash = ? AND revoked_at IS NULL",
            TokenRow::COLUMNS
        )))
        .bind(hash)
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(TokenRow::from_row).transpose()
    }

    /// Every token (hashes included; callers show only ids), oldest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let rows = query(AssertSqlSafe(format!(
            "SELECT {} FROM tokens ORDER BY created_at, id",
            TokenRow::COLUMNS
        )))
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(TokenRow::from_row).collect()
    }

    /// Revokes a token; `false` when there is no live token with that id.
    pub async fn revoke_token(
        &self,
        id: &str,
        now_ms: i64,
        audit: Option<&super::AuditFor<'_, bool>>,
    ) -> Result<bool, StoreError> {
        self.audited_if(
            audit,
            async |conn| {
                let done =
                    query("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                        .bind(now_ms)
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                Ok(done.rows_affected() > 0)
            },
            |revoked| *revoked,
        )
        .await
    }

    // ----- runs, for the API -----

    /// A page of top-level and child runs, newest first (of `tenant` only, when given).
    pub async fn runs_page(
        &self,
        tenant: Option<&str>,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<RunRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM runs r WHERE (? IS NULL OR r.tenant = ?) AND {} \
             ORDER BY r.created_at DESC, r.id DESC LIMIT ?",
            prefixed("r", RunRow::COLUMNS),
            page_clause(cursor, "r")
        );
        let mut q = query(AssertSqlSafe(sql)).bind(tenant).bind(tenant);
        if let Some(c) = cursor {
            q = q.bind(c.created_at).bind(c.created_at).bind(&c.id);
        }
        let rows = q.bind(i64::from(limit)).fetch_all(&self.db).await?;
        rows.iter().map(RunRow::from_row).collect()
    }

    /// A page of incidents, newest first (of `tenant` only, when given: those it owns and
    /// those naming it among their affected tenants).
    pub async fn incidents_page(
        &self,
        tenant: Option<&str>,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<super::IncidentRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM incidents r WHERE (? IS NULL OR r.tenant = ? \
             OR {}) AND {} \
             ORDER BY r.created_at DESC, r.id DESC LIMIT ?",
            prefixed("r", super::IncidentRow::COLUMNS),
            names_tenant(self.db.dialect()),
            page_clause(cursor, "r")
        );
        let mut q = query(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(tenant)
            .bind(tenant);
        if let Some(c) = cursor {
            q = q.bind(c.created_at).bind(c.created_at).bind(&c.id);
        }
        let rows = q.bind(i64::from(limit)).fetch_all(&self.db).await?;
        rows.iter().map(super::IncidentRow::from_row).collect()
    }

    /// The incidents opened in `[from, to)` (ms), oldest first, for reports.
    pub async fn incidents_between(
        &self,
        tenant: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<Vec<super::IncidentRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM incidents r WHERE r.created_at >= ? AND r.created_at < ? \
             AND (? IS NULL OR r.tenant = ? \
             OR {}) \
             ORDER BY r.created_at, r.id",
            prefixed("r", super::IncidentRow::COLUMNS),
            names_tenant(self.db.dialect()),
        );
        let rows = query(AssertSqlSafe(sql))
            .bind(from)
            .bind(to)
            .bind(tenant)
            .bind(tenant)
            .bind(tenant)
            .fetch_all(&self.db)
            .await?;
        rows.iter().map(super::IncidentRow::from_row).collect()
    }

    /// The ids of the alerts that reached the group which opened incident `id`, oldest first.
    pub async fn incident_alerts(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let rows = query(
            "SELECT m.alert_id FROM alert_matches m JOIN alert_groups g ON g.id = m.group_id \
             WHERE g.incident_id = ? ORDER BY m.received_at, m.alert_id",
        )
        .bind(id)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(|r| col(r, "alert_id")).collect()
    }

    // ----- events -----

    /// Stores an inbound event.
    pub async fn insert_event(
        &self,
        e: &EventRow,
        audit: Option<&super::AuditFor<'_, ()>>,
    ) -> Result<(), StoreError> {
        self.audited(audit, async |conn| insert_event_row(conn, e).await)
            .await
    }

    /// Inbound events, newest first.
    pub async fn events_page(
        &self,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<EventRow>, StoreError> {
        let sql = format!(
            "SELECT id, source, received_at, received_by, status, alerts, payload FROM events \
             WHERE {} ORDER BY received_at DESC, id DESC LIMIT ?",
            match cursor {
                Some(_) => "(received_at < ? OR (received_at = ? AND id < ?))",
                None => "1 = 1",
            }
        );
        let mut q = query(AssertSqlSafe(sql));
        if let Some(c) = cursor {
            q = q.bind(c.created_at).bind(c.created_at).bind(&c.id);
        }
        let rows = q.bind(i64::from(limit)).fetch_all(&self.db).await?;
        rows.iter().map(EventRow::from_row).collect()
    }

    // ----- plugins -----

    /// Stores an uploaded plugin. The same binary twice is a no-op; another binary under a
    /// stored name and version is a conflict.
    pub async fn put_plugin(
        &self,
        p: &PluginRow,
        audit: Option<&super::AuditFor<'_, super::PutWorkflow>>,
    ) -> Result<super::PutWorkflow, StoreError> {
        // Checked and written in one transaction: two uploads of one version cannot both win.
        self.write_transaction(async |conn| {
        let existing: Option<String> =
            query_scalar("SELECT hash FROM plugins WHERE name = ? AND version = ?")
                .bind(&p.name)
                .bind(&p.version)
                .fetch_optional(&mut *conn)
                .await?;
        match existing {
            Some(h) if h == p.hash => {
                if let Some(entry) = audit {
                    insert_audit(conn, &entry(&super::PutWorkflow::Unchanged)).await?;
                }
                Ok(super::PutWorkflow::Unchanged)
            }
            Some(_) => Err(StoreError::Conflict(format!(
                "plugin `{}` version {} is already stored with another binary; publish a new version",
                p.name, p.version
            ))),
            None => {
                query(
                    "INSERT INTO plugins (name, version, hash, wasm, uploaded_by, created_at) \
                     VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(&p.name)
                .bind(&p.version)
                .bind(&p.hash)
                .bind(&p.wasm)
                .bind(&p.uploaded_by)
                .bind(p.created_at)
                .execute(&mut *conn)
                .await?;
                if let Some(entry) = audit {
                    insert_audit(conn, &entry(&super::PutWorkflow::Inserted)).await?;
                }
                Ok(super::PutWorkflow::Inserted)
            }
        }
        })
        .await
    }

    /// Every uploaded plugin.
    pub async fn plugins(&self) -> Result<Vec<PluginRow>, StoreError> {
        let rows = query(
            "SELECT name, version, hash, wasm, uploaded_by, created_at FROM plugins ORDER BY name, created_at",
        )
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(plugin_row).collect()
    }

    /// The (name, version) of every uploaded plugin, without their binaries.
    pub async fn plugin_versions(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = query("SELECT name, version FROM plugins ORDER BY name, created_at")
            .fetch_all(&self.db)
            .await?;
        rows.iter()
            .map(|row| Ok((col(row, "name")?, col(row, "version")?)))
            .collect()
    }

    /// One uploaded plugin.
    pub async fn plugin(&self, name: &str, version: &str) -> Result<Option<PluginRow>, StoreError> {
        let row = query(
            "SELECT name, version, hash, wasm, uploaded_by, created_at FROM plugins \
             WHERE name = ? AND version = ?",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(plugin_row).transpose()
    }

    // ----- health and metrics -----

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        query("SELECT 1").execute(&self.db).await?;
        Ok(())
    }

    /// Requests by public status and how many passed their SLA deadline before fulfilment
    /// (as of `now_ms`). Read for `/metrics` in the background, not on every scrape.
    pub async fn request_census(&self, now_ms: i64) -> Result<RequestCensus, StoreError> {
        let rows = query(
            "SELECT CASE WHEN r.status = 'started' THEN \
                CASE u.status WHEN 'succeeded' THEN 'fulfilled' WHEN 'failed' THEN 'failed' \
                WHEN 'cancelled' THEN 'cancelled' ELSE 'running' END \
             ELSE r.status END AS k, COUNT(*) AS n \
             FROM requests r LEFT JOIN runs u ON u.id = r.run_id GROUP BY k ORDER BY k",
        )
        .fetch_all(&self.db)
        .await?;
        let by_status = rows
            .iter()
            .map(|r| Ok((col(r, "k")?, col(r, "n")?)))
            .collect::<Result<Vec<(String, i64)>, StoreError>>()?;
        let sla_breaches: i64 = query_scalar(
            "SELECT COUNT(*) FROM requests r LEFT JOIN runs u ON u.id = r.run_id \
             WHERE r.sla_deadline IS NOT NULL AND r.status != 'rejected' \
               AND COALESCE(u.finished_at, ?) > r.sla_deadline",
        )
        .bind(now_ms)
        .fetch_one(&self.db)
        .await?;
        Ok(RequestCensus {
            by_status,
            sla_breaches,
        })
    }
}

/// `a, b` → `r.a, r.b`.
pub(super) fn prefixed(alias: &str, columns: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts an inbound event's row.
pub(super) async fn insert_event_row(conn: &mut Conn, e: &EventRow) -> Result<(), StoreError> {
    query(
        "INSERT INTO events (id, source, received_at, received_by, status, alerts, payload) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&e.id)
    .bind(&e.source)
    .bind(e.received_at)
    .bind(&e.received_by)
    .bind(&e.status)
    .bind(i64::from(e.alerts))
    .bind(e.payload.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// An incident `r` names the bound tenant among those it affects (`details.tenants`).
fn names_tenant(dialect: Dialect) -> &'static str {
    dialect.pick(
        "EXISTS (SELECT 1 FROM json_each(r.details, '$.tenants') t WHERE t.value = ?)",
        "EXISTS (SELECT 1 FROM jsonb_array_elements_text(CASE WHEN \
         jsonb_typeof(r.details::jsonb -> 'tenants') = 'array' THEN r.details::jsonb -> 'tenants' END) \
         t(value) WHERE t.value = ?)",
    )
}

fn plugin_row(row: &Row) -> Result<PluginRow, StoreError> {
    Ok(PluginRow {
        name: col(row, "name")?,
        version: col(row, "version")?,
        hash: col(row, "hash")?,
        wasm: col(row, "wasm")?,
        uploaded_by: col(row, "uploaded_by")?,
        created_at: col(row, "created_at")?,
    })
}
