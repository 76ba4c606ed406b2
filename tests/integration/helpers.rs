//! Shared helpers: paths into the repository and running the real `csmp` binary.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The repository root (the workspace that holds `workflows/` and `catalog/`).
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the built `csmp` binary with `args`, from the repository root.
pub(crate) fn csmp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_csmp"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("the csmp binary runs")
}

/// Standard output as text.
pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
