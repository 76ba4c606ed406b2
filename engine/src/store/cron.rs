//! Cron fires: which scheduled instants of which trigger were handled, recorded together with
//! the run each one started.
//!
//! Knows SQL; knows nothing about schedules or overlap policies (the executor decides, the
//! store makes the decision durable and unique).

use sqlx::AssertSqlSafe;

use super::db::{Row, query};
use super::upsert::{self, Rows};
use super::{Fence, RunRow, Store, StoreError, col};

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

/// What became of a cron fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronClaim {
    /// Recorded, with its run: this process fired it.
    Fired,
    /// That instant, or a later one, of the trigger was handled already (by this process
    /// before a restart, or by another): nothing was written.
    Handled,
    /// The process no longer holds the partition that fires triggers: nothing was written.
    NotHolder,
    /// The partition of the run it would start changed hands (the cron partition did not):
    /// nothing was written; try again.
    RunElsewhere,
}

/// The partition whose holder fires every cron trigger.
pub const CRON_PARTITION: i64 = 0;

impl Store {
    /// Records a fire and the run it starts in one transaction, while `fence` holds the cron
    /// partition ([`CRON_PARTITION`]) and the run's partition, and only when no instant of the
    /// trigger at or after this one was recorded (so an older instant never fires after a
    /// newer one, and none fires twice).
    pub async fn claim_cron_fire(
        &self,
        fire: &CronFire,
        run: Option<&RunRow>,
        fence: &Fence,
    ) -> Result<CronClaim, StoreError> {
        let epoch = fence.held.get(&CRON_PARTITION).copied().unwrap_or(-1);
        let claim = self
            .write_transaction_or_undo(super::tx::Serial::Yes, async |conn| {
                let held = super::batch::held(conn.dialect());
                let inserted = query(AssertSqlSafe(format!(
                    "INSERT INTO cron_fires (workflow, trigger_index, scheduled_at, fired_at, outcome, run_id) \
                     SELECT ?, ?, ?, ?, ?, ? WHERE {held} AND NOT EXISTS (SELECT 1 FROM cron_fires \
                       WHERE workflow = ? AND trigger_index = ? AND scheduled_at >= ?) \
                     ON CONFLICT DO NOTHING"
                )))
                .bind(&fire.workflow)
                .bind(i64::from(fire.trigger))
                .bind(fire.scheduled_at)
                .bind(fire.fired_at)
                .bind(if fire.run_id.is_some() { "started" } else { "skipped" })
                .bind(&fire.run_id)
                .bind(CRON_PARTITION)
                .bind(&fence.owner)
                .bind(epoch)
                .bind(&fire.workflow)
                .bind(i64::from(fire.trigger))
                .bind(fire.scheduled_at)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                if inserted == 0 {
                    let still: Option<Row> = query(AssertSqlSafe(format!("SELECT 1 AS one WHERE {held}")))
                        .bind(CRON_PARTITION)
                        .bind(&fence.owner)
                        .bind(epoch)
                        .fetch_optional(&mut *conn)
                        .await?;
                    let claim = if still.is_some() {
                        CronClaim::Handled
                    } else {
                        CronClaim::NotHolder
                    };
                    return Ok((claim, true));
                }
                if let Some(run) = run {
                    let rows = Rows {
                        table: &RunRow::TABLE,
                        values: vec![run.values()],
                        fence: Some((
                            fence.owner.as_str(),
                            vec![(
                                run.partition,
                                fence.held.get(&run.partition).copied().unwrap_or(-1),
                            )],
                        )),
                    };
                    let written = upsert::write(conn, vec![rows]).await?;
                    if written.iter().any(|w| w.changed < w.given) {
                        // The run's partition changed hands: record nothing.
                        return Ok((CronClaim::RunElsewhere, false));
                    }
                }
                Ok((CronClaim::Fired, true))
            })
            .await?;
        if claim == CronClaim::Fired {
            self.commits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(claim)
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
