//! Shared helpers: paths into the repository and running the real `csmp` binary.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The repository root (the workspace that holds `workflows/` and `catalog/`).
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The built `csmp` binary, compiling plugins into the cache every test shares (each test's
/// own data directory would make every process compile the built-ins again).
pub(crate) fn csmp_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_csmp"));
    command.env("CSMP_CACHE_DIR", plugin_cache());
    command
}

/// Where the tests' hosts and processes cache compiled plugins.
pub(crate) fn plugin_cache() -> String {
    format!("{}/plugin-cache", env!("CARGO_TARGET_TMPDIR"))
}

/// Runs the built `csmp` binary with `args`, from the repository root.
pub(crate) fn csmp(args: &[&str]) -> Output {
    csmp_command()
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
    let cache = crate::helpers::plugin_cache();
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
