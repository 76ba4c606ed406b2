//! Run leases: which process executes which unfinished run, and until when.
//!
//! A claim bumps the run's `lease_epoch`, so a process whose lease was taken over is fenced
//! out of every later write (see `batch.rs`). A process claims at start (taking back what an
//! earlier life under the same lease name held, at once) and, while it runs, adopts runs whose
//! lease ran out or was given back (a crashed or interrupted peer's), never re-claiming its own.

use sqlx::AssertSqlSafe;

use super::batch::Fence;
use super::db::query;
use super::rows::{RunRow, SignalRow, StepRow};
use super::{Store, StoreError};

/// Which unfinished runs a claim takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// At start: unowned runs, expired leases, and every run under this lease name (an
    /// earlier life of this process held them; it is gone).
    Restart,
    /// While running: unowned runs and expired leases of other names only.
    Adopt,
}

/// Statuses of runs that still need a process.
const UNFINISHED: &str = "('running', 'failing', 'cancelling', 'blocked')";

impl Store {
    /// Takes the lease of unfinished runs as `claim` says and returns them, each with its new
    /// epoch, oldest first.
    pub async fn claim_unfinished(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        claim: Claim,
    ) -> Result<Vec<RunRow>, StoreError> {
        let whose = match claim {
            Claim::Restart => "(lease_owner IS NULL OR lease_owner = ?1 OR lease_until < ?3)",
            Claim::Adopt => "(lease_owner IS NULL OR (lease_owner <> ?1 AND lease_until < ?3))",
        };
        let sql = format!(
            "UPDATE runs SET lease_owner = ?1, lease_until = ?2, lease_epoch = lease_epoch + 1 \
             WHERE status IN {UNFINISHED} AND {whose} RETURNING {}",
            RunRow::COLUMNS
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
        let mut runs = rows
            .iter()
            .map(RunRow::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        runs.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(runs)
    }

    /// Extends the lease of every unfinished run `owner` holds.
    pub async fn renew_leases(&self, owner: &str, until_ms: i64) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE runs SET lease_until = ? WHERE lease_owner = ? AND status IN {UNFINISHED}"
        );
        self.write_statement(async |conn| {
            query(AssertSqlSafe(sql))
                .bind(until_ms)
                .bind(owner)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
        .await
    }

    /// Gives back the leases `fence` still holds (at a clean shutdown), so another process
    /// may take those runs at once; a run taken over meanwhile is left to its new owner.
    pub async fn release_leases(&self, fence: &Fence) -> Result<(), StoreError> {
        let ids: Vec<&String> = fence.epochs.keys().collect();
        for chunk in ids.chunks(400) {
            let sql = format!(
                "UPDATE runs SET lease_owner = NULL, lease_until = NULL \
                 WHERE lease_owner = ? AND id IN ({}) AND lease_epoch = CASE id {}END",
                vec!["?"; chunk.len()].join(", "),
                "WHEN ? THEN ? ".repeat(chunk.len())
            );
            self.write_statement(async |conn| {
                let mut q = query(AssertSqlSafe(sql)).bind(&fence.owner);
                for id in chunk {
                    q = q.bind(*id);
                }
                for id in chunk {
                    q = q
                        .bind(*id)
                        .bind(fence.epochs.get(*id).copied().unwrap_or(-1));
                }
                q.execute(&mut *conn).await?;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// The steps of the runs `ids`, by run then key (recovery reads them in a few queries, not
    /// one per run).
    pub async fn steps_of_runs(&self, ids: &[String]) -> Result<Vec<StepRow>, StoreError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT {} FROM steps WHERE run_id IN ({}) ORDER BY run_id, key",
                StepRow::COLUMNS,
                vec!["?"; chunk.len()].join(", ")
            );
            let mut q = query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.db).await? {
                out.push(StepRow::from_row(&row)?);
            }
        }
        Ok(out)
    }

    /// Signals not yet taken of the runs `ids`, oldest first within each run.
    pub async fn pending_signals_of_runs(
        &self,
        ids: &[String],
    ) -> Result<Vec<SignalRow>, StoreError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT id, run_id, name, payload, created_at FROM signals \
                 WHERE consumed_by IS NULL AND run_id IN ({}) ORDER BY id",
                vec!["?"; chunk.len()].join(", ")
            );
            let mut q = query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.db).await? {
                out.push(SignalRow::from_row(&row)?);
            }
        }
        Ok(out)
    }

    /// Hands out `n` ids of the sequence `name` (`signals`) that no other caller, in this
    /// process or another on the same database, ever gets.
    pub async fn reserve_ids(
        &self,
        name: &str,
        n: i64,
    ) -> Result<std::ops::Range<i64>, StoreError> {
        let next: i64 = self
            .write_statement(async |conn| {
                let row =
                    query("UPDATE id_blocks SET next = next + ? WHERE name = ? RETURNING next")
                        .bind(n)
                        .bind(name)
                        .fetch_optional(&mut *conn)
                        .await?;
                match row {
                    Some(row) => Ok(row.try_get::<i64>("next")?),
                    None => Err(StoreError::Corrupt(format!("no id sequence `{name}`"))),
                }
            })
            .await?;
        Ok(next - n..next)
    }
}
