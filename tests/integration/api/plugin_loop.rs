//! `sdk/README.md` followed step by step with the real binary, from zero to a plugin used in
//! production: scaffold, test, build, try, validate a workflow that uses it, run it with
//! `csmp run`, publish it to a `csmp serve`, grant it (grants file + SIGHUP), and order a
//! catalog entry whose workflow uses it. Keep the two in step: a command changed in the README
//! changes here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;

use super::harness::{Token, s};
use super::process::{Served, cli_token};
use crate::helpers::repo_root;

/// The README's workflow (`greet.yaml`).
const GREET: &str = r#"name: greet
version: 1
description: Greets someone with the greeter plugin
inputs:
  type: object
  required: [who]
  properties: { who: { type: string, minLength: 1 } }
steps:
  - id: greet
    uses: greeter@^0.1
    with: { name: "{{ inputs.who }}" }
outputs:
  greeting: "{{ steps.greet.output.greeting }}"
"#;

/// The README's catalog entry (`catalog/greet.yaml`).
const GREET_ENTRY: &str = r#"id: greet
title: A greeting
workflow: greet
inputs:
  type: object
  required: [who]
  properties: { who: { type: string, minLength: 1 } }
tenants: ["*"]
"#;

/// Runs `csmp ARGS` in `dir` with a shared target directory for the plugin's builds.
fn csmp_in(dir: &Path, args: &[&str]) -> Output {
    crate::helpers::csmp_command()
        .args(args)
        .current_dir(dir)
        // Later runs reuse the compiled SDK (the scaffold test shares it).
        .env(
            "CARGO_TARGET_DIR",
            repo_root().join("target").join("scaffold-test"),
        )
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("csmp runs")
}

fn ok(out: &Output, what: &str) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn the_sdk_readme_from_scaffold_to_a_catalog_order() {
    let home = tempfile::tempdir().expect("temp dir");

    // 2. Create a plugin; cargo test passes out of the box.
    ok(
        &csmp_in(home.path(), &["plugin", "new", "greeter"]),
        "csmp plugin new",
    );
    let crate_dir = home.path().join("greeter");
    let test = Command::new(env!("CARGO"))
        .arg("test")
        .current_dir(&crate_dir)
        .env(
            "CARGO_TARGET_DIR",
            repo_root().join("target").join("scaffold-test"),
        )
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("cargo runs");
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stderr)
    );

    // 5. Build the component: its path, size and descriptor.
    let built = ok(
        &csmp_in(&crate_dir, &["plugin", "build"]),
        "csmp plugin build",
    );
    let wasm = built
        .lines()
        .find_map(|l| l.strip_prefix("built "))
        .and_then(|l| l.split(" (").next())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("`built PATH (SIZE)` is printed:\n{built}"));
    assert!(wasm.is_file(), "{built}");
    assert!(built.contains("plugin       greeter@0.1.0"), "{built}");
    assert!(
        built.contains("csmp:plugin/log"),
        "the imports are listed: {built}"
    );
    let wasm = wasm.display().to_string();

    // 6. Try one attempt in the real sandbox.
    let tried = ok(
        &csmp_in(
            &crate_dir,
            &["plugin", "try", &wasm, "--input", r#"{"name": "ops"}"#],
        ),
        "csmp plugin try",
    );
    assert!(tried.contains("outcome      succeeded"), "{tried}");
    assert!(tried.contains("\"greeting\": \"hello, ops\""), "{tried}");
    assert!(tried.contains("[info] greeting ops"), "{tried}");
    let refused = csmp_in(
        &crate_dir,
        &["plugin", "try", &wasm, "--input", r#"{"name": " "}"#],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stdout).contains("failed (permanent)"),
        "{}",
        String::from_utf8_lossy(&refused.stdout)
    );

    // 7. Validate and run a workflow that uses it.
    std::fs::write(crate_dir.join("greet.yaml"), GREET).expect("write greet.yaml");
    let valid = ok(
        &csmp_in(&crate_dir, &["validate", "--plugin", &wasm, "greet.yaml"]),
        "csmp validate",
    );
    assert!(valid.contains("ok: 1 file valid"), "{valid}");
    let ran = ok(
        &csmp_in(
            &crate_dir,
            &["run", "greet.yaml", "--plugin", &wasm, "--input", "who=ops"],
        ),
        "csmp run",
    );
    assert!(ran.contains("\"greeting\": \"hello, ops\""), "{ran}");

    // 8. Publish it to a running service, with a grants file.
    let service = home.path().join("service");
    for dir in ["workflows", "catalog"] {
        std::fs::create_dir_all(service.join(dir)).expect("service folders");
    }
    let grants = service.join("grants.yaml");
    std::fs::write(&grants, "plugins: {}\n").expect("write grants.yaml");
    let grants_arg = grants.display().to_string();
    let db = service.join("csmp.db");
    let admin = cli_token(&db, &["--role", "admin"]);
    let app = Served::start_with(&service, "publish", &["--grants", &grants_arg], &[]);
    let published = ok(
        &csmp_in(
            &crate_dir,
            &[
                "plugin",
                "publish",
                &wasm,
                "--server",
                &app.base,
                "--token",
                &admin.secret,
            ],
        ),
        "csmp plugin publish",
    );
    assert_eq!(published.lines().count(), 1, "{published}");
    assert!(
        published.starts_with("published greeter@0.1.0 to http://"),
        "{published}"
    );
    let again = ok(
        &csmp_in(
            &crate_dir,
            &[
                "plugin",
                "publish",
                &wasm,
                "--server",
                &app.base,
                "--token",
                &admin.secret,
            ],
        ),
        "publishing again",
    );
    assert!(again.contains("already published"), "{again}");

    // 9. Grant it: edit the grants file, SIGHUP; the plugin's view shows the grant.
    let seen = app
        .get("/v1/plugins/greeter/0.1.0")
        .auth(&admin)
        .send()
        .expect(200);
    assert_eq!(seen["granted"]["memory_mib"], 64, "{seen}");
    std::fs::write(&grants, "plugins:\n  greeter: { memory_mib: 32 }\n").expect("edit grants");
    app.hang_up();
    app.wait_for(&admin, "/v1/plugins/greeter/0.1.0", "the new grant", |p| {
        p["granted"]["memory_mib"] == 32
    });
    // The reload writes its entries after the new grant is in force: wait for them too.
    app.wait_for(
        &admin,
        "/v1/audit",
        "the change in the audit log",
        |audit| {
            audit["items"].as_array().is_some_and(|items| {
                items.iter().any(|e| {
                    e["method"] == "GRANT"
                        && s(e, "path") == "grants plugins.greeter: memory_mib default → 32"
                        && e["remote"] == "signal SIGHUP"
                })
            })
        },
    );
    let (status, _) = app.terminate();
    assert!(status.success());

    // 10. Order a catalog entry whose workflow uses it.
    std::fs::write(service.join("workflows/greet.yaml"), GREET).expect("write the workflow");
    std::fs::write(service.join("catalog/greet.yaml"), GREET_ENTRY).expect("write the entry");
    let app = Served::start_with(&service, "order", &["--grants", &grants_arg], &[]);
    let client: Token = cli_token(&db, &["--role", "client", "--tenant", "acme"]);
    let ordered = app.order(
        &client,
        &json!({ "catalog_id": "greet", "inputs": { "who": "acme" } }),
    );
    let request = app.wait_request(&client, &s(&ordered, "id"), "fulfilled");
    let run = app
        .get(&format!("/v1/runs/{}", s(&request, "run_id")))
        .auth(&client)
        .send()
        .expect(200);
    assert_eq!(
        run["outputs"],
        json!({ "greeting": "hello, acme" }),
        "{run}"
    );
    let (status, _) = app.terminate();
    assert!(status.success());
}

#[test]
fn grants_reload_over_the_api_is_for_admins_audited_and_all_or_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    super::harness::write_definitions(dir.path());
    let grants = dir.path().join("grants.yaml");
    std::fs::write(&grants, "plugins: { hostile: { secrets: [a] } }\n").expect("grants");
    let grants_arg = grants.display().to_string();
    let db = dir.path().join("csmp.db");
    let admin = cli_token(&db, &["--role", "admin"]);
    let operator = cli_token(&db, &["--role", "operator"]);
    let client = cli_token(&db, &["--role", "client", "--tenant", "acme"]);
    let app = Served::start_with(dir.path(), "grants", &["--grants", &grants_arg], &[]);

    // The upload's answer and the plugin's view say what it asks for and is not granted.
    let hostile = std::fs::read(format!("{}/hostile.wasm", env!("CSMP_PLUGIN_WASM_DIR")))
        .expect("the hostile test plugin is built");
    let uploaded = app
        .put("/v1/plugins/hostile/0.1.0")
        .auth(&admin)
        .body("application/wasm", hostile.clone())
        .send()
        .expect(201);
    assert_eq!(
        uploaded["capabilities"]["secrets"],
        json!(["*"]),
        "{uploaded}"
    );
    assert_eq!(uploaded["granted"]["secrets"], json!(["a"]), "{uploaded}");
    assert_eq!(
        uploaded["missing"],
        json!({ "http_hosts": ["*"], "secrets": ["*"] }),
        "{uploaded}"
    );
    // No workflow a client may order uses it: to a client it does not exist. A plugin its
    // workflows use it sees without the operator's grants.
    app.get("/v1/plugins/hostile/0.1.0")
        .auth(&client)
        .send()
        .problem(404, "not-found");
    let seen = app
        .get("/v1/plugins/echo/1.0.0")
        .auth(&client)
        .send()
        .expect(200);
    assert!(
        seen.get("granted").is_none() && seen.get("missing").is_none(),
        "a client does not see the operator's grants: {seen}"
    );
    let shown = app.get("/v1/grants").auth(&admin).send().expect(200);
    assert_eq!(shown["file"], grants_arg.as_str(), "{shown}");
    assert_eq!(
        shown["grants"]["plugins"]["hostile"]["secrets"],
        json!(["a"])
    );
    app.get("/v1/grants")
        .auth(&operator)
        .send()
        .problem(403, "forbidden");
    app.post("/v1/grants/reload")
        .auth(&operator)
        .send()
        .problem(403, "forbidden");

    // A file that does not parse, or that needs a restart, changes nothing.
    for (text, says) in [
        ("plugins: { hostile: { hosts: [x] } }\n", "unknown field"),
        ("max_concurrent_steps: 3\n", "restart csmp"),
    ] {
        std::fs::write(&grants, text).expect("grants");
        let refused = app.post("/v1/grants/reload").auth(&admin).send();
        let problem = refused.problem(422, "invalid-input");
        let detail = s(&problem, "detail");
        assert!(
            detail.contains(says) && detail.contains("unchanged"),
            "{detail}"
        );
    }
    let still = app
        .get("/v1/plugins/hostile/0.1.0")
        .auth(&admin)
        .send()
        .expect(200);
    assert_eq!(still["granted"]["secrets"], json!(["a"]), "{still}");

    // A good file is in force at once, and the change is audited under the caller.
    std::fs::write(
        &grants,
        "plugins: { hostile: { http_hosts: ['*'], secrets: ['*'] } }\n",
    )
    .expect("grants");
    let reloaded = app
        .post("/v1/grants/reload")
        .auth(&admin)
        .send()
        .expect(200);
    assert_eq!(
        reloaded["changes"],
        json!([{ "scope": "plugins.hostile", "change": "http_hosts +*; secrets +* -a" }]),
        "{reloaded}"
    );
    let now = app
        .get("/v1/plugins/hostile/0.1.0")
        .auth(&admin)
        .send()
        .expect(200);
    assert_eq!(
        now["missing"],
        json!({ "http_hosts": [], "secrets": [] }),
        "{now}"
    );
    let audit = app.get("/v1/audit").auth(&admin).send().expect(200);
    let items = audit["items"].as_array().cloned().unwrap_or_default();
    assert!(
        items.iter().any(|e| e["method"] == "GRANT"
            && s(e, "path") == "grants plugins.hostile: http_hosts +*; secrets +* -a"
            && e["actor"] == admin.id.as_str()),
        "{audit}"
    );
    assert!(
        items.iter().any(|e| e["method"] == "POST"
            && s(e, "path") == "/v1/grants/reload"
            && e["status"] == 422),
        "refused reloads are audited too: {audit}"
    );
    let (status, _) = app.terminate();
    assert!(status.success());

    // A plugin file with the uploaded plugin's name and version but other bytes is refused.
    let other = dir.path().join("hostile.wasm");
    std::fs::write(&other, crate::plugin_cli::with_other_bytes(&hostile)).expect("write");
    let out = crate::helpers::csmp_command()
        .args(["serve", "--listen", "127.0.0.1:0", "--plugin"])
        .arg(&other)
        .arg("--database")
        .arg(&db)
        .arg("--workflows")
        .arg(dir.path().join("workflows"))
        .arg("--catalog")
        .arg(dir.path().join("catalog"))
        .output()
        .expect("csmp serve runs");
    assert_eq!(out.status.code(), Some(1));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("hostile@0.1.0 clashes with the plugin uploaded to this service"),
        "{log}"
    );

    // Without a grants file there is nothing to reload.
    let app = Served::start(dir.path(), "no-grants");
    app.post("/v1/grants/reload")
        .auth(&admin)
        .send()
        .problem(409, "conflict");
    let (status, _) = app.terminate();
    assert!(status.success());
}
