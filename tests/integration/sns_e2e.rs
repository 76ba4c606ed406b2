//! CloudWatch alarms through Amazon SNS into a real `csmp serve` (`POST
//! /v1/events/cloudwatch`), end to end.
//!
//! Signed (no emulator): the test plays SNS. It makes an RSA key and a self-signed certificate,
//! serves the certificate and a `SubscribeURL` from a loopback HTTP server of its own (counting
//! every request), and signs each message as SNS does (`SignatureVersion` 2: SHA256withRSA,
//! PKCS#1 v1.5, over the string to sign written out here independently of the engine's).
//!
//! moto: a topic of a real SNS emulator delivers to csmp over HTTP, the subscription endpoint
//! carrying the integration token as `http://csmp:TOKEN@…`. moto signs nothing csmp can verify
//! (its `SigningCertURL` names AWS), so its topic is given with `--sns-unverified-topic`. A
//! recorder subscribed beside csmp keeps what moto sent, as evidence of its headers.
//!
//! Waits poll (every 250 ms, at most a minute each); nothing asserts on how long anything took.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1v15::{Signature, SigningKey};
use rsa::sha2::Sha256;
use rsa::signature::{Keypair as _, SignatureEncoding as _, Signer as _};
use rsa::{Generate as _, PrivateKey};
use serde_json::{Value, json};
use x509_cert::builder::{Builder as _, CertificateBuilder, profile::cabf};
use x509_cert::der::EncodePem as _;
use x509_cert::der::pem::LineEnding;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfo;
use x509_cert::time::{Time, Validity};

use crate::helpers::repo_root;
use crate::moto::Moto;

/// The most any one wait may take.
const WAIT: Duration = Duration::from_secs(60);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(250);

/// The verified topic of the signed test.
const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:alarms";
/// A topic nobody allowed.
const OTHER_TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:someone-elses";
/// The alarm every test raises and clears.
const ALARM: &str = "csmp-e2e-high-cpu";
/// Its ARN, which csmp takes as the alert's fingerprint.
const ALARM_ARN: &str = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:csmp-e2e-high-cpu";
/// The Auto Scaling group the alarm watches (a dimension, so a label).
const GROUP: &str = "web-asg";
/// Where the test's certificate is served (the name SNS gives its own).
const PEM_PATH: &str = "/SimpleNotificationService-test.pem";
/// The rule that starts `hello` for the alarm.
const RULE: &str = "sns-high-cpu";
const RULE_YAML: &str = r#"name: RULE
description: The SNS end-to-end test's CloudWatch alarm starts hello for its group
match:
  source: [cloudwatch]
  labels: { alertname: "ALARM" }
group_wait: 0s
then:
  - workflow: hello
    inputs: { who: "{{ alert.labels.AutoScalingGroupName }}", times: 1 }
"#;

// ---------------------------------------------------------------------------------------------
// A loopback HTTP server of the test's own.

/// One request a [`Site`] received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// Path and query, as sent.
    target: String,
    /// Names in lowercase.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// What a [`Site`] answers.
struct Reply {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type: content_type.to_owned(),
            body: body.into(),
        }
    }
}

type Handler = Box<dyn Fn(&Seen) -> Reply + Send + 'static>;

/// A one-thread HTTP/1.1 server on `IP:0` that keeps every request it answered (recorded
/// before its answer is written) and stops on drop.
struct Site {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Site {
    fn start(ip: &str, handler: Handler) -> Self {
        let listener = TcpListener::bind((ip, 0))
            .unwrap_or_else(|e| panic!("cannot listen on {ip}:0 for a test server: {e}"));
        let addr = listener.local_addr().expect("the test server's address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let seen = Arc::clone(&seen);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(mut stream) = stream else { continue };
                    let Some(request) = read_request(&stream) else {
                        continue;
                    };
                    let reply = handler(&request);
                    seen.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(request);
                    let head = format!(
                        "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        reply.status,
                        reply.content_type,
                        reply.body.len()
                    );
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&reply.body);
                    let _ = stream.flush();
                }
            })
        };
        Self {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://IP:PORT`.
    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many requests it answered in all.
    fn hits(&self) -> usize {
        self.seen().len()
    }

    /// How many requests for exactly `target` it answered.
    fn hits_of(&self, target: &str) -> usize {
        self.seen().iter().filter(|s| s.target == target).count()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees `stop`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request (head and a `content-length` body); `None` for anything else.
fn read_request(stream: &TcpStream) -> Option<Seen> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        method,
        target,
        headers,
        body,
    })
}

// ---------------------------------------------------------------------------------------------
// Playing SNS: a key, its certificate, signed messages.

/// A signing key and its self-signed certificate (PEM), valid from a day ago to a day ahead.
struct Signer {
    key: SigningKey<Sha256>,
    pem: String,
}

impl Signer {
    fn new() -> Self {
        let key = SigningKey::<Sha256>::new(PrivateKey::generate());
        let subject = Name::from_str("CN=sns.amazonaws.com,O=csmp e2e test,C=US").expect("name");
        let profile = cabf::Root::new(false, subject).expect("profile");
        let spki = SubjectPublicKeyInfo::from_key(&key.verifying_key()).expect("spki");
        let day = Duration::from_secs(24 * 3600);
        let now = SystemTime::now();
        let validity = Validity::new(
            Time::try_from(now - day).expect("time"),
            Time::try_from(now + day).expect("time"),
        );
        let cert = CertificateBuilder::new(profile, SerialNumber::from(7_u32), validity, spki)
            .expect("builder")
            .build::<_, Signature>(&key)
            .expect("a self-signed certificate");
        let pem = cert.to_pem(LineEnding::LF).expect("pem");
        Self { key, pem }
    }

    /// Signs `envelope` in place (`SignatureVersion` 2).
    fn sign(&self, mut envelope: Value) -> Value {
        let text = string_to_sign(&envelope);
        let signature = self.key.sign(text.as_bytes()).to_vec();
        envelope["SignatureVersion"] = "2".into();
        envelope["Signature"] = STANDARD.encode(signature).into();
        envelope
    }
}

/// What SNS signs: `Name\nValue\n` for each present name, in this order, per message type.
fn string_to_sign(envelope: &Value) -> String {
    let names: &[&str] = if envelope["Type"] == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let mut out = String::new();
    for name in names {
        if let Some(value) = envelope[*name].as_str() {
            out.push_str(name);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        }
    }
    out
}

/// Now, as SNS writes its `Timestamp`.
fn sns_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A CloudWatch alarm state change as CloudWatch publishes it to SNS (the `Message`), its
/// `StateChangeTime` now.
fn alarm_message(state: &str) -> String {
    let (old, reason) = match state {
        "ALARM" => (
            "OK",
            "Threshold Crossed: 1 datapoint [97.5] was greater than the threshold (90.0).",
        ),
        _ => (
            "ALARM",
            "Threshold Crossed: 1 datapoint [41.0] was not greater than the threshold (90.0).",
        ),
    };
    json!({
        "AlarmName": ALARM,
        "AlarmDescription": "CPU of the web Auto Scaling group above 90%",
        "AWSAccountId": "123456789012",
        "AlarmConfigurationUpdatedTimestamp": "2026-11-30T09:00:00.000+0000",
        "NewStateValue": state,
        "NewStateReason": reason,
        "StateChangeTime": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string(),
        "Region": "EU (Ireland)",
        "AlarmArn": ALARM_ARN,
        "OldStateValue": old,
        "OKActions": [],
        "AlarmActions": [TOPIC],
        "InsufficientDataActions": [],
        "Trigger": {
            "MetricName": "CPUUtilization",
            "Namespace": "AWS/EC2",
            "StatisticType": "Statistic",
            "Statistic": "AVERAGE",
            "Unit": null,
            "Dimensions": [{ "value": GROUP, "name": "AutoScalingGroupName" }],
            "Period": 300,
            "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 90.0,
            "TreatMissingData": "missing",
            "EvaluateLowSampleCountPercentile": ""
        }
    })
    .to_string()
}

/// An (unsigned) SNS `Notification` of `message` on `topic`.
fn notification(topic: &str, id: &str, message: &str, cert_url: &str) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": id,
        "TopicArn": topic,
        "Subject": format!("ALARM: \"{ALARM}\" in EU (Ireland)"),
        "Message": message,
        "Timestamp": sns_now(),
        "SignatureVersion": "2",
        "Signature": "",
        "SigningCertURL": cert_url,
        "UnsubscribeURL": format!("https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic}:2bcfbf39"),
    })
}

/// An (unsigned) SNS `SubscriptionConfirmation` on `topic`.
fn confirmation(topic: &str, id: &str, subscribe_url: &str, token: &str, cert_url: &str) -> Value {
    json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": id,
        "Token": token,
        "TopicArn": topic,
        "Message": format!("You have chosen to subscribe to the topic {topic}.\nTo confirm the subscription, visit the SubscribeURL included in this message."),
        "SubscribeURL": subscribe_url,
        "Timestamp": sns_now(),
        "SignatureVersion": "2",
        "Signature": "",
        "SigningCertURL": cert_url,
    })
}

// ---------------------------------------------------------------------------------------------
// csmp serve.

/// How a call authenticates.
#[derive(Debug, Clone, Copy)]
enum Auth<'a> {
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
struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    text: String,
    json: Value,
}

impl Answer {
    fn detail(&self) -> &str {
        self.json["detail"].as_str().unwrap_or_default()
    }
}

/// A running `csmp serve` on the repository's workflows and catalog, with no rule of its
/// own, stopped (by pid) on drop, its database (beside the plugin cache the moto tests share,
/// so plugins compile once) removed.
struct Serve {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    base: String,
    log: PathBuf,
    database: PathBuf,
    integration: String,
    operator: String,
    http: ureq::Agent,
    _dir: tempfile::TempDir,
}

impl Serve {
    /// Starts `csmp serve` with `extra` arguments (the `--sns-*` flags) after minting an
    /// `integration` and an `operator` token, and waits until it says where it listens.
    fn start(name: &str, extra: &[&str]) -> Self {
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
        let child = Command::new(env!("CARGO_BIN_EXE_csmp"))
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
    fn authority(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// One call; `body` is sent with `content_type`.
    fn call(
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
    fn sns(&self, auth: Auth<'_>, envelope: &Value) -> Answer {
        self.sns_as(auth, "application/json", envelope)
    }

    /// [`Serve::sns`] with another `Content-Type`.
    fn sns_as(&self, auth: Auth<'_>, content_type: &str, envelope: &Value) -> Answer {
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
    fn ok(&self, path: &str) -> Value {
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
    fn put_rule(&self) {
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
    fn alerts(&self) -> Vec<Value> {
        items(&self.ok("/v1/alerts?source=cloudwatch&limit=200"))
    }

    /// The notifications stored, newest first.
    fn events(&self) -> Vec<Value> {
        items(&self.ok("/v1/events?limit=200"))
    }

    /// The runs the test's rule started.
    fn rule_runs(&self) -> Vec<Value> {
        items(&self.ok(&format!("/v1/runs?label=rule%3D{RULE}")))
    }

    /// The last 60 lines of its log.
    fn log(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Polls `check` until it gives something; past [`WAIT`], fails saying `what`, the
    /// alerts and runs csmp has and the end of its log.
    fn wait_for<T>(&self, what: &str, check: impl FnMut() -> Option<T>) -> T {
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
    fn wait_for_hello(&self) -> Value {
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
fn items(page: &Value) -> Vec<Value> {
    page["items"].as_array().cloned().unwrap_or_default()
}

/// Polls `check` every [`POLL`] for at most [`WAIT`].
fn poll<T>(mut check: impl FnMut() -> Option<T>) -> Option<T> {
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
    let out = Command::new(env!("CARGO_BIN_EXE_csmp"))
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
fn alarm_alerts(serve: &Serve) -> Vec<Value> {
    serve
        .alerts()
        .into_iter()
        .filter(|a| a["fingerprint"] == ALARM_ARN)
        .collect()
}

/// Checks an accepted (202) notification's answer: one alert, the alarm, in `status`.
fn assert_taken(answer: &Answer, status: &str, serve: &Serve) {
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
fn assert_refused(answer: &Answer, says: &str, what: &str) {
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
fn assert_firing_alert(alert: &Value) {
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

// ---------------------------------------------------------------------------------------------
// The tests.

/// The whole life of a verified topic: the subscription confirmed (its `SubscribeURL`
/// visited), a signed ALARM taken once and acted on, every kind of forgery refused with
/// nothing stored and no fetch from anywhere not allowed, and the OK resolving the alert.
#[test]
fn sns_signed_alarms_from_a_verified_topic_are_confirmed_taken_once_refused_when_forged_and_resolved()
 {
    let sns = Signer::new();
    let pem = sns.pem.clone();
    let certs = Site::start(
        "127.0.0.1",
        Box::new(move |seen| {
            if seen.method == "GET" && seen.target == PEM_PATH {
                Reply::new(200, "application/x-pem-file", pem.clone())
            } else if seen.method == "GET"
                && seen.target.starts_with("/?Action=ConfirmSubscription")
            {
                Reply::new(
                    200,
                    "text/xml",
                    "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>\
                     arn:aws:sns:eu-west-1:123456789012:alarms:1</SubscriptionArn>\
                     </ConfirmSubscriptionResult></ConfirmSubscriptionResponse>",
                )
            } else {
                Reply::new(404, "text/plain", "not here")
            }
        }),
    );
    // Another host serving the same certificate for any path: csmp must never ask it.
    let pem = sns.pem.clone();
    let elsewhere = Site::start(
        "127.0.0.2",
        Box::new(move |_| Reply::new(200, "application/x-pem-file", pem.clone())),
    );
    let cert_url = format!("{}{PEM_PATH}", certs.origin());
    let serve = Serve::start(
        "signed",
        &["--sns-topic", TOPIC, "--sns-cert-source", &certs.origin()],
    );
    serve.put_rule();
    let basic = Auth::Basic("csmp", &serve.integration);
    let bearer = Auth::Bearer(&serve.integration);

    // The subscription confirmation (HTTP Basic, as SNS sends it for `csmp:TOKEN@host`): its
    // SubscribeURL is visited, once.
    let subscribe_target = format!(
        "/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=2336412f37fb687f5d51e6e2425c464de"
    );
    let subscribe_url = format!("{}{subscribe_target}", certs.origin());
    let confirmed = serve.sns(
        basic,
        &sns.sign(confirmation(
            TOPIC,
            "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            &subscribe_url,
            "2336412f37fb687f5d51e6e2425c464de",
            &cert_url,
        )),
    );
    assert_eq!(
        (confirmed.status, confirmed.json.clone()),
        (200, json!({ "confirmed": TOPIC })),
        "the subscription is confirmed: {}; csmp's log: {}",
        confirmed.text,
        serve.log()
    );
    assert_eq!(
        certs.hits_of(&subscribe_target),
        1,
        "the SubscribeURL was visited once: {:?}",
        certs.seen()
    );
    assert_eq!(certs.hits_of(PEM_PATH), 1, "the certificate was fetched");
    assert!(
        serve.events().is_empty(),
        "a confirmation is no notification"
    );

    // A signed ALARM: taken, stored, matched by the rule, which starts hello for the group.
    let alarm = sns.sign(notification(
        TOPIC,
        "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        &alarm_message("ALARM"),
        &cert_url,
    ));
    let taken = serve.sns(bearer, &alarm);
    assert_taken(&taken, "firing", &serve);
    assert_eq!(
        taken.json["decisions"][0]["outcome"], "matched",
        "{}",
        taken.text
    );
    assert_eq!(
        taken.json["decisions"][0]["rules"][0]["rule"], RULE,
        "{}",
        taken.text
    );
    let stored = alarm_alerts(&serve);
    assert_eq!(stored.len(), 1, "one alert stored: {stored:?}");
    assert_firing_alert(&stored[0]);
    assert_eq!(stored[0]["event_id"], taken.json["id"], "{}", stored[0]);
    let events = serve.events();
    assert_eq!(events.len(), 1, "one notification stored: {events:?}");
    assert_eq!(events[0]["source"], "cloudwatch", "{events:?}");
    let run = serve.wait_for_hello();
    assert_eq!(
        run["outputs"]["greeting"],
        format!("hello, {GROUP}"),
        "the run was given the alarm's dimension: {run}"
    );
    assert_eq!(run["labels"]["rule"], RULE, "{run}");

    // SNS delivering the same message again (same MessageId): a duplicate, nothing stored.
    let again = serve.sns(basic, &alarm);
    assert_eq!(
        (again.status, again.json.clone()),
        (
            200,
            json!({ "duplicate": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324" })
        ),
        "a redelivery: {}",
        again.text
    );

    // Forgeries and strangers: each refused, nothing stored, nothing fetched.
    let fetched = certs.hits();
    let mut altered = sns.sign(notification(
        TOPIC,
        "5a0b1c2d-0000-4000-8000-000000000001",
        &alarm_message("ALARM"),
        &cert_url,
    ));
    altered["Message"] = alarm_message("ALARM").replace(GROUP, "db-asg").into();
    assert_refused(
        &serve.sns(bearer, &altered),
        "signature does not verify",
        "a Message altered after signing",
    );

    let stranger = Signer::new();
    let forged = stranger.sign(notification(
        TOPIC,
        "5a0b1c2d-0000-4000-8000-000000000002",
        &alarm_message("ALARM"),
        &cert_url,
    ));
    assert_refused(
        &serve.sns(bearer, &forged),
        "signature does not verify",
        "a message signed by another key",
    );
    let mut garbage = alarm.clone();
    garbage["MessageId"] = "5a0b1c2d-0000-4000-8000-000000000003".into();
    garbage["Signature"] = "Zm9yZ2Vk".into();
    assert_refused(
        &serve.sns(bearer, &garbage),
        "signature does not verify",
        "a made-up signature",
    );

    for (n, url) in [
        format!("{}{PEM_PATH}", elsewhere.origin()),
        format!("https://evil.example{PEM_PATH}"),
        format!("{}/SimpleNotificationService-test.txt", certs.origin()),
        format!("{}{PEM_PATH}?x=1", certs.origin()),
    ]
    .iter()
    .enumerate()
    {
        let elsewhere_signed = sns.sign(notification(
            TOPIC,
            &format!("5a0b1c2d-0000-4000-8000-00000000010{n}"),
            &alarm_message("ALARM"),
            url,
        ));
        assert_refused(
            &serve.sns(bearer, &elsewhere_signed),
            "--sns-cert-source",
            &format!("a SigningCertURL of {url}"),
        );
    }

    let elsewhere_confirm = sns.sign(confirmation(
        TOPIC,
        "5a0b1c2d-0000-4000-8000-000000000200",
        &format!(
            "{}/?Action=ConfirmSubscription&Token=steal",
            elsewhere.origin()
        ),
        "steal",
        &cert_url,
    ));
    assert_refused(
        &serve.sns(basic, &elsewhere_confirm),
        "SubscribeURL",
        "a confirmation whose SubscribeURL is on another host",
    );

    let not_ours = sns.sign(notification(
        OTHER_TOPIC,
        "5a0b1c2d-0000-4000-8000-000000000300",
        &alarm_message("ALARM"),
        &cert_url,
    ));
    assert_refused(
        &serve.sns(bearer, &not_ours),
        "--sns-topic",
        "a topic not allowed",
    );
    let not_ours_confirm = sns.sign(confirmation(
        OTHER_TOPIC,
        "5a0b1c2d-0000-4000-8000-000000000301",
        &subscribe_url,
        "2336412f37fb687f5d51e6e2425c464de",
        &cert_url,
    ));
    assert_refused(
        &serve.sns(basic, &not_ours_confirm),
        "--sns-topic",
        "a confirmation of a topic not allowed",
    );

    assert_eq!(
        elsewhere.hits(),
        0,
        "nothing was fetched from another host: {:?}",
        elsewhere.seen()
    );
    assert_eq!(
        certs.hits(),
        fetched,
        "no refused message made csmp fetch anything: {:?}",
        certs.seen()
    );
    assert_eq!(
        alarm_alerts(&serve).len(),
        1,
        "no refused message stored an alert"
    );
    assert_eq!(serve.events().len(), 1, "no refused message was stored");

    // A wrong token, as Basic: 401, nothing stored.
    let wrong = serve.sns(Auth::Basic("csmp", "csmp_nobody_wrong"), &alarm);
    assert_eq!(wrong.status, 401, "{}", wrong.text);

    // The alarm clears: OK resolves the alert.
    let ok = sns.sign(notification(
        TOPIC,
        "3c4d5e6f-0000-4000-8000-000000000400",
        &alarm_message("OK"),
        &cert_url,
    ));
    let resolved = serve.sns(basic, &ok);
    assert_taken(&resolved, "resolved", &serve);
    let latest = alarm_alerts(&serve);
    assert_eq!(
        latest.len(),
        2,
        "the firing and the resolved alert: {latest:?}"
    );
    assert_eq!(latest[0]["status"], "resolved", "the newest: {}", latest[0]);
    assert!(
        latest[0]["ends_at"].is_string(),
        "it says when: {}",
        latest[0]
    );
    assert_eq!(latest[0]["labels"]["alertname"], ALARM, "{}", latest[0]);
    let resolved_alerts = items(&serve.ok("/v1/alerts?source=cloudwatch&status=resolved"));
    assert!(
        resolved_alerts
            .iter()
            .any(|a| a["fingerprint"] == ALARM_ARN),
        "listed as resolved: {resolved_alerts:?}"
    );
    assert_eq!(serve.events().len(), 2);
    assert_eq!(serve.rule_runs().len(), 1, "still the one run");
    // One certificate URL, fetched once for every message that verified.
    assert_eq!(certs.hits_of(PEM_PATH), 1, "{:?}", certs.seen());
}

/// SNS POSTs every message with `Content-Type: text/plain; charset=UTF-8` unless the
/// subscription's delivery policy says otherwise
/// (<https://docs.aws.amazon.com/sns/latest/dg/http-header.html>); csmp must take it.
#[test]
fn sns_notification_with_the_content_type_sns_sends_is_taken() {
    let topic = "arn:aws:sns:us-east-1:123456789012:emulated";
    let serve = Serve::start("text-plain", &["--sns-unverified-topic", topic]);
    let envelope = notification(
        topic,
        "0d1e2f30-0000-4000-8000-000000000001",
        &alarm_message("ALARM"),
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    );
    let answer = serve.sns_as(
        Auth::Basic("csmp", &serve.integration),
        "text/plain; charset=UTF-8",
        &envelope,
    );
    assert_taken(&answer, "firing", &serve);
    assert_eq!(alarm_alerts(&serve).len(), 1);
}

/// SNS sends an endpoint's user and password only when challenged: "The client service must
/// be able to support the HTTP/1.1 401 Unauthorized header response"
/// (<https://docs.aws.amazon.com/sns/latest/dg/sns-http-https-endpoint-as-subscriber.html>),
/// so a call without credentials must be answered 401 with a `Basic` challenge.
#[test]
fn sns_delivery_without_credentials_is_challenged_for_basic_auth() {
    let topic = "arn:aws:sns:us-east-1:123456789012:emulated";
    let serve = Serve::start("challenge", &["--sns-unverified-topic", topic]);
    let envelope = notification(
        topic,
        "0d1e2f30-0000-4000-8000-000000000002",
        &alarm_message("ALARM"),
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    );
    let first = serve.sns(Auth::None, &envelope);
    assert_eq!(first.status, 401, "{}", first.text);
    let challenge = first.www_authenticate.clone().unwrap_or_default();
    assert!(
        challenge
            .split(',')
            .any(|part| part.trim_start().to_ascii_lowercase().starts_with("basic ")),
        "the 401 offers Basic (with a realm), so SNS sends its credentials; it says \
         `WWW-Authenticate: {challenge}`"
    );
    let second = serve.sns(Auth::Basic("csmp", &serve.integration), &envelope);
    assert_taken(&second, "firing", &serve);
}

/// SNS delivers at least once, and a redelivery may arrive while the first delivery is being
/// handled: however many arrive together, one is taken and the others are duplicates.
#[test]
fn sns_redeliveries_arriving_together_are_taken_once() {
    const COPIES: usize = 8;
    let topic = "arn:aws:sns:us-east-1:123456789012:emulated";
    let serve = Serve::start("together", &["--sns-unverified-topic", topic]);
    let envelope = notification(
        topic,
        "0d1e2f30-0000-4000-8000-000000000003",
        &alarm_message("ALARM"),
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    );
    let barrier = Barrier::new(COPIES);
    let answers: Vec<(u16, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..COPIES)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let answer = serve.sns(Auth::Bearer(&serve.integration), &envelope);
                    (answer.status, answer.text)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a sender thread"))
            .collect()
    });
    let taken = answers.iter().filter(|(status, _)| *status == 202).count();
    let duplicates = answers
        .iter()
        .filter(|(status, text)| *status == 200 && text.contains("\"duplicate\""))
        .count();
    assert_eq!(
        (taken, duplicates),
        (1, COPIES - 1),
        "{COPIES} copies of one MessageId sent at once: one taken, the rest duplicates; \
         csmp answered {answers:?}"
    );
    assert_eq!(alarm_alerts(&serve).len(), 1, "one alert stored");
    assert_eq!(serve.events().len(), 1, "one notification stored");
}

/// A moto topic subscribed straight to csmp (`http://csmp:TOKEN@…/v1/events/cloudwatch`):
/// what moto POSTs is taken, the rule acts, and OK resolves the alert.
#[test]
fn sns_moto_topic_delivers_alarms_straight_to_csmp() {
    moto_alarms(Delivery::Straight);
}

/// The same, each message relayed by the test with only its `Content-Type` changed to
/// `application/json` (SNS's own remedy is a delivery policy with `headerContentType`, which
/// moto ignores): what works while `text/plain` is refused
/// (`sns_notification_with_the_content_type_sns_sends_is_taken`).
#[test]
fn sns_moto_topic_delivers_alarms_relayed_as_json() {
    moto_alarms(Delivery::RelayedAsJson);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// moto POSTs to csmp; a recorder subscribed beside it keeps what moto sent.
    Straight,
    /// moto POSTs to the test, which forwards to csmp as `application/json`.
    RelayedAsJson,
}

fn moto_alarms(delivery: Delivery) {
    let moto = Moto::start();
    let topic = moto.boto(&["sns-create-topic", "csmp-alarms"])["arn"]
        .as_str()
        .expect("a topic ARN")
        .to_owned();
    let serve = Serve::start(
        match delivery {
            Delivery::Straight => "moto",
            Delivery::RelayedAsJson => "moto-relayed",
        },
        &[
            "--sns-unverified-topic",
            &topic,
            "--sns-cert-source",
            &moto.endpoint,
        ],
    );
    serve.put_rule();

    let handler: Handler = match delivery {
        Delivery::Straight => Box::new(|_| Reply::new(200, "text/plain", "recorded")),
        Delivery::RelayedAsJson => {
            let to = format!("{}/v1/events/cloudwatch", serve.base);
            let http = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .proxy(None)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .new_agent();
            Box::new(move |seen| relay(&http, &to, seen))
        }
    };
    let recorder = Site::start("127.0.0.1", handler);
    let credentials = format!("csmp:{}", serve.integration);
    let at_recorder = format!(
        "http://{credentials}@{}/v1/events/cloudwatch",
        recorder.addr
    );
    let subscribed = moto.boto(&["sns-subscribe", &topic, &at_recorder]);
    assert_eq!(subscribed["attributes"]["Protocol"], "http", "{subscribed}");
    if delivery == Delivery::Straight {
        let at_csmp = format!(
            "http://{credentials}@{}/v1/events/cloudwatch",
            serve.authority()
        );
        moto.boto(&["sns-subscribe", &topic, &at_csmp]);
    }
    // moto (5.2) marks an http(s) subscription confirmed at once and POSTs no
    // SubscriptionConfirmation, so there is no SubscribeURL to visit.
    assert!(
        recorder
            .seen()
            .iter()
            .all(|s| s.json()["Type"] != "SubscriptionConfirmation"),
        "moto sent a SubscriptionConfirmation: {:?}",
        recorder.seen()
    );

    // The alarm fires.
    let message = alarm_message("ALARM");
    moto.boto(&[
        "sns-publish",
        &topic,
        "--message",
        &message,
        "--subject",
        &format!("ALARM: \"{ALARM}\" in EU (Ireland)"),
    ]);
    let sent = poll(|| {
        recorder
            .seen()
            .into_iter()
            .find(|s| s.json()["Type"] == "Notification")
    })
    .unwrap_or_else(|| panic!("moto POSTed no notification to its http subscriber"));
    // What moto sends: a POST to the endpoint's path, its user and password as HTTP Basic.
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.target, "/v1/events/cloudwatch");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Basic {}", STANDARD.encode(&credentials)).as_str()),
        "moto sends the endpoint URL's credentials as HTTP Basic: {:?}",
        sent.headers
    );
    let body = sent.json();
    assert_eq!(body["TopicArn"], topic.as_str(), "{body}");
    assert_eq!(body["Message"], message.as_str(), "{body}");

    let stored = poll(|| {
        let found = alarm_alerts(&serve);
        (!found.is_empty()).then_some(found)
    })
    .unwrap_or_else(|| {
        let replayed = replay(&serve, &sent);
        panic!(
            "csmp stored no alert for the alarm moto delivered ({delivery:?}).\n\
             --- moto sent: {} {} with headers {:?}\n--- the same request sent again to csmp \
             is answered {} {}\n--- csmp's events: {:?}\n--- csmp serve's log:\n{}",
            sent.method,
            sent.target,
            sent.headers,
            replayed.status,
            replayed.text,
            serve.events(),
            serve.log()
        )
    });
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_firing_alert(&stored[0]);
    let run = serve.wait_for_hello();
    assert_eq!(
        run["outputs"]["greeting"],
        format!("hello, {GROUP}"),
        "{run}"
    );

    // The alarm clears.
    moto.boto(&[
        "sns-publish",
        &topic,
        "--message",
        &alarm_message("OK"),
        "--subject",
        &format!("OK: \"{ALARM}\" in EU (Ireland)"),
    ]);
    let resolved = serve.wait_for("the alarm's OK to resolve the alert", || {
        alarm_alerts(&serve)
            .into_iter()
            .next()
            .filter(|a| a["status"] == "resolved")
    });
    assert_eq!(resolved["labels"]["alertname"], ALARM, "{resolved}");
    assert_eq!(alarm_alerts(&serve).len(), 2);
    assert_eq!(serve.rule_runs().len(), 1, "still the one run");
    let notifications = recorder
        .seen()
        .into_iter()
        .filter(|s| s.json()["Type"] == "Notification")
        .count();
    assert_eq!(notifications, 2, "moto delivered each publish once");
}

/// Forwards what moto sent to csmp with `Content-Type: application/json`; answers moto with
/// csmp's answer.
fn relay(http: &ureq::Agent, to: &str, seen: &Seen) -> Reply {
    let mut request = ureq::http::Request::builder().method("POST").uri(to);
    for (name, value) in &seen.headers {
        if name == "authorization" || name.starts_with("x-amz-sns-") {
            request = request.header(name.as_str(), value.as_str());
        }
    }
    let request = request
        .header("content-type", "application/json")
        .body(seen.body.clone())
        .expect("a request");
    match http.run(request) {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let body = response.body_mut().read_to_vec().unwrap_or_default();
            Reply::new(status, "application/json", body)
        }
        Err(e) => Reply::new(502, "text/plain", format!("relay: {e}")),
    }
}

/// Sends `seen` (what moto sent) to csmp again, exactly: its headers and body.
fn replay(serve: &Serve, seen: &Seen) -> Answer {
    let headers: Vec<(&str, &str)> = seen
        .headers
        .iter()
        .filter(|(name, _)| {
            !matches!(
                name.as_str(),
                "host" | "content-length" | "connection" | "content-type" | "authorization"
            )
        })
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let auth = seen
        .header("authorization")
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let (user, password) = auth
        .as_deref()
        .and_then(|a| a.split_once(':'))
        .unwrap_or_default();
    serve.call(
        "POST",
        "/v1/events/cloudwatch",
        if auth.is_some() {
            Auth::Basic(user, password)
        } else {
            Auth::None
        },
        &headers,
        Some((seen.header("content-type").unwrap_or_default(), &seen.body)),
    )
}
