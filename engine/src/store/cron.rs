//! Cron fires: which scheduled instants of which trigger were handled, recorded together with
//! the run each one started.
//!
//! Knows SQL; knows nothing about schedules or overlap policies (the executor decides, the
//! store makes the decision durable and unique).

use super::db::query;
use super::{RunRow, Store, StoreError, col};

/// One handled instant of a workflow's cron trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronFire {
    /// The workflow whose trigger fired.
    pub workflow: String,
    /// The trigger's position in the workflow's `triggers:` list.
    pub trigger: u32,
    /// The instant the schedule named (ms since the Unix epoch).
    pub scheduled_at: i64,
    /// When it was handled.
    pub fired_at: i64,
    /// The run it started; `None` when the overlap policy skipped it.
    pub run_id: Option<String>,
}

impl Store {
    /// Records a fire and the run it starts in one transaction. Returns `false` and writes
    /// nothing when that instant of that trigger was already handled (by this process before a
    /// restart, or by another process on the same database).
    pub async fn claim_cron_fire(
        &self,
        fire: &CronFire,
        run: Option<&RunRow>,
    ) -> Result<bool, StoreError> {
        let inserted = self
            .write_transaction(async |conn| {
                let inserted = query(
                    "INSERT INTO cron_fires (workflow, trigger_index, scheduled_at, fired_at, outcome, run_id) \
                     VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                )
                .bind(&fire.workflow)
                .bind(i64::from(fire.trigger))
                .bind(fire.scheduled_at)
                .bind(fire.fired_at)
                .bind(if fire.run_id.is_some() { "started" } else { "skipped" })
                .bind(&fire.run_id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                // The instant was handled already: write nothing else (committing the empty
                // transaction writes nothing either).
                if inserted > 0
                    && let Some(run) = run
                {
                    RunRow::upsert_many(conn, &[run], false).await?;
                }
                Ok(inserted)
            })
            .await?;
        if inserted == 0 {
            return Ok(false);
        }
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(true)
    }

    /// The latest handled instant of every trigger, and the latest run each one started.
    pub async fn last_cron_fires(&self) -> Result<Vec<CronFire>, StoreError> {
        let rows = query(
            "SELECT f.workflow, f.trigger_index, f.scheduled_at, f.fired_at, \
                    (SELECT r.run_id FROM cron_fires r \
                      WHERE r.workflow = f.workflow AND r.trigger_index = f.trigger_index \
                        AND r.run_id IS NOT NULL \
                      ORDER BY r.scheduled_at DESC LIMIT 1) AS run_id \
             FROM cron_fires f \
             WHERE f.scheduled_at = (SELECT MAX(m.scheduled_at) FROM cron_fires m \
                                     WHERE m.workflow = f.workflow AND m.trigger_index = f.trigger_index) \
             ORDER BY f.workflow, f.trigger_index",
        )
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|row| {
                let trigger: i64 = col(row, "trigger_index")?;
                Ok(CronFire {
                    workflow: col(row, "workflow")?,
                    trigger: u32::try_from(trigger).map_err(|_| {
                        StoreError::Corrupt(format!("trigger index {trigger} is out of range"))
                    })?,
                    scheduled_at: col(row, "scheduled_at")?,
                    fired_at: col(row, "fired_at")?,
                    run_id: col(row, "run_id")?,
                })
            })
            .collect()
    }
}
