//! Secrets, black-box: a real `csmp serve` with a secret stored by `csmp secret set`, one from
//! the environment and one set over the API, running a workflow whose steps let them out every
//! way a plugin can. None of their bytes — plain, URL-encoded or base64 — may appear in any
//! answer, the event stream, the service log, or the database file and its WAL.

use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;

use base64::Engine as _;
use serde_json::json;

use super::harness::{s, write_definitions};
use super::process::{Served, cli_token};

const STORED: &str = "stored-Secret-Value-1";
const FROM_ENV: &str = "env Secret/Value+2";
const OVER_API: &str = "api-Secret-Value-3";

/// Every step tries another way out; none may fail the run.
const LEAK: &str = r#"name: leak
version: 1
description: lets secrets out every way a plugin can
steps:
  - id: stored
    uses: hostile@0.1
    with: { mode: leak, secret: api_key }
    continue_on_error: true
  - id: env
    uses: hostile@0.1
    with: { mode: leak, secret: env_key }
    continue_on_error: true
  - id: put
    uses: hostile@0.1
    with: { mode: leak, secret: put_key }
    continue_on_error: true
  - id: failing
    uses: hostile@0.1
    with: { mode: leak, secret: api_key, bytes: 1 }
    retry: { max_attempts: 1 }
    continue_on_error: true
  - id: templated
    uses: hostile@0.1
    with: { mode: fetch, url: "http://127.0.0.1:1/?k={{ secrets.api_key }}" }
    retry: { max_attempts: 1 }
    continue_on_error: true
  - id: ungranted
    uses: echo@^1
    with: { x: "{{ secrets.env_key }}" }
    continue_on_error: true
outputs:
  stored: "{{ steps.stored.output }}"
"#;

/// Every form of `value` that must never be seen.
fn forms(value: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(value);
    let url: String = value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    vec![value.to_string(), url, b64]
}

fn set_secret(db: &Path, name: &str, value: &str) {
    let mut child = crate::helpers::csmp_command()
        .args(["secret", "set", name, "--database"])
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("csmp secret set runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(value.as_bytes())
        .expect("the value goes in");
    let out = child.wait_with_output().expect("it ends");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(!said.contains(value), "{said}");
}

#[test]
fn secrets_set_three_ways_never_leave_their_plugin() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_definitions(dir.path());
    std::fs::write(dir.path().join("workflows/leak.yaml"), LEAK).expect("workflow");
    std::fs::write(
        dir.path().join("catalog/leak.yaml"),
        "id: leak\ntitle: Leak\nworkflow: leak\ntenants: [\"*\"]\n",
    )
    .expect("catalog entry");
    let grants = dir.path().join("grants.yaml");
    std::fs::write(
        &grants,
        "plugins:\n  hostile:\n    http_hosts: [\"127.0.0.1:1\"]\n    secrets: [api_key, env_key, put_key]\n",
    )
    .expect("grants");
    let db = dir.path().join("csmp.db");
    set_secret(&db, "api_key", STORED);
    let key_file = dir.path().join("csmp.db.key");
    assert!(
        key_file.exists(),
        "the master key file is created beside the database"
    );
    let admin = cli_token(&db, &["--role", "admin"]);
    let client = cli_token(&db, &["--role", "client", "--tenant", "acme"]);

    let hostile = format!("{}/hostile.wasm", env!("CSMP_PLUGIN_WASM_DIR"));
    let grants_arg = grants.display().to_string();
    let mut app = Served::start_with(
        dir.path(),
        "secrets",
        &["--grants", &grants_arg, "--plugin", &hostile],
        &[("CSMP_SECRET_ENV_KEY", FROM_ENV)],
    );
    let mut seen: Vec<String> = Vec::new();

    let put = app
        .put("/v1/secrets/put_key")
        .auth(&admin)
        .json(&json!({ "value": OVER_API }))
        .send()
        .expect(200);
    assert_eq!(put["name"], "put_key");
    seen.push(put.to_string());
    app.put("/v1/secrets/put_key")
        .auth(&client)
        .json(&json!({ "value": "x" }))
        .send()
        .problem(403, "forbidden");
    let reply = app
        .put("/v1/secrets/Bad-Name")
        .auth(&admin)
        .json(&json!({ "value": "x" }))
        .send();
    assert_eq!(reply.invalid(), vec!["/name"]);
    let listed = app.get("/v1/secrets").auth(&admin).send().expect(200);
    let names: Vec<String> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| s(i, "name"))
        .collect();
    assert_eq!(names, ["api_key", "put_key"]);
    seen.push(listed.to_string());

    // A problem that quotes what the caller sent masks it too.
    let refused = app
        .post("/v1/requests")
        .auth(&client)
        .json(&json!({ "catalog_id": "hello", "inputs": { "times": STORED } }))
        .send();
    assert_eq!(refused.status, 422, "{}", refused.text());
    assert!(refused.text().contains("***"), "{}", refused.text());
    seen.push(refused.text());

    let ordered = app.order(&client, &json!({ "catalog_id": "leak" }));
    let run = s(&ordered, "run_id");
    let done = app.wait_run(&client, &run, "succeeded");
    seen.push(done.to_string());
    // Each secret was read (the plugin's output carries it, masked).
    for key in ["stored", "env", "put"] {
        let unit = app
            .get(&format!("/v1/runs/{run}/steps/{key}"))
            .auth(&client)
            .send()
            .expect(200);
        assert_eq!(unit["output"]["secret"], "***", "{unit}");
        seen.push(unit.to_string());
    }
    for key in ["failing", "templated", "ungranted"] {
        let unit = app
            .get(&format!("/v1/runs/{run}/steps/{key}"))
            .auth(&client)
            .send()
            .expect(200);
        assert_eq!(unit["status"], "failed", "{unit}");
        seen.push(unit.to_string());
    }
    let ungranted = app
        .get(&format!("/v1/runs/{run}/steps/ungranted"))
        .auth(&client)
        .send()
        .expect(200);
    assert!(
        s(&ungranted, "error").contains("carries secret `env_key`"),
        "{ungranted}"
    );
    let events = app
        .get(&format!("/v1/runs/{run}/events"))
        .auth(&client)
        .send();
    seen.push(events.text());
    seen.push(
        app.get("/v1/audit")
            .auth(&admin)
            .send()
            .expect(200)
            .to_string(),
    );
    seen.push(
        app.get(&format!("/v1/requests/{}", s(&ordered, "id")))
            .auth(&client)
            .send()
            .expect(200)
            .to_string(),
    );
    seen.extend(app.log_so_far());
    let (status, log) = app.terminate();
    assert!(status.success(), "exit status {status}");
    seen.push(log);

    let mut stored_bytes = Vec::new();
    for file in ["csmp.db", "csmp.db-wal", "csmp.db-shm"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(file)) {
            stored_bytes.extend(bytes);
        }
    }
    assert!(!stored_bytes.is_empty(), "the database was read");
    let seen = seen.join("\n");
    for value in [STORED, FROM_ENV, OVER_API] {
        for form in forms(value) {
            assert!(!seen.contains(&form), "`{form}` appeared in what was seen");
            assert!(
                !stored_bytes
                    .windows(form.len())
                    .any(|w| w == form.as_bytes()),
                "`{form}` is in the database file"
            );
        }
    }
    // And what was masked says so.
    assert!(seen.contains("***"), "{seen}");
}

fn csmp_secret(db: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = crate::helpers::csmp_command()
        .arg("secret")
        .args(args)
        .arg("--database")
        .arg(db)
        .envs(env.iter().copied())
        .env_remove("CSMP_MASTER_KEY")
        .output()
        .expect("csmp secret runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `csmp secret list` shows names and keys, never values; `rotate-key` re-seals everything
/// under a new key file, and the values still open (a run reads them); a wrong key is refused
/// at start with the secret it cannot open.
#[test]
fn rotating_the_master_key_keeps_every_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("csmp.db");
    set_secret(&db, "api_key", STORED);
    set_secret(&db, "other", OVER_API);
    let (ok, listed, _) = csmp_secret(&db, &["list"], &[]);
    assert!(ok);
    let old_key = std::fs::read_to_string(dir.path().join("csmp.db.key")).expect("key file");
    assert!(
        listed.contains("api_key") && listed.contains("other"),
        "{listed}"
    );
    assert!(
        !listed.contains(STORED) && !listed.contains(OVER_API),
        "{listed}"
    );

    let (ok, _, said) = csmp_secret(&db, &["rotate-key"], &[]);
    assert!(ok, "{said}");
    assert!(said.contains("2 secrets re-encrypted"), "{said}");
    let new_key = std::fs::read_to_string(dir.path().join("csmp.db.key")).expect("key file");
    assert_ne!(old_key, new_key);
    let (_, relisted, _) = csmp_secret(&db, &["list"], &[]);
    assert_ne!(listed, relisted, "the rows name the new key");

    // The values open with the new key: a run hands one to a plugin (and masks it).
    let workflow = dir.path().join("peek.yaml");
    std::fs::write(
        &workflow,
        "name: peek\nversion: 1\nsteps:\n  - id: peek\n    uses: hostile@0.1\n    with: { mode: peek, secret: api_key }\noutputs:\n  seen: \"{{ steps.peek.output.secret }}\"\n",
    )
    .expect("workflow");
    let grants = dir.path().join("grants.yaml");
    std::fs::write(&grants, "plugins:\n  hostile: { secrets: [api_key] }\n").expect("grants");
    let hostile = format!("{}/hostile.wasm", env!("CSMP_PLUGIN_WASM_DIR"));
    let run = |env: &[(&str, &str)]| {
        crate::helpers::csmp_command()
            .arg("run")
            .arg(&workflow)
            .args(["--plugin", &hostile, "--grants"])
            .arg(&grants)
            .arg("--database")
            .arg(&db)
            .envs(env.iter().copied())
            .output()
            .expect("csmp run runs")
    };
    let out = run(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("\"seen\": \"***\""), "{text}");

    // The old key no longer opens them.
    let out = run(&[("CSMP_MASTER_KEY", old_key.trim())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot be opened with this master key"),
        "{err}"
    );
}
