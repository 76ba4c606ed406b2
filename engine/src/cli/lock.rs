//! One `csmp serve` per SQLite file.
//!
//! Two services on one file would both execute every unfinished run. `serve` therefore holds an
//! exclusive lock on `<database>.lock` for its lifetime; the kernel drops it when the process
//! ends, however it ends (a `kill -9` included), so a stale lock never blocks a restart. The
//! file names the holder (its pid and start time) for the message a second `serve` gets.
//! `csmp run` and `csmp token create` take no lock: they may run beside a `serve`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The lock, held while this value lives.
#[derive(Debug)]
pub struct ServeLock {
    /// The open, locked file (closing it releases the lock).
    _file: File,
}

impl ServeLock {
    /// Takes the lock of `database`, or says who holds it.
    pub fn take(database: &Path) -> anyhow::Result<Self> {
        let path = lock_path(database);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                anyhow::bail!(
                    "another csmp serve is using {} ({}); stop it first, or give this one another --database",
                    database.display(),
                    if holder.is_empty() {
                        "its lock file names no process"
                    } else {
                        holder
                    }
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "pid {}, started {started}", std::process::id()))
            .and_then(|()| file.flush())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self { _file: file })
    }
}

/// `<database>.lock` beside the database.
fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_first_holder() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("csmp.db");
        let first = ServeLock::take(&db).expect("the first takes it");
        let err = ServeLock::take(&db).expect_err("the second is refused");
        let text = format!("{err:#}");
        assert!(text.contains("another csmp serve is using"), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        ServeLock::take(&db).expect("free again once the first is gone");
    }
}
