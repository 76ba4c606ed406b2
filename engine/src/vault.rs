//! Secrets at rest: values encrypted with XChaCha20-Poly1305 under a master key that never
//! enters the database, and the master key itself — from `CSMP_MASTER_KEY` (64 hex digits) or
//! a key file beside the database, created with mode 0600 on first use.
//!
//! Knows the AEAD and the key file; the store keeps the sealed rows, the engine the values.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::store::{SealedSecret, Store, StoreError};

/// The environment variable holding the master key (64 hex digits), instead of a key file.
pub const MASTER_KEY_ENV: &str = "CSMP_MASTER_KEY";

/// Why the vault cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The key is not 32 bytes written as 64 hex digits.
    #[error(
        "the master key {0} is not 64 hex digits (32 bytes); make one with `openssl rand -hex 32`"
    )]
    BadKey(String),
    /// The key file could not be read or written.
    #[error("master key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A stored value was sealed under another key, or was tampered with.
    #[error(
        "secret `{0}` cannot be opened with this master key (sealed under key {1}); start with the key it was set under, or set it again"
    )]
    WrongKey(String, String),
    /// A secret name that is not `[a-z0-9_]+`.
    #[error(
        "secret name `{0}` must be lower-case letters, digits and `_` (it is `secrets.{0}` in templates)"
    )]
    BadName(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The master key, and the name it is known by in the rows it sealed.
#[derive(Clone)]
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// A key from its 64 hex digits.
    pub fn from_hex(text: &str, what: &str) -> Result<Self, VaultError> {
        let bytes = hex(text.trim()).ok_or_else(|| VaultError::BadKey(what.to_string()))?;
        Ok(Self::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8; 32]) -> Self {
        let digest = Sha256::digest(bytes);
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            cipher: XChaCha20Poly1305::new(bytes.into()),
            id,
        }
    }

    /// A fresh random key, with its hex form to keep.
    pub fn generate() -> Result<(Self, String), VaultError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| VaultError::KeyFile {
            path: PathBuf::from("(random source)"),
            source: std::io::Error::other(e.to_string()),
        })?;
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok((Self::from_bytes(&bytes), text))
    }

    /// The key `CSMP_MASTER_KEY` holds, else the one in `file`, created (mode 0600) when
    /// there is none yet.
    pub fn load_or_create(file: &Path) -> Result<Self, VaultError> {
        if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
            return Self::from_hex(&text, &format!("in {MASTER_KEY_ENV}"));
        }
        let what = || format!("in {}", file.display());
        match std::fs::read_to_string(file) {
            Ok(text) => Self::from_hex(&text, &what()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (key, text) = Self::generate()?;
                write_key_file(file, &text)?;
                Ok(key)
            }
            Err(source) => Err(VaultError::KeyFile {
                path: file.to_path_buf(),
                source,
            }),
        }
    }

    /// The key's public name (first 16 hex digits of its sha256).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `value` under this key for the secret `name`.
    pub fn seal(&self, name: &str, value: &str) -> Result<(Vec<u8>, Vec<u8>), VaultError> {
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| VaultError::KeyFile {
            path: PathBuf::from("(random source)"),
            source: std::io::Error::other(e.to_string()),
        })?;
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| VaultError::WrongKey(name.to_string(), self.id.clone()))?;
        Ok((nonce.to_vec(), sealed))
    }

    /// Opens a sealed row.
    pub fn open(&self, row: &SealedSecret) -> Result<String, VaultError> {
        let wrong = || VaultError::WrongKey(row.name.clone(), row.key_id.clone());
        let nonce: [u8; 24] = row.nonce.as_slice().try_into().map_err(|_| wrong())?;
        let plain = self
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &row.ciphertext,
                    aad: row.name.as_bytes(),
                },
            )
            .map_err(|_| wrong())?;
        String::from_utf8(plain).map_err(|_| wrong())
    }
}

/// Writes a key file readable by its owner only.
pub fn write_key_file(file: &Path, hex_key: &str) -> Result<(), VaultError> {
    let err = |source| VaultError::KeyFile {
        path: file.to_path_buf(),
        source,
    };
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options.open(file).map_err(err)?;
    f.write_all(format!("{hex_key}\n").as_bytes())
        .map_err(err)?;
    f.sync_all().map_err(err)
}

/// The key file of a database: `<database>.key`.
pub fn key_file_of(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_os_string();
    name.push(".key");
    PathBuf::from(name)
}

/// Whether `name` may name a secret.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Seals and stores one secret.
pub async fn set(
    store: &Store,
    key: &MasterKey,
    name: &str,
    value: &str,
    by: &str,
    at: i64,
    audit: Option<&crate::store::AuditFor<'_, ()>>,
) -> Result<(), VaultError> {
    if !valid_name(name) {
        return Err(VaultError::BadName(name.to_string()));
    }
    let (nonce, ciphertext) = key.seal(name, value)?;
    store
        .put_secret(
            &SealedSecret {
                name: name.to_string(),
                nonce,
                ciphertext,
                key_id: key.id().to_string(),
                set_by: by.to_string(),
                set_at: at,
            },
            audit,
        )
        .await?;
    Ok(())
}

/// Every stored secret, opened.
pub async fn open_all(
    store: &Store,
    key: &MasterKey,
) -> Result<BTreeMap<String, String>, VaultError> {
    let mut out = BTreeMap::new();
    for row in store.sealed_secrets().await? {
        out.insert(row.name.clone(), key.open(&row)?);
    }
    Ok(out)
}

/// Re-seals every stored secret under `new` in one transaction.
pub async fn rotate(store: &Store, old: &MasterKey, new: &MasterKey) -> Result<usize, VaultError> {
    let rows = store.sealed_secrets().await?;
    let mut resealed = Vec::with_capacity(rows.len());
    for row in &rows {
        let value = old.open(row)?;
        let (nonce, ciphertext) = new.seal(&row.name, &value)?;
        resealed.push(SealedSecret {
            nonce,
            ciphertext,
            key_id: new.id().to_string(),
            ..row.clone()
        });
    }
    store.replace_secrets(&resealed).await?;
    Ok(resealed.len())
}

fn hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &MasterKey, name: &str, value: &str) -> SealedSecret {
        let (nonce, ciphertext) = key.seal(name, value).expect("seal");
        SealedSecret {
            name: name.into(),
            nonce,
            ciphertext,
            key_id: key.id().into(),
            set_by: "test".into(),
            set_at: 0,
        }
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_name() {
        let (key, _) = MasterKey::generate().expect("key");
        let (other, _) = MasterKey::generate().expect("key");
        let sealed = row(&key, "api", "hunter22");
        assert!(!sealed.ciphertext.windows(8).any(|w| w == b"hunter22"));
        assert_eq!(key.open(&sealed).expect("opens"), "hunter22");
        assert!(matches!(other.open(&sealed), Err(VaultError::WrongKey(..))));
        let moved = SealedSecret {
            name: "other".into(),
            ..sealed
        };
        assert!(
            key.open(&moved).is_err(),
            "a value cannot be moved to another name"
        );
    }

    #[test]
    fn keys_are_64_hex_digits() {
        assert!(MasterKey::from_hex(&"ab".repeat(32), "t").is_ok());
        assert!(MasterKey::from_hex("abc", "t").is_err());
        assert!(MasterKey::from_hex(&"zz".repeat(32), "t").is_err());
    }

    #[test]
    fn the_key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("db.sqlite.key");
        let a = MasterKey::load_or_create(&file).expect("created");
        let b = MasterKey::load_or_create(&file).expect("read back");
        assert_eq!(a.id(), b.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
