//! moto (`moto_server`, an emulator of AWS's own APIs) for the AWS plugins' tests: one server
//! per test on a free loopback port, stopped by its pid when the test ends; boto3 (AWS's SDK
//! for Python, `boto_check.py`) as the independent client that seeds state and checks results;
//! and `csmp run` of a workflow with the grants and secrets an operator would set for moto.
//!
//! moto and boto3 come from PyPI (`pip install "moto[server]" boto3`; `tests/run` installs them
//! into `target/ci-venv` and puts it on `PATH`). A test that cannot find them fails and says
//! how to install them.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::repo_root;

/// How to get what these tests need.
const INSTALL: &str = "run the tests with `tests/run`, which installs moto and boto3 into the \
    virtualenv target/ci-venv and puts it on PATH (or, after one tests/run, \
    `export PATH=$PWD/target/ci-venv/bin:$PATH` before cargo test)";

/// How long moto may take to start listening.
const START: Duration = Duration::from_secs(60);

/// A running `moto_server`, stopped (by pid) on drop.
pub(crate) struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) endpoint: String,
    /// `127.0.0.1:PORT`, the exact grant the AWS plugins need.
    pub(crate) authority: String,
    /// Holds the server's log and the test's files.
    pub(crate) dir: tempfile::TempDir,
    /// The database `csmp run` uses, beside the plugin cache all moto tests share; removed on
    /// drop.
    database: PathBuf,
}

impl Moto {
    /// A server that accepts any credentials.
    pub(crate) fn start() -> Self {
        Self::spawn(&[])
    }

    /// A server that checks signatures and credentials against its own IAM after the first
    /// `open_calls` requests (which seed a user and its key: see `boto_check.py seed-auth`).
    pub(crate) fn start_with_authentication(open_calls: u32) -> Self {
        Self::spawn(&[("INITIAL_NO_AUTH_ACTION_COUNT", open_calls.to_string())])
    }

    fn spawn(env: &[(&str, String)]) -> Self {
        python_with_boto3();
        let dir = tempfile::tempdir().expect("a temp dir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("moto.log")).expect("a log file");
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server ({e}): {INSTALL}"));
        let runs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("moto-runs");
        std::fs::create_dir_all(&runs).expect("the runs directory");
        let moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            authority: format!("127.0.0.1:{port}"),
            dir,
            database: runs.join(format!("{}-{port}.db", std::process::id())),
        };
        moto.wait_until_listening(port);
        moto
    }

    fn wait_until_listening(&self, port: u16) {
        let started = Instant::now();
        while started.elapsed() < START {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let asked = s.write_all(
                    b"GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                );
                let mut answer = [0u8; 12];
                if asked.is_ok()
                    && s.read_exact(&mut answer).is_ok()
                    && answer.starts_with(b"HTTP/1.")
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "moto_server did not answer on port {port} within {START:?}; its log: {}",
            std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
        );
    }

    /// Runs `boto_check.py COMMAND ARGS` against this server and returns its JSON.
    pub(crate) fn boto(&self, args: &[&str]) -> Value {
        self.boto_as(None, args)
    }

    /// [`Moto::boto`] with `(key id, secret)` credentials.
    pub(crate) fn boto_as(&self, credentials: Option<(&str, &str)>, args: &[&str]) -> Value {
        let mut command = Command::new("python3");
        command
            .arg(repo_root().join("tests/integration/boto_check.py"))
            .args(["--endpoint", &self.endpoint]);
        if let Some((id, secret)) = credentials {
            command.args(["--key-id", id, "--secret", secret]);
        }
        let out = command
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3 ({e}): {INSTALL}"));
        assert!(
            out.status.success(),
            "boto_check.py {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "boto_check.py {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// The instances carrying tag `key=value`, as boto3 sees them.
    pub(crate) fn instances(&self, key: &str, value: &str) -> Vec<Value> {
        let found = self.boto(&["instances", "--tag", &format!("{key}={value}")]);
        found["instances"].as_array().cloned().unwrap_or_default()
    }

    /// A grants file for the AWS plugins (this server's exact address, the `aws_*` secrets) and
    /// `notify` (the `extra` address, `notify_*`).
    pub(crate) fn grants(&self, notify_host: Option<&str>) -> PathBuf {
        let path = self.dir.path().join("grants.yaml");
        let mut yaml = String::from("plugins:\n");
        for plugin in ["aws-ec2", "aws-autoscaling", "aws-cloudwatch"] {
            yaml.push_str(&format!(
                "  {plugin}:\n    http_hosts: [\"{}\"]\n    secrets: [\"aws_*\"]\n",
                self.authority
            ));
        }
        if let Some(host) = notify_host {
            yaml.push_str(&format!(
                "  notify:\n    http_hosts: [\"{host}\"]\n    secrets: [\"notify_*\"]\n"
            ));
        }
        std::fs::write(&path, yaml).expect("grants written");
        path
    }

    /// The environment that gives `csmp run` this server and credentials as secrets.
    pub(crate) fn secrets(&self, key_id: &str, secret: &str) -> Vec<(String, String)> {
        vec![
            ("CSMP_SECRET_AWS_ACCESS_KEY_ID".into(), key_id.into()),
            ("CSMP_SECRET_AWS_SECRET_ACCESS_KEY".into(), secret.into()),
            ("CSMP_SECRET_AWS_ENDPOINT".into(), self.endpoint.clone()),
            ("CSMP_SECRET_AWS_REGION".into(), "us-east-1".into()),
        ]
    }

    /// `csmp run FILE --input …` with the grants and `env`, on this test's database (beside a
    /// plugin cache all moto tests share, so each plugin compiles once).
    pub(crate) fn csmp_run(
        &self,
        file: &Path,
        inputs: &[(&str, &str)],
        grants: &Path,
        env: &[(String, String)],
    ) -> Ran {
        let mut command = crate::helpers::csmp_command();
        command
            .arg("run")
            .arg(file)
            .arg("--grants")
            .arg(grants)
            .arg("--database")
            .arg(&self.database);
        for (k, v) in inputs {
            command.args(["--input", &format!("{k}={v}")]);
        }
        let out = command
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("CSMP_DATABASE")
            .env_remove("CSMP_GRANTS")
            .current_dir(self.dir.path())
            .output()
            .expect("csmp runs");
        Ran::from(out)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.database.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one `csmp run` did.
#[derive(Debug)]
pub(crate) struct Ran {
    /// Its exit code (0 succeeded, 1 failed, 2 could not start).
    pub(crate) code: Option<i32>,
    /// The run id it printed.
    pub(crate) run_id: String,
    /// The run's outputs (the JSON it printed last), `Null` when it printed none.
    pub(crate) outputs: Value,
    /// Everything it printed, for failure messages.
    pub(crate) printed: String,
}

impl From<Output> for Ran {
    fn from(out: Output) -> Self {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let printed = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let run_id = stdout
            .lines()
            .find_map(|l| {
                l.strip_prefix("run ")
                    .and_then(|r| r.split_whitespace().next())
            })
            .unwrap_or_default()
            .to_string();
        let outputs = stdout
            .find("\n{")
            .and_then(|i| serde_json::from_str(&stdout[i + 1..]).ok())
            .unwrap_or(Value::Null);
        Self {
            code: out.status.code(),
            run_id,
            outputs,
            printed,
        }
    }
}

/// A loopback port nobody listens on (bound, then released for the server).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Fails the test unless `moto_server` is on PATH and `python3` has boto3.
fn python_with_boto3() {
    let moto = Command::new("moto_server").arg("--help").output();
    assert!(
        moto.as_ref().is_ok_and(|o| o.status.success()),
        "moto_server is not on PATH: {INSTALL}"
    );
    let boto3 = Command::new("python3")
        .args(["-c", "import boto3"])
        .output();
    assert!(
        boto3.as_ref().is_ok_and(|o| o.status.success()),
        "python3 on PATH cannot import boto3: {INSTALL}"
    );
}
