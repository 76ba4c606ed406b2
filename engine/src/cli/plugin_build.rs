//! `csmp plugin build`: builds the plugin crate in the current directory (or `--manifest-path`)
//! to a `wasm32-wasip2` component — installing the target with rustup when it is missing —
//! then loads it through the real host and prints its path, size and descriptor, so a build
//! that produced something the engine would refuse says so at once.
//!
//! Runs cargo and rustup and reads cargo's JSON messages; knows nothing about what plugins do.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context as _, bail};
use clap::Args;

use super::{plugin_files, plugin_inspect};

/// The target every plugin is built for.
pub const TARGET: &str = "wasm32-wasip2";

/// Arguments of `csmp plugin build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The plugin crate's Cargo.toml.
    #[arg(long, default_value = "Cargo.toml")]
    pub manifest_path: PathBuf,
    /// Build with the dev profile (faster to build, larger and slower to run).
    #[arg(long)]
    pub debug: bool,
}

/// Runs `csmp plugin build`: exit 0 with a loadable component, 1 when the build or the load
/// check failed, 2 when it could not start.
pub fn main(args: BuildArgs) -> ExitCode {
    match build(&args) {
        Ok(Built::Loads(text)) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Ok(Built::Refused(text)) => {
            print!("{text}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

enum Built {
    Loads(String),
    Refused(String),
}

fn build(args: &BuildArgs) -> anyhow::Result<Built> {
    let manifest = args.manifest_path.canonicalize().with_context(|| {
        format!(
            "cannot find {}; run `csmp plugin build` in a plugin crate (made by `csmp plugin new`) or pass --manifest-path",
            args.manifest_path.display()
        )
    })?;
    ensure_target()?;
    let wasm = cargo_build(&manifest, args.debug)?;
    let (host, _) = plugin_files::dev_host(None)?;
    let inspection = plugin_inspect::inspect(&host, &wasm)?;
    let mut text = format!(
        "built {} ({})\n",
        wasm.display(),
        plugin_inspect::size(inspection.size)
    );
    let loads = inspection.examined.descriptor.is_ok() && inspection.clash.is_none();
    text.push_str(&plugin_inspect::render_text(&inspection));
    if loads {
        text.push_str(&format!(
            "next: csmp plugin try {} --input '{{…}}'\n",
            wasm.display()
        ));
        Ok(Built::Loads(text))
    } else {
        text.push_str("the engine would refuse this component; fix what is said above\n");
        Ok(Built::Refused(text))
    }
}

/// Installs the wasm target with rustup when the toolchain lacks it.
fn ensure_target() -> anyhow::Result<()> {
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let installed = match listed {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == TARGET),
        // Without rustup, let cargo say whether the target is there.
        _ => return Ok(()),
    };
    if installed {
        return Ok(());
    }
    eprintln!("installing the {TARGET} target (once per toolchain): rustup target add {TARGET}");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .context("cannot run rustup")?;
    if !status.success() {
        bail!("`rustup target add {TARGET}` failed ({status}); run it yourself and try again");
    }
    Ok(())
}

/// Runs cargo with its progress on our standard error; returns the component it built.
fn cargo_build(manifest: &Path, debug: bool) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args([
        "build",
        "--target",
        TARGET,
        "--message-format",
        "json-render-diagnostics",
    ])
    .arg("--manifest-path")
    .arg(manifest)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    if !debug {
        cmd.arg("--release");
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {}; is Rust installed?", cargo.to_string_lossy()))?;
    let stdout = child.stdout.take().context("cargo's output")?;
    let mut artifact = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's output")?;
        if let Some(path) = component_of(&line, manifest) {
            artifact = Some(path);
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status}); fix the errors above");
    }
    artifact.with_context(|| {
        format!(
            "cargo built no .wasm for {}; the crate needs `crate-type = [\"cdylib\"]` under [lib] (as `csmp plugin new` writes it)",
            manifest.display()
        )
    })
}

/// The `.wasm` of a `compiler-artifact` message about the crate of `manifest`, if `line` is one.
fn component_of(line: &str, manifest: &Path) -> Option<PathBuf> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message["reason"] != "compiler-artifact" {
        return None;
    }
    let from = Path::new(message["manifest_path"].as_str()?);
    if from != manifest {
        return None;
    }
    message["filenames"]
        .as_array()?
        .iter()
        .filter_map(serde_json::Value::as_str)
        .find(|f| f.ends_with(".wasm"))
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_component_of_this_crate_only() {
        let manifest = Path::new("/src/demo/Cargo.toml");
        let ours = r#"{"reason":"compiler-artifact","manifest_path":"/src/demo/Cargo.toml","filenames":["/t/wasm32-wasip2/release/demo.wasm","/t/wasm32-wasip2/release/libdemo.rlib"]}"#;
        let dep = r#"{"reason":"compiler-artifact","manifest_path":"/reg/serde/Cargo.toml","filenames":["/t/libserde.rlib"]}"#;
        let other = r#"{"reason":"build-finished","success":true}"#;
        assert_eq!(
            component_of(ours, manifest),
            Some(PathBuf::from("/t/wasm32-wasip2/release/demo.wasm"))
        );
        assert_eq!(component_of(dep, manifest), None);
        assert_eq!(component_of(other, manifest), None);
        assert_eq!(component_of("Compiling demo", manifest), None);
    }
}
