//! Wake-ups between processes sharing a PostgreSQL database: `LISTEN` on a connection of its
//! own. A notification is only a hint that something changed (sent after the commit, never on
//! its path); whoever listens also polls, so a notification lost to a reconnect costs latency,
//! not correctness. SQLite has one process and no listener.

use sqlx::postgres::PgListener;

use super::db::Backend;
use super::{Store, StoreError};

/// A connection listening on some channels.
#[derive(Debug)]
pub struct Listener {
    inner: PgListener,
}

impl Listener {
    /// The next notification: (channel, payload). After a lost connection the listener
    /// reconnects on its own (notifications sent meanwhile are lost).
    pub async fn recv(&mut self) -> Result<(String, String), StoreError> {
        let n = self.inner.recv().await?;
        Ok((n.channel().to_string(), n.payload().to_string()))
    }
}

impl Store {
    /// A listener on `channels`, or `None` on SQLite.
    pub async fn listen(&self, channels: &[&str]) -> Result<Option<Listener>, StoreError> {
        let Backend::Postgres(pool) = &self.db else {
            return Ok(None);
        };
        let mut inner = PgListener::connect_with(pool).await?;
        inner.listen_all(channels.iter().copied()).await?;
        Ok(Some(Listener { inner }))
    }
}
