//! The audit log: every state-changing call, who made it, from where, and how it ended.
//!
//! A call that changes something writes its entry in the same transaction as the change: the
//! guard hands the handler an [`Audit`], and the handler gives [`Audit::entry`] to the store
//! or the engine with the change, so a crash keeps both or neither. A call that changes
//! nothing — unauthenticated, forbidden, invalid, rate-limited — is not worth an fsync of its
//! own, or a stranger could keep the disk busy: its entry goes to the [`AuditQueue`], which
//! writes such entries in batches (one transaction per batch) and counts what it could not
//! write. `GET /v1/audit` flushes the queue first, so it shows every call answered before it.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::{mpsc, oneshot};

use crate::store::{AuditRow, Store};

/// Entries waiting for their batch at most; past it, entries are dropped and counted.
const QUEUE: usize = 8192;
/// Most entries in one batch.
const BATCH: usize = 512;
/// How long the first entry of a batch waits for others.
const LINGER: Duration = Duration::from_millis(100);

/// Calls of this process, in the order their entries were drafted (`AuditRow::seq`).
static SEQ: AtomicI64 = AtomicI64::new(0);

/// The next call's place among this process's calls.
pub(super) fn next_seq() -> i64 {
    SEQ.fetch_add(1, Ordering::Relaxed) + 1
}

/// The audit entry of one state-changing call, drafted by the guard before the handler runs.
#[derive(Debug, Clone)]
pub struct Audit(Arc<Draft>);

#[derive(Debug)]
struct Draft {
    row: AuditRow,
    /// The status the handler's in-transaction entry says (0: none written).
    recorded: AtomicU16,
}

impl Audit {
    pub(super) fn new(row: AuditRow) -> Self {
        Self(Arc::new(Draft {
            row,
            recorded: AtomicU16::new(0),
        }))
    }

    /// The entry, saying the call is answered `status`, for the handler to write with its
    /// change (call it only when the entry is written: the guard then writes no other unless the
    /// call ends with another status after all).
    pub fn entry(&self, status: StatusCode) -> AuditRow {
        self.0.recorded.store(status.as_u16(), Ordering::Relaxed);
        AuditRow {
            status: status.as_u16(),
            ..self.0.row.clone()
        }
    }

    /// [`Audit::entry`] for the store, which makes the entry inside the transaction of the
    /// change, only when it writes it.
    pub fn at<T>(&self, status: StatusCode) -> impl Fn(&T) -> AuditRow + Send + Sync + '_ {
        move |_| self.entry(status)
    }

    /// The entry of a call answered `status`, unless the handler wrote that one already.
    pub(super) fn unwritten(&self, status: StatusCode) -> Option<AuditRow> {
        (self.0.recorded.load(Ordering::Relaxed) != status.as_u16()).then(|| AuditRow {
            status: status.as_u16(),
            ..self.0.row.clone()
        })
    }
}

enum Message {
    Entry(AuditRow),
    Flush(oneshot::Sender<()>),
}

/// Counts of what the queue did, for `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    batches: AtomicU64,
    failed_batches: AtomicU64,
}

/// Writes the entries of calls that changed nothing, in batches, in the background.
#[derive(Debug, Clone)]
pub struct AuditQueue {
    tx: mpsc::Sender<Message>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Message::Entry(_) => "Entry",
            Message::Flush(_) => "Flush",
        })
    }
}

impl AuditQueue {
    /// Starts the writer; it ends when every handle is dropped, after writing what it holds.
    pub fn start(store: Store) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        tokio::spawn(writer(store, rx, Arc::clone(&counters)));
        Self { tx, counters }
    }

    /// Queues an entry; when the queue is full the entry is dropped, counted and logged.
    pub fn push(&self, row: AuditRow) {
        match self.tx.try_send(Message::Entry(row)) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // One line per power of two: a flood is visible without flooding the log.
                if dropped.is_power_of_two() {
                    tracing::error!(
                        dropped,
                        "the audit queue is full: {dropped} entries of refused calls dropped so far (see csmp_audit_dropped_total)"
                    );
                }
            }
        }
    }

    /// Waits until every entry queued before this call is written (or failed and counted).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Message::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// The queue's counters in Prometheus text format.
    pub(super) fn render(&self, out: &mut String) {
        let c = &self.counters;
        for (name, help, v) in [
            (
                "csmp_audit_queued_total",
                "Audit entries of calls that changed nothing, queued for a batch write.",
                &c.queued,
            ),
            (
                "csmp_audit_written_total",
                "Queued audit entries written.",
                &c.written,
            ),
            (
                "csmp_audit_batches_total",
                "Transactions the queued audit entries were written in.",
                &c.batches,
            ),
            (
                "csmp_audit_dropped_total",
                "Audit entries dropped: the queue was full, or their batch could not be written.",
                &c.dropped,
            ),
            (
                "csmp_audit_failed_batches_total",
                "Batches of audit entries the database did not take.",
                &c.failed_batches,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
    }
}

async fn writer(store: Store, mut rx: mpsc::Receiver<Message>, counters: Arc<Counters>) {
    let mut batch: Vec<AuditRow> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        take(first, &mut batch, &mut waiting);
        // Gather what arrives within the linger time, up to a batch.
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH && waiting.is_empty() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(m)) => take(m, &mut batch, &mut waiting),
                Ok(None) | Err(_) => break,
            }
        }
        write(&store, &mut batch, &counters).await;
        for w in waiting.drain(..) {
            let _ = w.send(());
        }
    }
    write(&store, &mut batch, &counters).await;
}

fn take(m: Message, batch: &mut Vec<AuditRow>, waiting: &mut Vec<oneshot::Sender<()>>) {
    match m {
        Message::Entry(row) => batch.push(row),
        Message::Flush(done) => waiting.push(done),
    }
}

/// Writes a batch, trying a transient fault again a few times; what still fails is dropped,
/// counted and logged (the change it records did not happen, so nothing else is lost).
async fn write(store: &Store, batch: &mut Vec<AuditRow>, counters: &Counters) {
    if batch.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=4 {
        match store.audit_many(batch).await {
            Ok(()) => {
                counters.batches.fetch_add(1, Ordering::Relaxed);
                counters
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                batch.clear();
                return;
            }
            Err(e) if e.is_transient() && attempt < 4 => {
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
            Err(e) => {
                counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                counters
                    .dropped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                tracing::error!(
                    entries = batch.len(),
                    "cannot write {} audit entries of refused calls: {e}",
                    batch.len()
                );
                batch.clear();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Durability;

    fn row(path: &str, status: u16) -> AuditRow {
        AuditRow {
            id: 0,
            at: 1,
            seq: 0,
            actor: None,
            role: None,
            tenant: None,
            method: "POST".into(),
            path: path.into(),
            status,
            remote: "127.0.0.1:1".into(),
        }
    }

    #[tokio::test]
    async fn queued_entries_are_all_written_and_flush_waits_for_them()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("a.db"), Durability::Full).await?;
        let queue = AuditQueue::start(store.clone());
        let writes_before = store.audit_page(None, 200).await?.len();
        assert_eq!(writes_before, 0);
        for i in 0..300 {
            queue.push(row(&format!("/v1/x/{i}"), 401));
        }
        queue.flush().await;
        let rows = store.audit_page(None, 200).await?;
        assert_eq!(rows.len(), 200, "a page of the 300 written");
        assert_eq!(rows[0].path, "/v1/x/299", "newest first");
        let mut all = rows.len();
        let mut before_id = rows.last().map(|r| r.id);
        while let Some(b) = before_id {
            let page = store.audit_page(Some(b), 200).await?;
            all += page.len();
            before_id = page.last().map(|r| r.id);
        }
        assert_eq!(all, 300);
        let mut out = String::new();
        queue.render(&mut out);
        assert!(out.contains("csmp_audit_queued_total 300"), "{out}");
        assert!(out.contains("csmp_audit_written_total 300"), "{out}");
        assert!(out.contains("csmp_audit_dropped_total 0"), "{out}");
        Ok(())
    }

    #[test]
    fn an_entry_written_with_the_change_is_not_queued_again_unless_the_status_differs() {
        let audit = Audit::new(row("/v1/runs/r/cancel", 0));
        assert_eq!(
            audit.unwritten(StatusCode::ACCEPTED).map(|r| r.status),
            Some(202)
        );
        let entry = audit.entry(StatusCode::ACCEPTED);
        assert_eq!(entry.status, 202);
        assert_eq!(audit.unwritten(StatusCode::ACCEPTED), None);
        assert_eq!(
            audit
                .unwritten(StatusCode::SERVICE_UNAVAILABLE)
                .map(|r| r.status),
            Some(503)
        );
    }
}
