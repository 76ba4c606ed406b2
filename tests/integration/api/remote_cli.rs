//! `csmp runs|approvals|requests|incidents …` against a real listener: tables, `--json`,
//! `--follow`, and problem documents said as one line with a non-zero exit code.

use std::process::Output;

use serde_json::{Value, json};

use super::harness::{App, TENANT_A, Token, s};

fn csmp(app: &App, token: Option<&Token>, args: &[&str]) -> Output {
    let mut c = crate::helpers::csmp_command();
    c.args(args).arg("--server").arg(&app.http.base);
    c.env_remove("CSMP_TOKEN");
    if let Some(t) = token {
        c.env("CSMP_TOKEN", &t.secret);
    }
    c.output().expect("csmp runs")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn an_operator_starts_follows_finds_and_reads_runs_from_the_command_line() {
    let app = App::start();
    let started = csmp(
        &app,
        Some(&app.operator),
        &[
            "runs", "start", "hello", "--input", "times=1", "--input", "who=cli", "--label",
            "team=db", "--tenant", TENANT_A, "--follow",
        ],
    );
    assert!(
        started.status.success(),
        "{}{}",
        out(&started),
        err(&started)
    );
    let text = out(&started);
    let id = text
        .split_whitespace()
        .find(|w| w.starts_with("run-"))
        .expect("the run's id")
        .to_string();
    assert!(text.contains("✓ greet"), "{text}");
    assert!(text.contains(&format!("run {id} succeeded")), "{text}");
    assert!(text.contains("\"greeting\": \"hello, cli\""), "{text}");

    let listed = csmp(
        &app,
        Some(&app.operator),
        &["runs", "list", "--label", "team=db"],
    );
    assert!(listed.status.success(), "{}", err(&listed));
    let table = out(&listed);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains(&id) && table.contains("team=db") && table.contains("succeeded"),
        "{table}"
    );

    let none = csmp(
        &app,
        Some(&app.operator),
        &["runs", "list", "--created-after", "2999-01-01T00:00:00Z"],
    );
    assert!(!out(&none).contains(&id), "{}", out(&none));
    let bad = csmp(
        &app,
        Some(&app.operator),
        &["runs", "list", "--created-before", "soon"],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(err(&bad).contains("/created_before"), "{}", err(&bad));

    let json_list = csmp(
        &app,
        Some(&app.operator),
        &["runs", "list", "--json", "--status", "succeeded"],
    );
    let parsed: Value =
        serde_json::from_str(&out(&json_list)).expect("--json prints the API's JSON");
    assert!(
        parsed["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|r| r["id"] == id.as_str()))
    );

    let shown = csmp(&app, Some(&app.client_a), &["runs", "show", &id]);
    let shown_text = out(&shown);
    assert!(shown.status.success(), "{}", err(&shown));
    assert!(
        shown_text.contains("greet") && shown_text.contains("STEP"),
        "{shown_text}"
    );

    let logs = csmp(&app, Some(&app.operator), &["runs", "logs", &id, "greet"]);
    assert!(
        out(&logs).contains("attempt 1"),
        "{}{}",
        out(&logs),
        err(&logs)
    );
}

#[test]
fn refusals_are_one_clear_line_and_exit_2() {
    let app = App::start();
    let unknown = csmp(&app, Some(&app.operator), &["runs", "start", "helo"]);
    assert_eq!(unknown.status.code(), Some(2));
    let e = err(&unknown);
    assert!(e.starts_with("error: the run cannot start"), "{e}");
    assert!(e.contains("(422 invalid-input)"), "{e}");
    assert!(
        e.contains("  /workflow: no workflow `helo` is loaded; did you mean `hello`?"),
        "{e}"
    );

    let forbidden = csmp(&app, Some(&app.client_a), &["runs", "start", "hello"]);
    assert_eq!(forbidden.status.code(), Some(2));
    assert!(
        err(&forbidden).contains("(403 forbidden)"),
        "{}",
        err(&forbidden)
    );

    let missing = csmp(&app, Some(&app.client_a), &["runs", "show", "run-0000"]);
    assert!(
        err(&missing).contains("(404 not-found)"),
        "{}",
        err(&missing)
    );

    let no_token = csmp(&app, None, &["runs", "list"]);
    assert_eq!(no_token.status.code(), Some(2));
    assert!(err(&no_token).contains("no token"), "{}", err(&no_token));

    let mut away = crate::helpers::csmp_command();
    let away = away
        .args([
            "runs",
            "list",
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "x",
        ])
        .output()
        .expect("csmp runs");
    assert_eq!(away.status.code(), Some(2));
    assert!(
        err(&away).contains("cannot reach http://127.0.0.1:9"),
        "{}",
        err(&away)
    );
}

#[test]
fn approvals_and_pauses_from_the_command_line() {
    let app = App::start();
    let ordered = app.order(&app.client_a, &json!({ "catalog_id": "steer" }));
    let run = s(&ordered, "run_id");
    app.wait_step(&app.client_a, &run, "gate", "waiting");

    let listed = csmp(&app, Some(&app.operator), &["approvals", "list"]);
    let table = out(&listed);
    assert!(
        table.contains(&format!("{run} gate")),
        "{table}{}",
        err(&listed)
    );

    let paused = csmp(&app, Some(&app.operator), &["runs", "pause", &run]);
    assert_eq!(
        out(&paused).trim(),
        format!("run {run} is paused"),
        "{}",
        err(&paused)
    );
    let approved = csmp(
        &app,
        Some(&app.operator),
        &["approvals", "approve", &run, "gate"],
    );
    assert!(
        out(&approved).contains(&format!("approved step gate of run {run}")),
        "{}",
        err(&approved)
    );
    let resumed = csmp(&app, Some(&app.operator), &["runs", "resume", &run]);
    assert_eq!(
        out(&resumed).trim(),
        format!("run {run} is running"),
        "{}",
        err(&resumed)
    );

    let half = csmp(&app, Some(&app.operator), &["approvals", "approve", &run]);
    assert_eq!(half.status.code(), Some(2));
    assert!(
        err(&half).contains("name its approval step too"),
        "{}",
        err(&half)
    );

    let requests = csmp(&app, Some(&app.client_a), &["requests", "list"]);
    assert!(
        out(&requests).contains(&s(&ordered, "id")),
        "{}",
        out(&requests)
    );
}

#[test]
fn an_operator_handles_an_incident_and_exports_its_review_from_the_command_line() {
    let app = App::start();
    let created = app.order(
        &app.client_a,
        &json!({ "catalog_id": "pager", "inputs": { "title": "queue stuck" } }),
    );
    let _run = s(&created, "run_id");
    let list = app.wait_for(&app.operator, "/v1/incidents", "the incident", |l| {
        l["items"].as_array().is_some_and(|i| !i.is_empty())
    });
    let id = s(&list["items"][0], "id");
    let op = Some(&app.operator);
    let listed = csmp(&app, op, &["incidents", "list"]);
    assert!(listed.status.success(), "{}", err(&listed));
    assert!(out(&listed).contains(&id), "{}", out(&listed));
    let acked = csmp(&app, op, &["incidents", "ack", &id, "--note", "on it"]);
    assert_eq!(
        out(&acked).trim(),
        format!("incident {id} is acknowledged (sev2): queue stuck")
    );
    let noted = csmp(
        &app,
        op,
        &[
            "incidents",
            "note",
            &id,
            "restarting the consumer",
            "--public",
        ],
    );
    assert!(noted.status.success(), "{}", err(&noted));
    let shown = csmp(&app, op, &["incidents", "show", &id]);
    assert!(
        out(&shown).contains("restarting the consumer"),
        "{}",
        out(&shown)
    );
    let resolved = csmp(&app, op, &["incidents", "resolve", &id]);
    assert!(out(&resolved).contains("is resolved"), "{}", out(&resolved));
    let again = csmp(&app, op, &["incidents", "resolve", &id]);
    assert_eq!(again.status.code(), Some(2), "a conflict: {}", out(&again));
    assert!(err(&again).contains("already resolved"), "{}", err(&again));

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("review.md");
    let review = csmp(
        &app,
        op,
        &[
            "incidents",
            "review",
            &id,
            "-o",
            file.to_str().expect("a UTF-8 path"),
        ],
    );
    assert!(review.status.success(), "{}", err(&review));
    let md = std::fs::read_to_string(&file).expect("the review was written");
    assert!(
        md.starts_with("# Post-incident review: queue stuck"),
        "{md}"
    );
    assert!(md.contains("restarting the consumer"), "{md}");
    let json_review = csmp(&app, op, &["incidents", "review", &id, "--json"]);
    let v: Value = serde_json::from_str(&out(&json_review)).expect("JSON");
    assert_eq!(v["overview"]["status"], "resolved");
    // A client may not read reviews: the problem, said on one line, exit 2.
    let refused = csmp(&app, Some(&app.client_a), &["incidents", "review", &id]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(err(&refused).contains("403"), "{}", err(&refused));
}
