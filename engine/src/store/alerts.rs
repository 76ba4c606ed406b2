//! Alerts, the groups rules keep of them, which alert went to which group, silences, and rules
//! set over the API. The dispatcher (`alerts::dispatch`) is the one writer of groups and
//! matches; what reaches a run is marked in the executor's commit ([`AlertLink`]).

use std::collections::{BTreeMap, BTreeSet};

use sqlx::AssertSqlSafe;

use super::db::{Conn, Row, query};
use super::{Cursor, EventRow, Store, StoreError};
use crate::alerts::{Alert, Status};

/// A stored alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    /// Its id.
    pub id: String,
    /// The notification that carried it.
    pub event_id: Option<String>,
    /// The alert.
    pub alert: Alert,
    /// When it arrived (ms).
    pub received_at: i64,
    /// `duplicate`, `silenced`, `unmatched`, `matched` or `ignored`.
    pub outcome: String,
    /// The silence that kept it from being acted on.
    pub silence_id: Option<String>,
}

/// One group of a rule: alerts sharing the rule's `group_by` values (and tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    /// Its id.
    pub id: String,
    /// The rule.
    pub rule: String,
    /// The `group_by` labels' values.
    pub key: BTreeMap<String, String>,
    /// 1 for the first group of these values, then one more after each ends.
    pub generation: i64,
    /// The tenant of its alerts.
    pub tenant: Option<String>,
    /// `waiting`, `active`, `resolved`, `ended` or `failed`.
    pub state: String,
    /// When its first alert arrived (ms).
    pub opened_at: i64,
    /// When `group_wait` ends (ms), while waiting.
    pub act_at: Option<i64>,
    /// When its actions ran (ms).
    pub acted_at: Option<i64>,
    /// Its run.
    pub run_id: Option<String>,
    /// The incident its rule opened.
    pub incident_id: Option<String>,
    /// Fingerprints firing now.
    pub firing: BTreeSet<String>,
    /// Why its actions could not run.
    pub error: Option<String>,
    /// When its run ended, or it closed without acting (ms).
    pub ended_at: Option<i64>,
    /// Last change (ms).
    pub updated_at: i64,
}

/// An alert's place in a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchRow {
    /// The alert.
    pub alert_id: String,
    /// The group.
    pub group_id: String,
    /// The group's rule.
    pub rule: String,
    /// When the alert arrived (ms).
    pub received_at: i64,
    /// Whether it was firing.
    pub firing: bool,
    /// `waiting`, `started`, `signalled`, `counted` or `dropped`.
    pub outcome: String,
    /// The signal (`alert` or `resolved`) still to reach the group's run.
    pub signal: Option<String>,
}

/// A silence: alerts its matchers select are stored and counted, never acted on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SilenceRow {
    /// Its id.
    pub id: String,
    /// Label → matcher (`value`, `!=value`, `=~regex`, `!~regex`).
    pub matchers: BTreeMap<String, String>,
    /// From (ms).
    pub starts_at: i64,
    /// Until (ms).
    pub ends_at: i64,
    /// Who made it (a token id, or `run <id>`).
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// Only this tenant's alerts, when set.
    pub tenant: Option<String>,
    /// The run whose step opened it.
    pub run_id: Option<String>,
    /// When it was made (ms).
    pub created_at: i64,
}

/// A stored rule (its YAML), or its deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRow {
    /// The rule's name.
    pub name: String,
    /// Its YAML; `None` for a deletion.
    pub source: Option<String>,
    /// When (ms).
    pub updated_at: i64,
    /// The token id that changed it.
    pub updated_by: String,
}

/// An alert's link as `GET /v1/alerts` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRow {
    /// The alert.
    pub alert_id: String,
    /// The rule.
    pub rule: String,
    /// The group.
    pub group_id: String,
    /// What the alert did in it.
    pub outcome: String,
    /// The group's state.
    pub group_state: String,
    /// The group's run.
    pub run_id: Option<String>,
    /// The group's incident.
    pub incident_id: Option<String>,
}

/// What one intake writes, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct IntakeWrite {
    /// The notification.
    pub event: Option<EventRow>,
    /// Its alerts.
    pub alerts: Vec<AlertRow>,
    /// Groups made or changed.
    pub groups: Vec<GroupRow>,
    /// Alerts' places in groups.
    pub matches: Vec<MatchRow>,
}

/// Writes about alerts committed with a run's writes in the executor's commit (and forwarded,
/// as JSON, with a signal to the process executing the run).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "link", rename_all = "snake_case")]
pub enum AlertLink {
    /// The alert reached the group's run as a signal.
    Delivered {
        /// The alert.
        alert_id: String,
        /// The group.
        group_id: String,
    },
    /// The rule's incident for the group was opened.
    IncidentOpened {
        /// The group.
        group_id: String,
        /// The incident.
        incident_id: String,
    },
    /// A step opened a silence.
    Silence(Box<SilenceRow>),
}

/// Which alerts a list shows.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// `firing` or `resolved`.
    pub status: Option<String>,
    /// The source.
    pub source: Option<String>,
    /// Alerts that went to this rule's groups.
    pub rule: Option<String>,
    /// Alerts of this group.
    pub group: Option<String>,
    /// Only this tenant's.
    pub tenant: Option<String>,
}

const ALERT_COLUMNS: &str = "id, event_id, source, fingerprint, status, severity, labels, annotations, \
     starts_at, ends_at, tenant, raw, received_at, outcome, silence_id";
const GROUP_COLUMNS: &str = "id, rule, key, generation, tenant, state, opened_at, act_at, acted_at, \
     run_id, incident_id, firing, error, ended_at, updated_at";
const MATCH_COLUMNS: &str = "alert_id, group_id, rule, received_at, firing, outcome, signal";
const SILENCE_COLUMNS: &str =
    "id, matchers, starts_at, ends_at, created_by, comment, tenant, run_id, created_at";

fn json_col<T: serde::de::DeserializeOwned>(row: &Row, name: &str) -> Result<T, StoreError> {
    let text: String = row.try_get(name)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))
}

fn alert_row(r: &Row) -> Result<AlertRow, StoreError> {
    let status: String = r.try_get("status")?;
    Ok(AlertRow {
        id: r.try_get("id")?,
        event_id: r.try_get("event_id")?,
        alert: Alert {
            source: r.try_get("source")?,
            fingerprint: r.try_get("fingerprint")?,
            status: Status::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("alert status `{status}`")))?,
            severity: r.try_get("severity")?,
            labels: json_col(r, "labels")?,
            annotations: json_col(r, "annotations")?,
            starts_at: r.try_get("starts_at")?,
            ends_at: r.try_get("ends_at")?,
            tenant: r.try_get("tenant")?,
            raw: json_col(r, "raw")?,
        },
        received_at: r.try_get("received_at")?,
        outcome: r.try_get("outcome")?,
        silence_id: r.try_get("silence_id")?,
    })
}

fn group_row(r: &Row) -> Result<GroupRow, StoreError> {
    Ok(GroupRow {
        id: r.try_get("id")?,
        rule: r.try_get("rule")?,
        key: json_col(r, "key")?,
        generation: r.try_get("generation")?,
        tenant: r.try_get("tenant")?,
        state: r.try_get("state")?,
        opened_at: r.try_get("opened_at")?,
        act_at: r.try_get("act_at")?,
        acted_at: r.try_get("acted_at")?,
        run_id: r.try_get("run_id")?,
        incident_id: r.try_get("incident_id")?,
        firing: json_col(r, "firing")?,
        error: r.try_get("error")?,
        ended_at: r.try_get("ended_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn silence_row(r: &Row) -> Result<SilenceRow, StoreError> {
    Ok(SilenceRow {
        id: r.try_get("id")?,
        matchers: json_col(r, "matchers")?,
        starts_at: r.try_get("starts_at")?,
        ends_at: r.try_get("ends_at")?,
        created_by: r.try_get("created_by")?,
        comment: r.try_get("comment")?,
        tenant: r.try_get("tenant")?,
        run_id: r.try_get("run_id")?,
        created_at: r.try_get("created_at")?,
    })
}

fn to_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// The group's key as stored (the `key` column).
pub fn key_text(key: &BTreeMap<String, String>) -> String {
    to_text(key)
}

async fn upsert_group(conn: &mut Conn, g: &GroupRow) -> Result<(), StoreError> {
    query(AssertSqlSafe(format!(
        "INSERT INTO alert_groups ({GROUP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, act_at = excluded.act_at, \
         acted_at = excluded.acted_at, run_id = excluded.run_id, incident_id = COALESCE(excluded.incident_id, alert_groups.incident_id), \
         firing = excluded.firing, error = excluded.error, ended_at = excluded.ended_at, \
         updated_at = excluded.updated_at"
    )))
    .bind(&g.id)
    .bind(&g.rule)
    .bind(key_text(&g.key))
    .bind(g.generation)
    .bind(&g.tenant)
    .bind(&g.state)
    .bind(g.opened_at)
    .bind(g.act_at)
    .bind(g.acted_at)
    .bind(&g.run_id)
    .bind(&g.incident_id)
    .bind(to_text(&g.firing))
    .bind(&g.error)
    .bind(g.ended_at)
    .bind(g.updated_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_silence(conn: &mut Conn, s: &SilenceRow) -> Result<(), StoreError> {
    query(AssertSqlSafe(format!(
        "INSERT INTO silences ({SILENCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (id) DO NOTHING"
    )))
    .bind(&s.id)
    .bind(to_text(&s.matchers))
    .bind(s.starts_at)
    .bind(s.ends_at)
    .bind(&s.created_by)
    .bind(&s.comment)
    .bind(&s.tenant)
    .bind(&s.run_id)
    .bind(s.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Applies an [`AlertLink`] inside the executor's commit.
pub(super) async fn apply_link(conn: &mut Conn, link: &AlertLink) -> Result<(), StoreError> {
    match link {
        AlertLink::Delivered { alert_id, group_id } => {
            query(
                "UPDATE alert_matches SET signal = NULL, outcome = 'signalled' \
                 WHERE alert_id = ? AND group_id = ?",
            )
            .bind(alert_id)
            .bind(group_id)
            .execute(&mut *conn)
            .await?;
        }
        AlertLink::IncidentOpened {
            group_id,
            incident_id,
        } => {
            query("UPDATE alert_groups SET incident_id = ? WHERE id = ?")
                .bind(incident_id)
                .bind(group_id)
                .execute(&mut *conn)
                .await?;
        }
        AlertLink::Silence(s) => insert_silence(conn, s).await?,
    }
    Ok(())
}

impl Store {
    /// Stores a notification's alerts, the groups they made or changed and their places in
    /// them, with the call's audit entry: all or nothing.
    pub async fn record_intake(
        &self,
        w: &IntakeWrite,
        audit: Option<&super::AuditRow>,
    ) -> Result<(), StoreError> {
        self.write_transaction(async |conn| {
            if let Some(e) = &w.event {
                super::api::insert_event_row(conn, e).await?;
            }
            for a in &w.alerts {
                let x = &a.alert;
                query(AssertSqlSafe(format!(
                    "INSERT INTO alerts ({ALERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                )))
                .bind(&a.id)
                .bind(&a.event_id)
                .bind(&x.source)
                .bind(&x.fingerprint)
                .bind(x.status.as_str())
                .bind(&x.severity)
                .bind(to_text(&x.labels))
                .bind(to_text(&x.annotations))
                .bind(x.starts_at)
                .bind(x.ends_at)
                .bind(&x.tenant)
                .bind(x.raw.to_string())
                .bind(a.received_at)
                .bind(&a.outcome)
                .bind(&a.silence_id)
                .execute(&mut *conn)
                .await?;
            }
            for g in &w.groups {
                upsert_group(conn, g).await?;
            }
            for m in &w.matches {
                query(AssertSqlSafe(format!(
                    "INSERT INTO alert_matches ({MATCH_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT (alert_id, group_id) DO UPDATE SET outcome = excluded.outcome, signal = excluded.signal"
                )))
                .bind(&m.alert_id)
                .bind(&m.group_id)
                .bind(&m.rule)
                .bind(m.received_at)
                .bind(i64::from(m.firing))
                .bind(&m.outcome)
                .bind(&m.signal)
                .execute(&mut *conn)
                .await?;
            }
            if let Some(row) = audit {
                super::audit::insert_audit(conn, row).await?;
            }
            Ok(())
        })
        .await
    }

    /// Whether an SNS message with this `MessageId` was taken already.
    pub async fn sns_message_seen(&self, message_id: &str) -> Result<bool, StoreError> {
        // The same expression as the index `events_sns_message` of each schema.
        let row = query(self.db.dialect().pick(
            "SELECT 1 FROM events WHERE source = 'cloudwatch' \
             AND json_extract(payload, '$.MessageId') = ? LIMIT 1",
            "SELECT 1 FROM events WHERE source = 'cloudwatch' \
             AND ((payload::jsonb) ->> 'MessageId') = ? LIMIT 1",
        ))
        .bind(message_id)
        .fetch_optional(&self.db)
        .await?;
        Ok(row.is_some())
    }

    /// The newest alert of a source with this fingerprint.
    pub async fn latest_alert(
        &self,
        source: &str,
        fingerprint: &str,
    ) -> Result<Option<AlertRow>, StoreError> {
        let row = query(AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE source = ? AND fingerprint = ? \
             AND outcome <> 'duplicate' ORDER BY received_at DESC, rowid DESC LIMIT 1"
        )))
        .bind(source)
        .bind(fingerprint)
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(alert_row).transpose()
    }

    /// The newest group of a rule with these values.
    pub async fn current_group(
        &self,
        rule: &str,
        key: &BTreeMap<String, String>,
    ) -> Result<Option<GroupRow>, StoreError> {
        let row = query(AssertSqlSafe(format!(
            "SELECT {GROUP_COLUMNS} FROM alert_groups WHERE rule = ? AND key = ? \
             ORDER BY generation DESC LIMIT 1"
        )))
        .bind(rule)
        .bind(key_text(key))
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(group_row).transpose()
    }

    /// A group by id.
    pub async fn alert_group(&self, id: &str) -> Result<Option<GroupRow>, StoreError> {
        let row = query(AssertSqlSafe(format!(
            "SELECT {GROUP_COLUMNS} FROM alert_groups WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(group_row).transpose()
    }

    /// Waiting groups whose `group_wait` ended by `now`, oldest first.
    pub async fn due_groups(&self, now: i64) -> Result<Vec<GroupRow>, StoreError> {
        let rows = query(AssertSqlSafe(format!(
            "SELECT {GROUP_COLUMNS} FROM alert_groups WHERE act_at IS NOT NULL AND act_at <= ? \
             AND state = 'waiting' ORDER BY act_at LIMIT 256"
        )))
        .bind(now)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(group_row).collect()
    }

    /// When the next waiting group is due (ms).
    pub async fn next_group_due(&self) -> Result<Option<i64>, StoreError> {
        let row = query("SELECT MIN(act_at) AS at FROM alert_groups WHERE act_at IS NOT NULL AND state = 'waiting'")
            .fetch_one(&self.db)
            .await?;
        row.try_get("at")
    }

    /// Open groups whose run has ended, with when it ended.
    pub async fn groups_with_ended_runs(&self) -> Result<Vec<(GroupRow, Option<i64>)>, StoreError> {
        let cols: String = GROUP_COLUMNS
            .split(", ")
            .map(|c| format!("g.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = query(AssertSqlSafe(format!(
            "SELECT {cols}, r.finished_at AS run_finished_at FROM alert_groups g \
             JOIN runs r ON r.id = g.run_id \
             WHERE g.state IN ('active', 'resolved') \
             AND r.status IN ('succeeded', 'failed', 'cancelled') LIMIT 256"
        )))
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|r| Ok((group_row(r)?, r.try_get("run_finished_at")?)))
            .collect()
    }

    /// Groups with a signal still to reach their run.
    pub async fn groups_to_signal(&self) -> Result<Vec<GroupRow>, StoreError> {
        let rows = query(AssertSqlSafe(format!(
            "SELECT {GROUP_COLUMNS} FROM alert_groups WHERE id IN \
             (SELECT DISTINCT group_id FROM alert_matches WHERE signal IS NOT NULL) LIMIT 256"
        )))
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(group_row).collect()
    }

    /// A group's alerts with their places, in arrival order; `only_signals` keeps those still
    /// to reach its run.
    pub async fn group_alerts(
        &self,
        group_id: &str,
        only_signals: bool,
    ) -> Result<Vec<(MatchRow, AlertRow)>, StoreError> {
        // The match's columns are renamed: `outcome` and `received_at` are in both tables.
        let cols: String = ALERT_COLUMNS
            .split(", ")
            .map(|c| format!("a.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = query(AssertSqlSafe(format!(
            "SELECT m.group_id AS m_group_id, m.rule AS m_rule, m.received_at AS m_received_at, \
             m.firing AS m_firing, m.outcome AS m_outcome, m.signal AS m_signal, {cols} \
             FROM alert_matches m JOIN alerts a ON a.id = m.alert_id \
             WHERE m.group_id = ? {} ORDER BY m.received_at, a.rowid LIMIT 10000",
            if only_signals {
                "AND m.signal IS NOT NULL"
            } else {
                ""
            }
        )))
        .bind(group_id)
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|r| {
                let m = MatchRow {
                    alert_id: r.try_get("id")?,
                    group_id: r.try_get("m_group_id")?,
                    rule: r.try_get("m_rule")?,
                    received_at: r.try_get("m_received_at")?,
                    firing: r.try_get::<i64>("m_firing")? != 0,
                    outcome: r.try_get("m_outcome")?,
                    signal: r.try_get("m_signal")?,
                };
                Ok((m, alert_row(r)?))
            })
            .collect()
    }

    /// Stores a group's new state; with `started`, its waiting alerts become `started` (they
    /// are in its run's inputs).
    pub async fn put_group(&self, g: &GroupRow, started: bool) -> Result<(), StoreError> {
        self.write_transaction(async |conn| {
            upsert_group(conn, g).await?;
            if started {
                query("UPDATE alert_matches SET outcome = 'started' WHERE group_id = ? AND outcome = 'waiting'")
                    .bind(&g.id)
                    .execute(&mut *conn)
                    .await?;
            } else if g.state == "ended" || g.state == "failed" {
                query("UPDATE alert_matches SET outcome = 'dropped', signal = NULL WHERE group_id = ? AND (outcome = 'waiting' OR signal IS NOT NULL)")
                    .bind(&g.id)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        })
        .await
    }

    /// Marks an alert as having reached its group (a group with no run: its incident).
    pub async fn mark_delivered(&self, alert_id: &str, group_id: &str) -> Result<(), StoreError> {
        let link = AlertLink::Delivered {
            alert_id: alert_id.to_string(),
            group_id: group_id.to_string(),
        };
        self.write_statement(async |conn| apply_link(conn, &link).await)
            .await
    }

    /// A run's status and when it finished, if it exists.
    pub async fn run_end(&self, run_id: &str) -> Result<Option<(String, Option<i64>)>, StoreError> {
        let row = query("SELECT status, finished_at FROM runs WHERE id = ?")
            .bind(run_id)
            .fetch_optional(&self.db)
            .await?;
        row.map(|r| Ok((r.try_get("status")?, r.try_get("finished_at")?)))
            .transpose()
    }

    /// A page of alerts, newest first.
    pub async fn alerts_page(
        &self,
        f: &AlertFilter,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<AlertRow>, StoreError> {
        let mut sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        for (col, v) in [
            ("status", &f.status),
            ("source", &f.source),
            ("tenant", &f.tenant),
        ] {
            if let Some(v) = v {
                sql.push_str(&format!(" AND {col} = ?"));
                binds.push(v.clone());
            }
        }
        if let Some(r) = &f.rule {
            sql.push_str(" AND id IN (SELECT alert_id FROM alert_matches WHERE rule = ?)");
            binds.push(r.clone());
        }
        if let Some(g) = &f.group {
            sql.push_str(" AND id IN (SELECT alert_id FROM alert_matches WHERE group_id = ?)");
            binds.push(g.clone());
        }
        if cursor.is_some() {
            sql.push_str(" AND (received_at < ? OR (received_at = ? AND id < ?))");
        }
        sql.push_str(" ORDER BY received_at DESC, id DESC LIMIT ?");
        let mut q = query(AssertSqlSafe(sql));
        for b in &binds {
            q = q.bind(b);
        }
        if let Some(c) = cursor {
            q = q.bind(c.created_at).bind(c.created_at).bind(&c.id);
        }
        let rows = q.bind(i64::from(limit)).fetch_all(&self.db).await?;
        rows.iter().map(alert_row).collect()
    }

    /// The groups, runs and incidents these alerts led to.
    pub async fn alert_links(&self, alert_ids: &[String]) -> Result<Vec<LinkRow>, StoreError> {
        if alert_ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; alert_ids.len()].join(", ");
        let mut q = query(AssertSqlSafe(format!(
            "SELECT m.alert_id, m.rule, m.group_id, m.outcome, g.state, g.run_id, g.incident_id \
             FROM alert_matches m JOIN alert_groups g ON g.id = m.group_id \
             WHERE m.alert_id IN ({marks}) ORDER BY m.rule"
        )));
        for id in alert_ids {
            q = q.bind(id);
        }
        let rows = q.fetch_all(&self.db).await?;
        rows.iter()
            .map(|r| {
                Ok(LinkRow {
                    alert_id: r.try_get("alert_id")?,
                    rule: r.try_get("rule")?,
                    group_id: r.try_get("group_id")?,
                    outcome: r.try_get("outcome")?,
                    group_state: r.try_get("state")?,
                    run_id: r.try_get("run_id")?,
                    incident_id: r.try_get("incident_id")?,
                })
            })
            .collect()
    }

    /// Stores a silence with the call's audit entry.
    pub async fn put_silence(
        &self,
        s: &SilenceRow,
        audit: Option<&super::AuditFor<'_, ()>>,
    ) -> Result<(), StoreError> {
        self.audited(audit, async |conn| insert_silence(conn, s).await)
            .await
    }

    /// Ends a silence now (it is kept, expired); `false` when it was not active.
    pub async fn expire_silence(
        &self,
        id: &str,
        now: i64,
        audit: Option<&super::AuditFor<'_, bool>>,
    ) -> Result<bool, StoreError> {
        self.audited_if(
            audit,
            async |conn| {
                let done = query("UPDATE silences SET ends_at = ? WHERE id = ? AND ends_at > ?")
                    .bind(now)
                    .bind(id)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                Ok(done > 0)
            },
            |changed| *changed,
        )
        .await
    }

    /// A silence by id.
    pub async fn silence(&self, id: &str) -> Result<Option<SilenceRow>, StoreError> {
        let row = query(AssertSqlSafe(format!(
            "SELECT {SILENCE_COLUMNS} FROM silences WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(silence_row).transpose()
    }

    /// Silences not yet ended at `now` (with those ended too when `expired`), newest first.
    pub async fn silences(
        &self,
        now: i64,
        expired: bool,
        tenant: Option<&str>,
    ) -> Result<Vec<SilenceRow>, StoreError> {
        let mut sql =
            format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE (? = 1 OR ends_at > ?)");
        if tenant.is_some() {
            sql.push_str(" AND tenant = ?");
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT 1000");
        let mut q = query(AssertSqlSafe(sql)).bind(expired).bind(now);
        if let Some(t) = tenant {
            q = q.bind(t);
        }
        let rows = q.fetch_all(&self.db).await?;
        rows.iter().map(silence_row).collect()
    }

    /// Stores a rule (or, with no source, its deletion) with the call's audit entry.
    pub async fn put_rule(
        &self,
        row: &RuleRow,
        audit: Option<&super::AuditFor<'_, ()>>,
    ) -> Result<(), StoreError> {
        let fields = (
            row.name.as_str(),
            row.source.as_deref(),
            row.updated_at,
            row.updated_by.as_str(),
        );
        self.put_overlay("alert_rules", "name", fields, audit).await
    }

    /// Every stored rule and deletion, by name.
    pub async fn rule_rows(&self) -> Result<Vec<RuleRow>, StoreError> {
        let rows = self.overlay_rows("alert_rules", "name").await?;
        Ok(rows
            .into_iter()
            .map(|(name, source, updated_at, updated_by)| RuleRow {
                name,
                source,
                updated_at,
                updated_by,
            })
            .collect())
    }
}
