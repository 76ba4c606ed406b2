//! Builds the WebAssembly plugins the engine embeds (`plugins/*`) and the hostile plugins the
//! sandbox tests run (`tests/plugins/*`), so a fresh clone needs nothing beyond `cargo build`.
//!
//! Runs a nested `cargo build --release --target wasm32-wasip2` with its own target directory
//! (`<target>/wasm`, so it never waits on the outer cargo's lock) and a clean environment (no
//! flags or wrappers of the outer build leak in), then copies each `.wasm` into `OUT_DIR` as
//! `<plugin>.wasm`; `CSMP_PLUGIN_WASM_DIR` names that directory for the crate and its tests.
//! Installs the `wasm32-wasip2` target with rustup when it is missing. Knows nothing about how
//! the engine loads the files.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `(package, file stem)`: every plugin crate built to wasm. The stem names the file in
/// `OUT_DIR`; built-ins are embedded from there with `include_bytes!`.
const PLUGINS: &[(&str, &str)] = &[
    ("csmp-plugin-echo", "echo"),
    ("csmp-plugin-http", "http"),
    ("csmp-plugin-notify", "notify"),
    ("csmp-plugin-aws-ec2", "aws-ec2"),
    ("csmp-plugin-aws-autoscaling", "aws-autoscaling"),
    ("csmp-plugin-aws-cloudwatch", "aws-cloudwatch"),
    ("csmp-plugin-forecast", "forecast"),
    ("csmp-test-hostile", "hostile"),
    ("csmp-test-sockets", "sockets"),
];

const TARGET: &str = "wasm32-wasip2";

/// Variables of the outer build that a nested cargo must not inherit: flags meant for the host
/// build, the outer target directory, jobserver handles, wrappers such as clippy-driver.
const LEAKY: &[&str] = &[
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "RUSTC",
    "RUSTDOC",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_LINKER",
    "MAKEFLAGS",
    "MFLAGS",
    "TARGET",
    "HOST",
    "OUT_DIR",
    "OPT_LEVEL",
    "DEBUG",
    "PROFILE",
    "NUM_JOBS",
    "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR",
];

/// `CARGO_*` variables that are user configuration rather than outer-build state.
const KEPT_CARGO_PREFIXES: &[&str] = &[
    "CARGO_HOME",
    "CARGO_NET_",
    "CARGO_HTTP_",
    "CARGO_REGISTRIES_",
    "CARGO_REGISTRY_",
    "CARGO_TERM_",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let workspace = manifest_dir
        .parent()
        .expect("engine/ lives inside the workspace")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets it"));

    for dir in ["sdk", "plugins", "tests/plugins"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.toml").display()
    );
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| {
            if d.is_absolute() {
                d
            } else {
                workspace.join(d)
            }
        })
        .unwrap_or_else(|| workspace.join("target"))
        .join("wasm");

    ensure_target_installed();

    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&workspace)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    for (package, _) in PLUGINS {
        cmd.args(["-p", package]);
    }
    scrub_env(&mut cmd);
    // A small, self-contained artifact: plugins are loaded per process and instantiated per
    // step, so size and start-up matter more than peak throughput.
    for (key, value) in [
        ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "s"),
        ("CARGO_PROFILE_RELEASE_LTO", "true"),
        ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1"),
        ("CARGO_PROFILE_RELEASE_DEBUG", "false"),
        ("CARGO_PROFILE_RELEASE_STRIP", "true"),
        ("CARGO_PROFILE_RELEASE_PANIC", "abort"),
        ("CARGO_PROFILE_RELEASE_INCREMENTAL", "false"),
    ] {
        cmd.env(key, value);
    }

    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo:?} to build the wasm plugins: {e}"));
    if !output.status.success() {
        panic!(
            "building the wasm plugins failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let built = target_dir.join(TARGET).join("release");
    for (package, stem) in PLUGINS {
        let from = built.join(format!("{}.wasm", package.replace('-', "_")));
        let to = out_dir.join(format!("{stem}.wasm"));
        copy_if_changed(&from, &to);
    }
    println!("cargo:rustc-env=CSMP_PLUGIN_WASM_DIR={}", out_dir.display());
}

/// Drops the outer build's state from the nested cargo's environment.
fn scrub_env(cmd: &mut Command) {
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let cargo_state =
            key.starts_with("CARGO_") && !KEPT_CARGO_PREFIXES.iter().any(|p| key.starts_with(p));
        let dep_state = key.starts_with("DEP_");
        if cargo_state || dep_state || LEAKY.contains(&key) {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("CARGO");
}

/// Installs the wasm target with rustup if this toolchain lacks it.
fn ensure_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if libdir.as_deref().is_some_and(Path::is_dir) {
        return;
    }
    println!("cargo:warning=the {TARGET} target is missing; running `rustup target add {TARGET}`");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .unwrap_or_else(|e| {
            panic!("the {TARGET} target is missing and rustup could not run ({e}); install the target with `rustup target add {TARGET}`")
        });
    if !status.success() {
        panic!(
            "`rustup target add {TARGET}` failed ({status}); install the target and build again"
        );
    }
}

/// Copies `from` to `to` unless `to` already holds the same bytes (keeps `include_bytes!`
/// consumers from rebuilding when nothing changed).
fn copy_if_changed(from: &Path, to: &Path) {
    let new = std::fs::read(from)
        .unwrap_or_else(|e| panic!("built plugin {} is missing: {e}", from.display()));
    if std::fs::read(to).is_ok_and(|old| old == new) {
        return;
    }
    std::fs::write(to, new).unwrap_or_else(|e| panic!("cannot write {}: {e}", to.display()));
}
