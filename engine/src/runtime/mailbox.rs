//! Commands this process forwarded to other partitions' holders, waiting for their answers.
//!
//! The executor commits a forwarded command to the inbox and hands its caller's reply here.
//! A task reads the answers as they come (woken by the holder's notification on PostgreSQL,
//! and by polling while anything waits), hands each to its caller, and deletes the command. A
//! command not answered within [`PATIENCE`] is left queued (its holder applies it when it can)
//! and its caller is told so. Answers are JSON: `{"ok": Done}` or `{"error": {kind, message}}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use tokio::sync::{Notify, oneshot};

use super::{Done, EngineError};
use crate::store::Store;

/// How long a caller waits for a forwarded command's answer.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// How often answers are looked for while something waits (a notification comes sooner).
const POLL: Duration = Duration::from_millis(100);

/// Answered commands nobody read (their sender died) are deleted after this.
pub(crate) const FORGOTTEN: Duration = Duration::from_secs(600);

type Waiter = oneshot::Sender<Result<Done, EngineError>>;

/// The waiting callers, by command id.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    waiting: Mutex<HashMap<String, (Waiter, Instant, i64)>>,
    /// Rung when answers may have come (a notification) or a caller starts waiting.
    bell: Notify,
    /// Counts the commands not answered in time.
    metrics: Arc<super::Metrics>,
}

impl Mailbox {
    /// Starts the task that reads answers; it ends when `stopping` is cancelled.
    pub(crate) fn start(
        store: Store,
        stopping: tokio_util::sync::CancellationToken,
        metrics: Arc<super::Metrics>,
    ) -> Arc<Self> {
        let mailbox = Arc::new(Self {
            metrics,
            ..Self::default()
        });
        let reader = Arc::clone(&mailbox);
        tokio::spawn(async move {
            loop {
                let idle = reader.is_idle();
                tokio::select! {
                    () = stopping.cancelled() => return,
                    () = reader.bell.notified() => {}
                    () = tokio::time::sleep(POLL), if !idle => {}
                }
                reader.collect(&store).await;
            }
        });
        mailbox
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Waiter, Instant, i64)>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_idle(&self) -> bool {
        self.waiting().is_empty()
    }

    /// Waits for the answer of committed command `id`, sent to `partition`'s holder.
    pub(crate) fn wait(&self, id: String, partition: i64, reply: Waiter) {
        self.waiting()
            .insert(id, (reply, Instant::now() + PATIENCE, partition));
        self.bell.notify_one();
    }

    /// Answers may have come (a notification).
    pub(crate) fn ring(&self) {
        self.bell.notify_one();
    }

    async fn collect(&self, store: &Store) {
        let ids: Vec<String> = self.waiting().keys().cloned().collect();
        if ids.is_empty() {
            return;
        }
        let answers = match store.inbox_answers(&ids).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("cannot read the answers of forwarded commands: {e}");
                Vec::new()
            }
        };
        let mut done = Vec::with_capacity(answers.len());
        {
            let mut waiting = self.waiting();
            for (id, answer) in answers {
                if let Some((reply, ..)) = waiting.remove(&id) {
                    drop(reply.send(read(&answer)));
                }
                done.push(id);
            }
            let now = Instant::now();
            let late: Vec<String> = waiting
                .iter()
                .filter(|(_, (_, by, _))| *by <= now)
                .map(|(id, _)| id.clone())
                .collect();
            for id in late {
                if let Some((reply, _, partition)) = waiting.remove(&id) {
                    tracing::warn!(command = %id, partition, "a forwarded command was not answered in time; it stays queued");
                    self.metrics.command_forwarded(false);
                    drop(reply.send(Err(EngineError::Unanswered(partition))));
                }
            }
        }
        if !done.is_empty()
            && let Err(e) = store.inbox_delete(&done).await
        {
            tracing::warn!("cannot delete answered commands (they are swept later): {e}");
        }
    }
}

/// The answer to write for a command's outcome.
pub(crate) fn answer(outcome: &Result<Done, EngineError>) -> String {
    match outcome {
        Ok(done) => json!({ "ok": done }),
        Err(e) => {
            let kind = match e {
                EngineError::UnknownWorkflow(_) => "unknown_workflow",
                EngineError::UnknownRun(_) => "unknown_run",
                EngineError::UnknownIncident(_) => "unknown_incident",
                EngineError::Conflict(_) => "conflict",
                EngineError::InvalidInputs(_) => "invalid_inputs",
                EngineError::Busy(_) => "busy",
                EngineError::Stopped => "stopped",
                EngineError::Unanswered(_) => "unanswered",
                EngineError::Store(_) | EngineError::Unavailable(_) => "unavailable",
            };
            let detail = match e {
                EngineError::UnknownWorkflow(x)
                | EngineError::UnknownRun(x)
                | EngineError::UnknownIncident(x)
                | EngineError::Conflict(x) => Json::String(x.clone()),
                EngineError::InvalidInputs(list) => json!(list),
                other => Json::String(other.to_string()),
            };
            json!({ "error": { "kind": kind, "detail": detail } })
        }
    }
    .to_string()
}

/// The outcome an answer says.
fn read(answer: &str) -> Result<Done, EngineError> {
    let v: Json = serde_json::from_str(answer).map_err(|e| {
        EngineError::Conflict(format!("the partition's holder answered unreadably: {e}"))
    })?;
    if let Some(ok) = v.get("ok") {
        return serde_json::from_value(ok.clone()).map_err(|e| {
            EngineError::Conflict(format!("the partition's holder answered unreadably: {e}"))
        });
    }
    let err = v.get("error").cloned().unwrap_or(Json::Null);
    let detail = err.get("detail").cloned().unwrap_or(Json::Null);
    let text = detail
        .as_str()
        .map_or_else(|| detail.to_string(), str::to_string);
    Err(match err.get("kind").and_then(Json::as_str) {
        Some("unknown_workflow") => EngineError::UnknownWorkflow(text),
        Some("unknown_run") => EngineError::UnknownRun(text),
        Some("unknown_incident") => EngineError::UnknownIncident(text),
        Some("invalid_inputs") => EngineError::InvalidInputs(
            detail
                .as_array()
                .map(|l| {
                    l.iter()
                        .map(|x| x.as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default(),
        ),
        Some("busy") => EngineError::Busy(0),
        Some("unavailable" | "stopped" | "unanswered") => EngineError::Unavailable(text),
        _ => EngineError::Conflict(text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_back_as_what_they_said() {
        let ok = answer(&Ok(Done::Run { id: "run-1".into() }));
        assert!(matches!(read(&ok), Ok(Done::Run { id }) if id == "run-1"));
        let conflict = answer(&Err(EngineError::Conflict("not waiting".into())));
        assert!(matches!(read(&conflict), Err(EngineError::Conflict(m)) if m == "not waiting"));
        let unknown = answer(&Err(EngineError::UnknownRun("run-2".into())));
        assert!(matches!(read(&unknown), Err(EngineError::UnknownRun(m)) if m == "run-2"));
        let invalid = answer(&Err(EngineError::InvalidInputs(vec!["/n: too big".into()])));
        assert!(
            matches!(read(&invalid), Err(EngineError::InvalidInputs(l)) if l == ["/n: too big"])
        );
        assert!(matches!(read("not json"), Err(EngineError::Conflict(_))));
    }
}
