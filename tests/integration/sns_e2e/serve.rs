//! `csmp serve`: started on a fresh database, called as SNS and as an operator, and the
//! checks the tests make of its answers and of what it stored.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::{ALARM, ALARM_ARN, GROUP, POLL, RULE, RULE_YAML, WAIT};
use crate::helpers::repo_root;

/// How a call authenticates.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Auth<'a> {
    Bearer(&'a str),
    /// HTTP Basic, the token as the password (what SNS sends for `http://user:TOKEN@…`).
    Basic(&'a str, &'a str),
    None,
}

impl Auth<'_> {
    fn header(self) -> Option<String> {
        match self {
            Self::Bearer(token) => Some(format!("Bearer {token}")),
            Self::Basic(user, password) => Some(format!(
                "Basic {}",
                STANDARD.encode(format!("{user}:{password}"))
            )),
            Self::None => None,
        }
    }
}

/// What csmp answered.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) www_authenticate: Option<String>,
    pub(crate) text: String,
    pub(crate) json: Value,
}

impl Answer {
    fn detail(&self) -> &str {
        self.json["detail"].as_str().unwrap_or_default()
    }
}

/// A running `csmp serve` on the repository's workflows and catalog, with no rule of its
/// own, stopped (by pid) on drop, its database (beside the plugin cache the moto tests share,
/// so plugins compile once) removed.
pub(crate) struct Serve {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    base: String,
    log: PathBuf,
    database: PathBuf,
    pub(crate) integration: String,
    operator: String,
    http: ureq::Agent,
    _dir: tempfile::TempDir,
}

impl Serve {
    /// Starts `csmp serve` with `extra` arguments (the `--sns-*` flags) after minting an
    /// `integration` and an `operator` token, and waits until it says where it listens.
    pub(crate) fn start(name: &str, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let rules = dir.path().join("rules");
        std::fs::create_dir_all(&rules).expect("an empty rules directory");
        let runs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("moto-runs");
        std::fs::create_dir_all(&runs).expect("the runs directory");
        let database = runs.join(format!("sns-{name}-{}.db", std::process::id()));
        remove_database(&database);
        let integration = token(&database, "integration");
        let operator = token(&database, "operator");
        let log = dir.path().join("serve.log");
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
            .arg(&rules)
            .args(extra)
            .env_remove("CSMP_PLUGINS")
            .env_remove("CSMP_SNS_TOPICS")
            .env_remove("CSMP_SNS_UNVERIFIED_TOPICS")
            .env_remove("CSMP_SNS_CERT_SOURCES")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("serve.stdout")).expect("a stdout file"))
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("csmp serve starts");
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(30)))
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
            _dir: dir,
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

    /// `127.0.0.1:PORT`.
    pub(crate) fn authority(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// One call; `body` is sent with `content_type`.
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        auth: Auth<'_>,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Answer {
        let url = format!("{}{path}", self.base);
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(value) = auth.header() {
            request = request.header("authorization", value);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let sent = match body {
            Some((content_type, bytes)) => self.http.run(
                request
                    .header("content-type", content_type)
                    .body(bytes.to_vec())
                    .expect("a request"),
            ),
            None => self.http.run(request.body(()).expect("a request")),
        };
        let mut response = sent
            .unwrap_or_else(|e| panic!("{method} {path} failed: {e}; csmp's log: {}", self.log()));
        let status = response.status().as_u16();
        let www_authenticate = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            www_authenticate,
            text,
            json,
        }
    }

    /// POSTs an SNS message as SNS does (its `x-amz-sns-*` headers), the body as
    /// `application/json`.
    pub(crate) fn sns(&self, auth: Auth<'_>, envelope: &Value) -> Answer {
        self.sns_as(auth, "application/json", envelope)
    }

    /// [`Serve::sns`] with another `Content-Type`.
    pub(crate) fn sns_as(&self, auth: Auth<'_>, content_type: &str, envelope: &Value) -> Answer {
        let body = envelope.to_string();
        self.call(
            "POST",
            "/v1/events/cloudwatch",
            auth,
            &[
                (
                    "x-amz-sns-message-type",
                    envelope["Type"].as_str().unwrap_or_default(),
                ),
                (
                    "x-amz-sns-message-id",
                    envelope["MessageId"].as_str().unwrap_or_default(),
                ),
                (
                    "x-amz-sns-topic-arn",
                    envelope["TopicArn"].as_str().unwrap_or_default(),
                ),
                ("user-agent", "Amazon Simple Notification Service Agent"),
            ],
            Some((content_type, body.as_bytes())),
        )
    }

    /// `GET PATH` with the operator token, which must answer 200.
    pub(crate) fn ok(&self, path: &str) -> Value {
        let answer = self.call("GET", path, Auth::Bearer(&self.operator), &[], None);
        assert_eq!(
            answer.status,
            200,
            "GET {path}: {}; csmp's log: {}",
            answer.text,
            self.log()
        );
        answer.json
    }

    /// Sets the rule that starts `hello` for the test's alarm.
    pub(crate) fn put_rule(&self) {
        let yaml = RULE_YAML.replace("RULE", RULE).replace("ALARM", ALARM);
        let answer = self.call(
            "PUT",
            &format!("/v1/rules/{RULE}"),
            Auth::Bearer(&self.operator),
            &[],
            Some(("application/yaml", yaml.as_bytes())),
        );
        assert_eq!(answer.status, 201, "PUT the rule: {}", answer.text);
    }

    /// The CloudWatch alerts stored, newest first.
    pub(crate) fn alerts(&self) -> Vec<Value> {
        items(&self.ok("/v1/alerts?source=cloudwatch&limit=200"))
    }

    /// The notifications stored, newest first.
    pub(crate) fn events(&self) -> Vec<Value> {
        items(&self.ok("/v1/events?limit=200"))
    }

    /// The runs the test's rule started.
    pub(crate) fn rule_runs(&self) -> Vec<Value> {
        items(&self.ok(&format!("/v1/runs?label=rule%3D{RULE}")))
    }

    /// The last 60 lines of its log.
    pub(crate) fn log(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Polls `check` until it gives something; past [`WAIT`], fails saying `what`, the
    /// alerts and runs csmp has and the end of its log.
    pub(crate) fn wait_for<T>(&self, what: &str, check: impl FnMut() -> Option<T>) -> T {
        poll(check).unwrap_or_else(|| {
            panic!(
                "timed out after {WAIT:?} waiting for {what}\n--- csmp's CloudWatch alerts: {:?}\n\
                 --- runs of {RULE}: {:?}\n--- csmp serve's log:\n{}",
                self.alerts(),
                self.rule_runs(),
                self.log()
            )
        })
    }

    /// Waits for the rule's one run to succeed; returns it as `GET /v1/runs/{id}` shows it.
    pub(crate) fn wait_for_hello(&self) -> Value {
        let run = self.wait_for("a run of the rule", || self.rule_runs().into_iter().next());
        assert_eq!(run["workflow"], "hello", "{run}");
        let id = run["id"].as_str().expect("a run id").to_owned();
        self.wait_for("the rule's run to succeed", || {
            let detail = self.ok(&format!("/v1/runs/{id}"));
            match detail["status"].as_str() {
                Some("succeeded") => Some(detail),
                Some("failed" | "cancelled") => {
                    panic!("the run ended {}: {detail}", detail["status"])
                }
                _ => None,
            }
        })
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

/// `items` of a page.
pub(crate) fn items(page: &Value) -> Vec<Value> {
    page["items"].as_array().cloned().unwrap_or_default()
}

/// Polls `check` every [`POLL`] for at most [`WAIT`].
pub(crate) fn poll<T>(mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        if started.elapsed() > WAIT {
            return None;
        }
        std::thread::sleep(POLL);
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

/// The alerts of the test's alarm, newest first.
pub(crate) fn alarm_alerts(serve: &Serve) -> Vec<Value> {
    serve
        .alerts()
        .into_iter()
        .filter(|a| a["fingerprint"] == ALARM_ARN)
        .collect()
}

/// Checks an accepted (202) notification's answer: one alert, the alarm, in `status`.
pub(crate) fn assert_taken(answer: &Answer, status: &str, serve: &Serve) {
    assert_eq!(
        answer.status,
        202,
        "the notification is taken: {}; csmp's log: {}",
        answer.text,
        serve.log()
    );
    assert_eq!(answer.json["source"], "cloudwatch", "{}", answer.text);
    assert_eq!(answer.json["alerts"], 1, "{}", answer.text);
    let decision = &answer.json["decisions"][0];
    assert_eq!(decision["fingerprint"], ALARM_ARN, "{}", answer.text);
    assert_eq!(decision["status"], status, "{}", answer.text);
}

/// Checks a refusal: 403, a problem whose detail says `says`.
pub(crate) fn assert_refused(answer: &Answer, says: &str, what: &str) {
    assert_eq!(answer.status, 403, "{what} is refused: {}", answer.text);
    assert_eq!(
        answer.json["type"], "urn:csmp:problem:forbidden",
        "{what}: {}",
        answer.text
    );
    assert!(
        answer.detail().contains(says),
        "{what}: the problem says {says:?}: {}",
        answer.text
    );
}

/// Checks the stored alert of the firing alarm: its labels from the alarm and its dimensions.
pub(crate) fn assert_firing_alert(alert: &Value) {
    assert_eq!(alert["source"], "cloudwatch", "{alert}");
    assert_eq!(alert["status"], "firing", "{alert}");
    assert_eq!(alert["labels"]["alertname"], ALARM, "{alert}");
    assert_eq!(alert["labels"]["AutoScalingGroupName"], GROUP, "{alert}");
    assert_eq!(alert["outcome"], "matched", "{alert}");
    assert!(
        alert["links"]
            .as_array()
            .is_some_and(|links| links.iter().any(|l| l["rule"] == RULE)),
        "the alert went to the rule's group: {alert}"
    );
}
