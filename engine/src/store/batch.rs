//! Committing a batch of writes: one transaction (or one autocommit statement) per batch, runs,
//! steps and attempts in bulk statements (`upsert.rs`), and every write for a partition fenced
//! by its lease.
//!
//! **Fencing.** A process executing runs passes a [`Fence`]: its lease name, the epoch of the
//! lease it holds on each partition, and the partition of each run it writes for. Every
//! statement that writes for a partition carries the condition that the partition's stored
//! lease is still exactly that (owner and epoch), in the statement itself, so no write of a
//! process whose partition was taken over (every claim moves the epoch) is ever applied — not
//! even between a check and a write. A statement that changed fewer rows than it was given
//! says some partition was lost: the transaction is rolled back and written again without the
//! writes of the lost partitions, and the commit names them, so the caller drops them. A run's
//! writes are therefore applied all together or not at all.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;

use sqlx::AssertSqlSafe;

use super::attempts::AttemptRow;
use super::db::{Conn, Dialect, query};
use super::rows::{self, RunRow, StepRow};
use super::tx::Serial;
use super::upsert::{self, Rows};
use super::{Store, StoreError, Write};

/// The leases a commit's writes are made under.
#[derive(Debug, Clone, Default)]
pub struct Fence {
    /// The writer's lease name.
    pub owner: String,
    /// Partition → the epoch of the lease the writer holds on it. A write for a partition not
    /// listed here is refused like one for a partition taken over.
    pub held: HashMap<i64, i64>,
    /// Run → its partition, for every run the batch writes for.
    pub runs: HashMap<String, i64>,
}

impl Fence {
    /// The partition `w` is fenced by; `None` for writes no lease covers (a request row, an
    /// audit entry, a command for another process).
    fn fenced_by(&self, w: &Write) -> Option<i64> {
        match w {
            Write::Run(r) => Some(r.partition),
            Write::Step(_) | Write::Attempt(_) | Write::Signal(_) | Write::ConsumeSignal { .. } => {
                Some(self.partition_of_run(w.run_id()?))
            }
            Write::Incident {
                opened: true,
                by_run: None,
                ..
            } => None,
            Write::Incident { row, .. } => Some(row.partition),
            Write::Answer { partition, .. } => Some(*partition),
            _ => None,
        }
    }

    /// The partition whose writes `w` stands or falls with: its fence's, or its run's.
    fn belongs_to(&self, w: &Write) -> Option<i64> {
        if let Write::ForeignRun(_) = w {
            return None;
        }
        self.fenced_by(w)
            .or_else(|| w.run_id().and_then(|r| self.runs.get(r).copied()))
    }

    fn partition_of_run(&self, run: &str) -> i64 {
        self.runs.get(run).copied().unwrap_or(-1)
    }

    /// The epoch held on `partition`; -1 (which no lease has) when none.
    fn epoch(&self, partition: i64) -> i64 {
        self.held.get(&partition).copied().unwrap_or(-1)
    }

    /// (owner, partition, epoch) for a statement's `held` condition.
    fn lease(&self, partition: i64) -> (&str, i64, i64) {
        (&self.owner, partition, self.epoch(partition))
    }
}

/// `EXISTS (…)`: partition `?` is still leased to `?` at epoch `?` (on PostgreSQL its row is
/// locked until the commit, so no claim lands in between).
pub(super) fn held(d: Dialect) -> &'static str {
    d.pick(
        "EXISTS (SELECT 1 FROM partitions WHERE id = ? AND owner = ? AND epoch = ?)",
        "EXISTS (SELECT 1 FROM partitions WHERE id = ? AND owner = ? AND epoch = ? FOR SHARE)",
    )
}

impl Store {
    /// Writes a batch in one transaction: all of it is durable when this returns, or none.
    /// Not fenced: for tools and tests that own the database alone.
    pub async fn commit(&self, batch: &[Write]) -> Result<(), StoreError> {
        self.commit_inner(batch, None).await.map(|_| ())
    }

    /// Writes a batch in one transaction, applying the writes for each partition only while
    /// `fence` still holds its lease. Returns the partitions found lost; none of their writes
    /// were applied (the others were).
    pub async fn commit_fenced(
        &self,
        batch: &[Write],
        fence: &Fence,
    ) -> Result<Vec<i64>, StoreError> {
        self.commit_inner(batch, Some(fence)).await
    }

    async fn commit_inner(
        &self,
        batch: &[Write],
        fence: Option<&Fence>,
    ) -> Result<Vec<i64>, StoreError> {
        let mut writes: Vec<&Write> = batch.iter().collect();
        let mut lost_all: BTreeSet<i64> = BTreeSet::new();
        while !writes.is_empty() {
            let groups = groups(&writes);
            let bulk_only = groups
                .iter()
                .all(|g| matches!(g, Group::Runs(_) | Group::Steps(_) | Group::Attempts(_)));
            // PostgreSQL writes every bulk group in one statement; SQLite one chunk of one
            // table per statement (see `rows::chunks`), so one statement only when the batch is
            // one chunk.
            let one_statement = bulk_only
                && match self.db.dialect() {
                    Dialect::Postgres => true,
                    Dialect::Sqlite => {
                        groups.len() == 1
                            && match &groups[0] {
                                Group::Runs(r) => rows::chunks(r).count() == 1,
                                Group::Steps(s) => rows::chunks(s).count() == 1,
                                Group::Attempts(a) => rows::chunks(a).count() == 1,
                                Group::Other(_) => false,
                            }
                    }
                };
            let lost = if one_statement {
                // One statement is atomic and durable on its own (the database commits it, with
                // its fsync, before answering): no BEGIN and COMMIT round trips on the latency
                // path. A row refused by the fence leaves its partition's other rows unwritten
                // too (they share the lease), so nothing needs undoing.
                let lost = self
                    .write_statement(async |conn| {
                        let short = write_bulk(conn, &groups, fence).await?;
                        taken_over(conn, fence, short).await
                    })
                    .await?;
                self.commits.fetch_add(1, Ordering::Relaxed);
                lost_all.extend(lost);
                break;
            } else {
                // The commit reads nothing to decide its writes (the fence is in each
                // statement), so on PostgreSQL it runs beside other processes' commits.
                self.write_transaction_or_undo(Serial::No, async |conn| {
                    let mut short = write_bulk(conn, &groups, fence).await?;
                    for g in &groups {
                        if let Group::Other(ws) = g {
                            short |= write_others(conn, ws, fence).await?;
                        }
                    }
                    let lost = taken_over(conn, fence, short).await?;
                    // Undo everything when a partition was lost: its writes go, the rest is
                    // written again below.
                    let keep = lost.is_empty();
                    Ok((lost, keep))
                })
                .await?
            };
            if lost.is_empty() {
                self.commits.fetch_add(1, Ordering::Relaxed);
                break;
            }
            lost_all.extend(lost);
            if let Some(f) = fence {
                writes.retain(|w| f.belongs_to(w).is_none_or(|p| !lost_all.contains(&p)));
            }
        }
        Ok(lost_all.into_iter().collect())
    }
}

/// A run of writes of one kind within a batch, in batch order.
enum Group<'a> {
    Runs(Vec<&'a RunRow>),
    Steps(Vec<&'a StepRow>),
    Attempts(Vec<&'a AttemptRow>),
    Other(Vec<&'a Write>),
}

fn groups<'a>(batch: &[&'a Write]) -> Vec<Group<'a>> {
    let mut out = Vec::new();
    let mut rest = batch;
    while let Some(first) = rest.first() {
        let same = rest
            .iter()
            .position(|w| std::mem::discriminant(*w) != std::mem::discriminant(*first))
            .unwrap_or(rest.len());
        let (group, tail) = rest.split_at(same);
        rest = tail;
        out.push(match first {
            Write::Run(_) => Group::Runs(
                group
                    .iter()
                    .filter_map(|w| match w {
                        Write::Run(r) => Some(r),
                        _ => None,
                    })
                    .collect(),
            ),
            Write::Step(_) => Group::Steps(
                group
                    .iter()
                    .filter_map(|w| match w {
                        Write::Step(s) => Some(s),
                        _ => None,
                    })
                    .collect(),
            ),
            Write::Attempt(_) => Group::Attempts(
                group
                    .iter()
                    .filter_map(|w| match w {
                        Write::Attempt(a) => Some(a),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => Group::Other(group.to_vec()),
        });
    }
    out
}

/// The runs, steps and attempts of a batch as rows for `upsert.rs`, one set per table (in
/// batch order, so a later row of the same key wins).
fn bulk<'a>(groups: &[Group<'_>], fence: Option<&'a Fence>) -> Vec<Rows<'a>> {
    let (mut runs, mut steps, mut attempts) = (Vec::new(), Vec::new(), Vec::new());
    for g in groups {
        match g {
            Group::Runs(r) => runs.extend(r.iter().copied()),
            Group::Steps(s) => steps.extend(s.iter().copied()),
            Group::Attempts(a) => attempts.extend(a.iter().copied()),
            Group::Other(_) => {}
        }
    }
    let fenced = |partitions: Vec<i64>| {
        fence.map(|f| {
            (
                f.owner.as_str(),
                partitions
                    .into_iter()
                    .map(|p| (p, f.epoch(p)))
                    .collect::<Vec<_>>(),
            )
        })
    };
    let of_run = |run: &str| fence.map_or(-1, |f| f.partition_of_run(run));
    let mut out = Vec::new();
    if !runs.is_empty() {
        out.push(Rows {
            table: &RunRow::TABLE,
            values: runs.iter().map(|r| r.values()).collect(),
            fence: fenced(runs.iter().map(|r| r.partition).collect()),
        });
    }
    if !steps.is_empty() {
        out.push(Rows {
            table: &StepRow::TABLE,
            values: steps.iter().map(|s| s.values()).collect(),
            fence: fenced(steps.iter().map(|s| of_run(&s.run_id)).collect()),
        });
    }
    if !attempts.is_empty() {
        out.push(Rows {
            table: &AttemptRow::TABLE,
            values: attempts.iter().map(|a| a.values()).collect(),
            fence: fenced(attempts.iter().map(|a| of_run(&a.run_id)).collect()),
        });
    }
    out
}

/// Writes the runs, steps and attempts of `groups`; returns whether the fence refused a row.
async fn write_bulk(
    conn: &mut Conn,
    groups: &[Group<'_>],
    fence: Option<&Fence>,
) -> Result<bool, StoreError> {
    let written = upsert::write(conn, bulk(groups, fence)).await?;
    Ok(written.iter().any(|w| w.changed < w.given))
}

/// Writes the writes of other kinds, one statement each; returns whether the fence refused
/// one.
async fn write_others(
    conn: &mut Conn,
    writes: &[&Write],
    fence: Option<&Fence>,
) -> Result<bool, StoreError> {
    let held = held(conn.dialect());
    let mut short = false;
    for w in writes {
        let lease = fence.and_then(|f| f.fenced_by(w).map(|p| f.lease(p)));
        let changed = match (*w, lease) {
            (Write::Signal(s), None) => s.insert(conn).await?,
            (Write::Signal(s), Some(lease)) => s.insert_fenced(conn, held, lease).await?,
            (Write::ConsumeSignal { id, by, .. }, lease) => {
                let mut sql = String::from("UPDATE signals SET consumed_by = ? WHERE id = ?");
                if lease.is_some() {
                    sql.push_str(" AND ");
                    sql.push_str(held);
                }
                let mut q = query(AssertSqlSafe(sql)).bind(by).bind(id);
                if let Some((owner, partition, epoch)) = lease {
                    q = q.bind(partition).bind(owner).bind(epoch);
                }
                q.execute(&mut *conn).await?.rows_affected()
            }
            (Write::Incident { row, .. }, Some(lease)) => {
                row.upsert_fenced(conn, held, lease).await?
            }
            (Write::Incident { row, .. }, None) => row.upsert(conn).await?,
            (Write::Answer { id, answer, at, .. }, lease) => {
                super::inbox::answer(conn, id, answer.as_deref(), *at, lease, held).await?
            }
            (
                Write::StartRequest {
                    request_id,
                    run_id,
                    at,
                },
                _,
            ) => {
                // The run it names was created in this batch: nothing to fence, and a
                // request already started is left as it is.
                query(
                    "UPDATE requests SET status = 'started', run_id = ?, updated_at = ? \
                     WHERE id = ? AND status = 'submitted'",
                )
                .bind(run_id)
                .bind(at)
                .bind(request_id)
                .execute(&mut *conn)
                .await?;
                1
            }
            (
                Write::RunMeta {
                    run_id,
                    labels,
                    key,
                    at,
                },
                _,
            ) => {
                // The run it names was created in this batch: nothing to fence.
                super::run_meta::insert(conn, run_id, labels, key.as_ref(), *at).await?;
                1
            }
            (Write::Request(r), _) => {
                // Its run is created in this batch: nothing to fence. The API checked its
                // Idempotency-Key first, so a clash leaves the earlier request.
                super::requests::insert_request_row(conn, r).await?;
                1
            }
            (Write::Audit { row, .. }, _) => {
                super::audit::insert_audit(conn, row).await?;
                1
            }
            (Write::AlertLink { link, .. }, _) => {
                // The dispatcher's rows: nothing of a partition's lease to fence.
                super::alerts::apply_link(conn, link).await?;
                1
            }
            (Write::ForeignRun(r), _) => {
                // A new run for another process's partition: written by whoever took the call,
                // executed by the partition's holder, told by the inbox row beside it.
                let rows = Rows {
                    table: &RunRow::TABLE,
                    values: vec![r.values()],
                    fence: None,
                };
                upsert::write(conn, vec![rows])
                    .await?
                    .iter()
                    .map(|w| w.changed)
                    .sum()
            }
            (Write::Inbox { row, .. }, _) => super::inbox::insert(conn, row).await?,
            (Write::Run(_) | Write::Step(_) | Write::Attempt(_), _) => 1,
        };
        short |= changed == 0;
    }
    Ok(short)
}

/// After a statement refused rows: the partitions of `fence` whose stored lease is no longer
/// the one it holds. Read inside the same transaction (or right after the one statement), so
/// it sees exactly what the refused writes were judged against.
async fn taken_over(
    conn: &mut Conn,
    fence: Option<&Fence>,
    short: bool,
) -> Result<Vec<i64>, StoreError> {
    let Some(fence) = fence.filter(|_| short) else {
        return Ok(Vec::new());
    };
    let ids: Vec<i64> = fence.held.keys().copied().collect();
    let mut still = BTreeSet::new();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT id FROM partitions WHERE owner = ? AND id IN ({}) AND epoch = CASE id {} END",
            vec!["?"; chunk.len()].join(", "),
            "WHEN ? THEN ? ".repeat(chunk.len())
        );
        let mut q = query(AssertSqlSafe(sql)).bind(&fence.owner);
        for id in chunk {
            q = q.bind(*id);
        }
        for id in chunk {
            q = q.bind(*id).bind(fence.epoch(*id));
        }
        for row in q.fetch_all(&mut *conn).await? {
            still.insert(row.try_get::<i64>("id")?);
        }
    }
    let lost: Vec<i64> = ids.into_iter().filter(|p| !still.contains(p)).collect();
    if lost.is_empty() {
        tracing::warn!(
            "a write changed fewer rows than it carried, yet every partition's lease is still held"
        );
    }
    Ok(lost)
}
