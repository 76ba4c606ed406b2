//! `csmp plugin publish FILE.wasm --server URL --token T`: uploads a component to a running
//! `csmp serve` (`PUT /v1/plugins/{name}/{version}`, admin token) and prints the server's
//! verdict as one line — published, already there, or refused and why — with the
//! capabilities the plugin asks for that the server's grants do not give it yet.
//!
//! The component is examined locally first, so a file that cannot load is refused before
//! anything is sent, and its name and version address the upload.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::Value as Json;

use super::plugin_files;

/// Arguments of `csmp plugin publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The component.
    pub file: PathBuf,
    /// The service's base URL, e.g. `http://127.0.0.1:8080`.
    #[arg(long, env = "CSMP_SERVER")]
    pub server: String,
    /// An admin token (`csmp token create --role admin`).
    #[arg(long, env = "CSMP_TOKEN", hide_env_values = true)]
    pub token: String,
}

/// Runs `csmp plugin publish`: exit 0 when the server has the plugin, 1 when it refused it, 2
/// when it could not be asked.
pub fn main(args: PublishArgs) -> ExitCode {
    match publish(&args) {
        Ok(Verdict::Accepted(line)) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Ok(Verdict::Refused(line)) => {
            println!("{line}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// What the server said, as the line to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Stored (or already stored with the same bytes).
    Accepted(String),
    /// Refused, with the server's reason.
    Refused(String),
}

fn publish(args: &PublishArgs) -> anyhow::Result<Verdict> {
    let wasm = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let (host, _) = plugin_files::dev_host(None)?;
    let examined = host
        .examine(&wasm)
        .map_err(|e| anyhow::anyhow!("{}: {e}; nothing was sent", args.file.display()))?;
    let d = examined
        .descriptor
        .map_err(|e| anyhow::anyhow!("{}: {e}; nothing was sent", args.file.display()))?;
    let id = format!("{}@{}", d.name, d.version);
    let server = args.server.trim_end_matches('/');
    if !(server.starts_with("http://") || server.starts_with("https://")) {
        bail!("--server `{server}` must be a URL such as http://127.0.0.1:8080");
    }
    let url = format!("{server}/v1/plugins/{}/{}", d.name, d.version);
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(120)))
        .build()
        .new_agent();
    let mut response = agent
        .put(&url)
        .header("authorization", &format!("Bearer {}", args.token))
        .header("content-type", "application/wasm")
        .send(&wasm[..])
        .with_context(|| format!("cannot reach {server} to publish {id}"))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(1024 * 1024)
        .read_to_vec()
        .with_context(|| format!("{server} answered {status} without a readable body"))?;
    let body: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
    Ok(verdict(&id, server, status, &body))
}

/// The one line for an answer of the server.
pub fn verdict(id: &str, server: &str, status: u16, body: &Json) -> Verdict {
    let text = |key: &str| body.get(key).and_then(Json::as_str).unwrap_or_default();
    match status {
        200 | 201 => {
            let what = if status == 201 {
                format!("published {id} to {server}")
            } else {
                format!("{id} was already published to {server} with the same bytes")
            };
            let sha = text("sha256");
            let short = &sha[..sha.len().min(12)];
            let missing = missing_grants(body);
            let grants = if missing.is_empty() {
                "everything it asks for is granted".to_owned()
            } else {
                format!(
                    "not granted yet: {}; an admin adds them to the grants file and reloads it (SIGHUP or POST /v1/grants/reload)",
                    missing.join(", ")
                )
            };
            Verdict::Accepted(format!("{what} (sha256 {short}…); {grants}"))
        }
        _ => {
            let detail = match text("detail") {
                "" => format!("HTTP {status}"),
                d => format!(
                    "{status} {}: {d}",
                    text("type").trim_start_matches("urn:csmp:problem:")
                ),
            };
            let extra: Vec<String> = body
                .get("errors")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| e.get("message").and_then(Json::as_str))
                .filter(|m| !detail.contains(m))
                .map(str::to_owned)
                .collect();
            let extra = if extra.is_empty() {
                String::new()
            } else {
                format!(" ({})", extra.join("; "))
            };
            Verdict::Refused(format!("{server} refused {id}: {detail}{extra}"))
        }
    }
}

fn missing_grants(body: &Json) -> Vec<String> {
    let list = |key: &str| -> Vec<String> {
        body.pointer(&format!("/missing/{key}"))
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .map(|v| format!("{key} {v}"))
            .collect()
    };
    [list("http_hosts"), list("secrets")].concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn verdicts_are_one_line_each() {
        let created = json!({"sha256": "0123456789abcdef0123", "missing": {"http_hosts": ["a.example"], "secrets": []}});
        let cases = [
            (
                201,
                created,
                true,
                "published q@0.1.0 to http://s (sha256 0123456789ab…); not granted yet: http_hosts a.example; an admin",
            ),
            (
                200,
                json!({"sha256": "ff", "missing": {"http_hosts": [], "secrets": []}}),
                true,
                "q@0.1.0 was already published to http://s with the same bytes (sha256 ff…); everything it asks for is granted",
            ),
            (
                409,
                json!({"type": "urn:csmp:problem:conflict", "detail": "plugin q@0.1.0 is already loaded from different wasm"}),
                false,
                "http://s refused q@0.1.0: 409 conflict: plugin q@0.1.0 is already loaded",
            ),
            (
                422,
                json!({"type": "urn:csmp:problem:invalid-input", "detail": "the request is invalid", "errors": [{"pointer": "", "message": "plugin imports `wasi:sockets/tcp`"}]}),
                false,
                "invalid-input: the request is invalid (plugin imports `wasi:sockets/tcp`)",
            ),
            (403, Json::Null, false, "http://s refused q@0.1.0: HTTP 403"),
        ];
        for (status, body, accepted, expected) in cases {
            let v = verdict("q@0.1.0", "http://s", status, &body);
            let (ok, line) = match v {
                Verdict::Accepted(l) => (true, l),
                Verdict::Refused(l) => (false, l),
            };
            assert_eq!(ok, accepted, "{status}");
            assert!(line.contains(expected), "{status}: {line}");
            assert_eq!(line.lines().count(), 1);
        }
    }
}
