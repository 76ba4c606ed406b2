//! Support for tests: a throwaway PostgreSQL server.
//!
//! [`postgres`] starts, once per test process, a real PostgreSQL cluster of the machine's own
//! binaries (`pg_config --bindir`): `initdb` into a temporary directory (as the `postgres` user
//! when run as root, which `initdb` refuses), `pg_ctl start` on a free loopback port. A watchdog
//! stops the server by its pid, and removes the directory, once the test process is gone, however
//! it ends. Each caller gets a database of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

/// A running throwaway cluster.
#[derive(Debug)]
pub struct Cluster {
    /// The loopback port it listens on.
    pub port: u16,
    /// Its data directory.
    pub dir: PathBuf,
    /// The directory of its binaries.
    pub bindir: PathBuf,
}

impl Cluster {
    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// The URL of a new, empty database on this process's throwaway cluster (started on first use).
pub async fn postgres() -> Result<String, String> {
    let cluster = cluster()?;
    let name = format!(
        "t{}_{}",
        std::process::id(),
        DATABASES.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres"))
        .await
        .map_err(|e| format!("cannot reach the test PostgreSQL on {}: {e}", cluster.port))?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .map_err(|e| format!("cannot create database {name}: {e}"))?;
    Ok(cluster.url(&name))
}

/// This process's cluster, started on first use.
pub fn cluster() -> Result<&'static Cluster, String> {
    CLUSTER.get_or_init(start).as_ref().map_err(Clone::clone)
}

fn start() -> Result<Cluster, String> {
    let bindir = PathBuf::from(
        String::from_utf8_lossy(
            &Command::new("pg_config")
                .arg("--bindir")
                .output()
                .map_err(|e| format!("pg_config not found (install postgresql): {e}"))?
                .stdout,
        )
        .trim(),
    );
    let as_root = is_root();
    let base = std::env::temp_dir().join(format!("csmp-pg-{}", std::process::id()));
    let dir = base.join("data");
    std::fs::create_dir_all(&base).map_err(|e| format!("cannot create {}: {e}", base.display()))?;
    if as_root {
        let uid = postgres_uid()?;
        std::os::unix::fs::chown(&base, Some(uid), None)
            .map_err(|e| format!("cannot give {} to postgres: {e}", base.display()))?;
    }
    run(
        as_root,
        &bindir.join("initdb"),
        &[
            "-D",
            path(&dir)?,
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
    )?;
    let port = free_port()?;
    let options = format!(
        "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
         -c synchronous_commit=on -c max_connections=200",
        path(&base)?
    );
    run(
        as_root,
        &bindir.join("pg_ctl"),
        &[
            "-D",
            path(&dir)?,
            "-l",
            path(&base.join("server.log"))?,
            "-o",
            &options,
            "-w",
            "start",
        ],
    )?;
    watchdog(as_root, &bindir, &base)?;
    Ok(Cluster { port, dir, bindir })
}

/// Stops the server (by the pid in its `postmaster.pid`) and removes its files once this
/// process has exited.
fn watchdog(as_root: bool, bindir: &Path, base: &Path) -> Result<(), String> {
    let script = format!(
        "while [ -d /proc/{pid} ]; do sleep 0.5; done; \
         {ctl} -D {data} stop -m immediate >/dev/null 2>&1 || \
         kill -9 \"$(head -n1 {data}/postmaster.pid)\" 2>/dev/null; rm -rf {base}",
        pid = std::process::id(),
        ctl = path(&bindir.join("pg_ctl"))?,
        data = path(&base.join("data"))?,
        base = path(base)?,
    );
    let mut cmd = as_postgres(as_root, Path::new("sh"));
    cmd.args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn()
        .map_err(|e| format!("cannot start the PostgreSQL watchdog: {e}"))?;
    Ok(())
}

fn run(as_root: bool, program: &Path, args: &[&str]) -> Result<(), String> {
    let out = as_postgres(as_root, program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed: {}{}",
            program.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `program`, run as the `postgres` user when this process is root.
fn as_postgres(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn postgres_uid() -> Result<u32, String> {
    let out = Command::new("id")
        .args(["-u", "postgres"])
        .output()
        .map_err(|e| format!("cannot look up the postgres user: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| "there is no `postgres` user (install postgresql)".to_string())
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("no free loopback port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

fn path(p: &Path) -> Result<&str, String> {
    p.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", p.display()))
}
