//! Partitions and the processes that hold them.
//!
//! Every run lives in a partition (its id's hash, or its parent's). A partition is leased by
//! one process at a time under an epoch: every claim bumps the epoch, and every write a process
//! makes for a partition carries the epoch it holds (see `batch.rs`), so a process that lost a
//! partition writes nothing more to it. Processes say they are alive in `members`; executors
//! aim at an equal share of the shared partitions among the live ones. A `csmp run` process
//! holds a private partition (ids from [`Store::partition_count`] up) for its own run.
//!
//! Knows SQL; knows nothing of runs' meaning (the executor decides what to claim and when).

use sqlx::AssertSqlSafe;

use super::db::{Dialect, query, query_scalar};
use super::rows::RunRow;
use super::{Store, StoreError, col};

/// A partition as this process holds it: its id and the epoch of its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lease {
    /// The partition.
    pub partition: i64,
    /// The epoch of the claim that gave it to this process.
    pub epoch: i64,
}

/// A partition as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRow {
    /// Its id.
    pub id: i64,
    /// The process holding it, if any.
    pub owner: Option<String>,
    /// Bumped by every claim.
    pub epoch: i64,
    /// Until when the holder's lease runs (ms).
    pub lease_until: Option<i64>,
    /// Whether it is one `csmp run` process's own.
    pub private: bool,
}

/// A process sharing the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    /// Its lease name.
    pub owner: String,
    /// `all`, `executor`, `api` or `run`.
    pub role: String,
    /// When it joined (ms).
    pub started_at: i64,
    /// When it last said it is alive (ms).
    pub heartbeat_at: i64,
}

/// Which partitions a claim may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Those still held under this lease name: an earlier life of this process held them, and
    /// it is gone (a live process keeps its name to itself), so they come back at once.
    Own,
    /// Free partitions, and those of other processes whose lease ran out.
    Free,
}

/// The partition a run or incident id hashes to among `count` shared partitions (FNV-1a, so
/// every process and every version agrees).
pub fn partition_of(id: &str, count: u32) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::try_from(h % u64::from(count.max(1))).unwrap_or(0)
}

/// Run statuses that still need a process.
const UNFINISHED: &str = "('running', 'failing', 'cancelling')";

fn leases(rows: &[super::db::Row]) -> Result<Vec<Lease>, StoreError> {
    let mut out = rows
        .iter()
        .map(|r| {
            Ok(Lease {
                partition: col(r, "id")?,
                epoch: col(r, "epoch")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    out.sort();
    Ok(out)
}

/// `?, ?, …`: `n` placeholders.
fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

impl Store {
    /// How many shared partitions the schema was created with.
    pub async fn partition_count(&self) -> Result<u32, StoreError> {
        let n: i64 = query_scalar("SELECT COUNT(*) FROM partitions WHERE private = 0")
            .fetch_one(&self.db)
            .await?;
        u32::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| StoreError::Corrupt(format!("{n} shared partitions")))
    }

    /// Says `owner` is alive (joining when new).
    pub async fn heartbeat(&self, owner: &str, role: &str, now_ms: i64) -> Result<(), StoreError> {
        self.write_statement(async |conn| {
            query(
                "INSERT INTO members (owner, role, started_at, heartbeat_at) VALUES (?1, ?2, ?3, ?3) \
                 ON CONFLICT (owner) DO UPDATE SET role = excluded.role, heartbeat_at = excluded.heartbeat_at",
            )
            .bind(owner)
            .bind(role)
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
        .await
    }

    /// Forgets members not heard from since `before_ms` (processes long gone); how many.
    pub async fn forget_members(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.write_statement(async |conn| {
            Ok(query("DELETE FROM members WHERE heartbeat_at < ?")
                .bind(before_ms)
                .execute(&mut *conn)
                .await?
                .rows_affected())
        })
        .await
    }

    /// Leaves the members (a clean shutdown), so the others count one process fewer at once.
    pub async fn leave(&self, owner: &str) -> Result<(), StoreError> {
        self.write_statement(async |conn| {
            query("DELETE FROM members WHERE owner = ?")
                .bind(owner)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
        .await
    }

    /// Every member, alive or not, by name.
    pub async fn members(&self) -> Result<Vec<MemberRow>, StoreError> {
        let rows =
            query("SELECT owner, role, started_at, heartbeat_at FROM members ORDER BY owner")
                .fetch_all(&self.db)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(MemberRow {
                    owner: col(r, "owner")?,
                    role: col(r, "role")?,
                    started_at: col(r, "started_at")?,
                    heartbeat_at: col(r, "heartbeat_at")?,
                })
            })
            .collect()
    }

    /// How many members that execute runs (`all` or `executor`) said they were alive at
    /// `since` or later.
    pub async fn live_executors(&self, since_ms: i64) -> Result<u32, StoreError> {
        let n: i64 = query_scalar(
            "SELECT COUNT(*) FROM members WHERE role IN ('all', 'executor') AND heartbeat_at >= ?",
        )
        .bind(since_ms)
        .fetch_one(&self.db)
        .await?;
        Ok(u32::try_from(n).unwrap_or(0))
    }

    /// Every partition, shared ones first.
    pub async fn partitions(&self) -> Result<Vec<PartitionRow>, StoreError> {
        let rows =
            query("SELECT id, owner, epoch, lease_until, private FROM partitions ORDER BY id")
                .fetch_all(&self.db)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(PartitionRow {
                    id: col(r, "id")?,
                    owner: col(r, "owner")?,
                    epoch: col(r, "epoch")?,
                    lease_until: col(r, "lease_until")?,
                    private: col::<i64>(r, "private")? != 0,
                })
            })
            .collect()
    }

    /// Takes up to `want` shared partitions for `owner` under new epochs, as `claim` says,
    /// lowest ids first. On PostgreSQL a partition another process is claiming or committing to
    /// right now is skipped, not waited for.
    pub async fn claim_partitions(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        want: u32,
        claim: Claim,
    ) -> Result<Vec<Lease>, StoreError> {
        if want == 0 {
            return Ok(Vec::new());
        }
        let whose = match claim {
            Claim::Own => "owner = ?1 AND ?3 = ?3",
            Claim::Free => "(owner IS NULL OR (owner <> ?1 AND lease_until < ?3))",
        };
        let skip = self.db.dialect().pick("", " FOR UPDATE SKIP LOCKED");
        let sql = format!(
            "UPDATE partitions SET owner = ?1, lease_until = ?2, epoch = epoch + 1 \
             WHERE id IN (SELECT id FROM partitions WHERE private = 0 AND {whose} \
                          ORDER BY id LIMIT ?4{skip}) \
             RETURNING id, epoch"
        );
        let rows = self
            .write_statement(async |conn| {
                Ok(query(AssertSqlSafe(sql))
                    .bind(owner)
                    .bind(now_ms.saturating_add(lease_ms))
                    .bind(now_ms)
                    .bind(i64::from(want))
                    .fetch_all(&mut *conn)
                    .await?)
            })
            .await?;
        leases(&rows)
    }

    /// Extends the leases `owner` holds; returns those it still holds (under the same epoch):
    /// a partition missing from the answer was taken over.
    pub async fn renew_partitions(
        &self,
        owner: &str,
        held: &[Lease],
        until_ms: i64,
    ) -> Result<Vec<Lease>, StoreError> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "UPDATE partitions SET lease_until = ? WHERE owner = ? AND id IN ({}) RETURNING id, epoch",
            marks(held.len())
        );
        let rows = self
            .write_statement(async |conn| {
                let mut q = query(AssertSqlSafe(sql)).bind(until_ms).bind(owner);
                for l in held {
                    q = q.bind(l.partition);
                }
                Ok(q.fetch_all(&mut *conn).await?)
            })
            .await?;
        let now = leases(&rows)?;
        Ok(held.iter().copied().filter(|l| now.contains(l)).collect())
    }

    /// Gives back leases (surplus after a rebalance, or all at a clean shutdown), so another
    /// process may take them at once; one taken over meanwhile is left to its new holder.
    pub async fn release_partitions(
        &self,
        owner: &str,
        leases: &[Lease],
    ) -> Result<(), StoreError> {
        if leases.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE partitions SET owner = NULL, lease_until = NULL \
             WHERE owner = ? AND id IN ({}) AND epoch = CASE id {}END",
            marks(leases.len()),
            "WHEN ? THEN ? ".repeat(leases.len())
        );
        self.write_statement(async |conn| {
            let mut q = query(AssertSqlSafe(sql)).bind(owner);
            for l in leases {
                q = q.bind(l.partition);
            }
            for l in leases {
                q = q.bind(l.partition).bind(l.epoch);
            }
            q.execute(&mut *conn).await?;
            Ok(())
        })
        .await
    }

    /// A new private partition held by `owner` (a `csmp run` process): its id is past every
    /// partition there is.
    pub async fn new_private_partition(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Lease, StoreError> {
        let row = self
            .write_transaction(async |conn| {
                Ok(query(
                    "INSERT INTO partitions (id, owner, epoch, lease_until, private) \
                     SELECT COALESCE(MAX(id), 0) + 1, ?, 1, ?, 1 FROM partitions RETURNING id, epoch",
                )
                .bind(owner)
                .bind(now_ms.saturating_add(lease_ms))
                .fetch_one(&mut *conn)
                .await?)
            })
            .await?;
        Ok(Lease {
            partition: col(&row, "id")?,
            epoch: col(&row, "epoch")?,
        })
    }

    /// Takes private partitions whose holder is gone (free, or their lease ran out) and that
    /// still have unfinished runs or unanswered commands: a `csmp run` that crashed or was
    /// interrupted leaves its run to a service, and a retry of a run it finished is applied by
    /// one.
    pub async fn adopt_private_partitions(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Vec<Lease>, StoreError> {
        let skip = self.db.dialect().pick("", " FOR UPDATE SKIP LOCKED");
        let sql = format!(
            "UPDATE partitions SET owner = ?1, lease_until = ?2, epoch = epoch + 1 \
             WHERE id IN (SELECT p.id FROM partitions p WHERE p.private = 1 \
                            AND (p.owner IS NULL OR (p.owner <> ?1 AND p.lease_until < ?3)) \
                            AND (EXISTS (SELECT 1 FROM runs r WHERE r.partition = p.id AND r.status IN {UNFINISHED}) \
                                 OR EXISTS (SELECT 1 FROM inbox i WHERE i.partition = p.id AND i.answered_at IS NULL)){skip}) \
             RETURNING id, epoch"
        );
        let rows = self
            .write_statement(async |conn| {
                Ok(query(AssertSqlSafe(sql))
                    .bind(owner)
                    .bind(now_ms.saturating_add(lease_ms))
                    .bind(now_ms)
                    .fetch_all(&mut *conn)
                    .await?)
            })
            .await?;
        // A command for a private partition deleted as it was written (its `csmp run` had just
        // ended): the partition is made again, held by this process, which applies it.
        let made = self
            .write_statement(async |conn| {
                Ok(query(
                    "INSERT INTO partitions (id, owner, epoch, lease_until, private) \
                     SELECT DISTINCT i.partition, ?1, 1, ?2, 1 FROM inbox i \
                     WHERE i.answered_at IS NULL \
                       AND i.partition >= (SELECT COUNT(*) FROM partitions WHERE private = 0) \
                       AND NOT EXISTS (SELECT 1 FROM partitions p WHERE p.id = i.partition) \
                     ON CONFLICT DO NOTHING RETURNING id, epoch",
                )
                .bind(owner)
                .bind(now_ms.saturating_add(lease_ms))
                .fetch_all(&mut *conn)
                .await?)
            })
            .await?;
        let mut all = leases(&rows)?;
        all.extend(leases(&made)?);
        all.sort();
        Ok(all)
    }

    /// Deletes the private partitions among `leases` that `owner` still holds and that have no
    /// unfinished run and no unanswered command left; returns those deleted. (A command for one
    /// of their runs later — a retry — makes the partition again, unheld, for a service to
    /// adopt.)
    pub async fn release_idle_private(
        &self,
        owner: &str,
        leases: &[Lease],
    ) -> Result<Vec<i64>, StoreError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "DELETE FROM partitions \
             WHERE private = 1 AND owner = ? AND id IN ({}) \
             AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.partition = partitions.id AND r.status IN {UNFINISHED}) \
             AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.partition = partitions.id AND i.answered_at IS NULL) \
             RETURNING id",
            marks(leases.len())
        );
        let rows = self
            .write_statement(async |conn| {
                let mut q = query(AssertSqlSafe(sql)).bind(owner);
                for l in leases {
                    q = q.bind(l.partition);
                }
                Ok(q.fetch_all(&mut *conn).await?)
            })
            .await?;
        rows.iter().map(|r| col(r, "id")).collect()
    }

    /// The unfinished runs of `partitions`, oldest first.
    pub async fn unfinished_runs_in(&self, partitions: &[i64]) -> Result<Vec<RunRow>, StoreError> {
        let mut out = Vec::new();
        for chunk in partitions.chunks(500) {
            let sql = format!(
                "SELECT {} FROM runs WHERE status IN {UNFINISHED} AND partition IN ({}) \
                 ORDER BY created_at, id",
                RunRow::COLUMNS,
                marks(chunk.len())
            );
            let mut q = query(AssertSqlSafe(sql));
            for p in chunk {
                q = q.bind(*p);
            }
            for row in q.fetch_all(&self.db).await? {
                out.push(RunRow::from_row(&row)?);
            }
        }
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    /// Sends `payload` on the notification channel `channel` (PostgreSQL's NOTIFY; nothing on
    /// SQLite, whose one process needs no wake-up). A failure is the caller's to log: a
    /// notification is only a wake-up, which polling backs up.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        if self.db.dialect() == Dialect::Sqlite {
            return Ok(());
        }
        query("SELECT pg_notify(?, ?)")
            .bind(channel)
            .bind(payload)
            .execute(&self.db)
            .await?;
        Ok(())
    }
}
