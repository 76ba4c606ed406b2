//! The API under test and a small client for it.
//!
//! [`App::start`] writes a workflow and a catalog directory (the repository's examples plus the
//! fixtures below), opens a fresh database, loads them the way `csmp serve` does, starts the
//! executor and serves the API on 127.0.0.1:0 on a runtime of its own, so tests call it with a
//! blocking client. Tokens for every role exist from the start.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use csmp::api::auth::{Role, mint};
use csmp::api::{ApiConfig, AppState};
use csmp::cli::run::{load_catalog, load_definitions};
use csmp::runtime::{Clock, Engine, EngineConfig, TokioClock};
use csmp::store::{Durability, Store};
use serde_json::Value;
use ureq::http::{HeaderMap, Method, Request};

/// Bounds every wait; a test that hits it has found a hang.
pub(crate) const GUARD: Duration = Duration::from_secs(60);

/// The tenant of `client_a`.
pub(crate) const TENANT_A: &str = "tenant-a";
/// The tenant of `client_b`.
pub(crate) const TENANT_B: &str = "tenant-b";

/// Waits for an operator's approval (`gate`), then for the signal `go`, whose payload becomes
/// the run's output `heard`.
pub(crate) const STEER: &str = r#"name: steer
version: 1
description: an approval step, then a signal step
steps:
  - id: gate
    approval: { roles: [operator] }
  - id: hear
    needs: [gate]
    signal: go
outputs:
  heard: "{{ steps.hear.output }}"
"#;

/// A short sleeper; tests upload version 2, which sleeps for an hour.
pub(crate) const SLEEPER_V1: &str = r#"name: sleeper
version: 1
description: sleeps briefly
steps:
  - id: nap
    wait: 1s
"#;

/// Version 2 of `sleeper`: a durable wait of one hour.
pub(crate) const SLEEPER_V2: &str = r#"name: sleeper
version: 2
description: sleeps for an hour
steps:
  - id: nap
    wait: 1h
"#;

/// Opens an incident, then waits for the signal `ack` (sent when the incident is
/// acknowledged).
pub(crate) const PAGER: &str = r#"name: pager
version: 1
description: opens an incident and waits for its acknowledgement
inputs:
  type: object
  required: [title]
  properties:
    title: { type: string }
steps:
  - id: open
    incident: { action: open, title: "{{ inputs.title }}", severity: sev2, service: web }
  - id: ack
    needs: [open]
    signal: ack
outputs:
  incident: "{{ steps.open.output.id }}"
  ack: "{{ steps.ack.output }}"
"#;

/// Steps whose plan order is not their key order (`s10` after `s9`, not after `s1`), and a
/// fan-out of 25 items.
pub(crate) const ORDERED: &str = r#"name: ordered
version: 1
description: a chain of eleven steps, then a fan-out of 25
steps:
  - { id: s1, uses: echo@^1, with: { n: 1 } }
  - { id: s2, needs: [s1], uses: echo@^1, with: { n: 2 } }
  - { id: s3, needs: [s2], uses: echo@^1, with: { n: 3 } }
  - { id: s4, needs: [s3], uses: echo@^1, with: { n: 4 } }
  - { id: s5, needs: [s4], uses: echo@^1, with: { n: 5 } }
  - { id: s6, needs: [s5], uses: echo@^1, with: { n: 6 } }
  - { id: s7, needs: [s6], uses: echo@^1, with: { n: 7 } }
  - { id: s8, needs: [s7], uses: echo@^1, with: { n: 8 } }
  - { id: s9, needs: [s8], uses: echo@^1, with: { n: 9 } }
  - { id: s10, needs: [s9], uses: echo@^1, with: { n: 10 } }
  - { id: s11, needs: [s10], uses: echo@^1, with: { n: 11 } }
  - id: many
    needs: [s11]
    for_each: "{{ range 25 }}"
    uses: echo@^1
    with: { i: "{{ item }}" }
outputs:
  last: "{{ steps.s11.output.n }}"
  items: "{{ len steps.many.output }}"
"#;

/// Succeeds, or (`fail: true`) fails at once: a request outcome chosen by its inputs.
pub(crate) const COIN: &str = r#"name: coin
version: 1
inputs:
  type: object
  required: [fail]
  properties:
    fail: { type: boolean }
steps:
  - id: lose
    when: "{{ inputs.fail }}"
    signal: { name: never, timeout: 10ms }
"#;

const FIXTURE_WORKFLOWS: &[(&str, &str)] = &[
    ("coin.yaml", COIN),
    ("steer.yaml", STEER),
    ("sleeper.yaml", SLEEPER_V1),
    ("pager.yaml", PAGER),
    ("ordered.yaml", ORDERED),
];

const FIXTURE_CATALOG: &[(&str, &str)] = &[
    (
        "steer.yaml",
        "id: steer\ntitle: Steer\nworkflow: steer\ntenants: [\"*\"]\nsla: { fulfil_within: 1h }\n",
    ),
    (
        "sleeper.yaml",
        "id: sleeper\ntitle: Sleeper\nworkflow: sleeper\ntenants: [\"*\"]\n",
    ),
    (
        "pager.yaml",
        "id: pager\ntitle: Pager\nworkflow: pager\ninputs: { type: object, required: [title], properties: { title: { type: string } } }\ntenants: [\"*\"]\n",
    ),
    (
        "hurried.yaml",
        "id: hurried\ntitle: Hurried\nworkflow: sleeper@1\ntenants: [\"*\"]\nsla: { fulfil_within: 1ms }\n",
    ),
    (
        "ordered.yaml",
        "id: ordered\ntitle: Ordered\nworkflow: ordered\ntenants: [\"*\"]\n",
    ),
    (
        "coin.yaml",
        "id: coin\ntitle: Coin\nworkflow: coin\ntenants: [\"*\"]\ndefaults: { fail: false }\nslo: { objective: 99 }\n",
    ),
    (
        "tenant-a-only.yaml",
        "id: tenant-a-only\ntitle: Only for tenant A\nworkflow: hello\ntenants: [tenant-a]\n",
    ),
];

/// Writes `workflows/` and `catalog/` under `dir`: the repository's examples and the fixtures.
pub(crate) fn write_definitions(dir: &Path) -> (PathBuf, PathBuf) {
    let root = crate::helpers::repo_root();
    let mut out = Vec::new();
    for (sub, fixtures) in [
        ("workflows", FIXTURE_WORKFLOWS),
        ("catalog", FIXTURE_CATALOG),
    ] {
        let target = dir.join(sub);
        std::fs::create_dir_all(&target).expect("create a definitions directory");
        for entry in std::fs::read_dir(root.join(sub)).expect("read the repository's examples") {
            let path = entry.expect("directory entry").path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let name = path.file_name().expect("a file name");
                std::fs::copy(&path, target.join(name)).expect("copy an example");
            }
        }
        for (name, text) in fixtures {
            std::fs::write(target.join(name), text).expect("write a fixture");
        }
        out.push(target);
    }
    let catalog = out.pop().expect("catalog dir");
    let workflows = out.pop().expect("workflows dir");
    (workflows, catalog)
}

/// A bearer token and its public id (the id names the caller in the audit log).
#[derive(Debug, Clone)]
pub(crate) struct Token {
    /// The whole bearer token.
    pub secret: String,
    /// Its public id.
    pub id: String,
}

/// One answer.
#[derive(Debug)]
pub(crate) struct Reply {
    /// What was called, for failure messages.
    pub call: String,
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{}: the body is not JSON ({e}): {}", self.call, self.text())
        })
    }

    /// A header's value.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// Asserts the status and returns the JSON body.
    pub(crate) fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}: expected {status}, got {} with {}",
            self.call,
            self.status,
            self.text()
        );
        self.json()
    }

    /// Asserts an RFC 9457 problem of `status` and `urn:csmp:problem:<slug>`; returns it.
    pub(crate) fn problem(&self, status: u16, slug: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}: expected a {status} {slug} problem, got {} with {}",
            self.call,
            self.status,
            self.text()
        );
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json"),
            "{}: a problem is sent as application/problem+json (body {})",
            self.call,
            self.text()
        );
        let body = self.json();
        assert_eq!(
            body["type"],
            format!("urn:csmp:problem:{slug}"),
            "{}: {body}",
            self.call
        );
        assert_eq!(body["status"], status, "{}: {body}", self.call);
        assert!(
            body["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{}: a problem has a title: {body}",
            self.call
        );
        assert!(
            body["detail"].as_str().is_some_and(|t| !t.is_empty()),
            "{}: a problem says what happened: {body}",
            self.call
        );
        body
    }

    /// Asserts a 422 `invalid-input` problem and returns its pointers, sorted.
    pub(crate) fn invalid(&self) -> Vec<String> {
        let body = self.problem(422, "invalid-input");
        let errors = body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: 422 lists its violations: {body}", self.call));
        assert!(!errors.is_empty(), "{}: {body}", self.call);
        let mut pointers: Vec<String> = errors
            .iter()
            .map(|e| {
                assert!(
                    e["message"].as_str().is_some_and(|m| !m.is_empty()),
                    "{}: every violation says what is wrong: {body}",
                    self.call
                );
                e["pointer"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{}: a violation has a pointer: {body}", self.call))
                    .to_string()
            })
            .collect();
        pointers.sort();
        pointers
    }
}

/// A call being built.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    agent: &'a ureq::Agent,
    method: Method,
    url: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Call<'_> {
    /// `Authorization: Bearer <token>`.
    pub(crate) fn auth(self, token: &Token) -> Self {
        let value = format!("Bearer {}", token.secret);
        self.header("authorization", &value)
    }

    /// Any header.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// A JSON body.
    pub(crate) fn json(self, value: &Value) -> Self {
        self.body("application/json", value.to_string().into_bytes())
    }

    /// A body of any type.
    pub(crate) fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self.header("content-type", content_type)
    }

    /// A body without a content type.
    pub(crate) fn raw(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends it and reads the whole answer.
    pub(crate) fn send(self) -> Reply {
        let call = format!("{} {}", self.method, self.path);
        let mut response = self.run();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .unwrap_or_else(|e| panic!("{call}: reading the body: {e}"));
        Reply {
            call,
            status,
            headers,
            body,
        }
    }

    /// Sends it and keeps the answer open, for event streams.
    pub(crate) fn stream(self) -> Stream {
        let call = format!("{} {}", self.method, self.path);
        let response = self.run();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        assert_eq!(status, 200, "{call}: the stream opens");
        assert!(
            content_type
                .as_deref()
                .is_some_and(|t| t.starts_with("text/event-stream")),
            "{call}: served as text/event-stream, not {content_type:?}"
        );
        Stream {
            reader: BufReader::new(Box::new(response.into_body().into_reader())),
        }
    }

    fn run(self) -> ureq::http::Response<ureq::Body> {
        let call = format!("{} {}", self.method, self.path);
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(&self.url);
        for (k, v) in &self.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let with_body = matches!(self.method, Method::POST | Method::PUT | Method::PATCH);
        let result = if with_body {
            self.agent
                .run(builder.body(self.body).expect("a well-formed request"))
        } else {
            self.agent
                .run(builder.body(()).expect("a well-formed request"))
        };
        result.unwrap_or_else(|e| panic!("{call}: the call failed: {e}"))
    }
}

/// An open server-sent event stream.
pub(crate) struct Stream {
    reader: BufReader<Box<dyn Read + Send>>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stream")
    }
}

impl Stream {
    /// The next event as `(name, data)`; `None` when the server ended the stream.
    pub(crate) fn next_event(&mut self) -> Option<(String, Value)> {
        let mut name = String::from("message");
        let mut data = String::new();
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .expect("the event stream reads");
            if n == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if data.is_empty() {
                    continue; // a keep-alive or comment-only block
                }
                let value = serde_json::from_str(&data)
                    .unwrap_or_else(|e| panic!("event data is JSON ({e}): {data}"));
                return Some((name, value));
            }
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
    }
}

/// An HTTP client for one server.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client of `base`.
    pub(crate) fn new(base: String) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .timeout_global(Some(GUARD))
            .build()
            .new_agent();
        Self { base, agent }
    }

    /// A call of `method` on `path`.
    pub(crate) fn call(&self, method: Method, path: &str) -> Call<'_> {
        Call {
            agent: &self.agent,
            method,
            url: format!("{}{path}", self.base),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub(crate) fn get(&self, path: &str) -> Call<'_> {
        self.call(Method::GET, path)
    }

    pub(crate) fn post(&self, path: &str) -> Call<'_> {
        self.call(Method::POST, path)
    }

    pub(crate) fn put(&self, path: &str) -> Call<'_> {
        self.call(Method::PUT, path)
    }

    pub(crate) fn delete(&self, path: &str) -> Call<'_> {
        self.call(Method::DELETE, path)
    }

    /// Orders a catalog entry; asserts 202 and returns the request.
    pub(crate) fn order(&self, token: &Token, order: &Value) -> Value {
        self.post("/v1/requests")
            .auth(token)
            .json(order)
            .send()
            .expect(202)
    }

    /// Polls `GET path` until `done` holds for its 200 body; returns that body.
    pub(crate) fn wait_for(
        &self,
        token: &Token,
        path: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let body = self.get(path).auth(token).send().expect(200);
            if done(&body) {
                return body;
            }
            assert!(
                started.elapsed() < GUARD,
                "gave up waiting for {what}; last answer of GET {path}: {body}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the run is in `status`.
    pub(crate) fn wait_run(&self, token: &Token, run: &str, status: &str) -> Value {
        self.wait_for(
            token,
            &format!("/v1/runs/{run}"),
            &format!("run {run} to be {status}"),
            |r| r["status"] == status,
        )
    }

    /// Waits until the run's step `key` is in `status`.
    pub(crate) fn wait_step(&self, token: &Token, run: &str, key: &str, status: &str) -> Value {
        self.wait_for(
            token,
            &format!("/v1/runs/{run}"),
            &format!("step {key} of run {run} to be {status}"),
            |r| step(r, key).is_some_and(|s| s["status"] == status),
        )
    }

    /// Waits until the request is in `status`.
    pub(crate) fn wait_request(&self, token: &Token, id: &str, status: &str) -> Value {
        self.wait_for(
            token,
            &format!("/v1/requests/{id}"),
            &format!("request {id} to be {status}"),
            |r| r["status"] == status,
        )
    }
}

/// A local HTTP server answering every call `200` with `body` (of `content_type`): its
/// authority (`127.0.0.1:PORT`) and the paths of the calls received, in order.
pub(crate) fn receiver(
    content_type: &'static str,
    body: &'static str,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::Write as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let authority = listener.local_addr().expect("an address").to_string();
    let hits = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = vec![0u8; 16 * 1024];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
            seen.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(path);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (authority, hits)
}

/// The step `key` of a run detail.
pub(crate) fn step<'v>(run: &'v Value, key: &str) -> Option<&'v Value> {
    run["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["key"] == key))
}

/// The ids of a list answer's `items`.
pub(crate) fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("a list has items")
        .iter()
        .map(|i| i["id"].as_str().expect("an item has an id").to_string())
        .collect()
}

/// A string field.
pub(crate) fn s(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("`{field}` is a string in {v}"))
        .to_string()
}

/// The API served in this process on a fresh database.
pub(crate) struct App {
    /// The HTTP client.
    pub http: Client,
    /// An admin.
    pub admin: Token,
    /// An operator.
    pub operator: Token,
    /// An integration (alerts in).
    pub integration: Token,
    /// A client of [`TENANT_A`].
    pub client_a: Token,
    /// A client of [`TENANT_B`].
    pub client_b: Token,
    store: Store,
    engine: Engine,
    /// The service's state, to put definitions in force as `serve` does at start.
    pub(crate) state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    rt: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("base", &self.http.base)
            .finish()
    }
}

impl std::ops::Deref for App {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.http
    }
}

impl App {
    /// Starts the API on a fresh database with the examples and fixtures loaded.
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (workflows, catalog) = write_definitions(dir.path());
        let db = dir.path().join("csmp.db");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the server");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (store, engine, state, server, addr) = rt.block_on(async {
            let store = match on_postgres() {
                true => {
                    let url = csmp::testing::postgres()
                        .await
                        .expect("the test PostgreSQL starts");
                    Store::open_postgres(&url).await
                }
                false => Store::open(&db, Durability::Full).await,
            }
            .expect("the store opens");
            let host = crate::helpers::loopback_host();
            let defs = load_definitions(&store, &host, Some(&workflows))
                .await
                .expect("the workflows load");
            let catalog = load_catalog(&catalog, &defs).expect("the catalog loads");
            let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
            let engine = Engine::start(
                store.clone(),
                host.clone(),
                defs.clone(),
                clock.clone(),
                EngineConfig {
                    ..EngineConfig::default()
                },
            )
            .await
            .expect("the executor starts");
            let state = AppState::new(
                engine.clone(),
                host,
                clock,
                catalog,
                defs,
                ApiConfig {
                    request_gauges_every: Duration::from_millis(50),
                    slo_every: Duration::from_millis(100),
                    ..ApiConfig::default()
                },
            );
            let (oncall, sources) =
                csmp::api::load_oncall(&store, Some(&crate::helpers::repo_root().join("oncall")))
                    .await
                    .expect("the example on-call files load");
            state.set_oncall_files(oncall, sources);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0");
            let addr = listener.local_addr().expect("bound address");
            let server = tokio::spawn(csmp::api::serve(listener, state.clone(), async move {
                let _ = stopped.await;
            }));
            (store, engine, state, server, addr)
        });
        let mut app = Self {
            http: Client::new(format!("http://{addr}")),
            admin: placeholder(),
            operator: placeholder(),
            integration: placeholder(),
            client_a: placeholder(),
            client_b: placeholder(),
            store,
            engine,
            state,
            stop: Some(stop),
            server: Some(server),
            rt: Some(rt),
            _dir: dir,
        };
        app.admin = app.mint(Role::Admin, None);
        app.operator = app.mint(Role::Operator, None);
        app.integration = app.mint(Role::Integration, None);
        app.client_a = app.mint(Role::Client, Some(TENANT_A));
        app.client_b = app.mint(Role::Client, Some(TENANT_B));
        app
    }

    /// Creates a token straight in the store (the tenant too, for clients).
    pub(crate) fn mint(&self, role: Role, tenant: Option<&str>) -> Token {
        let rt = self.rt.as_ref().expect("the runtime runs");
        rt.block_on(async {
            let now = chrono::Utc::now().timestamp_millis();
            if let Some(t) = tenant {
                self.store
                    .ensure_tenant(t, now)
                    .await
                    .expect("the tenant is stored");
            }
            let token = mint(role, tenant.map(String::from), None, now).expect("randomness");
            self.store
                .insert_token(&token.row, None)
                .await
                .expect("the token is stored");
            Token {
                secret: token.secret,
                id: token.row.id,
            }
        })
    }
}

/// Whether the API tests run on PostgreSQL (`CSMP_TEST_DATABASE=postgres`, as the test command
/// sets for its second pass) rather than SQLite.
pub(crate) fn on_postgres() -> bool {
    std::env::var("CSMP_TEST_DATABASE").is_ok_and(|v| v == "postgres")
}

fn placeholder() -> Token {
    Token {
        secret: String::new(),
        id: String::new(),
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.rt.take() {
            let server = self.server.take();
            let engine = self.engine.clone();
            rt.block_on(async move {
                if let Some(server) = server {
                    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
                }
                let _ = tokio::time::timeout(Duration::from_secs(10), engine.shutdown()).await;
            });
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}
