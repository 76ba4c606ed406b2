//! The plugin sandbox under attack: real wasm plugins (`tests/plugins/hostile`,
//! `tests/plugins/sockets`, the built-ins) run by a real `PluginHost`. Each hostile case fails
//! only its own attempt, with the limit it hit named, and the host runs `echo` fine afterwards.
//!
//! HTTP cases talk to a tiny server on 127.0.0.1 (port 0) started inside the test; nothing
//! else is contacted. Knows the host's public API only.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use csmp::plugin::{
    CancellationToken, FailureKind, Grant, Grants, HostConfig, Invocation, LoadError, Outcome,
    PluginHost, StepFailure,
};
use serde_json::{Value, json};

/// Bounds a test that would otherwise hang if the sandbox failed to stop a plugin.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn wasm(stem: &str) -> Vec<u8> {
    let path = format!("{}/{stem}.wasm", env!("CSMP_PLUGIN_WASM_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A host with the built-ins and the hostile plugin loaded, under `grants`.
fn host(grants: Grants) -> PluginHost {
    let cache = crate::helpers::plugin_cache();
    let host = PluginHost::new(HostConfig::new(cache, grants)).expect("host starts");
    host.load_builtins().expect("built-ins load");
    host.load(&wasm("hostile")).expect("hostile plugin loads");
    host
}

fn grants(plugin: &str, grant: Grant) -> Grants {
    let mut g = Grants::default();
    g.plugins.insert(plugin.into(), grant);
    g
}

fn call(plugin: &str, version: &str, input: Value) -> Invocation {
    Invocation {
        plugin: plugin.into(),
        version: version.parse().expect("fixture version"),
        input,
        idempotency_key: "run-1/step-1".into(),
        secrets: Default::default(),
        timeout: Duration::from_secs(30),
        cancel: CancellationToken::new(),
    }
}

fn hostile(input: Value) -> Invocation {
    call("hostile", "0.1.0", input)
}

fn echo_input(n: usize) -> Value {
    json!({"n": n, "nested": {"list": [1, "two", null]}})
}

/// The host is still healthy: a normal step succeeds with its input echoed.
fn assert_echo_works(host: &PluginHost) {
    let out = host
        .invoke_blocking(call("echo", "1.0.0", echo_input(7)))
        .expect("echo succeeds after the hostile step");
    assert_eq!(out.output, echo_input(7));
}

fn expect_failure(result: Result<Outcome, StepFailure>) -> StepFailure {
    match result {
        Ok(out) => panic!("expected the step to fail, it returned {}", out.output),
        Err(failure) => failure,
    }
}

/// A one-route HTTP server on 127.0.0.1:0 answering every request with `status` and `body`.
struct TestServer {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

fn serve(status: u16, body: &'static str) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    TestServer { addr, hits }
}

#[test]
fn builtins_load_and_echo_round_trips() {
    let host = host(Grants::default());
    let index = host.index();
    for name in ["echo", "http", "notify", "hostile"] {
        let req = semver::VersionReq::parse("*").expect("req");
        assert!(index.resolve(name, &req).is_some(), "{name} is indexed");
    }
    let echo = index.versions("echo");
    assert_eq!(echo[0].input_schema["type"], "object");

    let out = host
        .invoke_blocking(call("echo", "1.0.0", echo_input(1)))
        .expect("echo runs");
    assert_eq!(out.output, echo_input(1));
    assert_eq!(out.log, "");

    // Loading the same bytes again is a no-op returning the same descriptor.
    let again = host.load(&wasm("echo")).expect("reload");
    assert_eq!(again, echo[0]);
}

#[test]
fn an_infinite_loop_is_stopped_at_its_deadline() {
    let host = host(Grants::default());
    let mut spin = hostile(json!({"mode": "spin"}));
    spin.timeout = Duration::from_millis(300);
    let failure = expect_failure(host.invoke_blocking(spin));
    assert_eq!(failure.kind, FailureKind::Timeout, "{failure}");
    assert!(failure.message.contains("timeout of 300ms"), "{failure}");
    assert!(failure.is_retryable());
    assert_echo_works(&host);
}

#[test]
fn unbounded_allocation_is_stopped_at_the_memory_cap() {
    let host = host(Grants::default());
    let failure = expect_failure(host.invoke_blocking(hostile(json!({"mode": "hoard"}))));
    assert_eq!(failure.kind, FailureKind::MemoryLimit, "{failure}");
    assert!(failure.message.contains("64 MiB"), "{failure}");
    assert!(failure.message.contains("memory_mib"), "{failure}");
    assert_echo_works(&host);
}

#[test]
fn the_memory_cap_follows_the_grant() {
    let grant = Grant {
        memory_mib: Some(16),
        ..Grant::default()
    };
    let host = host(grants("hostile", grant));
    let failure = expect_failure(host.invoke_blocking(hostile(json!({"mode": "hoard"}))));
    assert_eq!(failure.kind, FailureKind::MemoryLimit, "{failure}");
    assert!(failure.message.contains("16 MiB"), "{failure}");
    assert_echo_works(&host);
}

#[test]
fn a_panic_fails_the_step_with_its_message() {
    let host = host(Grants::default());
    let failure = expect_failure(host.invoke_blocking(hostile(json!({"mode": "panic"}))));
    assert_eq!(failure.kind, FailureKind::Trap, "{failure}");
    assert!(
        failure
            .message
            .contains("hostile plugin panicked on purpose"),
        "{failure}"
    );
    assert!(
        failure.log.contains("panicked at"),
        "the log keeps stderr: {}",
        failure.log
    );
    assert_echo_works(&host);
}

#[test]
fn no_attempt_sees_what_an_earlier_one_left_in_memory() {
    // Pooled slots are reused and reset in place; each attempt must still start from the
    // plugin's initial memory: its static counter at 0, fresh heap pages zero.
    let host = host(Grants::default());
    for attempt in 0..5 {
        let out = host
            .invoke_blocking(hostile(json!({"mode": "remember"})))
            .expect("remembering is not an error");
        assert_eq!(
            out.output["previous_attempts"], 0,
            "attempt {attempt}: {}",
            out.output
        );
        assert_eq!(
            out.output["dirty_bytes"], 0,
            "attempt {attempt}: {}",
            out.output
        );
    }
}

#[test]
fn files_and_the_environment_are_invisible() {
    let host = host(Grants::default());
    // The test process has environment variables (PATH at least) and /etc/passwd exists.
    assert!(std::env::vars().next().is_some());
    let out = host
        .invoke_blocking(hostile(json!({"mode": "snoop"})))
        .expect("snooping itself is not an error");
    assert_eq!(out.output["passwd"], Value::Null, "{}", out.output);
    assert!(out.output["passwd_error"].is_string(), "{}", out.output);
    assert_eq!(out.output["env"], json!([]), "{}", out.output);
    assert_echo_works(&host);
}

#[test]
fn http_to_a_host_not_granted_is_denied() {
    let server = serve(200, "{}");
    let host = host(Grants::default());
    let url = format!("http://{}/steal", server.addr);
    let failure =
        expect_failure(host.invoke_blocking(hostile(json!({"mode": "fetch", "url": url}))));
    assert_eq!(failure.kind, FailureKind::Denied, "{failure}");
    assert!(
        failure.message.contains("plugins.hostile.http_hosts"),
        "{failure}"
    );
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        0,
        "nothing reached the server"
    );
    assert_echo_works(&host);
}

/// Headers that steer the connection are the host's: each fails only its own attempt,
/// `denied`, naming the header, and nothing reaches the server.
#[test]
fn a_plugin_cannot_set_the_headers_that_steer_the_connection() {
    let server = serve(200, "{}");
    let grant = Grant {
        http_hosts: vec![server.addr.to_string()],
        ..Grant::default()
    };
    let host = host(grants("hostile", grant));
    let url = format!("http://{}/ok", server.addr);
    for header in [
        "Host: metadata.internal",
        "connection: upgrade",
        "Transfer-Encoding: chunked",
        "Upgrade: websocket",
        "Proxy-Authorization: Basic eA==",
    ] {
        let failure = expect_failure(host.invoke_blocking(hostile(
            json!({"mode": "fetch", "url": url, "header": header}),
        )));
        assert_eq!(failure.kind, FailureKind::Denied, "{header}: {failure}");
        let name = header.split(':').next().unwrap_or_default();
        assert!(
            failure.message.contains(&format!("`{name}` header")),
            "{failure}"
        );
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 0);
    for fine in [
        "X-Request: fine".to_string(),
        format!("Host: {}", server.addr),
    ] {
        let out = host
            .invoke_blocking(hostile(
                json!({"mode": "fetch", "url": url, "header": fine}),
            ))
            .expect("an ordinary header, or the URL's own Host, goes through");
        assert_eq!(out.output["status"], 200);
    }
    assert_echo_works(&host);
}

#[test]
fn http_to_a_granted_host_goes_through() {
    let server = serve(200, "{}");
    let grant = Grant {
        http_hosts: vec![server.addr.to_string()],
        ..Grant::default()
    };
    let host = host(grants("hostile", grant));
    let url = format!("http://{}/ok", server.addr);
    let out = host
        .invoke_blocking(hostile(json!({"mode": "fetch", "url": url})))
        .expect("granted request succeeds");
    assert_eq!(out.output["status"], 200);
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
    assert!(
        out.log.contains("GET"),
        "host http calls are logged: {}",
        out.log
    );
}

#[test]
fn secrets_outside_the_grant_are_denied() {
    let grant = Grant {
        secrets: vec!["allowed".into()],
        ..Grant::default()
    };
    let host = host(grants("hostile", grant));
    let with_secrets = |name: &str| {
        let mut c = hostile(json!({"mode": "peek", "secret": name}));
        c.secrets = std::sync::Arc::new(BTreeMap::from([
            ("allowed".to_string(), "open".to_string()),
            ("forbidden".to_string(), "hidden".to_string()),
        ]));
        c
    };
    let out = host
        .invoke_blocking(with_secrets("allowed"))
        .expect("granted secret is readable");
    // Read, and masked on the way out like every secret value.
    assert_eq!(out.output["secret"], "***");

    let failure = expect_failure(host.invoke_blocking(with_secrets("forbidden")));
    assert_eq!(failure.kind, FailureKind::Denied, "{failure}");
    assert!(
        !failure.message.contains("hidden"),
        "no secret value leaks: {failure}"
    );
    assert_echo_works(&host);
}

#[test]
fn a_50_mb_output_is_refused() {
    // Enough memory to build the payload, so it is the output cap that refuses it.
    let grant = Grant {
        memory_mib: Some(256),
        ..Grant::default()
    };
    let host = host(grants("hostile", grant));
    let failure = expect_failure(host.invoke_blocking(hostile(json!({"mode": "flood"}))));
    assert_eq!(failure.kind, FailureKind::OutputTooLarge, "{failure}");
    assert!(failure.message.contains("1048576 bytes"), "{failure}");
    assert_echo_works(&host);
}

#[test]
fn a_socket_import_is_refused_at_load() {
    let host = host(Grants::default());
    let err = host.load(&wasm("sockets")).err();
    let Some(LoadError::ForbiddenImport { import, hint }) = &err else {
        panic!("expected a forbidden import, got {err:?}");
    };
    assert!(import.starts_with("wasi:sockets/"), "{import}");
    assert!(hint.contains("csmp:plugin/http"), "{hint}");
    assert!(host.index().versions("sockets").is_empty());
    assert_echo_works(&host);
}

#[test]
fn garbage_is_refused_at_load() {
    let host = host(Grants::default());
    let err = host.load(b"not wasm at all").err();
    assert!(matches!(err, Some(LoadError::NotWasm)), "{err:?}");
}

#[test]
fn inputs_are_checked_against_the_schema() {
    let host = host(Grants::default());
    let failure = expect_failure(host.invoke_blocking(call("echo", "1.0.0", json!([1, 2]))));
    assert_eq!(failure.kind, FailureKind::InvalidInput, "{failure}");
    let failure = expect_failure(host.invoke_blocking(hostile(json!({"mode": "dance"}))));
    assert_eq!(failure.kind, FailureKind::InvalidInput, "{failure}");
    assert!(failure.message.contains("hostile@0.1.0"), "{failure}");
}

#[test]
fn unknown_plugins_and_versions_are_reported() {
    let host = host(Grants::default());
    let failure = expect_failure(host.invoke_blocking(call("nope", "1.0.0", json!({}))));
    assert_eq!(failure.kind, FailureKind::UnknownPlugin);
    let failure = expect_failure(host.invoke_blocking(call("echo", "9.9.9", json!({}))));
    assert_eq!(failure.kind, FailureKind::UnknownPlugin);
    assert!(failure.message.contains("loaded: 1.0.0"), "{failure}");
}

#[test]
fn the_http_builtin_classifies_statuses() {
    let ok = serve(201, r#"{"id":"i-1"}"#);
    let down = serve(503, "busy");
    let bad = serve(404, "no such thing");
    let grant = Grant {
        http_hosts: vec!["127.0.0.1:*".into()],
        ..Grant::default()
    };
    let host = host(grants("http", grant));
    let post = |addr: SocketAddr| {
        call(
            "http",
            "1.0.0",
            json!({"method": "POST", "url": format!("http://{addr}/instances"), "body": {"size": "small"}}),
        )
    };

    let out = host.invoke_blocking(post(ok.addr)).expect("201 is success");
    assert_eq!(out.output["status"], 201);
    assert_eq!(out.output["body"], json!({"id": "i-1"}));

    let failure = expect_failure(host.invoke_blocking(post(down.addr)));
    assert_eq!(failure.kind, FailureKind::Retryable, "{failure}");
    let failure = expect_failure(host.invoke_blocking(post(bad.addr)));
    assert_eq!(failure.kind, FailureKind::Permanent, "{failure}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_step_can_be_cancelled() {
    let host = host(Grants::default());
    let cancel = CancellationToken::new();
    let mut spin = hostile(json!({"mode": "spin"}));
    spin.cancel = cancel.clone();
    let running = tokio::spawn({
        let host = host.clone();
        async move { host.invoke(spin).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    cancel.cancel();
    let result = tokio::time::timeout(HANG_GUARD, running)
        .await
        .expect("cancellation stops the plugin")
        .expect("task joins");
    assert_eq!(expect_failure(result).kind, FailureKind::Cancelled);
    assert_echo_works(&host);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_steps_do_not_disturb_concurrent_steps() {
    let server = serve(200, "{}");
    let host = host(Grants::default());

    let mut spin = hostile(json!({"mode": "spin"}));
    spin.timeout = Duration::from_millis(500);
    let url = format!("http://{}/x", server.addr);
    let hostile_calls = vec![
        spin,
        hostile(json!({"mode": "hoard"})),
        hostile(json!({"mode": "panic"})),
        hostile(json!({"mode": "fetch", "url": url})),
    ];
    let mut hostile_tasks = Vec::new();
    for c in hostile_calls {
        let host = host.clone();
        hostile_tasks.push(tokio::spawn(async move { host.invoke(c).await }));
    }
    let mut normal_tasks = Vec::new();
    for n in 0..40 {
        let host = host.clone();
        normal_tasks.push(tokio::spawn(async move {
            (n, host.invoke(call("echo", "1.0.0", echo_input(n))).await)
        }));
    }

    let all = async {
        let mut kinds = Vec::new();
        for t in hostile_tasks {
            kinds.push(expect_failure(t.await.expect("joins")).kind);
        }
        for t in normal_tasks {
            let (n, result) = t.await.expect("joins");
            let out = result.unwrap_or_else(|f| panic!("echo {n} was disturbed: {f}"));
            assert_eq!(out.output, echo_input(n));
        }
        kinds
    };
    let kinds = tokio::time::timeout(HANG_GUARD, all)
        .await
        .expect("no hang");
    assert_eq!(
        kinds,
        vec![
            FailureKind::Timeout,
            FailureKind::MemoryLimit,
            FailureKind::Trap,
            FailureKind::Denied
        ]
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), 0);
}

/// The secrets of the masking tests: one granted, one not.
fn secret_map() -> std::sync::Arc<BTreeMap<String, String>> {
    std::sync::Arc::new(BTreeMap::from([
        ("api".to_string(), "s3cr3t token 42".to_string()),
        ("other".to_string(), "never-granted-value".to_string()),
    ]))
}

/// Output, log (a secret split across two writes, and in a log line), error: every string
/// that leaves an attempt has every form of every secret masked.
#[test]
fn every_way_out_of_an_attempt_is_masked() {
    let grant = Grant {
        secrets: vec!["api".into()],
        ..Grant::default()
    };
    let host = host(grants("hostile", grant));
    let mut c = hostile(json!({"mode": "leak", "secret": "api"}));
    c.secrets = secret_map();
    let out = host.invoke_blocking(c).expect("leak returns");
    let text = format!("{} {}", out.output, out.log);
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(!text.contains("czNjcjN0"), "no base64 of it either: {text}");
    assert_eq!(out.output["secret"], "***");
    assert_eq!(out.output["payload"], "url *** b64 ***", "{}", out.output);
    assert!(
        out.log.contains("first half *** second half"),
        "a secret split across two writes is masked: {}",
        out.log
    );
    assert!(out.log.contains("the secret is ***"), "{}", out.log);

    let mut c = hostile(json!({"mode": "leak", "secret": "api", "bytes": 1}));
    c.secrets = secret_map();
    let failure = expect_failure(host.invoke_blocking(c));
    assert_eq!(failure.kind, FailureKind::Retryable, "{failure}");
    assert!(
        failure.message.contains("key=***") && !failure.message.contains("s3cr3t"),
        "{failure}"
    );
    assert!(!failure.log.contains("s3cr3t"), "{}", failure.log);
    assert_echo_works(&host);
}

/// A secret templated into `with:` reaches the plugin like one it reads: without the grant the
/// attempt is refused before the plugin runs, naming the secret and never its value.
#[test]
fn a_secret_in_the_input_needs_the_grant() {
    let grant = Grant {
        secrets: vec!["api".into()],
        ..Grant::default()
    };
    let host = host(grants("echo", grant));
    let mut granted = call("echo", "1.0.0", json!({"header": "Bearer s3cr3t token 42"}));
    granted.secrets = secret_map();
    let out = host
        .invoke_blocking(granted)
        .expect("a granted secret passes");
    assert_eq!(out.output, json!({"header": "Bearer ***"}));

    let mut refused = call("echo", "1.0.0", json!({"x": ["never-granted-value"]}));
    refused.secrets = secret_map();
    let failure = expect_failure(host.invoke_blocking(refused));
    assert_eq!(failure.kind, FailureKind::Denied, "{failure}");
    assert!(failure.message.contains("secret `other`"), "{failure}");
    assert!(
        failure.message.contains("plugins.echo.secrets"),
        "{failure}"
    );
    assert!(!failure.message.contains("never-granted"), "{failure}");
    assert_echo_works(&host);
}

/// A resolver that answers from a table: what a hostile DNS server would say.
#[derive(Debug)]
struct FakeDns(BTreeMap<&'static str, Vec<std::net::IpAddr>>);

impl csmp::plugin::address::Lookup for FakeDns {
    fn lookup(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        self.0
            .get(host)
            .map(|ips| ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
            .ok_or_else(|| std::io::Error::other(format!("{host}: no such name")))
    }
}

fn host_with_dns(grants: Grants, dns: FakeDns) -> PluginHost {
    let cache = crate::helpers::plugin_cache();
    let mut config = HostConfig::new(cache, grants);
    config.lookup = Some(Arc::new(dns));
    let host = PluginHost::new(config).expect("host starts");
    host.load_builtins().expect("built-ins load");
    host.load(&wasm("hostile")).expect("hostile plugin loads");
    host
}

fn ip(text: &str) -> std::net::IpAddr {
    text.parse().expect("an address")
}

/// Addresses inside the machine and its networks are refused under a wide grant: loopback,
/// the cloud metadata service (IPv4 and IPv6), a name that resolves to a public and a private
/// address at once. Each fails only its own attempt, `denied`, naming the address and why;
/// nothing reaches the local server.
#[test]
fn inside_addresses_need_to_be_named_in_the_grant() {
    let server = serve(200, "{}");
    let port = server.addr.port();
    let dns = FakeDns(BTreeMap::from([
        ("localhost.test", vec![ip("127.0.0.1")]),
        ("rebind.test", vec![ip("93.184.216.34"), ip("127.0.0.1")]),
        ("metadata.test", vec![ip("169.254.169.254")]),
    ]));
    let wide = Grant {
        http_hosts: vec!["*".into()],
        ..Grant::default()
    };
    let host = host_with_dns(grants("hostile", wide), dns);
    let cases = [
        (
            format!("http://127.0.0.1:{port}/"),
            "127.0.0.1",
            "a loopback address",
        ),
        (
            format!("http://localhost.test:{port}/"),
            "127.0.0.1",
            "a loopback address",
        ),
        (
            format!("http://rebind.test:{port}/"),
            "127.0.0.1",
            "a loopback address",
        ),
        (
            "http://metadata.test/latest/meta-data".to_string(),
            "169.254.169.254",
            "link-local",
        ),
        (
            "http://169.254.169.254/latest/meta-data".to_string(),
            "169.254.169.254",
            "link-local",
        ),
        (
            "http://[fd00:ec2::254]/latest/meta-data".to_string(),
            "fd00:ec2::254",
            "unique-local",
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            "127.0.0.1",
            "a loopback address",
        ),
    ];
    for (url, addr, kind) in &cases {
        let failure =
            expect_failure(host.invoke_blocking(hostile(json!({"mode": "fetch", "url": url}))));
        assert_eq!(failure.kind, FailureKind::Denied, "{url}: {failure}");
        assert!(failure.message.contains(addr), "{url}: {failure}");
        assert!(failure.message.contains(kind), "{url}: {failure}");
        assert!(failure.message.contains("allow_private"), "{failure}");
    }
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        0,
        "nothing reached the server"
    );
    assert_echo_works(&host);
}

/// The grant names the address, or allows private ones: then the request goes through, to
/// the address that was checked — a name only the test's resolver knows reaches the local
/// server, so no second lookup happened.
#[test]
fn a_named_or_allowed_inside_address_is_reached_at_the_checked_address() {
    let server = serve(200, "{}");
    let port = server.addr.port();
    let dns = FakeDns(BTreeMap::from([("pinned.test", vec![ip("127.0.0.1")])]));
    let allowed = Grant {
        http_hosts: vec![format!("pinned.test:{port}"), format!("127.0.0.1:{port}")],
        allow_private: true,
        ..Grant::default()
    };
    let host = host_with_dns(grants("hostile", allowed), dns);
    for url in [
        format!("http://pinned.test:{port}/ok"),
        format!("http://127.0.0.1:{port}/ok"),
    ] {
        let out = host
            .invoke_blocking(hostile(json!({"mode": "fetch", "url": url})))
            .expect("an allowed inside address is reached");
        assert_eq!(out.output["status"], 200);
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);

    // Without allow_private, a granted name that resolves inside is refused; once the grant
    // names the address too, it is the operator's choice and goes through.
    let dns = || FakeDns(BTreeMap::from([("pinned.test", vec![ip("127.0.0.1")])]));
    let name_only = Grant {
        http_hosts: vec![format!("pinned.test:{port}")],
        ..Grant::default()
    };
    let host = host_with_dns(grants("hostile", name_only), dns());
    let failure = expect_failure(host.invoke_blocking(hostile(
        json!({"mode": "fetch", "url": format!("http://pinned.test:{port}/")}),
    )));
    assert_eq!(failure.kind, FailureKind::Denied, "{failure}");
    let named = Grant {
        http_hosts: vec![format!("pinned.test:{port}"), format!("127.0.0.1:{port}")],
        ..Grant::default()
    };
    let host = host_with_dns(grants("hostile", named), dns());
    host.invoke_blocking(hostile(
        json!({"mode": "fetch", "url": format!("http://pinned.test:{port}/")}),
    ))
    .expect("a name resolving to a granted address is reached");
    host.invoke_blocking(hostile(
        json!({"mode": "fetch", "url": format!("http://127.0.0.1:{port}/")}),
    ))
    .expect("the granted address itself is reached");
    assert_eq!(server.hits.load(Ordering::SeqCst), 4);
    assert_echo_works(&host);
}
