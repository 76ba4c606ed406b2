//! `csmp validate PATH…`: every problem in every file, located, like a compiler.
//!
//! Reads files; the checking itself is `dsl` and `plan`.

use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Diagnostics, FileReport, Span, plural};
use crate::dsl::{self, Definition};
use crate::plan::{self, Env, WorkflowNames};
use crate::plugin::PluginIndex;

/// The outcome of validating a set of files.
#[derive(Debug, Default)]
pub struct Outcome {
    /// One report per file that has problems, in path order.
    pub reports: Vec<FileReport>,
    /// The source text of each reported file, for rendering the offending lines.
    pub sources: Vec<Option<String>>,
    /// How many files were checked.
    pub files: usize,
    /// Workflows that validated, with their plans.
    pub plans: Vec<plan::Plan>,
    /// Catalog entries that validated.
    pub catalog: Vec<plan::CatalogPlan>,
    /// Alert rules that validated.
    pub rules: Vec<crate::alerts::rules::RulePlan>,
    /// People, teams and schedules, when every on-call file validated.
    pub oncall: Option<crate::oncall::OnCall>,
    /// Synthetic checks that validated.
    pub checks: Vec<crate::checks::CheckPlan>,
}

impl Outcome {
    /// Total number of problems.
    pub fn errors(&self) -> usize {
        self.reports.iter().map(|r| r.diagnostics.len()).sum()
    }
}

/// Expands directories into the YAML files under them (sorted), keeping files as given.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found)
                .map_err(|e| format!("cannot read directory {}: {e}", p.display()))?;
            found.sort();
            out.extend(found);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or directory", p.display()));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

/// Validates files read from disk: workflows first (so `workflow:` references, catalog
/// entries and rules can be checked against them), then catalog entries and rules.
pub fn validate_files(files: &[PathBuf], plugins: &PluginIndex) -> Outcome {
    let inputs: Vec<(String, Result<Vec<u8>, String>)> = files
        .iter()
        .map(|f| {
            let bytes = std::fs::read(f).map_err(|e| format!("cannot read file: {e}"));
            (f.display().to_string(), bytes)
        })
        .collect();
    validate_sources(&inputs, plugins)
}

/// Validates named sources (path, bytes or a read error) as one set.
pub fn validate_sources(
    inputs: &[(String, Result<Vec<u8>, String>)],
    plugins: &PluginIndex,
) -> Outcome {
    let mut outcome = Outcome {
        files: inputs.len(),
        ..Outcome::default()
    };
    // First pass: decode everything, learn which workflows exist.
    let mut decoded: Vec<(usize, Diagnostics, Option<Definition>)> = Vec::new();
    let mut names = WorkflowNames::new();
    let mut first_seen: std::collections::HashMap<(String, u32), String> = Default::default();
    for (i, (file, bytes)) in inputs.iter().enumerate() {
        let mut diags = Diagnostics::default();
        let def = match bytes {
            Ok(b) => dsl::decode_any(b, &mut diags),
            Err(e) => {
                diags.push(Diagnostic::new("unreadable", Span::FILE, e.clone()));
                None
            }
        };
        if let Some(Definition::Workflow(wf)) = &def
            && !wf.name.value.is_empty()
        {
            let key = (wf.name.value.clone(), wf.version.value);
            if let Some(other) = first_seen.get(&key) {
                diags.push(
                    Diagnostic::new(
                        "duplicate-workflow",
                        wf.version.span,
                        format!(
                            "workflow `{}` version {} is also defined in {other}",
                            key.0, key.1
                        ),
                    )
                    .help("bump `version` when you change a workflow"),
                );
            } else {
                first_seen.insert(key, file.clone());
                names
                    .entry(wf.name.value.clone())
                    .or_default()
                    .push(wf.version.value);
            }
        }
        decoded.push((i, diags, def));
    }
    let env = Env {
        plugins,
        workflows: Some(&names),
    };
    // On-call files are planned together: a schedule may name people of another file.
    let mut oncall: Vec<(usize, crate::dsl::oncall::OnCallFile, Diagnostics)> = Vec::new();
    for (i, diags, def) in decoded {
        let def = match def {
            Some(Definition::OnCall(file)) => {
                oncall.push((i, file, diags));
                continue;
            }
            other => other,
        };
        let result = match &def {
            Some(Definition::Workflow(wf)) => {
                plan::build(wf, env, diags).map(|p| outcome.plans.push(p))
            }
            Some(Definition::Catalog(c)) => {
                plan::build_catalog(c, Some(&names), diags).map(|p| outcome.catalog.push(p))
            }
            Some(Definition::Rule(r)) => {
                // A rule's workflow is checked when workflows were given with it.
                let known = (!names.is_empty()).then_some(&names);
                let source = inputs[i]
                    .1
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                crate::alerts::rules::plan_rule(r, &source, known, diags)
                    .map(|p| outcome.rules.push(p))
            }
            Some(Definition::Check(c)) => {
                crate::checks::build(c, diags).map(|p| outcome.checks.push(p))
            }
            Some(Definition::OnCall(_)) | None => Err(diags.into_sorted()),
        };
        if let Err(diagnostics) = result {
            let (file, bytes) = &inputs[i];
            outcome.reports.push(FileReport {
                file: file.clone(),
                diagnostics,
            });
            outcome.sources.push(
                bytes
                    .as_ref()
                    .ok()
                    .and_then(|b| String::from_utf8(b.clone()).ok()),
            );
        }
    }
    if !oncall.is_empty() {
        let (at, files): (Vec<usize>, Vec<_>) =
            oncall.into_iter().map(|(i, f, d)| (i, (f, d))).unzip();
        match crate::oncall::plan(files) {
            Ok(set) => outcome.oncall = Some(set),
            Err(per_file) => {
                for (i, diagnostics) in at.into_iter().zip(per_file) {
                    if diagnostics.is_empty() {
                        continue;
                    }
                    let (file, bytes) = &inputs[i];
                    outcome.reports.push(FileReport {
                        file: file.clone(),
                        diagnostics,
                    });
                    outcome.sources.push(
                        bytes
                            .as_ref()
                            .ok()
                            .and_then(|b| String::from_utf8(b.clone()).ok()),
                    );
                }
            }
        }
    }
    outcome
}

/// Renders the outcome for a terminal.
pub fn render_text(outcome: &Outcome) -> String {
    let mut out = String::new();
    for (report, source) in outcome.reports.iter().zip(&outcome.sources) {
        out.push_str(&report.render(source.as_deref()));
    }
    let errors = outcome.errors();
    if errors == 0 {
        out.push_str(&format!(
            "ok: {} file{} valid\n",
            outcome.files,
            plural(outcome.files)
        ));
    } else {
        out.push_str(&format!(
            "error: {errors} problem{} in {} of {} file{}\n",
            plural(errors),
            outcome.reports.len(),
            outcome.files,
            plural(outcome.files)
        ));
    }
    out
}

/// Renders the outcome as JSON for tools.
pub fn render_json(outcome: &Outcome) -> String {
    let value = serde_json::json!({
        "files": outcome.files,
        "errors": outcome.errors(),
        "reports": outcome.reports,
    });
    serde_json::to_string_pretty(&value).unwrap_or_default()
}
