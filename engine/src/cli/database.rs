//! `--database`: a SQLite file, or a PostgreSQL server named by URL.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::store::{Store, StoreError, StoreOptions, is_postgres, redact};

/// Where the service keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// The embedded store in this file (created if missing).
    File(PathBuf),
    /// A PostgreSQL database, `postgres://user@host:port/name`.
    Postgres {
        /// Its URL, password included (never shown: see [`Database`]'s `Display`).
        url: String,
        /// Where this process keeps its other files (the plugin cache, the master key file):
        /// `CSMP_DATA_DIR`, else `data`.
        data: PathBuf,
    },
}

impl FromStr for Database {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err("give a SQLite file or a postgres:// URL".into());
        }
        if is_postgres(s) {
            let data = std::env::var_os("CSMP_DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("data"));
            Ok(Database::Postgres {
                url: s.to_string(),
                data,
            })
        } else {
            Ok(Database::File(PathBuf::from(s)))
        }
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::File(p) => write!(f, "{}", p.display()),
            Database::Postgres { url, .. } => f.write_str(&redact(url)),
        }
    }
}

impl Database {
    /// Opens it, applying the schema.
    pub async fn open(&self, options: StoreOptions) -> Result<Store, StoreError> {
        match self {
            Database::File(p) => Store::open_with(p, options).await,
            Database::Postgres { url, .. } => Store::open_postgres(url).await,
        }
    }

    /// The directory where csmp keeps its other files (the plugin cache): beside a SQLite
    /// file (`.` for a bare name such as `db.sqlite`), or the data directory of a PostgreSQL
    /// service.
    pub fn data_dir(&self) -> PathBuf {
        match self {
            Database::File(p) => match p.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            },
            Database::Postgres { data, .. } => data.clone(),
        }
    }

    /// The file the master key is kept in when `CSMP_MASTER_KEY` is not set: `<file>.key`
    /// beside a SQLite file, `postgres.key` in a PostgreSQL service's data directory.
    pub fn key_file(&self) -> PathBuf {
        match self {
            Database::File(p) => crate::vault::key_file_of(p),
            Database::Postgres { data, .. } => data.join("postgres.key"),
        }
    }

    /// The SQLite file, when it is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Database::File(p) => Some(p),
            Database::Postgres { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Database;

    #[test]
    fn a_url_names_postgres_and_hides_its_password() {
        let db: Database = "postgres://csmp:hunter2@db:5432/csmp"
            .parse()
            .expect("parses");
        assert!(matches!(db, Database::Postgres { .. }));
        assert_eq!(db.to_string(), "postgres://csmp:***@db:5432/csmp");
        let file: Database = "data/csmp.db".parse().expect("parses");
        assert_eq!(file.data_dir(), std::path::Path::new("data"));
        assert_eq!(file.key_file(), std::path::Path::new("data/csmp.db.key"));
        assert!("".parse::<Database>().is_err());
    }
}
