//! `csmp bench --database postgres://…`: each workload on a database of its own, created on the
//! given server before it runs and dropped at the end.

use std::sync::Mutex;

use anyhow::Context as _;
use sqlx::{AssertSqlSafe, Connection as _};

use crate::store::redact;

/// The server the workloads run on, and the databases made there.
#[derive(Debug)]
pub(super) struct Server {
    /// The URL given (its database is where `CREATE DATABASE` is sent from).
    url: String,
    /// The databases created, to drop at the end.
    made: Mutex<Vec<String>>,
}

impl Server {
    pub(super) fn new(url: String) -> Self {
        Self {
            url,
            made: Mutex::new(Vec::new()),
        }
    }

    /// The URL, password hidden.
    pub(super) fn shown(&self) -> String {
        redact(&self.url)
    }

    /// A new, empty database for the workload file name `file` (`chain.db`), as a URL.
    pub(super) async fn fresh(&self, file: &str) -> anyhow::Result<String> {
        let stem: String = file
            .split('.')
            .next()
            .unwrap_or(file)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let name = format!("csmp_bench_{}_{stem}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&self.url)
            .await
            .with_context(|| format!("connecting to {}", self.shown()))?;
        for sql in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut admin)
                .await
                .with_context(|| {
                    format!(
                        "creating database {name} on {} (the user needs CREATEDB)",
                        self.shown()
                    )
                })?;
        }
        self.made
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(name.clone());
        Ok(with_database(&self.url, &name))
    }

    /// Drops every database [`Server::fresh`] made.
    pub(super) async fn drop_all(&self) -> anyhow::Result<()> {
        let made = std::mem::take(
            &mut *self
                .made
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if made.is_empty() {
            return Ok(());
        }
        let mut admin = sqlx::PgConnection::connect(&self.url)
            .await
            .with_context(|| format!("connecting to {}", self.shown()))?;
        for name in made {
            sqlx::raw_sql(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await
            .with_context(|| format!("dropping the benchmark's database {name}"))?;
        }
        Ok(())
    }
}

/// `url` naming database `name` instead of its own (its query, if any, kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_at = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_at..].find('/') {
        Some(slash) => &base[..authority_at + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres", "b"),
            "postgres://u:p@h:5432/b"
        );
        assert_eq!(with_database("postgres://h", "b"), "postgres://h/b");
        assert_eq!(
            with_database("postgresql://h/x?sslmode=disable", "b"),
            "postgresql://h/b?sslmode=disable"
        );
    }
}
