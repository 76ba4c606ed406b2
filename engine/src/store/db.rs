//! The two databases the store runs on, and the one way its code speaks to either.
//!
//! Every statement is written once, in the SQL both databases share, with `?` (or `?N`)
//! placeholders, and its values are gathered as [`Arg`]s; only when it runs is it handed to the
//! backend's own driver (no `Any` driver: each keeps its types), PostgreSQL's with the
//! placeholders rewritten as `$N`. Where the dialects differ (JSON functions, locking) the
//! statement is chosen per backend with [`Dialect`].

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{
    AssertSqlSafe, PgConnection, PgPool, Postgres, Row as _, Sqlite, SqliteConnection, SqlitePool,
};

use super::StoreError;

/// One value per backend: the pool, a connection.
#[derive(Debug, Clone)]
pub(super) enum Backend<S, P> {
    /// The embedded database.
    Sqlite(S),
    /// A PostgreSQL server.
    Postgres(P),
}

/// The connection pool.
pub(super) type Db = Backend<SqlitePool, PgPool>;

/// A connection taken from the pool.
pub(super) type Conn = Backend<PoolConnection<Sqlite>, PoolConnection<Postgres>>;

/// A row read from either backend.
pub(super) type Row = Backend<SqliteRow, PgRow>;

/// Which SQL a backend speaks, where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

impl<S, P> Backend<S, P> {
    pub(super) fn dialect(&self) -> Dialect {
        match self {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }
}

impl Dialect {
    /// `sqlite` or `postgres`, whichever this is.
    pub(super) fn pick(self, sqlite: &'static str, postgres: &'static str) -> &'static str {
        match self {
            Dialect::Sqlite => sqlite,
            Dialect::Postgres => postgres,
        }
    }
}

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
pub(super) enum Arg {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
    /// A column of integers, for PostgreSQL's `UNNEST` (SQLite has no arrays).
    Ints(Vec<Option<i64>>),
    /// A column of texts, for PostgreSQL's `UNNEST`.
    Texts(Vec<Option<String>>),
}

macro_rules! arg_from {
    ($variant:ident: $($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(
            impl From<$t> for Arg {
                fn from($v: $t) -> Self {
                    Arg::$variant($e)
                }
            }
        )*
    };
}

arg_from!(Int:
    i64 => |v| Some(v),
    Option<i64> => |v| v,
    &i64 => |v| Some(*v),
    &Option<i64> => |v| *v,
    bool => |v| Some(i64::from(v)),
);
arg_from!(Real:
    f64 => |v| Some(v),
    Option<f64> => |v| v,
);
arg_from!(Text:
    &str => |v| Some(v.to_owned()),
    String => |v| Some(v),
    &String => |v| Some(v.clone()),
    &&String => |v| Some((*v).clone()),
    &&str => |v| Some((*v).to_owned()),
    Option<String> => |v| v,
    Option<&str> => |v| v.map(str::to_owned),
    Option<&String> => |v| v.cloned(),
    &Option<String> => |v| v.clone(),
);
arg_from!(Blob:
    Vec<u8> => |v| Some(v),
    &[u8] => |v| Some(v.to_vec()),
    &Vec<u8> => |v| Some(v.clone()),
);

/// SQL text a statement is made from.
pub(super) trait Sql {
    fn into_text(self) -> String;
}

impl Sql for &'static str {
    fn into_text(self) -> String {
        self.to_owned()
    }
}

impl Sql for String {
    fn into_text(self) -> String {
        self
    }
}

impl<T: Sql> Sql for AssertSqlSafe<T> {
    fn into_text(self) -> String {
        self.0.into_text()
    }
}

/// A statement and its values, not yet tied to a backend.
#[must_use]
pub(super) struct Statement {
    sql: String,
    args: Vec<Arg>,
}

/// A statement whose first column is the answer.
#[must_use]
pub(super) struct Scalar<T> {
    inner: Statement,
    _t: std::marker::PhantomData<fn() -> T>,
}

/// `sqlx::query`'s twin: a statement on either backend.
pub(super) fn query(sql: impl Sql) -> Statement {
    Statement {
        sql: sql.into_text(),
        args: Vec::new(),
    }
}

/// `sqlx::query_scalar`'s twin.
pub(super) fn query_scalar<T: Value>(sql: impl Sql) -> Scalar<T> {
    Scalar {
        inner: query(sql),
        _t: std::marker::PhantomData,
    }
}

/// Where a statement runs: a pool, or a connection (inside a transaction).
pub(super) enum Target<'a> {
    SqlitePool(&'a SqlitePool),
    PostgresPool(&'a PgPool),
    SqliteConn(&'a mut SqliteConnection),
    PostgresConn(&'a mut PgConnection),
}

impl<'a> From<&'a Db> for Target<'a> {
    fn from(db: &'a Db) -> Self {
        match db {
            Backend::Sqlite(p) => Target::SqlitePool(p),
            Backend::Postgres(p) => Target::PostgresPool(p),
        }
    }
}

impl<'a> From<&'a mut Conn> for Target<'a> {
    fn from(conn: &'a mut Conn) -> Self {
        match conn {
            Backend::Sqlite(c) => Target::SqliteConn(c),
            Backend::Postgres(c) => Target::PostgresConn(c),
        }
    }
}

impl<'a> From<&'a mut PgConnection> for Target<'a> {
    fn from(conn: &'a mut PgConnection) -> Self {
        Target::PostgresConn(conn)
    }
}

/// What a write changed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Done(u64);

impl Done {
    pub(super) fn rows_affected(&self) -> u64 {
        self.0
    }
}

fn sqlite(
    sql: &str,
    args: Vec<Arg>,
) -> Result<Query<'static, Sqlite, SqliteArguments>, sqlx::Error> {
    let mut q = sqlx::query(AssertSqlSafe(sql.to_owned()));
    for a in args {
        q = match a {
            Arg::Int(v) => q.bind(v),
            Arg::Real(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::Blob(v) => q.bind(v),
            Arg::Ints(_) | Arg::Texts(_) => {
                return Err(sqlx::Error::Protocol(
                    "an array value bound to a SQLite statement (arrays are PostgreSQL's)".into(),
                ));
            }
        };
    }
    Ok(q)
}

fn postgres(sql: &str, args: Vec<Arg>) -> Query<'static, Postgres, PgArguments> {
    let mut q = sqlx::query(AssertSqlSafe(numbered(sql)));
    for a in args {
        q = match a {
            Arg::Int(v) => q.bind(v),
            Arg::Real(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::Blob(v) => q.bind(v),
            Arg::Ints(v) => q.bind(v),
            Arg::Texts(v) => q.bind(v),
        };
    }
    q
}

/// Expands `$body` once per target: `$q` the statement built for that backend's driver,
/// `$ex` the pool or connection, `$row` the constructor of a [`Row`] of that backend.
macro_rules! on_target {
    ($stmt:expr, $to:expr, |$q:ident, $ex:ident, $row:ident| $body:expr) => {{
        let Statement { sql, args } = $stmt;
        match $to.into() {
            Target::SqlitePool($ex) => {
                let ($q, $row) = (sqlite(&sql, args)?, Row::Sqlite);
                $body
            }
            Target::SqliteConn($ex) => {
                let ($q, $row) = (sqlite(&sql, args)?, Row::Sqlite);
                $body
            }
            Target::PostgresPool($ex) => {
                let ($q, $row) = (postgres(&sql, args), Row::Postgres);
                $body
            }
            Target::PostgresConn($ex) => {
                let ($q, $row) = (postgres(&sql, args), Row::Postgres);
                $body
            }
        }
    }};
}

impl Statement {
    /// Binds the next placeholder.
    pub(super) fn bind(mut self, v: impl Into<Arg>) -> Self {
        self.args.push(v.into());
        self
    }

    /// Runs a write; how many rows it changed.
    pub(super) async fn execute<'a>(self, to: impl Into<Target<'a>>) -> Result<Done, sqlx::Error> {
        let n = on_target!(self, to, |q, ex, _row| q.execute(ex).await?.rows_affected());
        Ok(Done(n))
    }

    /// Every row of the answer.
    pub(super) async fn fetch_all<'a>(
        self,
        to: impl Into<Target<'a>>,
    ) -> Result<Vec<Row>, sqlx::Error> {
        Ok(on_target!(self, to, |q, ex, row| q
            .fetch_all(ex)
            .await?
            .into_iter()
            .map(row)
            .collect()))
    }

    /// The answer's first row, if any.
    pub(super) async fn fetch_optional<'a>(
        self,
        to: impl Into<Target<'a>>,
    ) -> Result<Option<Row>, sqlx::Error> {
        Ok(on_target!(self, to, |q, ex, row| q
            .fetch_optional(ex)
            .await?
            .map(row)))
    }

    /// The answer's first row; an error when there is none.
    pub(super) async fn fetch_one<'a>(self, to: impl Into<Target<'a>>) -> Result<Row, sqlx::Error> {
        self.fetch_optional(to)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }
}

impl<T: Value> Scalar<T> {
    /// Binds the next placeholder.
    pub(super) fn bind(self, v: impl Into<Arg>) -> Self {
        Self {
            inner: self.inner.bind(v),
            _t: self._t,
        }
    }

    /// The first column of the first row, if any.
    pub(super) async fn fetch_optional<'a>(
        self,
        to: impl Into<Target<'a>>,
    ) -> Result<Option<T>, sqlx::Error> {
        self.inner
            .fetch_optional(to)
            .await?
            .map(|r| r.first())
            .transpose()
    }

    /// The first column of the first row.
    pub(super) async fn fetch_one<'a>(self, to: impl Into<Target<'a>>) -> Result<T, sqlx::Error> {
        self.fetch_optional(to)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }
}

/// Rewrites SQLite's placeholders as PostgreSQL's: a bare `?` takes the number after the
/// highest used so far (SQLite's rule), `?N` keeps `N`. Quoted text is left alone.
pub(super) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut highest = 0u32;
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                out.push(c);
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let n = digits.parse::<u32>().unwrap_or(highest + 1);
                highest = highest.max(n);
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

/// A value a column is read as, on either backend.
pub(super) trait Value:
    for<'r> sqlx::Decode<'r, Sqlite>
    + sqlx::Type<Sqlite>
    + for<'r> sqlx::Decode<'r, Postgres>
    + sqlx::Type<Postgres>
{
}

impl<T> Value for T where
    T: for<'r> sqlx::Decode<'r, Sqlite>
        + sqlx::Type<Sqlite>
        + for<'r> sqlx::Decode<'r, Postgres>
        + sqlx::Type<Postgres>
{
}

impl Row {
    /// The column `name`, or a [`StoreError::Corrupt`] naming it.
    pub(super) fn get<T: Value>(&self, name: &str) -> Result<T, StoreError> {
        match self {
            Row::Sqlite(r) => r.try_get(name),
            Row::Postgres(r) => r.try_get(name),
        }
        .map_err(|e| StoreError::Corrupt(format!("column `{name}`: {e}")))
    }

    /// The column `name` (the name `sqlx::Row` gives it).
    pub(super) fn try_get<T: Value>(&self, name: &str) -> Result<T, StoreError> {
        self.get(name)
    }

    fn first<T: Value>(&self) -> Result<T, sqlx::Error> {
        match self {
            Row::Sqlite(r) => r.try_get(0),
            Row::Postgres(r) => r.try_get(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn placeholders_are_numbered_as_sqlite_numbers_them() {
        assert_eq!(
            numbered("SELECT a FROM t WHERE b = ? AND c = ?"),
            "SELECT a FROM t WHERE b = $1 AND c = $2"
        );
        assert_eq!(
            numbered("UPDATE t SET a = ?1 WHERE b = ?3 AND c <> ?1"),
            "UPDATE t SET a = $1 WHERE b = $3 AND c <> $1"
        );
        assert_eq!(numbered("?2, ?"), "$2, $3");
        assert_eq!(
            numbered("SELECT '?' || ? FROM \"a?\""),
            "SELECT '?' || $1 FROM \"a?\""
        );
    }
}
