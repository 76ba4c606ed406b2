//! Talking to a running service for `csmp runs|approvals|requests`: calls with the caller's
//! token, a problem document turned into one clear line, the event stream followed, and the
//! tables the commands print.

use std::io::{BufRead as _, BufReader};
use std::time::Duration;

use serde_json::Value;

use super::remote::Server;

/// What went wrong, said as the user needs it.
#[derive(Debug)]
pub(super) enum Failure {
    /// The service answered with a problem document.
    Problem(u16, Value),
    /// Anything else (no connection, bad arguments, a run that did not succeed).
    Other(String),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(format!("{e:#}"))
    }
}

impl Failure {
    pub(super) fn print(&self) {
        match self {
            Failure::Problem(status, p) => {
                let detail = p["detail"]
                    .as_str()
                    .unwrap_or("the service refused the call");
                let kind = p["type"]
                    .as_str()
                    .and_then(|t| t.strip_prefix("urn:csmp:problem:"))
                    .unwrap_or("error");
                eprintln!("error: {detail} ({status} {kind})");
                for e in p["errors"].as_array().into_iter().flatten() {
                    eprintln!(
                        "  {}: {}",
                        e["pointer"].as_str().unwrap_or(""),
                        e["message"].as_str().unwrap_or("")
                    );
                }
            }
            Failure::Other(m) => eprintln!("error: {m}"),
        }
    }
}

pub(super) struct Api {
    pub(super) base: String,
    pub(super) token: String,
    pub(super) agent: ureq::Agent,
}

impl Api {
    pub(super) fn new(server: &Server) -> Result<Self, Failure> {
        let token = server.token.clone().ok_or_else(|| {
            Failure::Other(
                "no token: pass --token or set CSMP_TOKEN (an admin makes one with `csmp token create`)"
                    .into(),
            )
        })?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(10)))
            .build()
            .new_agent();
        Ok(Self {
            base: server.server.trim_end_matches('/').to_string(),
            token,
            agent,
        })
    }

    pub(super) fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        self.call_keyed(method, path, body, None)
    }

    /// [`Api::call`] with an `Idempotency-Key` on a POST with a body.
    pub(super) fn call_keyed(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let sent = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            (_, Some(b)) => {
                let mut post = self
                    .agent
                    .post(&url)
                    .header("Authorization", &auth)
                    .header("Content-Type", "application/json");
                if let Some(k) = key {
                    post = post.header("Idempotency-Key", k);
                }
                post.send(b.to_string())
            }
            (_, None) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_empty(),
        };
        let text = self.answer(sent)?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The text of a successful answer; a refusal as its problem, a transport error as what
    /// to check.
    fn answer(
        &self,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<String, Failure> {
        let mut reply = sent.map_err(|e| {
            Failure::Other(format!(
                "cannot reach {}: {e} (is `csmp serve` running there? --server or CSMP_SERVER names it)",
                self.base
            ))
        })?;
        let status = reply.status().as_u16();
        let text = reply
            .body_mut()
            .read_to_string()
            .map_err(|e| Failure::Other(format!("reading the answer: {e}")))?;
        if status >= 400 {
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            return Err(Failure::Problem(status, value));
        }
        Ok(text)
    }

    /// `GET path` asking for `accept` (such as `text/markdown`); the answer's text.
    pub(super) fn get_text(&self, path: &str, accept: &str) -> Result<String, Failure> {
        let url = format!("{}{path}", self.base);
        let sent = self
            .agent
            .get(&url)
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Accept", accept)
            .call();
        self.answer(sent)
    }

    /// Follows a run's event stream, printing each step's and the run's transitions; the
    /// run's final status.
    pub(super) fn follow(&self, run: &str) -> Result<String, Failure> {
        let reply = self
            .agent
            .get(format!("{}/v1/runs/{run}/events", self.base))
            .header("Authorization", &format!("Bearer {}", self.token))
            .call()
            .map_err(|e| Failure::Other(format!("cannot follow run {run}: {e}")))?;
        let status = reply.status().as_u16();
        if status >= 400 {
            let mut reply = reply;
            let text = reply.body_mut().read_to_string().unwrap_or_default();
            return Err(Failure::Problem(
                status,
                serde_json::from_str(&text).unwrap_or(Value::Null),
            ));
        }
        let mut last = String::from("running");
        let mut event = String::new();
        // A transition may come both in the snapshot and as an event: print each once.
        let mut shown: std::collections::HashMap<String, String> = Default::default();
        let mut unit = |key: &Value, e: &Value| {
            let (k, status) = (text(key), text(&e["status"]));
            if shown.get(&k) != Some(&status) {
                unit_line(key, e);
                shown.insert(k, status);
            }
        };
        for line in BufReader::new(reply.into_body().into_reader()).lines() {
            let line = line.map_err(|e| Failure::Other(format!("the event stream broke: {e}")))?;
            if let Some(name) = line.strip_prefix("event:") {
                event = name.trim().to_string();
            } else if let Some(data) = line.strip_prefix("data:") {
                let e: Value = serde_json::from_str(data.trim()).unwrap_or(Value::Null);
                match event.as_str() {
                    "snapshot" => {
                        last = text(&e["status"]);
                        println!("run {run} of {} is {last}", text(&e["workflow"]));
                        // Where its units are already, then each transition as it comes.
                        for u in e["steps"].as_array().into_iter().flatten() {
                            unit(&u["key"], u);
                        }
                    }
                    "step" => unit(&e["step"], &e),
                    "run" => {
                        last = text(&e["status"]);
                        println!(
                            "run {run} {last}{}",
                            e["error"]
                                .as_str()
                                .map(|m| format!(": {m}"))
                                .unwrap_or_default()
                        );
                        if let Some(outputs) = e.get("outputs").filter(|o| !o.is_null()) {
                            println!("{}", pretty(outputs));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(last)
    }
}

pub(super) fn unit_line(key: &Value, e: &Value) {
    println!(
        "  {} {:<24} {}{}",
        mark(e["status"].as_str().unwrap_or("")),
        text(key),
        text(&e["status"]),
        e["error"]
            .as_str()
            .map(|m| format!(": {m}"))
            .unwrap_or_default()
    );
}

pub(super) fn mark(status: &str) -> &'static str {
    match status {
        "succeeded" => "✓",
        "failed" => "✗",
        "running" => "▶",
        "cancelled" | "skipped" => "–",
        _ => "…",
    }
}

pub(super) fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(super) fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// A table: a header and rows, columns padded to their widest cell.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        line(row.clone());
    }
}

pub(super) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
