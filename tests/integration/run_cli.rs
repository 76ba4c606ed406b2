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
