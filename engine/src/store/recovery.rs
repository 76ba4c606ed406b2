//! What a process reads when it takes runs over: their steps and buffered signals (a few
//! queries for all of them), and ids no other process hands out.

use sqlx::AssertSqlSafe;

use super::db::query;
use super::rows::{SignalRow, StepRow};
use super::{Store, StoreError};

impl Store {
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
