//! `csmp validate` as a user runs it: exit codes, located messages, hostile files.

use std::io::Write;

use crate::helpers::{csmp, stdout};

fn temp_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(bytes).expect("write");
    (dir, path.display().to_string())
}

#[test]
fn the_examples_are_valid_and_exit_zero() {
    let out = csmp(&["validate", "workflows/", "catalog/", "rules/", "oncall/"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).starts_with("ok: "), "{}", stdout(&out));
}

#[test]
fn a_broken_file_exits_one_with_every_located_problem() {
    let yaml = "name: demo\nversion: 1\nsteps:\n  - id: a\n    uses: ehco@^1\n  - id: b\n    neds: [a]\n    wait: 1s\n";
    let (_dir, path) = temp_file("broken.yaml", yaml.as_bytes());
    let out = csmp(&["validate", &path]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains(&format!("--> {path}:5:11")), "{text}");
    assert!(
        text.contains("error[unknown-plugin]: plugin `ehco` does not exist"),
        "{text}"
    );
    assert!(text.contains("= help: did you mean `echo`?"), "{text}");
    assert!(text.contains(&format!("--> {path}:7:5")), "{text}");
    assert!(text.contains("= help: did you mean `needs`?"), "{text}");
    assert!(text.contains("error: 2 problems in 1 of 1 file"), "{text}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn json_format_is_machine_readable() {
    let (_dir, path) = temp_file(
        "w.yaml",
        b"name: demo\nversion: 1\nsteps:\n  - id: a\n    wait: soon\n",
    );
    let out = csmp(&["validate", "--format", "json", &path]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert_eq!(v["errors"], 1);
    let d = &v["reports"][0]["diagnostics"][0];
    assert_eq!(d["code"], "invalid-duration");
    assert_eq!(d["span"]["line"], 5);
    assert_eq!(d["span"]["column"], 11);
}

#[test]
fn hostile_files_get_a_clear_error_and_no_panic() {
    let mut deep = String::from("name: x\nversion: 1\nsteps: ");
    deep.push_str(&"[".repeat(10_000));
    let big = format!(
        "name: x\nversion: 1\ndescription: \"{}\"\nsteps: []\n",
        "a".repeat(5 * 1024 * 1024)
    );
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
    for i in 0..9 {
        let (prev, cur) = (char::from(b'a' + i), char::from(b'a' + i + 1));
        bomb.push_str(&format!("{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
    }
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "error[empty-file]: file is empty"),
        (
            "deep",
            deep.into_bytes(),
            "error[too-deep]: nesting is deeper than 64 levels",
        ),
        ("big", big.into_bytes(), "error[file-too-large]"),
        (
            "bomb",
            bomb.into_bytes(),
            "error[yaml-anchor]: YAML anchors and aliases are not supported",
        ),
        (
            "binary",
            vec![b'n', b'a', b':', b' ', 0xff, 0xfe, b'\n'],
            "error[not-utf8]: file is not valid UTF-8",
        ),
    ];
    for (name, bytes, want) in cases {
        let (_dir, path) = temp_file(&format!("{name}.yaml"), &bytes);
        let out = csmp(&["validate", &path]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {text}");
        assert!(text.contains(want), "{name}: want {want:?} in {text}");
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{name}"
        );
    }
}

#[test]
fn a_missing_path_is_a_usage_error() {
    let out = csmp(&["validate", "no/such/dir"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no/such/dir: no such file or directory")
    );
}

#[test]
fn a_broken_rule_reports_every_problem_at_its_line_and_column() {
    let yaml = "name: Bad_Rule\nmatch:\n  sorce: [alertmanager]\n  labels: { env: \"=~(prod\" }\n  when: \"alert.labels.x\"\ngroup_wait: soon\nthen:\n  - workflow: remediate-hig-cpu\n    inputs: { x: \"{{ steps.a.output }}\" }\n  - incident: { severity: sev9, title: t }\n  - notify: { channel: ops }\n";
    let (dir, path) = temp_file("bad-rule.yaml", yaml.as_bytes());
    let workflows = crate::helpers::repo_root().join("workflows");
    let out = csmp(&["validate", &path, &workflows.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    for (at, what) in [
        ("1:7", "rule name `Bad_Rule` is not valid"),
        ("3:3", "did you mean `source`?"),
        ("4:18", "is not a valid regex"),
        ("5:9", "is not a template, so it would always hold"),
        ("6:13", "`soon` is not a duration"),
        ("8:15", "did you mean `remediate-high-cpu`?"),
        ("9:18", "`steps.a.output` is not known in a rule"),
        ("10:27", "unknown severity `sev9`"),
        ("11:15", "`notify` is missing `text`"),
    ] {
        assert!(text.contains(&format!("--> {path}:{at}")), "{at} in {text}");
        assert!(text.contains(what), "{what} in {text}");
    }
    assert!(text.contains("error: 9 problems in 1 of"), "{text}");
    drop(dir);
}

#[test]
fn a_broken_on_call_file_reports_every_problem_at_its_line_and_column() {
    let yaml = "users:\n  - id: alice\n    contacts: [{ type: slak, secret: s }]\nschedules:\n  - id: primary\n    time_zone: Europe/Berln\n    layers:\n      - start: \"2026-03-02 9am\"\n        rotation: 7d\n        users: [alice, bbo]\n        restrictions: [{ days: [mon, thr], from: \"09:00\", to: \"5pm\" }]\n    overrides:\n      - { user: alice, from: \"2026-12-24T00:00:00Z\", to: \"2026-12-23T00:00:00Z\" }\n";
    let (dir, path) = temp_file("oncall.yaml", yaml.as_bytes());
    let out = csmp(&["validate", &path]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    for (at, what) in [
        ("3:24", "did you mean `slack`?"),
        ("6:16", "did you mean `Europe/Berlin`?"),
        ("8:16", "is not a local date and time"),
        ("11:38", "did you mean `thu`?"),
        ("11:63", "is not a time of day"),
        ("13:11", "the override ends before it starts"),
    ] {
        assert!(text.contains(&format!("--> {path}:{at}")), "{at} in {text}");
        assert!(text.contains(what), "{what} in {text}");
    }
    drop(dir);
}
