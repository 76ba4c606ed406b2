//! `csmp plugin try FILE.wasm --input JSON [--grants FILE] [--secret NAME=VALUE]…`: one step
//! attempt of a component in the real sandbox — the engine's host, grants and limits, not the
//! SDK's mock — printing the output or the error, the captured log, the time and the memory
//! the instance held. `--repeat N` runs N attempts (each a fresh instance, as every step is)
//! and prints the spread of their times: the plugin's cold step.
//!
//! Reads files and arguments and prints; the attempt itself is `PluginHost::trial`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;

use super::plugin_files;
use super::plugin_inspect::size;
use crate::plugin::{CancellationToken, Invocation, PluginDescriptor, PluginHost, Trial};

/// Arguments of `csmp plugin try`.
#[derive(Debug, Args)]
pub struct TryArgs {
    /// The component.
    pub file: PathBuf,
    /// The step's `with:` as JSON (`@FILE` reads it from a file).
    #[arg(long, default_value = "{}")]
    pub input: String,
    /// Operator grants (HTTP hosts, secrets, limits), YAML; nothing is granted without one.
    #[arg(long, env = "CSMP_GRANTS")]
    pub grants: Option<PathBuf>,
    /// A secret handed to the attempt, `NAME=VALUE`; repeatable. The plugin reads it only if
    /// the grants allow it.
    #[arg(long = "secret", value_name = "NAME=VALUE")]
    pub secrets: Vec<String>,
    /// The attempt's time budget.
    #[arg(long, default_value = "30s", value_parser = super::duration)]
    pub timeout: Duration,
    /// Run this many attempts and print their time spread (p50, p99, max).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub repeat: u32,
}

/// Runs `csmp plugin try`: exit 0 when the attempt succeeded, 1 when it failed, 2 when it could
/// not be tried.
pub fn main(args: TryArgs) -> ExitCode {
    match try_plugin(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn try_plugin(args: &TryArgs) -> anyhow::Result<bool> {
    let input = read_input(&args.input)?;
    let secrets = Arc::new(parse_secrets(&args.secrets)?);
    let (host, mut origins) = plugin_files::dev_host(args.grants.as_deref())?;
    let descriptor = plugin_files::load(&host, std::slice::from_ref(&args.file), &mut origins)?
        .into_iter()
        .next()
        .context("the plugin did not load")?;
    let call = |n: u32| Invocation {
        plugin: descriptor.name.clone(),
        version: descriptor.version.clone(),
        input: input.clone(),
        idempotency_key: format!("try/{}#{n}", descriptor.name),
        secrets: Arc::clone(&secrets),
        timeout: args.timeout,
        cancel: CancellationToken::new(),
    };
    let first = host.trial(call(0));
    print_trial(&descriptor, &first, args.grants.is_some());
    if args.repeat > 1 {
        print_spread(&host, args.repeat, call);
    }
    Ok(first.result.is_ok())
}

/// The input: JSON text, or `@FILE` for a file of JSON.
fn read_input(text: &str) -> anyhow::Result<serde_json::Value> {
    let (text, from) = match text.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?,
            format!(" in {path}"),
        ),
        None => (text.to_owned(), String::new()),
    };
    serde_json::from_str(&text).with_context(|| {
        format!("--input{from} is not JSON; quote it for the shell, e.g. --input '{{\"name\": \"ops\"}}'")
    })
}

fn parse_secrets(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut secrets = BTreeMap::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("`--secret {pair}` is not NAME=VALUE");
        };
        if name.is_empty() {
            bail!("`--secret {pair}` has no name before `=`");
        }
        secrets.insert(name.to_owned(), value.to_owned());
    }
    Ok(secrets)
}

fn print_trial(d: &PluginDescriptor, trial: &Trial, has_grants: bool) {
    println!("plugin       {}@{}", d.name, d.version);
    let took = format!(
        "in {:.2} ms, peak memory {}",
        trial.elapsed.as_secs_f64() * 1000.0,
        size(trial.peak_memory)
    );
    let log = match &trial.result {
        Ok(outcome) => {
            println!("outcome      succeeded {took}");
            &outcome.log
        }
        Err(failure) => {
            println!("outcome      failed ({}) {took}", failure.kind);
            println!("error        {}", failure.message);
            if failure.kind == crate::plugin::FailureKind::Denied && !has_grants {
                println!(
                    "             nothing is granted without --grants FILE (the operator's grants file)"
                );
            }
            &failure.log
        }
    };
    if !log.is_empty() {
        println!("log");
        for line in log.lines() {
            println!("  {line}");
        }
    }
    if let Ok(outcome) = &trial.result {
        println!("output");
        let text = serde_json::to_string_pretty(&outcome.output).unwrap_or_default();
        for line in text.lines() {
            println!("  {line}");
        }
    }
}

/// Runs `repeat - 1` more attempts and prints the spread of all of them.
fn print_spread(host: &PluginHost, repeat: u32, call: impl Fn(u32) -> Invocation) {
    let mut times = Vec::with_capacity(repeat as usize);
    let mut peak = 0;
    let mut failed = 0;
    for n in 1..repeat {
        let trial = host.trial(call(n));
        failed += usize::from(trial.result.is_err());
        peak = peak.max(trial.peak_memory);
        times.push(trial.elapsed);
    }
    times.sort();
    let at = |q: f64| {
        let i = ((times.len() as f64 - 1.0) * q).round() as usize;
        times.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "repeat       {} more attempts: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; peak memory {}; {failed} failed",
        times.len(),
        at(0.5),
        at(0.99),
        at(1.0),
        size(peak)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_name_value_pairs() -> anyhow::Result<()> {
        let s = parse_secrets(&["a=1".into(), "b=x=y".into(), "c=".into()])?;
        assert_eq!(s.get("b").map(String::as_str), Some("x=y"));
        assert_eq!(s.get("c").map(String::as_str), Some(""));
        for bad in ["novalue", "=v"] {
            assert!(parse_secrets(&[bad.into()]).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn input_is_json_or_a_file_of_json() -> anyhow::Result<()> {
        assert_eq!(read_input(r#"{"a": 1}"#)?["a"], 1);
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("in.json");
        std::fs::write(&file, r#"{"b": [2]}"#)?;
        assert_eq!(read_input(&format!("@{}", file.display()))?["b"][0], 2);
        let err = read_input("{name: x}").err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("is not JSON")));
        Ok(())
    }
}
