//! Committing a batch of writes: one transaction (or one autocommit statement) per batch, runs
//! and steps in multi-row upserts, and every write for a run fenced by its lease.
//!
//! **Fencing.** A process executing runs passes a [`Fence`]: its lease name and the epoch of the
//! lease it holds on each run. Every statement that writes for a run carries the condition that
//! the run's stored lease is still exactly that (`lease_owner`, `lease_epoch`), in the statement
//! itself, so no write of a process whose lease was taken over (the epoch moves on every claim)
//! is ever applied — not even between a check and a write. A statement that changed fewer rows
//! than it was given says some run was taken over; the commit then names those runs, and the
//! caller drops them.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;

use sqlx::AssertSqlSafe;

use super::attempts::AttemptRow;
use super::db::{Conn, query};
use super::rows::{self, RunRow, StepRow};
use super::{Store, StoreError, Write};

/// The leases a commit's writes are made under.
#[derive(Debug, Clone, Default)]
pub struct Fence {
    /// The writer's lease name.
    pub owner: String,
    /// Run id → the epoch of the lease the writer holds on it. A write for a run not listed
    /// here is refused like one for a run taken over.
    pub epochs: HashMap<String, i64>,
}

impl Store {
    /// Writes a batch in one transaction: all of it is durable when this returns, or none.
    /// Not fenced: for tools and tests that own the database alone.
    pub async fn commit(&self, batch: &[Write]) -> Result<(), StoreError> {
        self.commit_inner(batch, None).await.map(|_| ())
    }

    /// Writes a batch in one transaction, applying the writes of each run only while `fence`
    /// still holds its lease. Returns the runs whose writes were not applied because their
    /// lease was taken over (their other writes are not applied either).
    pub async fn commit_fenced(
        &self,
        batch: &[Write],
        fence: &Fence,
    ) -> Result<Vec<String>, StoreError> {
        self.commit_inner(batch, Some(fence)).await
    }

    async fn commit_inner(
        &self,
        batch: &[Write],
        fence: Option<&Fence>,
    ) -> Result<Vec<String>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // Consecutive runs and steps go in multi-row statements; every statement is a round
        // trip to SQLite's thread, which cost more than the rows themselves.
        let groups = groups(batch);
        let statements: usize = groups
            .iter()
            .map(|g| match g {
                Group::Runs(r) => rows::chunks(r).count(),
                Group::Steps(s) => rows::chunks(s).count(),
                Group::Attempts(a) => rows::chunks(a).count(),
                Group::Other(w) => w.len(),
            })
            .sum();
        let lost = if statements == 1
            && let Some(Group::Runs(_) | Group::Steps(_)) = groups.first()
        {
            // One statement is atomic and durable on its own (SQLite commits it, with its
            // fsync, before answering): no BEGIN and COMMIT round trips on the latency path.
            self.write_statement(async |conn| {
                let short = write_group(conn, &groups[0], fence).await?;
                taken_over(conn, fence, short).await
            })
            .await?
        } else {
            self.write_transaction(async |conn| {
                let mut short = false;
                for g in &groups {
                    short |= write_group(conn, g, fence).await?;
                }
                taken_over(conn, fence, short).await
            })
            .await?
        };
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(lost)
    }
}

/// A run of writes of one kind within a batch, in batch order.
enum Group<'a> {
    Runs(Vec<&'a RunRow>),
    Steps(Vec<&'a StepRow>),
    Attempts(Vec<&'a AttemptRow>),
    Other(&'a [Write]),
}

fn groups(batch: &[Write]) -> Vec<Group<'_>> {
    let mut out = Vec::new();
    let mut rest = batch;
    while let Some(first) = rest.first() {
        let same = rest
            .iter()
            .position(|w| std::mem::discriminant(w) != std::mem::discriminant(first))
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
            _ => Group::Other(group),
        });
    }
    out
}

/// `AND EXISTS (…)`: the run `?` is still leased to `?` at epoch `?`.
const HELD: &str =
    "EXISTS (SELECT 1 FROM runs WHERE id = ? AND lease_owner = ? AND lease_epoch = ?)";

/// The epoch `fence` holds on `run`; -1 (which no lease has) when it holds none.
fn epoch(fence: &Fence, run: &str) -> i64 {
    fence.epochs.get(run).copied().unwrap_or(-1)
}

/// Writes one group; returns whether some row was refused by the fence.
async fn write_group(
    conn: &mut Conn,
    group: &Group<'_>,
    fence: Option<&Fence>,
) -> Result<bool, StoreError> {
    let mut short = false;
    match group {
        Group::Runs(r) => {
            let fenced = fence.is_some();
            short |= RunRow::upsert_many(conn, r, fenced).await? < r.len() as u64;
        }
        Group::Steps(s) => {
            short |= StepRow::upsert_many(conn, s, fence).await? < s.len() as u64;
        }
        Group::Attempts(a) => {
            short |= AttemptRow::upsert_many(conn, a, fence).await? < a.len() as u64;
        }
        Group::Other(writes) => {
            for w in *writes {
                let changed = match (w, fence) {
                    (Write::Signal(s), None) => s.insert(conn).await?,
                    (Write::Signal(s), Some(f)) => {
                        s.insert_fenced(conn, HELD, f, epoch(f, &s.run_id)).await?
                    }
                    (Write::ConsumeSignal { run_id, id, by }, fence) => {
                        let mut sql =
                            String::from("UPDATE signals SET consumed_by = ? WHERE id = ?");
                        if fence.is_some() {
                            sql.push_str(" AND ");
                            sql.push_str(HELD);
                        }
                        let mut q = query(AssertSqlSafe(sql)).bind(by).bind(id);
                        if let Some(f) = fence {
                            q = q.bind(run_id).bind(&f.owner).bind(epoch(f, run_id));
                        }
                        q.execute(&mut *conn).await?.rows_affected()
                    }
                    (Write::Incident { row, by_run }, fence) => match (fence, by_run) {
                        (Some(f), Some(run)) => {
                            row.upsert_fenced(conn, HELD, run, f, epoch(f, run)).await?
                        }
                        _ => row.upsert(conn).await?,
                    },
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
                        // Its run is created in this batch: nothing to fence. The API checked
                        // its Idempotency-Key first, so a clash leaves the earlier request.
                        super::requests::insert_request_row(conn, r).await?;
                        1
                    }
                    (Write::Audit { row, .. }, _) => {
                        super::audit::insert_audit(conn, row).await?;
                        1
                    }
                    (Write::AlertLink { link, .. }, _) => {
                        // The dispatcher's rows: nothing of a run's lease to fence.
                        super::alerts::apply_link(conn, link).await?;
                        1
                    }
                    (Write::Run(_) | Write::Step(_) | Write::Attempt(_), _) => 1,
                };
                short |= changed == 0;
            }
        }
    }
    Ok(short)
}

/// After a statement refused rows: the runs of `fence` whose stored lease is no longer the one
/// it holds. Read inside the same transaction (or right after the one statement), so it sees
/// exactly what the refused writes were judged against.
async fn taken_over(
    conn: &mut Conn,
    fence: Option<&Fence>,
    short: bool,
) -> Result<Vec<String>, StoreError> {
    let Some(fence) = fence.filter(|_| short) else {
        return Ok(Vec::new());
    };
    let ids: Vec<&String> = fence.epochs.keys().collect();
    let mut held = BTreeSet::new();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT id FROM runs WHERE lease_owner = ? AND id IN ({}) AND lease_epoch = CASE id {} END",
            vec!["?"; chunk.len()].join(", "),
            "WHEN ? THEN ? ".repeat(chunk.len())
        );
        let mut q = query(AssertSqlSafe(sql)).bind(&fence.owner);
        for id in chunk {
            q = q.bind(*id);
        }
        for id in chunk {
            q = q.bind(*id).bind(epoch(fence, id));
        }
        for row in q.fetch_all(&mut *conn).await? {
            held.insert(row.try_get::<String>("id")?);
        }
    }
    let lost: Vec<String> = ids
        .into_iter()
        .filter(|id| !held.contains(*id))
        .cloned()
        .collect();
    if lost.is_empty() {
        tracing::warn!(
            "a write changed fewer rows than it carried, yet every run's lease is still held"
        );
    }
    Ok(lost)
}
