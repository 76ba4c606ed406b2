//! `csmp run FILE` as a user runs it: live progress, outputs, exit code = outcome.

use crate::helpers::{csmp, stdout};

#[test]
fn csmp_run_executes_a_workflow_to_its_end() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("csmp.db").display().to_string();
    let out = csmp(&[
        "run",
        "workflows/hello.yaml",
        "--input",
        "who=martin",
        "--input",
        "times=3",
        "--database",
        &db,
    ]);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("✓ greet"), "{text}");
    assert!(
        text.contains("⇉ repeat                   [####################] 3/3"),
        "{text}"
    );
    assert!(text.contains("\"greeting\": \"hello, martin\""), "{text}");
    assert!(text.contains("\"repeated\": 3"), "{text}");
}

#[test]
fn csmp_run_refuses_inputs_that_break_the_schema() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("csmp.db").display().to_string();
    let out = csmp(&[
        "run",
        "workflows/hello.yaml",
        "--input",
        "times=99",
        "--database",
        &db,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/times: 99 is greater than the maximum of 10"),
        "{err}"
    );
}

/// A failed step's captured log is printed, so the reason is on the screen.
#[test]
fn csmp_run_prints_the_log_of_a_failed_step() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("csmp.db").display().to_string();
    let workflow = dir.path().join("panic.yaml");
    std::fs::write(
        &workflow,
        "name: panic\nversion: 1\nsteps:\n  - id: boom\n    uses: hostile@0.1\n    with: { mode: panic }\n",
    )
    .expect("workflow");
    let hostile = format!("{}/hostile.wasm", env!("CSMP_PLUGIN_WASM_DIR"));
    let out = csmp(&[
        "run",
        &workflow.display().to_string(),
        "--plugin",
        &hostile,
        "--database",
        &db,
    ]);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("log of boom attempt 1:"), "{text}");
    assert!(
        text.contains("│ ") && text.contains("hostile plugin panicked on purpose"),
        "{text}"
    );
}

/// A newcomer types a bare file name: the database lands in the working directory.
#[test]
fn csmp_run_takes_a_bare_database_file_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let workflow = crate::helpers::repo_root().join("workflows/hello.yaml");
    let out = crate::helpers::csmp_command()
        .args([
            "run",
            &workflow.display().to_string(),
            "--input",
            "who=ana",
            "--database",
            "db.sqlite",
        ])
        .current_dir(dir.path())
        .output()
        .expect("the csmp binary runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("\"greeting\": \"hello, ana\""),
        "{}",
        stdout(&out)
    );
    assert!(
        dir.path().join("db.sqlite").is_file(),
        "the database is where it was named"
    );
}
