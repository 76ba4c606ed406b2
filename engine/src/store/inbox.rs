//! The inbox: commands for the holder of another partition.
//!
//! A process that takes a call for a run or an incident living in a partition it does not hold
//! writes the command here (in the commit of whatever goes with it), and wakes the holder; the
//! holder applies it and writes its answer in the commit of the change, so a command is
//! applied once or, when the holder dies first, by the next holder. The sender reads the answer
//! and deletes the row.
//!
//! Knows SQL; the commands' meaning is the executor's (they are JSON here).

use sqlx::AssertSqlSafe;

use super::db::{Conn, query};
use super::{Store, StoreError, col};

/// One command for a partition's holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRow {
    /// Its id (random; the sender waits on it).
    pub id: String,
    /// The partition whose holder applies it.
    pub partition: i64,
    /// The command, as JSON.
    pub command: String,
    /// The lease name of the sender.
    pub sender: String,
    /// When it was sent (ms).
    pub created_at: i64,
}

/// Inserts a command; returns the rows changed (1). A private partition that was given up and
/// deleted (its `csmp run` is long over) is made again, unheld, so a service adopts it for the
/// command.
pub(super) async fn insert(conn: &mut Conn, row: &InboxRow) -> Result<u64, StoreError> {
    query(
        "INSERT INTO partitions (id, private) SELECT ?1, 1 \
         WHERE NOT EXISTS (SELECT 1 FROM partitions WHERE id = ?1)",
    )
    .bind(row.partition)
    .execute(&mut *conn)
    .await?;
    Ok(query(
        "INSERT INTO inbox (id, partition, command, sender, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&row.id)
    .bind(row.partition)
    .bind(&row.command)
    .bind(&row.sender)
    .bind(row.created_at)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// Answers command `id` (or deletes it, when nobody waits for an answer), while `lease` is
/// still held (`held` is the `EXISTS` condition taking partition, owner and epoch); returns the
/// rows changed. A command answered already counts as done.
pub(super) async fn answer(
    conn: &mut Conn,
    id: &str,
    answer: Option<&str>,
    at: i64,
    lease: Option<(&str, i64, i64)>,
    held: &str,
) -> Result<u64, StoreError> {
    let fence = if lease.is_some() {
        format!(" AND {held}")
    } else {
        String::new()
    };
    let sql = match answer {
        Some(_) => {
            format!("UPDATE inbox SET answered_at = ?, answer = ? WHERE id = ?{fence}")
        }
        None => format!("DELETE FROM inbox WHERE id = ?{fence}"),
    };
    let mut q = query(AssertSqlSafe(sql));
    if let Some(a) = answer {
        q = q.bind(at).bind(a);
    }
    q = q.bind(id);
    if let Some((owner, partition, epoch)) = lease {
        q = q.bind(partition).bind(owner).bind(epoch);
    }
    let changed = q.execute(&mut *conn).await?.rows_affected();
    if changed == 0 && lease.is_some() {
        // Gone already (the sender gave up and deleted it) or the lease is lost: tell which by
        // the lease alone, so a vanished command does not read as a lost partition.
        let held_now = match lease {
            Some((owner, partition, epoch)) => {
                query(AssertSqlSafe(format!("SELECT 1 AS one WHERE {held}")))
                    .bind(partition)
                    .bind(owner)
                    .bind(epoch)
                    .fetch_optional(&mut *conn)
                    .await?
                    .is_some()
            }
            None => true,
        };
        return Ok(u64::from(held_now));
    }
    Ok(changed.max(1))
}

impl Store {
    /// Unanswered commands for `partitions`, oldest first (at most `limit`).
    pub async fn inbox_open(
        &self,
        partitions: &[i64],
        limit: u32,
    ) -> Result<Vec<InboxRow>, StoreError> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT id, partition, command, sender, created_at FROM inbox \
             WHERE answered_at IS NULL AND partition IN ({}) ORDER BY created_at, id LIMIT ?",
            vec!["?"; partitions.len()].join(", ")
        );
        let mut q = query(AssertSqlSafe(sql));
        for p in partitions {
            q = q.bind(*p);
        }
        let rows = q.bind(i64::from(limit)).fetch_all(&self.db).await?;
        rows.iter()
            .map(|r| {
                Ok(InboxRow {
                    id: col(r, "id")?,
                    partition: col(r, "partition")?,
                    command: col(r, "command")?,
                    sender: col(r, "sender")?,
                    created_at: col(r, "created_at")?,
                })
            })
            .collect()
    }

    /// The answers given so far to commands `ids`: (id, answer JSON).
    pub async fn inbox_answers(&self, ids: &[String]) -> Result<Vec<(String, String)>, StoreError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT id, answer FROM inbox WHERE answered_at IS NOT NULL AND id IN ({})",
                vec!["?"; chunk.len()].join(", ")
            );
            let mut q = query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(&self.db).await? {
                out.push((
                    col(&r, "id")?,
                    col::<Option<String>>(&r, "answer")?.unwrap_or_default(),
                ));
            }
        }
        Ok(out)
    }

    /// Deletes commands `ids` (their answers were read, or their sender gave up).
    pub async fn inbox_delete(&self, ids: &[String]) -> Result<(), StoreError> {
        for chunk in ids.chunks(500) {
            let sql = format!(
                "DELETE FROM inbox WHERE id IN ({})",
                vec!["?"; chunk.len()].join(", ")
            );
            self.write_statement(async |conn| {
                let mut q = query(AssertSqlSafe(sql));
                for id in chunk {
                    q = q.bind(id);
                }
                q.execute(&mut *conn).await?;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// Deletes answers nobody read by `before_ms` (their sender is gone); how many.
    pub async fn inbox_sweep(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.write_statement(async |conn| {
            Ok(
                query("DELETE FROM inbox WHERE answered_at IS NOT NULL AND answered_at < ?")
                    .bind(before_ms)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected(),
            )
        })
        .await
    }
}
