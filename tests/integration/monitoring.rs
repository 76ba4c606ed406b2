//! A real monitoring stack for the Alertmanager receiver's tests: Prometheus scraping a
//! [`Gauge`] the test sets, evaluating the test's alerting rules and sending what fires to an
//! Alertmanager, whose webhook (with a bearer token) is csmp's `/v1/events/alertmanager`. One
//! of each per test on free loopback ports, their files in a temp dir, stopped by pid on drop.
//!
//! Prometheus and Alertmanager are Debian's `prometheus` and `prometheus-alertmanager` (whose
//! binary is `/usr/bin/prometheus-alertmanager`); a test that cannot find them fails and says
//! how to install them.
//!
//! Timing (Prometheus 2.42, Alertmanager 0.25): both are ready in well under a second, but
//! Prometheus only applies its scrape targets and Alertmanagers about 5 s after it starts
//! ([`Prometheus::wait_until_scraping`]). After that, with the 1 s intervals configured here, a
//! gauge raised over a rule's threshold reaches the webhook as `firing` in about 2–3 s, and a
//! gauge lowered again as `resolved` in about 1 s.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How to get what these tests need.
const INSTALL: &str = "install Debian's prometheus and prometheus-alertmanager (.ci/run does)";

/// How long either server may take to become ready, or Prometheus to find its targets.
const START: Duration = Duration::from_secs(30);

/// Rules for a gauge `csmp_test_cpu`: `HighCPU` (severity `critical`, and the series' own
/// labels, such as `service` and `instance`) as soon as it is over 90.
pub(crate) const HIGH_CPU_RULES: &str = r#"groups:
  - name: csmp-test
    rules:
      - alert: HighCPU
        expr: csmp_test_cpu > 90
        for: 0s
        labels:
          severity: critical
        annotations:
          summary: "{{ $labels.instance }} CPU at {{ $value }}"
"#;

/// A running Prometheus, stopped (by pid) on drop.
pub(crate) struct Prometheus {
    server: Server,
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
}

impl Prometheus {
    /// Scrapes `target` (`HOST:PORT`, e.g. a [`Gauge`]'s authority) every second, keeping the
    /// series' own labels, evaluates `rules` (a rule file's YAML, e.g. [`HIGH_CPU_RULES`]) every
    /// second and sends alerts to the Alertmanager at `alertmanager` (`HOST:PORT`).
    pub(crate) fn start(target: &str, alertmanager: &str, rules: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(dir.path().join("rules.yml"), rules).expect("rules written");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [rules.yml]\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [{}]\n\
             scrape_configs:\n  - job_name: csmp-test\n    honor_labels: true\n    \
             static_configs:\n      - targets: [{}]\n",
            yaml(alertmanager),
            yaml(target)
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("config written");
        let (server, url) = Server::start("Prometheus", &["prometheus"], dir, |dir, url| {
            vec![
                format!("--config.file={}", dir.join("prometheus.yml").display()),
                format!("--storage.tsdb.path={}", dir.join("data").display()),
                format!("--web.listen-address={}", &url["http://".len()..]),
                format!("--web.external-url={url}"),
            ]
        });
        Self { server, url }
    }

    /// Waits until Prometheus has scraped its target and knows its Alertmanager (about 5 s
    /// after it starts), so that from then on alerts follow the gauge within seconds.
    pub(crate) fn wait_until_scraping(&self) {
        let started = Instant::now();
        while started.elapsed() < START {
            let targets = self.api("/api/v1/targets");
            let managers = self.api("/api/v1/alertmanagers");
            let up = targets["data"]["activeTargets"]
                .as_array()
                .is_some_and(|t| !t.is_empty() && t.iter().all(|t| t["health"] == "up"));
            let known = managers["data"]["activeAlertmanagers"]
                .as_array()
                .is_some_and(|m| !m.is_empty());
            if up && known {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "Prometheus did not scrape its target and find its Alertmanager within {START:?}: \
             targets {}, alertmanagers {}; its log: {}",
            self.api("/api/v1/targets"),
            self.api("/api/v1/alertmanagers"),
            self.log()
        );
    }

    /// `GET PATH` of Prometheus's HTTP API as JSON (`Null` when it does not answer JSON), e.g.
    /// `/api/v1/alerts` for a failure message.
    pub(crate) fn api(&self, path: &str) -> Value {
        get(&self.url, path)
            .and_then(|(_, body)| serde_json::from_str(&body).ok())
            .unwrap_or(Value::Null)
    }

    /// The end of its log, for failure messages.
    pub(crate) fn log(&self) -> String {
        self.server.log()
    }
}

/// A running Alertmanager, stopped (by pid) on drop.
pub(crate) struct Alertmanager {
    server: Server,
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
    /// `127.0.0.1:PORT`, what [`Prometheus::start`] takes.
    pub(crate) authority: String,
}

impl Alertmanager {
    /// Sends every group of alerts (grouped by `alertname` and `service`, 1 s group wait and
    /// interval, repeated only after a day) to the webhook at `webhook` (csmp's
    /// `http://127.0.0.1:PORT/v1/events/alertmanager`) with `Authorization: Bearer TOKEN`, and
    /// sends their resolution too. Clustering is off.
    pub(crate) fn start(webhook: &str, token: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = format!(
            "route:\n  receiver: csmp\n  group_by: [alertname, service]\n  group_wait: 1s\n  \
             group_interval: 1s\n  repeat_interval: 24h\n\
             receivers:\n  - name: csmp\n    webhook_configs:\n      - url: {}\n        \
             send_resolved: true\n        http_config:\n          authorization:\n            \
             type: Bearer\n            credentials: {}\n",
            yaml(webhook),
            yaml(token)
        );
        std::fs::write(dir.path().join("alertmanager.yml"), config).expect("config written");
        let (server, url) = Server::start(
            "Alertmanager",
            &["alertmanager", "prometheus-alertmanager"],
            dir,
            |dir, url| {
                vec![
                    format!("--config.file={}", dir.join("alertmanager.yml").display()),
                    format!("--storage.path={}", dir.join("data").display()),
                    format!("--web.listen-address={}", &url["http://".len()..]),
                    format!("--web.external-url={url}"),
                    "--cluster.listen-address=".into(),
                ]
            },
        );
        let authority = url["http://".len()..].to_string();
        Self {
            server,
            url,
            authority,
        }
    }

    /// The end of its log, for failure messages.
    pub(crate) fn log(&self) -> String {
        self.server.log()
    }
}

/// A `/metrics` endpoint on a free loopback port serving one gauge series whose value the test
/// sets; stopped on drop.
pub(crate) struct Gauge {
    /// `127.0.0.1:PORT`, what [`Prometheus::start`] takes.
    pub(crate) authority: String,
    value: Arc<Mutex<f64>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Gauge {
    /// Serves `series` (a metric name with its labels, e.g.
    /// `csmp_test_cpu{service="web",instance="web-1"}`) at `value`.
    pub(crate) fn start(series: &str, value: f64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let authority = listener.local_addr().expect("its address").to_string();
        let value = Arc::new(Mutex::new(value));
        let stop = Arc::new(AtomicBool::new(false));
        let name = series.split('{').next().unwrap_or(series).to_string();
        let (series, shared, stopped) = (series.to_string(), value.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let current = *shared.lock().expect("the gauge's value");
                let body = format!("# TYPE {name} gauge\n{series} {current}\n");
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            }
        });
        Self {
            authority,
            value,
            stop,
            thread: Some(thread),
        }
    }

    /// Serves `value` from the next scrape on.
    pub(crate) fn set(&self, value: f64) {
        *self.value.lock().expect("the gauge's value") = value;
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(&self.authority);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One server process with its files (config, storage, `log`) in a temp dir; killed by pid
/// and waited for on drop, before the dir goes.
struct Server {
    child: Child,
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts the first of `names` found (on `PATH`, else in `/usr/bin`) with `args(dir, url)`
    /// on a free loopback port, and waits for its `/-/ready`. Returns it and its URL.
    fn start(
        what: &str,
        names: &[&str],
        dir: tempfile::TempDir,
        args: impl FnOnce(&Path, &str) -> Vec<String>,
    ) -> (Self, String) {
        let binary = binary(names).unwrap_or_else(|| panic!("no {} found: {INSTALL}", names[0]));
        let url = format!("http://127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("log")).expect("a log file");
        let child = Command::new(&binary)
            .args(args(dir.path(), &url))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} ({e}): {INSTALL}", binary.display()));
        let mut server = Self { child, dir };
        let started = Instant::now();
        while started.elapsed() < START {
            if get(&url, "/-/ready").is_some_and(|(status, _)| status == 200) {
                return (server, url);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "{what} exited ({status}) before it was ready; its log: {}",
                    server.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{what} was not ready at {url} within {START:?}; its log: {}",
            server.log()
        );
    }

    /// The last 40 lines of its log.
    fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first of `names` on `PATH`, else in `/usr/bin`.
fn binary(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    let usr_bin = [PathBuf::from("/usr/bin")];
    names
        .iter()
        .flat_map(|name| dirs.iter().chain(&usr_bin).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// `GET URL PATH` (HTTP/1.0, so the answer ends when the connection closes): its status and
/// body, `None` when nothing answers.
fn get(url: &str, path: &str) -> Option<(u16, String)> {
    let authority = url.strip_prefix("http://").unwrap_or(url);
    let mut stream = TcpStream::connect(authority).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// `text` as a YAML scalar (a JSON string is a YAML double-quoted one).
fn yaml(text: &str) -> String {
    Value::from(text).to_string()
}

/// A loopback port nobody listens on (bound, then released for the server).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
