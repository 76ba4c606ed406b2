//! What a process knows of the others sharing its database: the partitions it holds, and the
//! notifications (PostgreSQL `LISTEN`/`NOTIFY`) by which they wake each other.

use std::sync::Arc;
use std::time::Duration;

use super::mailbox;
use crate::store::Store;

/// The partitions a process holds now: changed by its executor, read by its API (to tell
/// whether a run is executed here) and by the duties only one process does at a time.
#[derive(Debug, Default)]
pub struct Held {
    partitions: std::sync::RwLock<std::collections::BTreeSet<i64>>,
}

impl Held {
    pub(crate) fn set(&self, partitions: impl IntoIterator<Item = i64>) {
        *self
            .partitions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = partitions.into_iter().collect();
    }

    /// Whether `partition` is held here.
    pub fn holds(&self, partition: i64) -> bool {
        self.partitions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&partition)
    }

    /// Every partition held here.
    pub fn all(&self) -> Vec<i64> {
        self.partitions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .copied()
            .collect()
    }
}

/// Notification channels between processes sharing a PostgreSQL database.
pub(crate) mod channel {
    /// A command was written to a partition's inbox (payload: the partition).
    pub(crate) const INBOX: &str = "csmp_inbox";
    /// Forwarded commands were answered (payload: their ids).
    pub(crate) const ANSWERS: &str = "csmp_answers";
    /// A process joined or left (payload: its name): executors rebalance at once.
    pub(crate) const MEMBERS: &str = "csmp_members";
    /// Alerts were taken: the process acting on alert groups looks at them now.
    pub(crate) const ALERTS: &str = "csmp_alerts";
    /// Definitions changed (workflows, catalog, rules, on-call, plugins, secrets): every
    /// process reads them again.
    pub(crate) const DEFINITIONS: &str = "csmp_definitions";
}

/// Listens (on PostgreSQL) for other processes' wake-ups: inbox commands ring the executor's
/// `bell`, answers the mailbox's. Polling backs both up, so a lost connection only slows
/// them down; it is logged and the listener starts again.
pub(super) async fn listen(
    store: &Store,
    mailbox: &Arc<mailbox::Mailbox>,
    bell: &Arc<tokio::sync::Notify>,
    alerts: &Arc<tokio::sync::Notify>,
    members: &Arc<tokio::sync::Notify>,
    definitions: &Arc<tokio::sync::Notify>,
    stopping: &tokio_util::sync::CancellationToken,
) {
    let channels = [
        channel::INBOX,
        channel::ANSWERS,
        channel::MEMBERS,
        channel::ALERTS,
        channel::DEFINITIONS,
    ];
    let (store, mailbox, bell, alerts, members, definitions, stopping) = (
        store.clone(),
        Arc::clone(mailbox),
        Arc::clone(bell),
        Arc::clone(alerts),
        Arc::clone(members),
        Arc::clone(definitions),
        stopping.clone(),
    );
    let mut listener = match store.listen(&channels).await {
        Ok(Some(l)) => l,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!("cannot listen for other processes' wake-ups (polling instead): {e}");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            let got = tokio::select! {
                () = stopping.cancelled() => return,
                got = listener.recv() => got,
            };
            match got {
                Ok((ch, _)) if ch == channel::ANSWERS => mailbox.ring(),
                Ok((ch, _)) if ch == channel::ALERTS => alerts.notify_one(),
                Ok((ch, _)) if ch == channel::MEMBERS => members.notify_one(),
                Ok((ch, _)) if ch == channel::DEFINITIONS => definitions.notify_one(),
                Ok(_) => bell.notify_one(),
                Err(e) => {
                    tracing::warn!(
                        "listening for other processes' wake-ups failed ({e}); polling meanwhile"
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
}

/// Sends each `(channel, payload)` to the other processes, off the caller's path (after the
/// commit that made it true). A wake-up that cannot be sent is logged: the others still see the
/// change, later, when they poll.
pub(crate) fn wake_others(store: &Store, wakeups: Vec<(&'static str, String)>) {
    if wakeups.is_empty() {
        return;
    }
    let store = store.clone();
    tokio::spawn(async move {
        for (channel, payload) in wakeups {
            if let Err(e) = store.notify(channel, &payload).await {
                tracing::warn!(
                    "cannot send the wake-up `{channel}` to the other processes ({e}); they see the change when they next poll"
                );
            }
        }
    });
}
