//! End to end, every part real: a gauge scraped by Prometheus, whose `HighCPU` rule fires to
//! Alertmanager, whose webhook is a real `csmp serve` (with the repository's workflows,
//! catalog and alert rules) that starts `remediate-high-cpu` against moto; boto3 checks the
//! Auto Scaling group, the API the run and its incident. Lowering the gauge resolves the
//! alert, which signals the run, which resolves its incident.
//!
//! Waits poll (every 250 ms, at most a minute each); nothing asserts on how long anything
//! took. A wait that runs out fails with the end of each server's log.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::repo_root;
use crate::monitoring::{Alertmanager, Gauge, HIGH_CPU_RULES, Prometheus};
use crate::moto::Moto;

/// Any credentials do when moto does not check them.
const KEY_ID: &str = "AKIDCSMPTEST";
const SECRET: &str = "csmp-test-secret";

/// The most any one wait may take.
const WAIT: Duration = Duration::from_secs(60);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(250);

/// The one series the gauge serves.
const SERIES: &str = r#"csmp_test_cpu{service="web",instance="web-1"}"#;

/// A running `csmp serve` on the repository's definitions, stopped (by pid) on drop, its
/// database (beside the plugin cache the moto tests share, so plugins compile once) removed.
struct Serve {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// Its standard error.
    log: PathBuf,
    database: PathBuf,
    /// An `integration` token (for Alertmanager) and an `operator` one (for the checks).
    integration: String,
    operator: String,
    http: ureq::Agent,
}

impl Serve {
    /// Starts `csmp serve --grants GRANTS` with `env` (the `CSMP_SECRET_*` for moto) in `dir`,
    /// after minting its tokens, and waits until it says where it listens.
    fn start(dir: &Path, grants: &Path, env: &[(String, String)]) -> Self {
        let runs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("moto-runs");
        std::fs::create_dir_all(&runs).expect("the runs directory");
        let database = runs.join(format!("serve-{}.db", std::process::id()));
        remove_database(&database);
        let integration = token(&database, "integration");
        let operator = token(&database, "operator");
        let log = dir.join("serve.log");
        let root = repo_root();
        let child = crate::helpers::csmp_command()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--database")
            .arg(&database)
            .arg("--workflows")
            .arg(root.join("workflows"))
            .arg("--catalog")
            .arg(root.join("catalog"))
            .arg("--rules")
            .arg(root.join("rules"))
            .arg("--grants")
            .arg(grants)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("CSMP_PLUGINS")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("serve.stdout")).expect("a stdout file"))
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("csmp serve starts");
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .new_agent();
        let mut serve = Self {
            child,
            base: String::new(),
            log,
            database,
            integration,
            operator,
            http,
        };
        let started = Instant::now();
        serve.base = loop {
            let printed = std::fs::read_to_string(&serve.log).unwrap_or_default();
            if let Some(base) = printed
                .lines()
                .find_map(|l| l.split("listening on ").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
            {
                break base.to_string();
            }
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!("csmp serve exited ({status}) before it listened; its log: {printed}");
            }
            assert!(
                started.elapsed() < WAIT,
                "csmp serve did not say where it listens within {WAIT:?}; its log: {printed}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        if !serve.base.starts_with("http") {
            serve.base = format!("http://{}", serve.base);
        }
        serve
    }

    /// `GET PATH` with the operator token: its status and JSON body (`Null` when not JSON).
    fn get(&self, path: &str) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut response = self
            .http
            .get(&url)
            .header("authorization", &format!("Bearer {}", self.operator))
            .call()
            .unwrap_or_else(|e| panic!("GET {path} failed: {e}; csmp's log: {}", self.log()));
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// `GET PATH`, which must answer 200.
    fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(
            status,
            200,
            "GET {path}: {body}; csmp's log: {}",
            self.log()
        );
        body
    }

    /// The runs the rule `high-cpu` started.
    fn rule_runs(&self) -> Vec<Value> {
        self.ok("/v1/runs?label=rule%3Dhigh-cpu")["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The last 60 lines of its log.
    fn log(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        remove_database(&self.database);
    }
}

/// Removes `database` with its WAL, shared memory, master key and lock files.
fn remove_database(database: &Path) {
    for suffix in ["", "-wal", "-shm", ".key", ".lock"] {
        let mut path = database.as_os_str().to_os_string();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
}

/// A token of `role` made with `csmp token create`.
fn token(database: &Path, role: &str) -> String {
    let out = crate::helpers::csmp_command()
        .args(["token", "create", "--role", role, "--database"])
        .arg(database)
        .output()
        .expect("csmp token create runs");
    assert!(
        out.status.success(),
        "csmp token create --role {role}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The step `key` of a run as `GET /v1/runs/{id}` shows it.
fn step<'v>(run: &'v Value, key: &str) -> &'v Value {
    run["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["key"] == key))
        .unwrap_or(&Value::Null)
}

/// Polls `check` until it gives something; past [`WAIT`], fails saying `what` and the end of
/// every server's log.
fn wait_for<T>(
    what: &str,
    (serve, alertmanager, prometheus): (&Serve, &Alertmanager, &Prometheus),
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = check() {
            return found;
        }
        if started.elapsed() > WAIT {
            panic!(
                "timed out after {WAIT:?} waiting for {what}\n\
                 --- Prometheus's alerts: {}\n\
                 --- csmp's alerts: {}\n\
                 --- csmp's runs of high-cpu: {:?}\n\
                 --- csmp serve's log:\n{}\n\
                 --- Alertmanager's log ({}):\n{}\n\
                 --- Prometheus's log:\n{}",
                prometheus.api("/api/v1/alerts"),
                serve.get("/v1/alerts").1,
                serve.rule_runs(),
                serve.log(),
                alertmanager.url,
                alertmanager.log(),
                prometheus.log()
            );
        }
        std::thread::sleep(POLL);
    }
}

#[test]
fn prometheus_high_cpu_alert_scales_out_and_its_resolution_resolves_the_incident() {
    let moto = Moto::start();
    moto.boto(&[
        "create-group",
        "web",
        "--min",
        "1",
        "--max",
        "10",
        "--desired",
        "2",
    ]);
    let grants = moto.grants(None);
    let serve = Serve::start(moto.dir.path(), &grants, &moto.secrets(KEY_ID, SECRET));

    let gauge = Gauge::start(SERIES, 95.0);
    let alertmanager = Alertmanager::start(
        &format!("{}/v1/events/alertmanager", serve.base),
        &serve.integration,
    );
    let prometheus = Prometheus::start(&gauge.authority, &alertmanager.authority, HIGH_CPU_RULES);
    prometheus.wait_until_scraping();
    let servers = (&serve, &alertmanager, &prometheus);

    // The alert fires: the rule starts one run for the group `service=web`.
    let run = wait_for("a run of the rule high-cpu", servers, || {
        serve.rule_runs().into_iter().next()
    });
    let run_id = run["id"].as_str().expect("a run id").to_string();
    assert_eq!(run["workflow"], "remediate-high-cpu", "{run}");
    assert_eq!(run["labels"]["rule"], "high-cpu", "{run}");
    let group = run["labels"]["alert-group"]
        .as_str()
        .unwrap_or_else(|| panic!("the run names its alert group: {run}"))
        .to_string();

    // It opens its incident and adds one instance to the group named by the alert's service.
    let detail = wait_for("the run to scale out", servers, || {
        let detail = serve.ok(&format!("/v1/runs/{run_id}"));
        (step(&detail, "scale-out")["status"] == "succeeded").then_some(detail)
    });
    let inputs = &detail["inputs"];
    assert_eq!(
        (inputs["service"].clone(), inputs["group"].clone()),
        ("web".into(), "web".into()),
        "{detail}"
    );
    let incident = step(&detail, "open")["output"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("step open gives the incident's id: {detail}"))
        .to_string();
    let opened = serve.ok(&format!("/v1/incidents/{incident}"));
    assert_eq!(opened["status"], "triggered", "{opened}");
    let web = moto.boto(&["group", "web"]);
    assert_eq!(web["desired"], 3, "boto3 sees the group raised: {web}");
    let scaled = &step(&detail, "scale-out")["output"];
    assert_eq!(
        (
            scaled["previous_desired"].clone(),
            scaled["desired"].clone()
        ),
        (2.into(), 3.into()),
        "{detail}"
    );

    // The alert as stored is linked to the group and its run.
    let alerts = serve.ok("/v1/alerts?source=alertmanager");
    let alert = alerts["items"]
        .as_array()
        .and_then(|items| items.iter().find(|a| a["labels"]["alertname"] == "HighCPU"))
        .unwrap_or_else(|| panic!("the HighCPU alert is listed: {alerts}"));
    assert_eq!(alert["labels"]["service"], "web", "{alert}");
    assert_eq!(alert["outcome"], "matched", "{alert}");
    let link = alert["links"]
        .as_array()
        .and_then(|links| links.iter().find(|l| l["rule"] == "high-cpu"))
        .unwrap_or_else(|| panic!("the alert is linked to the rule's group: {alert}"));
    assert_eq!(link["group"], group.as_str(), "{alert}");
    assert_eq!(link["run_id"], run_id.as_str(), "{alert}");

    // CPU goes down: the alert resolves, the run hears it and resolves its incident.
    gauge.set(50.0);
    let done = wait_for("the run to succeed, resolved by the alert", servers, || {
        let detail = serve.ok(&format!("/v1/runs/{run_id}"));
        match detail["status"].as_str() {
            Some("succeeded") => Some(detail),
            Some("failed" | "cancelled") => panic!(
                "the run ended {}: {detail}; csmp's log: {}",
                detail["status"],
                serve.log()
            ),
            _ => None,
        }
    });
    assert_eq!(done["outputs"]["by_alert"], true, "{done}");
    assert_eq!(done["outputs"]["resolved"], true, "{done}");
    assert_eq!(done["outputs"]["incident"], incident.as_str(), "{done}");
    assert_eq!(
        step(&done, "resolved-by-alert")["status"],
        "succeeded",
        "{done}"
    );
    let resolved = wait_for("the incident to be resolved", servers, || {
        let seen = serve.ok(&format!("/v1/incidents/{incident}"));
        (seen["status"] == "resolved").then_some(seen)
    });
    assert_eq!(resolved["id"], incident.as_str(), "{resolved}");

    // Still the one run, and the group's capacity as the run left it.
    let runs = serve.rule_runs();
    assert_eq!(runs.len(), 1, "one run for the group: {runs:?}");
    assert_eq!(moto.boto(&["group", "web"])["desired"], 3);
}
