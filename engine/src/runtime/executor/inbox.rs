//! Commands across processes: a steer for a run or incident of a partition this process does
//! not hold is forwarded to that partition's inbox (committed with the turn) and its caller
//! waits in the mailbox; the holder reads its inbox, applies each command like one of its own
//! callers', and commits the answer with the change.

use tokio::sync::oneshot;

use super::{Executor, Reply, new_id};
use crate::runtime::mailbox;
use crate::runtime::{Done, EngineError, Steer, channel};
use crate::store::{InboxRow, Write};

/// Inbox commands read at a time.
const INBOX_BATCH: u32 = 256;

/// Where a steer is applied.
pub(super) enum Applied {
    /// Here: its outcome once committed, and the run it concerns.
    Here(Done, Option<String>),
    /// By the holder of this partition.
    There(i64),
    /// Not by this process (a command read from an inbox whose partition moved meanwhile):
    /// left for the holder.
    NotHere,
}

impl Executor {
    /// A caller's steer: applied here, or forwarded to the partition's holder.
    pub(super) async fn steer(
        &mut self,
        steer: Steer,
        reply: oneshot::Sender<Result<Done, EngineError>>,
    ) {
        match self.apply(&steer, false).await {
            Ok(Applied::Here(done, run)) => self.replies.push(Reply::Steered(reply, done, run)),
            Ok(Applied::There(partition)) => match serde_json::to_string(&steer) {
                Ok(command) => {
                    let id = self.forward(partition, command);
                    self.metrics.command_forwarded(true);
                    self.forwarded.push((id, partition, reply));
                }
                Err(e) => drop(reply.send(Err(EngineError::Conflict(format!(
                    "cannot forward the command: {e}"
                ))))),
            },
            Ok(Applied::NotHere) => drop(reply.send(Err(EngineError::Conflict(format!(
                "`{}` is executed by another process now; send this again",
                steer.target()
            ))))),
            Err(e) => drop(reply.send(Err(e))),
        }
    }

    /// Writes `command` to `partition`'s inbox in this turn's commit and wakes its holder after
    /// it; returns the command's id.
    pub(super) fn forward(&mut self, partition: i64, command: String) -> String {
        self.forward_for(partition, command, None)
    }

    /// [`Self::forward`] of a command a step of `run` sent: written only with that run's other
    /// writes (not at all if its partition was lost meanwhile).
    pub(super) fn forward_for(
        &mut self,
        partition: i64,
        command: String,
        run: Option<&str>,
    ) -> String {
        let id = new_id("cmd");
        self.request_writes.push(Write::Inbox {
            row: InboxRow {
                id: id.clone(),
                partition,
                command,
                sender: self.config.owner.clone(),
                created_at: self.clock.now_ms(),
            },
            by_run: run.map(str::to_string),
        });
        self.wake.insert(partition);
        id
    }

    /// Sends a cancel of `run_id`, executed by another process, to its partition's holder
    /// (nobody waits for the answer); nothing when it is over or unknown.
    pub(super) async fn forward_cancel(&mut self, run_id: &str) {
        let steer = Steer::Cancel {
            run_id: run_id.to_string(),
            compensate: true,
            audit: None,
        };
        match self.store.run(run_id).await {
            Ok(Some(run)) if !run.status.is_final() => match serde_json::to_string(&steer) {
                Ok(command) => {
                    self.forward(run.partition, command);
                }
                Err(e) => tracing::warn!(run = %run_id, "cannot forward a cancel: {e}"),
            },
            Ok(_) => {}
            Err(e) => tracing::warn!(run = %run_id, "cannot read the run to cancel: {e}"),
        }
    }

    /// Applies the commands waiting in the inboxes of the partitions held here.
    pub(super) async fn read_inbox(&mut self) {
        let partitions: Vec<i64> = self.held.keys().copied().collect();
        if partitions.is_empty() {
            return;
        }
        let rows = match self.store.inbox_open(&partitions, INBOX_BATCH).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!("cannot read the inbox: {e}");
                return;
            }
        };
        for row in rows {
            if self.inbox_taken.contains_key(&row.id) || !self.held.contains_key(&row.partition) {
                continue;
            }
            self.inbox_taken.insert(row.id.clone(), row.partition);
            let outcome = match serde_json::from_str::<Steer>(&row.command) {
                Ok(steer) => {
                    let start = matches!(steer, Steer::Start { .. });
                    let applied = self.apply(&steer, true).await;
                    match applied {
                        Ok(Applied::There(_) | Applied::NotHere) => {
                            tracing::warn!(command = %row.id, partition = row.partition, "an inbox command is for a run or incident of another partition; left for its holder");
                            self.inbox_taken.remove(&row.id);
                            continue;
                        }
                        Err(EngineError::Store(_) | EngineError::Unavailable(_)) if start => {
                            // Not read this time (the database failed): left for the next
                            // reading, so the run is not stranded.
                            self.inbox_taken.remove(&row.id);
                            continue;
                        }
                        _ if start => {
                            // Nobody waits on a start: the command just goes.
                            if let Err(e) = applied {
                                tracing::warn!(command = %row.id, "a run written by another process cannot start here: {e}");
                            }
                            self.answer(&row, None);
                            continue;
                        }
                        Ok(Applied::Here(done, _)) => Ok(done),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(EngineError::Conflict(format!(
                    "the command is not one this version of csmp reads: {e}"
                ))),
            };
            self.answer(&row, Some(mailbox::answer(&outcome)));
        }
    }

    /// Writes the answer to an inbox command in this turn's commit (`None` deletes it).
    fn answer(&mut self, row: &InboxRow, answer: Option<String>) {
        self.request_writes.push(Write::Answer {
            id: row.id.clone(),
            partition: row.partition,
            answer,
            at: self.clock.now_ms(),
        });
        self.answered.push(row.id.clone());
    }

    /// After a commit: forwarded commands' callers wait in the mailbox, and the processes
    /// concerned are woken (off the commit's path).
    pub(super) fn after_commit(&mut self) {
        for (id, partition, reply) in self.forwarded.drain(..) {
            self.mailbox.wait(id, partition, reply);
        }
        let answered = !self.answered.is_empty();
        for id in self.answered.drain(..) {
            self.inbox_taken.remove(&id);
        }
        let mut wakeups: Vec<(&'static str, String)> = std::mem::take(&mut self.wake)
            .into_iter()
            .map(|p| (channel::INBOX, p.to_string()))
            .collect();
        if answered {
            wakeups.push((channel::ANSWERS, String::new()));
        }
        crate::runtime::cluster::wake_others(&self.store, wakeups);
    }

    /// Where `steer` is applied, and its outcome when here. `from_inbox`: it was read from an
    /// inbox of a partition held here (never forwarded again).
    pub(super) async fn apply(
        &mut self,
        steer: &Steer,
        from_inbox: bool,
    ) -> Result<Applied, EngineError> {
        if let Steer::IncidentChange { id, change, by } = steer {
            let row = match self.open_incidents.get(id) {
                Some(row) => row.clone(),
                None => match self.store.incident(id).await? {
                    Some(row) => row,
                    None => return Err(EngineError::UnknownIncident(id.clone())),
                },
            };
            if !self.held.contains_key(&row.partition) {
                return Ok(if from_inbox {
                    Applied::NotHere
                } else {
                    Applied::There(row.partition)
                });
            }
            let row = self.change_incident(row, change, by);
            return Ok(Applied::Here(Done::Incident { row: Box::new(row) }, None));
        }
        if let Steer::Incident {
            id,
            action,
            by,
            note,
            audit,
        } = steer
        {
            let partition = match self.open_incidents.get(id) {
                Some(row) => row.partition,
                None => match self.store.incident(id).await? {
                    Some(row) => row.partition,
                    None => return Err(EngineError::UnknownIncident(id.clone())),
                },
            };
            if !self.held.contains_key(&partition) {
                return Ok(if from_inbox {
                    Applied::NotHere
                } else {
                    Applied::There(partition)
                });
            }
            let row = self
                .steer_incident(id, action.clone(), by, note.clone())
                .await?;
            self.audited(audit.clone(), None);
            return Ok(Applied::Here(Done::Incident { row: Box::new(row) }, None));
        }
        let run_id = steer.target().to_string();
        if !self.runs.contains_key(&run_id) {
            if let Some(r) = self.blocked.get(&run_id) {
                return Err(EngineError::Conflict(format!(
                    "run `{run_id}` is blocked: {}",
                    r.blocked
                        .as_deref()
                        .unwrap_or("its workflow version does not plan")
                )));
            }
            let Some(row) = self.store.run(&run_id).await? else {
                return Err(EngineError::UnknownRun(run_id));
            };
            let again = matches!(steer, Steer::Retry { .. } | Steer::Rerun { .. });
            if !self.held.contains_key(&row.partition) {
                if row.status.is_final() && !again {
                    return Err(over(&run_id, row.status.as_str()));
                }
                return Ok(if from_inbox {
                    Applied::NotHere
                } else {
                    Applied::There(row.partition)
                });
            }
            if !row.status.is_final() {
                // Held here but not active yet (written by another process a moment ago).
                self.take_runs(vec![row]).await?;
            } else if !again {
                return Err(over(&run_id, row.status.as_str()));
            }
        }
        let run = Some(run_id.clone());
        let done = match steer.clone() {
            Steer::Start { .. } => Done::Nothing,
            Steer::Signal {
                name,
                payload,
                audit,
                also,
                ..
            } => {
                if !self.runs.contains_key(&run_id) {
                    return Err(over(&run_id, "over"));
                }
                self.deliver_signal(run_id.clone(), name, payload).await?;
                self.audited(audit, Some(&run_id));
                for link in also {
                    self.request_writes.push(Write::AlertLink {
                        link,
                        run: Some(run_id.clone()),
                    });
                }
                Done::Nothing
            }
            Steer::Approve {
                step,
                approved,
                by,
                audit,
                ..
            } => {
                self.decide(&run_id, &step, approved, &by)?;
                self.audited(audit, Some(&run_id));
                Done::Nothing
            }
            Steer::Cancel {
                compensate, audit, ..
            } => {
                if !self.runs.contains_key(&run_id) {
                    return Err(over(&run_id, "over"));
                }
                self.cancel_run(&run_id, compensate);
                self.audited(audit, Some(&run_id));
                Done::Nothing
            }
            Steer::Pause { pause, audit, .. } => {
                self.set_paused(&run_id, pause)?;
                self.audited(audit, Some(&run_id));
                Done::Nothing
            }
            Steer::Retry { by, audit, .. } => {
                self.retry_run(&run_id, &by, audit).await?;
                Done::Nothing
            }
            Steer::Rerun {
                from, by, audit, ..
            } => {
                let id = self.rerun(&run_id, &from, &by, audit).await?;
                Done::Run { id }
            }
            Steer::Incident { .. } | Steer::IncidentChange { .. } => Done::Nothing,
        };
        Ok(Applied::Here(done, run))
    }
}

/// A run that is over cannot be steered.
fn over(run_id: &str, status: &str) -> EngineError {
    EngineError::Conflict(format!("run `{run_id}` is already {status}"))
}
