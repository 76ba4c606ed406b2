//! Many rows of one table inserted or updated at once, each only while the writer still holds
//! its partition's lease.
//!
//! **SQLite**: multi-row `VALUES` in chunks (see [`super::rows::chunks`]); a fenced chunk is
//! joined to `partitions` on (id, owner, epoch), so a row of a partition the writer lost is
//! simply not written. SQLite has one writer at a time, so the check and the write cannot be
//! separated by another process's claim.
//!
//! **PostgreSQL**: one statement per table whatever the number of rows, each column bound as
//! one array and turned back into rows by `UNNEST`, and several tables in one statement as
//! data-modifying `WITH` parts. The join to `partitions` locks the partition rows `FOR SHARE`:
//! a claim (an `UPDATE` of the row) waits until this commit ends, and a claim committed first
//! makes the row fail the join (read committed re-checks the newest version of a locked row).
//! Either way no write lands in a partition after it changed hands.

use sqlx::AssertSqlSafe;

use super::StoreError;
use super::db::{Arg, Conn, Dialect, query};
use super::rows::{chunks, placeholders};

/// How a column's values are bound as a PostgreSQL array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Int,
    Text,
}

/// A table written in bulk.
#[derive(Debug)]
pub(super) struct Table {
    /// Its name.
    pub(super) name: &'static str,
    /// Its columns as written, in order, with their kind.
    pub(super) columns: &'static [(&'static str, Kind)],
    /// How many leading columns form the conflict key.
    pub(super) key: usize,
    /// `ON CONFLICT (…) DO UPDATE SET …`.
    pub(super) conflict: &'static str,
}

/// Rows for one table, and the leases they are written under.
#[derive(Debug)]
pub(super) struct Rows<'a> {
    pub(super) table: &'static Table,
    /// Each row's values, in the table's column order.
    pub(super) values: Vec<Vec<Arg>>,
    /// The writer's lease name and, per row, the (partition, epoch) it must still hold; `None`
    /// writes without a fence (tools and tests that own the database alone).
    pub(super) fence: Option<(&'a str, Vec<(i64, i64)>)>,
}

impl Rows<'_> {
    fn len(&self) -> usize {
        self.values.len()
    }
}

/// Writes `rows` on SQLite; returns how many rows changed.
async fn sqlite(conn: &mut Conn, rows: Rows<'_>) -> Result<u64, StoreError> {
    let t = rows.table;
    let width = t.columns.len();
    let names: Vec<&str> = t.columns.iter().map(|c| c.0).collect();
    let names = names.join(", ");
    let mut changed = 0;
    let fences = rows.fence.as_ref().map(|(_, f)| f.as_slice());
    let mut at = 0;
    for chunk in chunks(&rows.values) {
        let sql = match rows.fence {
            None => format!(
                "INSERT INTO {} ({names}) VALUES {} {}",
                t.name,
                placeholders(chunk.len(), width),
                t.conflict
            ),
            // (`WHERE true` tells SQLite's parser the ON CONFLICT belongs to the INSERT.)
            Some(_) => format!(
                "INSERT INTO {} ({names}) SELECT {} FROM (VALUES {}) AS v \
                 JOIN partitions p ON p.id = v.column{} AND p.epoch = v.column{} AND p.owner = ? \
                 WHERE true {}",
                t.name,
                (1..=width)
                    .map(|i| format!("v.column{i}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                placeholders(chunk.len(), width + 2),
                width + 1,
                width + 2,
                t.conflict
            ),
        };
        let mut q = query(AssertSqlSafe(sql));
        for (i, row) in chunk.iter().enumerate() {
            for v in row {
                q = q.bind(v.clone());
            }
            if let Some(f) = fences {
                let (partition, epoch) = f.get(at + i).copied().unwrap_or((-1, -1));
                q = q.bind(partition).bind(epoch);
            }
        }
        if let Some((owner, _)) = &rows.fence {
            q = q.bind(*owner);
        }
        at += chunk.len();
        changed += q.execute(&mut *conn).await?.rows_affected();
    }
    Ok(changed)
}

/// The integer an [`Arg`] holds (`None` for null, or for a value of another kind).
fn int(a: Arg) -> Option<i64> {
    match a {
        Arg::Int(v) => v,
        _ => None,
    }
}

/// The `INSERT` of `rows` on PostgreSQL over `UNNEST`, its placeholders numbered from `first`;
/// returns the text, its values and how many rows it carries. Rows with the same key keep the last (PostgreSQL refuses
/// to update one row twice in a statement).
fn postgres_insert(rows: Rows<'_>, first: usize) -> (String, Vec<Arg>, u64) {
    let t = rows.table;
    let mut keep: Vec<usize> = Vec::with_capacity(rows.len());
    let mut seen = std::collections::HashSet::new();
    for (i, row) in rows.values.iter().enumerate().rev() {
        let key: Vec<String> = row[..t.key].iter().map(|a| format!("{a:?}")).collect();
        if seen.insert(key) {
            keep.push(i);
        }
    }
    keep.reverse();
    let width = t.columns.len();
    let mut columns: Vec<Vec<Arg>> = vec![Vec::with_capacity(keep.len()); width];
    let mut values = rows.values;
    for &i in &keep {
        for (c, v) in std::mem::take(&mut values[i]).into_iter().enumerate() {
            if let Some(col) = columns.get_mut(c) {
                col.push(v);
            }
        }
    }
    let mut args = Vec::with_capacity(width + 3);
    let mut unnest = Vec::with_capacity(width + 2);
    let mut n = first;
    for ((_, kind), col) in t.columns.iter().zip(columns) {
        match kind {
            Kind::Int => {
                args.push(Arg::Ints(col.into_iter().map(int).collect()));
                unnest.push(format!("?{n}::bigint[]"));
            }
            Kind::Text => {
                args.push(Arg::Texts(
                    col.into_iter()
                        .map(|a| match a {
                            Arg::Text(v) => v,
                            _ => None,
                        })
                        .collect(),
                ));
                unnest.push(format!("?{n}::text[]"));
            }
        }
        n += 1;
    }
    let names: Vec<&str> = t.columns.iter().map(|c| c.0).collect();
    let picked: Vec<String> = names.iter().map(|c| format!("v.{c}")).collect();
    let sql = match rows.fence {
        None => format!(
            "INSERT INTO {} ({}) SELECT {} FROM UNNEST({}) AS v({}) {} RETURNING 1",
            t.name,
            names.join(", "),
            picked.join(", "),
            unnest.join(", "),
            names.join(", "),
            t.conflict
        ),
        Some((owner, fences)) => {
            let fences: Vec<(i64, i64)> = keep
                .iter()
                .map(|&i| fences.get(i).copied().unwrap_or((-1, -1)))
                .collect();
            args.push(Arg::Ints(fences.iter().map(|f| Some(f.0)).collect()));
            args.push(Arg::Ints(fences.iter().map(|f| Some(f.1)).collect()));
            args.push(Arg::Text(Some(owner.to_string())));
            format!(
                "INSERT INTO {} ({}) SELECT {} FROM UNNEST({}, ?{}::bigint[], ?{}::bigint[]) \
                 AS v({}, fence_partition, fence_epoch) \
                 JOIN partitions p ON p.id = v.fence_partition AND p.epoch = v.fence_epoch \
                 AND p.owner = ?{} FOR SHARE OF p {} RETURNING 1",
                t.name,
                names.join(", "),
                picked.join(", "),
                unnest.join(", "),
                n,
                n + 1,
                names.join(", "),
                n + 2,
                t.conflict
            )
        }
    };
    (sql, args, keep.len() as u64)
}

/// What one group's write did.
#[derive(Debug, Clone, Copy)]
pub(super) struct Written {
    /// Rows written (on PostgreSQL after keeping the last of each key).
    pub(super) given: u64,
    /// Rows the database changed: fewer than given when the fence refused some.
    pub(super) changed: u64,
}

/// Writes every group of rows in one statement on PostgreSQL, in as few as the chunks need on
/// SQLite; says, per group, how many rows were given and changed.
pub(super) async fn write(
    conn: &mut Conn,
    groups: Vec<Rows<'_>>,
) -> Result<Vec<Written>, StoreError> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    match conn.dialect() {
        Dialect::Sqlite => {
            let mut out = Vec::with_capacity(groups.len());
            for g in groups {
                let given = g.len() as u64;
                out.push(Written {
                    given,
                    changed: sqlite(conn, g).await?,
                });
            }
            Ok(out)
        }
        Dialect::Postgres => {
            let mut parts = Vec::with_capacity(groups.len());
            let mut args = Vec::new();
            let mut given = Vec::with_capacity(groups.len());
            for (i, g) in groups.into_iter().enumerate() {
                let (sql, mut a, n) = postgres_insert(g, args.len() + 1);
                parts.push(format!("w{i} AS ({sql})"));
                args.append(&mut a);
                given.push(n);
            }
            let counts: Vec<String> = (0..parts.len())
                .map(|i| format!("(SELECT COUNT(*) FROM w{i}) AS n{i}"))
                .collect();
            let sql = format!("WITH {} SELECT {}", parts.join(", "), counts.join(", "));
            let mut q = query(AssertSqlSafe(sql));
            for a in args {
                q = q.bind(a);
            }
            let row = q.fetch_one(&mut *conn).await?;
            (0..parts.len())
                .map(|i| {
                    let n: i64 = row.get(&format!("n{i}"))?;
                    Ok(Written {
                        given: given[i],
                        changed: u64::try_from(n).unwrap_or(0),
                    })
                })
                .collect()
        }
    }
}
