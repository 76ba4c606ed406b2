//! `csmp plugin new NAME`: writes a standalone plugin crate (Cargo.toml with an empty
//! `[workspace]`, a typed `run` function, a unit test, a README) that builds and passes its test
//! as generated.
//!
//! Writes files only; knows nothing about argument parsing (`cli`) or the plugin host.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The SDK of this checkout, for `--sdk-path`'s default.
pub fn default_sdk_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("sdk")
}

/// Creates the crate for plugin `name` in the new directory `dest`, depending on the SDK at
/// `sdk_path` by path. Refuses a name outside `[a-z0-9-]+` and an existing `dest`.
pub fn scaffold(name: &str, dest: &Path, sdk_path: &Path) -> anyhow::Result<()> {
    check_name(name)?;
    if dest.exists() {
        bail!(
            "{} already exists; choose another directory with --dir or remove it",
            dest.display()
        );
    }
    let sdk = sdk_path.canonicalize().with_context(|| {
        format!(
            "cannot find the csmp SDK at {}; pass --sdk-path with the path of the sdk/ directory",
            sdk_path.display()
        )
    })?;
    if !sdk.join("Cargo.toml").is_file() {
        bail!(
            "{} has no Cargo.toml, so it is not the csmp SDK; pass --sdk-path with the path of the sdk/ directory",
            sdk.display()
        );
    }
    let sdk = sdk
        .to_str()
        .with_context(|| format!("the SDK path {} is not valid UTF-8; move it", sdk.display()))?;

    let files = [
        ("Cargo.toml", cargo_toml(name, sdk)),
        ("src/lib.rs", LIB_RS.replace("__NAME__", name)),
        (
            "README.md",
            README_MD
                .replace("__SNAKE__", &name.replace('-', "_"))
                .replace("__NAME__", name),
        ),
        (".gitignore", "/target\n".to_owned()),
    ];
    std::fs::create_dir_all(dest.join("src"))
        .with_context(|| format!("cannot create {}", dest.display()))?;
    for (path, text) in files {
        let path = dest.join(path);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid {
        bail!(
            "plugin name `{name}` is invalid; use lower-case letters, digits and inner dashes ([a-z0-9-]+), e.g. `quota-check`"
        );
    }
    Ok(())
}

/// A TOML basic string holding `s`.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn cargo_toml(name: &str, sdk: &str) -> String {
    format!(
        r#"[package]
name = "csmp-plugin-{name}"
version = "0.1.0"
edition = "2024"
rust-version = "1.95"
description = "The {name} csmp step plugin"
publish = false

[lib]
# A WebAssembly component when built with --target wasm32-wasip2; an ordinary library for tests.
crate-type = ["cdylib", "rlib"]

[dependencies]
csmp-sdk = {{ path = {sdk} }}
schemars = "1"
serde = {{ version = "1", features = ["derive"] }}

[dev-dependencies]
serde_json = "1"

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true

# A crate of its own, even when created inside another workspace.
[workspace]
"#,
        sdk = toml_string(sdk)
    )
}

const LIB_RS: &str = r#"//! The `__NAME__` csmp step plugin: greets someone (replace with what your step does).

use csmp_sdk::{Context, PluginError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The step's `with:`; its JSON Schema is generated from this type.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Who to greet.
    pub name: String,
}

/// The step's output; its JSON Schema is generated from this type.
#[derive(Debug, PartialEq, Serialize, JsonSchema)]
pub struct Output {
    /// The greeting.
    pub greeting: String,
}

/// Runs one step attempt.
pub fn run(ctx: &Context, input: Input) -> Result<Output, PluginError> {
    if input.name.trim().is_empty() {
        // Permanent: retrying the same input cannot help.
        return Err(PluginError::permanent("`name` must not be empty"));
    }
    ctx.info(format!("greeting {}", input.name));
    Ok(Output {
        greeting: format!("hello, {}", input.name),
    })
}

csmp_sdk::plugin! {
    name: "__NAME__",
    version: env!("CARGO_PKG_VERSION"),
    description: "Greets someone",
    run: run,
}

#[cfg(test)]
mod tests {
    use super::*;
    use csmp_sdk::Level;
    use csmp_sdk::testing::MockHost;

    #[test]
    fn greets_and_logs() -> Result<(), PluginError> {
        let host = MockHost::new();
        let out = run(&host.context(), Input { name: "ops".into() })?;
        assert_eq!(out.greeting, "hello, ops");
        assert_eq!(host.logs(), vec![(Level::Info, "greeting ops".to_string())]);
        Ok(())
    }

    #[test]
    fn an_empty_name_is_a_permanent_error() {
        let err = run(&MockHost::new().context(), Input { name: " ".into() });
        assert!(matches!(err, Err(PluginError::Permanent(_))));
    }

    #[test]
    fn describes_itself() {
        let d = csmp_descriptor();
        assert_eq!(d.name, "__NAME__");
        assert_eq!(d.input_schema["required"], serde_json::json!(["name"]));
    }
}
"#;

const README_MD: &str = r#"# __NAME__

A csmp step plugin.

```sh
cargo test                          # unit tests, natively, against a mock host
csmp plugin build                   # the component, checked as the engine would check it
csmp plugin try target/wasm32-wasip2/release/csmp_plugin___SNAKE__.wasm --input '{"name": "ops"}'
```

Use it in a workflow as `uses: __NAME__@^0.1`: locally with `csmp validate --plugin FILE.wasm`
and `csmp run --plugin FILE.wasm`, on a service after `csmp plugin publish`. See the csmp SDK's
README for logging, HTTP, secrets and grants.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["demo", "quota-check", "s3", "2fa"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Demo", "a_b", "-a", "a-", "a b", "ä"] {
            let err = check_name(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("[a-z0-9-]+"), "{bad}: {err}");
        }
    }

    #[test]
    fn writes_a_crate_and_refuses_to_overwrite() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let dest = tmp.path().join("demo");
        scaffold("demo", &dest, &default_sdk_path())?;
        let manifest = std::fs::read_to_string(dest.join("Cargo.toml"))?;
        assert!(manifest.contains("name = \"csmp-plugin-demo\""));
        assert!(manifest.contains("\n[workspace]\n"));
        let sdk = default_sdk_path().canonicalize()?;
        assert!(manifest.contains(&toml_string(&sdk.to_string_lossy())));
        let lib = std::fs::read_to_string(dest.join("src/lib.rs"))?;
        assert!(lib.contains("name: \"demo\""));
        assert!(!lib.contains("__NAME__"));

        let again = scaffold("demo", &dest, &default_sdk_path()).err();
        assert!(again.is_some_and(|e| e.to_string().contains("already exists")));
        Ok(())
    }

    #[test]
    fn a_wrong_sdk_path_says_so() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let err = scaffold("demo", &tmp.path().join("x"), &tmp.path().join("nope")).err();
        assert!(err.is_some_and(|e| e.to_string().contains("--sdk-path")));
        let err = scaffold("demo", &tmp.path().join("y"), tmp.path()).err();
        assert!(err.is_some_and(|e| e.to_string().contains("not the csmp SDK")));
        Ok(())
    }

    #[test]
    fn toml_strings_escape() {
        assert_eq!(toml_string(r#"C:\a "b""#), r#""C:\\a \"b\"""#);
    }
}
