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

/// A plugin host with the built-ins loaded and `http` granted 127.0.0.1 (the only address
/// test servers listen on), caching compiled plugins under the test target directory.
pub(crate) fn loopback_host() -> csmp::plugin::PluginHost {
    use csmp::plugin::{Grant, Grants, HostConfig, PluginHost};
    let cache = format!("{}/plugin-cache", env!("CARGO_TARGET_TMPDIR"));
    let mut grants = Grants::default();
    grants.plugins.insert(
        "http".into(),
        Grant {
            http_hosts: vec!["127.0.0.1:*".into()],
            ..Grant::default()
        },
    );
    let host = PluginHost::new(HostConfig::new(cache, grants)).expect("host starts");
    host.load_builtins().expect("built-ins load");
    host
}
