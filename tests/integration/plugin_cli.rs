//! Plugins from files and the plugin commands, with the real binary: `--plugin` and
//! `CSMP_PLUGINS` refuse each kind of bad component with the file and the reason (not
//! WebAssembly, a core module, not our world, a refused import, a clash with a built-in);
//! `csmp plugin inspect` shows imports, capabilities and grants; `csmp plugin try` runs one
//! attempt in the real sandbox.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::helpers::{csmp, stdout};

fn built(stem: &str) -> PathBuf {
    PathBuf::from(format!("{}/{stem}.wasm", env!("CSMP_PLUGIN_WASM_DIR")))
}

/// `wasm` with a custom section appended: the same plugin, other bytes.
pub(crate) fn with_other_bytes(wasm: &[u8]) -> Vec<u8> {
    let name = b"csmp-test";
    let mut section = vec![u8::try_from(name.len()).expect("short name")];
    section.extend_from_slice(name);
    section.extend_from_slice(b"other bytes");
    let mut out = wasm.to_vec();
    out.push(0);
    out.push(u8::try_from(section.len()).expect("short section"));
    out.extend_from_slice(&section);
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write a fixture");
    path.display().to_string()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn each_bad_plugin_file_is_refused_with_its_file_and_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let echo = std::fs::read(built("echo")).expect("echo is built");
    let sockets = built("sockets").display().to_string();
    let cases = [
        (
            write(dir.path(), "text.wasm", b"hello"),
            "is not WebAssembly",
        ),
        (
            write(dir.path(), "core.wasm", b"\0asm\x01\0\0\0"),
            "a core WebAssembly module, not a component",
        ),
        (
            write(dir.path(), "empty.wasm", b"\0asm\x0d\0\x01\0"),
            "does not implement the csmp plugin world",
        ),
        (sockets.clone(), "imports `wasi:sockets/"),
        (
            write(dir.path(), "echo.wasm", &with_other_bytes(&echo)),
            "echo@1.0.0 clashes with a built-in plugin",
        ),
        (
            dir.path().join("missing.wasm").display().to_string(),
            "no such file or directory",
        ),
    ];
    for (file, expected) in cases {
        let out = csmp(&["validate", "--plugin", &file, "workflows/hello.yaml"]);
        assert_eq!(out.status.code(), Some(2), "{file}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(
            text.contains(&file) || expected == "no such file or directory",
            "names the file: {text}"
        );
        assert!(text.contains(expected), "{file}: {text}");
    }
    // The same bytes as a built-in are that built-in: nothing clashes.
    let same = write(dir.path(), "same.wasm", &echo);
    let out = csmp(&["validate", "--plugin", &same, "workflows/hello.yaml"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn inspect_shows_imports_capabilities_and_what_is_granted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hostile = built("hostile").display().to_string();
    let grants = write(
        dir.path(),
        "grants.yaml",
        b"plugins:\n  hostile: { http_hosts: [api.example.com], memory_mib: 16 }\n",
    );
    let out = csmp(&["plugin", "inspect", &hostile, "--grants", &grants]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("plugin       hostile@0.1.0"), "{text}");
    assert!(text.contains("  csmp:plugin/http@1.0.0\n"), "{text}");
    assert!(
        text.contains("secrets    *")
            && text.contains("not granted: add it to `plugins.hostile.secrets`"),
        "{text}"
    );
    assert!(
        text.contains("grant        http_hosts: api.example.com; secrets: none; memory_mib: 16"),
        "{text}"
    );
    assert!(text.contains("input schema"), "{text}");

    let out = csmp(&["plugin", "inspect", &hostile, "--format", "json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["descriptor"]["name"], "hostile");
    assert_eq!(
        doc["review"]["missing_http_hosts"],
        serde_json::json!(["*"]),
        "{doc}"
    );

    let sockets = built("sockets").display().to_string();
    let out = csmp(&["plugin", "inspect", &sockets]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("REFUSED: plugin imports `wasi:sockets/"),
        "{text}"
    );
}

#[test]
fn try_runs_one_attempt_in_the_real_sandbox() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hostile = built("hostile").display().to_string();
    let out = csmp(&[
        "plugin",
        "try",
        &hostile,
        "--input",
        r#"{"mode": "peek", "secret": "token"}"#,
        "--secret",
        "token=abc",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains("outcome      failed (denied)"), "{text}");
    assert!(
        text.contains("nothing is granted without --grants"),
        "{text}"
    );

    let grants = write(
        dir.path(),
        "grants.yaml",
        b"plugins: { hostile: { secrets: [token] } }\n",
    );
    let out = csmp(&[
        "plugin",
        "try",
        &hostile,
        "--input",
        r#"{"mode": "peek", "secret": "token"}"#,
        "--secret",
        "token=abc",
        "--grants",
        &grants,
        "--repeat",
        "20",
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("outcome      succeeded"), "{text}");
    assert!(text.contains("\"secret\": \"abc\""), "{text}");
    assert!(
        text.contains("repeat       19 more attempts: p50 "),
        "{text}"
    );

    let out = csmp(&["plugin", "try", &hostile, "--input", "{mode: x}"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not JSON"), "{}", stderr(&out));
}
