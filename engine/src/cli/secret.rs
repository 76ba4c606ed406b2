//! `csmp secret set|list|rotate-key`, and the secrets a serving or running process starts with:
//! those stored in the database (opened with the master key) and `CSMP_SECRET_*`.

use std::collections::BTreeMap;
use std::io::Read as _;

use anyhow::{Context as _, bail};
use clap::Subcommand;

use crate::runtime::Clock as _;
use crate::store::{Store, StoreOptions};
use crate::vault::{self, MASTER_KEY_ENV, MasterKey};

/// `csmp secret …` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store a secret, encrypted, read from standard input (never from the command line, where
    /// the shell history and `ps` would see it). A running `csmp serve` picks it up on its next
    /// start; `PUT /v1/secrets/{name}` sets one at once.
    Set {
        /// Its name: `secrets.NAME` in templates (lower-case letters, digits, `_`).
        name: String,
        /// The database of the service: a SQLite file or a `postgres://` URL.
        #[arg(long, env = "CSMP_DATABASE", default_value = "data/csmp.db")]
        database: super::database::Database,
    },
    /// List stored secrets: name, who set it, when, and the key that sealed it. Never a value.
    List {
        /// The database of the service: a SQLite file or a `postgres://` URL.
        #[arg(long, env = "CSMP_DATABASE", default_value = "data/csmp.db")]
        database: super::database::Database,
    },
    /// Re-encrypt every stored secret under a new master key. With a key file, the new key
    /// replaces it; with `CSMP_MASTER_KEY`, give the new key in `CSMP_NEW_MASTER_KEY` and set
    /// it as `CSMP_MASTER_KEY` afterwards.
    RotateKey {
        /// The database of the service: a SQLite file or a `postgres://` URL.
        #[arg(long, env = "CSMP_DATABASE", default_value = "data/csmp.db")]
        database: super::database::Database,
    },
}

/// The environment variable with the key `rotate-key` moves to when `CSMP_MASTER_KEY` is used.
const NEW_KEY_ENV: &str = "CSMP_NEW_MASTER_KEY";

/// Runs one `csmp secret` command.
pub async fn run(command: SecretCommand) -> anyhow::Result<()> {
    match command {
        SecretCommand::Set { name, database } => {
            if !vault::valid_name(&name) {
                bail!(
                    "secret name `{name}` must be lower-case letters, digits and `_` (it is `secrets.{name}` in templates)"
                );
            }
            let mut value = String::new();
            std::io::stdin()
                .read_to_string(&mut value)
                .context("reading the value from standard input")?;
            let value = value.strip_suffix('\n').unwrap_or(&value);
            let value = value.strip_suffix('\r').unwrap_or(value);
            if value.is_empty() {
                bail!("no value on standard input: `printf %s VALUE | csmp secret set {name}`");
            }
            let store = database.open(StoreOptions::default()).await?;
            let key = MasterKey::load_or_create(&database.key_file())?;
            let now = crate::runtime::TokioClock::new().now_ms();
            vault::set(&store, &key, &name, value, "cli", now, None).await?;
            eprintln!(
                "secret `{name}` stored, encrypted under key {}; `csmp serve` reads it at its next start",
                key.id()
            );
        }
        SecretCommand::List { database } => {
            let store = database.open(StoreOptions::default()).await?;
            let rows = store.sealed_secrets().await?;
            if rows.is_empty() {
                eprintln!("no secrets stored (`csmp secret set NAME` stores one)");
            }
            for r in rows {
                let at = chrono::DateTime::from_timestamp_millis(r.set_at)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default();
                println!(
                    "{:<32} set by {:<16} at {at}  key {}",
                    r.name, r.set_by, r.key_id
                );
            }
        }
        SecretCommand::RotateKey { database } => {
            let store = database.open(StoreOptions::default()).await?;
            let file = database.key_file();
            let old = MasterKey::load_or_create(&file)?;
            let from_env = std::env::var(MASTER_KEY_ENV).is_ok();
            let (new, new_hex) = if from_env {
                let text = std::env::var(NEW_KEY_ENV).with_context(|| {
                    format!("{MASTER_KEY_ENV} is set: give the new key in {NEW_KEY_ENV} (64 hex digits, `openssl rand -hex 32`)")
                })?;
                (
                    MasterKey::from_hex(&text, &format!("in {NEW_KEY_ENV}"))?,
                    text,
                )
            } else {
                MasterKey::generate()?
            };
            let n = vault::rotate(&store, &old, &new).await?;
            if from_env {
                eprintln!(
                    "{n} secrets re-encrypted under key {}; set {MASTER_KEY_ENV} to the new key before the next start",
                    new.id()
                );
            } else {
                vault::write_key_file(&file, &new_hex)?;
                eprintln!(
                    "{n} secrets re-encrypted under key {}, written to {}",
                    new.id(),
                    file.display()
                );
            }
        }
    }
    Ok(())
}

/// The secrets a process starts with: the stored ones, opened with the master key (created on
/// first start), then `CSMP_SECRET_*`, which win over a stored secret of the same name.
pub async fn startup_secrets(
    store: &Store,
    database: &super::database::Database,
) -> anyhow::Result<(BTreeMap<String, String>, MasterKey)> {
    let key = MasterKey::load_or_create(&database.key_file())?;
    let mut secrets = vault::open_all(store, &key).await?;
    secrets.extend(super::run::secrets_from_env());
    Ok((secrets, key))
}
