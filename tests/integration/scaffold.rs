//! `csmp plugin new demo && cd demo && cargo test` works, as the SDK README promises.

use std::process::Command;

use crate::helpers::{csmp, repo_root, stdout};

#[test]
fn a_scaffolded_plugin_builds_and_its_test_passes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = csmp(&[
        "plugin",
        "new",
        "demo",
        "--dir",
        &dir.path().display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    let crate_dir = dir.path().join("demo");
    assert!(crate_dir.join("Cargo.toml").is_file());
    // A target directory inside this repository's, so later runs reuse the compiled SDK.
    let target = repo_root().join("target").join("scaffold-test");
    let test = Command::new(env!("CARGO"))
        .arg("test")
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(
        test.status.success(),
        "cargo test of the scaffold failed:\n{text}"
    );
    assert!(text.contains("test result: ok. 3 passed"), "{text}");
}
