//! Plugins in Python (componentize-py) and JavaScript (componentize-js), built from
//! `sdk/examples/` against `sdk/wit/plugin.wit` by `sdk/examples/build.sh` and run through the
//! real host: an echo in each language, and a plugin in each that calls a local server through
//! host HTTP with a bearer token from a granted secret. Also through the command line:
//! `csmp plugin try` and `csmp run --plugin`.
//!
//! The tools are pinned and installed by `sdk/examples/tools.sh` (`tests/run` runs it). Without
//! them these tests fail and say how to install them; they never skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use csmp::plugin::{
    CancellationToken, FailureKind, Grant, Grants, HostConfig, Invocation, LoadError, PluginHost,
};
use serde_json::{Value, json};

use crate::helpers::{csmp, repo_root, stdout};

/// The four example components, built when they are older than their sources. Test
/// processes share them (and, since their bytes then stay the same, the host's compile cache):
/// a lock file keeps two processes from building at once.
fn built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        // Where `sdk/examples/build.sh` builds them by default (`target/examples`).
        let out = repo_root().join("target").join("examples");
        std::fs::create_dir_all(&out).expect("the examples' directory");
        let lock = std::fs::File::create(out.join(".lock")).expect("a lock file");
        lock.lock().expect("the examples' lock");
        if stale(&out) {
            let run = Command::new("bash")
                .arg(repo_root().join("sdk/examples/build.sh"))
                .arg(&out)
                .output()
                .expect("bash runs");
            assert!(
                run.status.success(),
                "building the Python and JavaScript examples failed; install the pinned tools \
                 with `sdk/examples/tools.sh` (componentize-py from PyPI into target/ci-venv, \
                 componentize-js from npm into target/ci-node; needs python3, node and npm):\n{}{}",
                String::from_utf8_lossy(&run.stdout),
                String::from_utf8_lossy(&run.stderr)
            );
        }
        out
    })
}

/// Whether a component is missing or older than anything it is built from.
fn stale(out: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let root = repo_root();
    let mut sources = vec![
        root.join("sdk/wit/plugin.wit"),
        root.join("sdk/examples/build.sh"),
    ];
    for dir in ["sdk/examples/python", "sdk/examples/javascript"] {
        let entries = std::fs::read_dir(root.join(dir)).expect("the examples' sources");
        sources.extend(
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "py" || x == "js")),
        );
    }
    let newest = sources.iter().filter_map(|p| modified(p)).max();
    ["py-echo", "py-fetch", "js-echo", "js-fetch"]
        .iter()
        .any(
            |stem| match (modified(&out.join(format!("{stem}.wasm"))), newest) {
                (Some(built), Some(newest)) => built < newest,
                _ => true,
            },
        )
}

fn component(stem: &str) -> PathBuf {
    built().join(format!("{stem}.wasm"))
}

fn host(grants: Grants) -> PluginHost {
    let cache = crate::helpers::plugin_cache();
    let host = PluginHost::new(HostConfig::new(cache, grants)).expect("host starts");
    for stem in ["py-echo", "py-fetch", "js-echo", "js-fetch"] {
        let wasm = std::fs::read(component(stem)).expect("the example is built");
        let d = host
            .load(&wasm)
            .unwrap_or_else(|e| panic!("{stem} loads: {e}"));
        assert_eq!(d.name, stem);
    }
    host
}

fn call(plugin: &str, input: Value, secrets: &[(&str, &str)]) -> Invocation {
    Invocation {
        plugin: plugin.into(),
        version: "0.1.0".parse().expect("a version"),
        input,
        idempotency_key: "run-1/fetch".into(),
        secrets: Arc::new(
            secrets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        timeout: Duration::from_secs(30),
        cancel: CancellationToken::new(),
    }
}

#[test]
fn python_and_javascript_echo_plugins_run_in_the_real_host() {
    let host = host(Grants::default());
    for plugin in ["py-echo", "js-echo"] {
        let input = json!({ "who": "ops", "n": [1, 2, 3], "nested": { "ok": true } });
        let out = host
            .invoke_blocking(call(plugin, input.clone(), &[]))
            .unwrap_or_else(|f| panic!("{plugin}: {f}\n{}", f.log));
        assert_eq!(out.output, input, "{plugin}");
        assert!(out.log.contains("echoing 3 keys"), "{plugin}: {}", out.log);
        // The host checks the declared input schema before the plugin runs.
        let refused = host.invoke_blocking(call(plugin, json!([1]), &[]));
        let failure = refused.expect_err("an array is not an object");
        assert_eq!(
            failure.kind,
            FailureKind::InvalidInput,
            "{plugin}: {failure}"
        );
    }
}

/// A status API on 127.0.0.1 that wants `Authorization: Bearer s3cret` and tells what it saw.
struct StatusApi {
    authority: String,
    seen: Arc<Mutex<Vec<(String, String)>>>,
    _runtime: tokio::runtime::Runtime,
}

impl StatusApi {
    fn start() -> Self {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let log = Arc::clone(&seen);
        let app = Router::new().route(
            "/status",
            get(move |headers: HeaderMap| {
                let log = Arc::clone(&log);
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string()
                    };
                    let (auth, key) = (header("authorization"), header("idempotency-key"));
                    log.lock().expect("the log").push((auth.clone(), key));
                    if auth == "Bearer s3cret" {
                        (StatusCode::OK, axum::Json(json!({ "healthy": true })))
                    } else {
                        (
                            StatusCode::UNAUTHORIZED,
                            axum::Json(json!({ "healthy": null })),
                        )
                    }
                }
            }),
        );
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("an address");
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            authority: addr.to_string(),
            seen,
            _runtime: runtime,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/status", self.authority)
    }
}

#[test]
fn python_and_javascript_plugins_use_host_http_and_a_granted_secret() {
    let api = StatusApi::start();
    let mut grants = Grants::default();
    for plugin in ["py-fetch", "js-fetch"] {
        grants.plugins.insert(
            plugin.into(),
            Grant {
                // The exact host:port: loopback is granted by name only.
                http_hosts: vec![api.authority.clone()],
                secrets: vec!["fetch_token".into()],
                ..Grant::default()
            },
        );
    }
    let host = host(grants);
    for plugin in ["py-fetch", "js-fetch"] {
        let input = json!({ "url": api.url() });
        let out = host
            .invoke_blocking(call(plugin, input.clone(), &[("fetch_token", "s3cret")]))
            .unwrap_or_else(|f| panic!("{plugin}: {f}\n{}", f.log));
        assert_eq!(
            out.output,
            json!({ "status": 200, "body": { "healthy": true } }),
            "{plugin}"
        );
        assert!(out.log.contains("-> 200"), "{plugin}: {}", out.log);
        let seen = api.seen.lock().expect("the log").pop();
        assert_eq!(
            seen,
            Some(("Bearer s3cret".to_string(), "run-1/fetch".to_string())),
            "{plugin} sent the secret and the idempotency key"
        );

        // A wrong token: the server's 401 is a permanent failure of the plugin's own.
        let wrong = host
            .invoke_blocking(call(plugin, input.clone(), &[("fetch_token", "nope")]))
            .expect_err("401");
        assert_eq!(wrong.kind, FailureKind::Permanent, "{plugin}: {wrong}");
        assert!(wrong.message.contains("401"), "{plugin}: {wrong}");

        // The secret unset: the plugin says so.
        let unset = host
            .invoke_blocking(call(plugin, input.clone(), &[]))
            .expect_err("no secret");
        assert!(unset.message.contains("fetch_token"), "{plugin}: {unset}");
    }

    // Without the grant, the same calls are denied by the host.
    let bare = self::host(Grants::default());
    for plugin in ["py-fetch", "js-fetch"] {
        let denied = bare
            .invoke_blocking(call(
                plugin,
                json!({ "url": api.url() }),
                &[("fetch_token", "s3cret")],
            ))
            .expect_err("nothing granted");
        assert_eq!(denied.kind, FailureKind::Denied, "{plugin}: {denied}");
        assert!(
            denied
                .message
                .contains(&format!("plugins.{plugin}.secrets")),
            "{plugin}: {denied}"
        );
    }
}

#[test]
fn a_python_plugin_built_without_stub_wasi_is_refused_for_its_sockets() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("py-echo-sockets.wasm");
    built(); // the tools are there
    let venv = repo_root().join("target/ci-venv/bin/componentize-py");
    let tool = if venv.is_file() {
        venv
    } else {
        PathBuf::from("componentize-py")
    };
    // From a copy: componentize-py writes __pycache__ beside the sources.
    let src = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        repo_root().join("sdk/examples/python/echo.py"),
        src.path().join("echo.py"),
    )
    .expect("copy echo.py");
    let run = Command::new(tool)
        .arg("-d")
        .arg(repo_root().join("sdk/wit"))
        .args(["-w", "plugin", "componentize", "-p"])
        .arg(src.path())
        .args(["echo", "-o"])
        .arg(&out)
        .output()
        .expect("componentize-py runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let cache = crate::helpers::plugin_cache();
    let host = PluginHost::new(HostConfig::new(cache, Grants::default())).expect("host starts");
    let err = host
        .load(&std::fs::read(&out).expect("built"))
        .expect_err("sockets are refused");
    assert!(
        matches!(&err, LoadError::ForbiddenImport { import, .. } if import.starts_with("wasi:sockets/")),
        "{err}"
    );
    assert!(err.to_string().contains("--stub-wasi"), "{err}");
}

const BOTH: &str = r#"name: both-languages
version: 1
description: a Python step feeding a JavaScript step
inputs:
  type: object
  required: [who]
  properties: { who: { type: string } }
steps:
  - id: py
    uses: py-echo@^0.1
    with: { greeting: "hello, {{ inputs.who }}" }
  - id: js
    needs: [py]
    uses: js-echo@^0.1
    with: { from_python: "{{ steps.py.output.greeting }}" }
outputs:
  said: "{{ steps.js.output.from_python }}"
"#;

#[test]
fn the_command_line_tries_validates_and_runs_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = built().display().to_string();

    let tried = csmp(&[
        "plugin",
        "try",
        &component("js-echo").display().to_string(),
        "--input",
        r#"{"a": 1}"#,
    ]);
    let text = stdout(&tried);
    assert!(
        tried.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&tried.stderr)
    );
    assert!(text.contains("plugin       js-echo@0.1.0"), "{text}");
    assert!(text.contains("outcome      succeeded in "), "{text}");
    assert!(text.contains("peak memory"), "{text}");
    assert!(text.contains("[info] echoing 1 keys"), "{text}");

    let workflow = dir.path().join("both.yaml");
    std::fs::write(&workflow, BOTH).expect("write the workflow");
    let workflow = workflow.display().to_string();
    let unknown = csmp(&["validate", &workflow]);
    assert_eq!(unknown.status.code(), Some(1), "{}", stdout(&unknown));
    assert!(stdout(&unknown).contains("py-echo"), "{}", stdout(&unknown));
    let valid = csmp(&["validate", "--plugin", &plugins, &workflow]);
    assert!(valid.status.success(), "{}", stdout(&valid));

    let db = dir.path().join("csmp.db").display().to_string();
    let ran = crate::helpers::csmp_command()
        .args(["run", &workflow, "--input", "who=ops", "--database", &db])
        .env("CSMP_PLUGINS", &plugins)
        .output()
        .expect("csmp run runs");
    let text = stdout(&ran);
    assert!(
        ran.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(text.contains("\"said\": \"hello, ops\""), "{text}");
}
