//! Plugins from files: `--plugin PATH` (repeatable) and `CSMP_PLUGINS` on `run`, `validate`
//! and `serve`. A path is a `.wasm` component or a directory whose `*.wasm` files are taken
//! (sorted, not recursively). Each file is loaded through the real host, so it passes the same
//! checks as an upload; a failure names the file, what is wrong and what to do.
//!
//! Knows files and the order plugins are loaded in (built-ins, then uploaded ones, then files),
//! so a clash can say which plugin was there first. The checks themselves are the host's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::plugin::{LoadError, PluginDescriptor, PluginHost};

/// Where each loaded `name@version` came from, so a clash can name it.
#[derive(Debug, Default)]
pub struct Origins {
    /// `name@version` → "a built-in plugin", "the plugin uploaded to this service", a file.
    by_id: BTreeMap<String, String>,
}

impl Origins {
    /// Records that `descriptors` came from `origin`.
    pub fn note<'a>(
        &mut self,
        descriptors: impl IntoIterator<Item = &'a PluginDescriptor>,
        origin: &str,
    ) {
        for d in descriptors {
            self.by_id
                .entry(format!("{}@{}", d.name, d.version))
                .or_insert_with(|| origin.to_owned());
        }
    }

    fn of(&self, id: &str) -> &str {
        self.by_id
            .get(id)
            .map_or("a plugin loaded earlier", String::as_str)
    }
}

/// The `.wasm` files named by `paths`: files as given, directories expanded to their `*.wasm`
/// files in name order. A missing path, or a file not ending in `.wasm`, is an error.
pub fn wasm_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            let entries = std::fs::read_dir(path)
                .with_context(|| format!("cannot read plugin directory {}", path.display()))?;
            for entry in entries {
                let file = entry
                    .with_context(|| format!("cannot read plugin directory {}", path.display()))?
                    .path();
                if file.is_file() && file.extension().is_some_and(|e| e == "wasm") {
                    found.push(file);
                }
            }
            found.sort();
            files.extend(found);
        } else if path.is_file() {
            if path.extension().is_none_or(|e| e != "wasm") {
                bail!(
                    "--plugin {}: not a .wasm file; give a component built for wasm32-wasip2, or a directory of them",
                    path.display()
                );
            }
            files.push(path.clone());
        } else {
            bail!(
                "--plugin {}: no such file or directory (from --plugin or CSMP_PLUGINS)",
                path.display()
            );
        }
    }
    Ok(files)
}

/// Loads every file into `host`. The first file that does not load stops the command with
/// the file, the reason and what to do.
pub fn load(
    host: &PluginHost,
    files: &[PathBuf],
    origins: &mut Origins,
) -> anyhow::Result<Vec<PluginDescriptor>> {
    let mut loaded = Vec::with_capacity(files.len());
    for file in files {
        let descriptor = load_one(host, file, origins)?;
        origins.note([&descriptor], &format!("the plugin in {}", file.display()));
        loaded.push(descriptor);
    }
    Ok(loaded)
}

fn load_one(host: &PluginHost, file: &Path, origins: &Origins) -> anyhow::Result<PluginDescriptor> {
    let wasm = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    match host.load(&wasm) {
        Ok(d) => Ok(d),
        Err(LoadError::Conflict { plugin }) => bail!(
            "{}: {plugin} clashes with {}, which has other bytes under the same name and version; bump the plugin's version (a published version never changes), or drop this --plugin",
            file.display(),
            origins.of(&plugin)
        ),
        Err(e) => bail!("{}: {e}", file.display()),
    }
}

/// A plugin host for the development commands (`plugin inspect`, `try`, `publish`, `build`):
/// the real sandbox under `grants` (nothing granted without a file), the built-ins loaded so
/// a clash with one is seen, compiled code cached like `csmp validate` does.
pub fn dev_host(grants: Option<&Path>) -> anyhow::Result<(PluginHost, Origins)> {
    use crate::plugin::{Grants, HostConfig};
    let grants = match grants {
        Some(path) => Grants::load(path)?,
        None => Grants::default(),
    };
    let host = PluginHost::new(HostConfig::new(super::cache_dir(), grants))?;
    let builtins = host.load_builtins()?;
    let mut origins = Origins::default();
    origins.note(&builtins, "a built-in plugin");
    Ok((host, origins))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_expand_to_their_wasm_files_in_order() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        for name in ["b.wasm", "a.wasm", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"x")?;
        }
        std::fs::create_dir(dir.path().join("sub.wasm"))?;
        let single = dir.path().join("b.wasm");
        let files = wasm_files(&[dir.path().to_path_buf(), single.clone()])?;
        assert_eq!(
            files,
            vec![dir.path().join("a.wasm"), single.clone(), single]
        );
        Ok(())
    }

    #[test]
    fn a_missing_path_or_another_file_is_an_error() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let missing = wasm_files(&[dir.path().join("nope.wasm")]).err();
        assert!(
            missing.is_some_and(|e| e.to_string().contains("no such file or directory")),
            "missing"
        );
        let text = dir.path().join("plugin.txt");
        std::fs::write(&text, b"x")?;
        let wrong = wasm_files(&[text]).err();
        assert!(
            wrong.is_some_and(|e| e.to_string().contains("not a .wasm file")),
            "wrong extension"
        );
        Ok(())
    }
}
