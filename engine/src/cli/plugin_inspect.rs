//! `csmp plugin inspect FILE.wasm [--grants FILE] [--format json]`: what a component is —
//! name, version, description, schemas, every import (and whether the sandbox grants it), the
//! capabilities it asks for and, against a grants file, which of them it would get.
//!
//! Looks through the real host (`PluginHost::examine`), so what it prints is what `load` would
//! decide; prints, and knows nothing about how plugins run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use super::Format;
use super::plugin_files;
use crate::plugin::{Examined, PluginDescriptor, PluginHost, Review};

/// Arguments of `csmp plugin inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The component.
    pub file: PathBuf,
    /// Operator grants to judge the requested capabilities against (nothing is granted
    /// without one).
    #[arg(long, env = "CSMP_GRANTS")]
    pub grants: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// What `inspect` found, ready to print.
#[derive(Debug)]
pub struct Inspection {
    /// The file.
    pub file: PathBuf,
    /// Its size in bytes.
    pub size: usize,
    /// Its sha256, hex.
    pub sha256: String,
    /// Imports and the descriptor (or why it does not load).
    pub examined: Examined,
    /// Requested capabilities beside the grant, when it describes itself.
    pub review: Option<Review>,
    /// The built-in this would clash with, if it has a built-in's name and version.
    pub clash: Option<String>,
}

/// Runs `csmp plugin inspect`.
pub fn main(args: InspectArgs) -> ExitCode {
    let inspected = plugin_files::dev_host(args.grants.as_deref())
        .and_then(|(host, _)| inspect(&host, &args.file));
    match inspected {
        Ok(i) => {
            match args.format {
                Format::Text => print!("{}", render_text(&i)),
                Format::Json => println!("{}", render_json(&i)),
            }
            if i.examined.descriptor.is_ok() && i.clash.is_none() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Examines `file` with `host` (whose built-ins are loaded and whose grants are the ones to
/// judge against).
pub fn inspect(host: &PluginHost, file: &Path) -> anyhow::Result<Inspection> {
    let wasm = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let examined = host
        .examine(&wasm)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let (review, clash) = match &examined.descriptor {
        Ok(d) => {
            // Same bytes as a built-in load as that built-in; other bytes under its name and
            // version clash.
            let clash = matches!(
                host.load(&wasm),
                Err(crate::plugin::LoadError::Conflict { .. })
            );
            (
                Some(host.review(&d.name, &d.capabilities)),
                clash.then(|| format!("{}@{}", d.name, d.version)),
            )
        }
        Err(_) => (None, None),
    };
    Ok(Inspection {
        file: file.to_path_buf(),
        size: wasm.len(),
        sha256: crate::store::hex_sha256(&wasm),
        examined,
        review,
        clash,
    })
}

/// A byte count for people: `812 B`, `14.2 KiB`, `18.4 MiB`.
pub fn size(bytes: usize) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// The import verdicts: each import with `None` (granted) or why it is refused.
fn import_verdicts(imports: &[String]) -> Vec<(String, Option<String>)> {
    imports
        .iter()
        .map(|i| {
            let refused = crate::plugin::check_import(i).err().map(|e| e.to_string());
            (i.clone(), refused)
        })
        .collect()
}

/// Compiler-style text for people.
pub fn render_text(i: &Inspection) -> String {
    let mut out = String::new();
    let line = |out: &mut String, key: &str, value: &str| {
        out.push_str(&format!("{key:<13}{value}\n"));
    };
    match &i.examined.descriptor {
        Ok(d) => {
            line(&mut out, "plugin", &format!("{}@{}", d.name, d.version));
            line(&mut out, "description", &d.description);
        }
        Err(e) => line(&mut out, "error", &e.to_string()),
    }
    line(
        &mut out,
        "file",
        &format!(
            "{} ({}, sha256 {})",
            i.file.display(),
            size(i.size),
            &i.sha256[..16.min(i.sha256.len())]
        ),
    );
    if let Some(id) = &i.clash {
        line(
            &mut out,
            "clash",
            &format!("{id} is a built-in plugin; bump the version or rename the plugin"),
        );
    }
    out.push_str("imports\n");
    for (import, refused) in import_verdicts(&i.examined.imports) {
        match refused {
            None => out.push_str(&format!("  {import}\n")),
            Some(why) => out.push_str(&format!("  {import}    REFUSED: {why}\n")),
        }
    }
    if let (Ok(d), Some(r)) = (&i.examined.descriptor, &i.review) {
        capabilities_text(&mut out, d, r);
        for (which, schema) in [
            ("input schema", &d.input_schema),
            ("output schema", &d.output_schema),
        ] {
            out.push_str(which);
            out.push('\n');
            let text = serde_json::to_string_pretty(schema).unwrap_or_default();
            for l in text.lines() {
                out.push_str(&format!("  {l}\n"));
            }
        }
    }
    out
}

fn capabilities_text(out: &mut String, d: &PluginDescriptor, r: &Review) {
    out.push_str("capabilities (requested → granted)\n");
    let requested = d
        .capabilities
        .http_hosts
        .iter()
        .map(|h| ("http_hosts", h, r.missing_http_hosts.contains(h)))
        .chain(
            d.capabilities
                .secrets
                .iter()
                .map(|s| ("secrets", s, r.missing_secrets.contains(s))),
        );
    let mut any = false;
    for (kind, what, missing) in requested {
        any = true;
        let verdict = if missing {
            format!(
                "not granted: add it to `plugins.{}.{kind}` in the grants file",
                d.name
            )
        } else {
            "granted".to_owned()
        };
        out.push_str(&format!("  {kind:<11}{what:<32}{verdict}\n"));
    }
    if !any {
        out.push_str("  none\n");
    }
    let g = &r.granted;
    let or_none = |v: &[String]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    out.push_str(&format!(
        "grant        http_hosts: {}; secrets: {}{}{}\n",
        or_none(&g.http_hosts),
        or_none(&g.secrets),
        g.memory_mib
            .map(|m| format!("; memory_mib: {m}"))
            .unwrap_or_default(),
        g.output_bytes
            .map(|b| format!("; output_bytes: {b}"))
            .unwrap_or_default(),
    ));
}

/// One JSON document for tools.
pub fn render_json(i: &Inspection) -> String {
    let imports: Vec<serde_json::Value> = import_verdicts(&i.examined.imports)
        .into_iter()
        .map(|(name, refused)| json!({ "name": name, "refused": refused }))
        .collect();
    let value = json!({
        "file": i.file.display().to_string(),
        "size": i.size,
        "sha256": i.sha256,
        "imports": imports,
        "descriptor": i.examined.descriptor.as_ref().ok(),
        "error": i.examined.descriptor.as_ref().err().map(ToString::to_string),
        "review": i.review,
        "clashes_with_builtin": i.clash,
    });
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(size(812), "812 B");
        assert_eq!(size(14_540), "14.2 KiB");
        assert_eq!(size(18_411_281), "17.6 MiB");
    }
}
