//! Callers recently authenticated, so a busy token does not cost two database reads (its row,
//! its tenant's allowlist) on every call. An entry lives a few seconds at most and is dropped
//! at once when this process revokes the token or changes the tenant's allowlist; another
//! process sharing the database sees such a change within the entry's lifetime.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::auth::Principal;

/// How long an authentication is reused.
const FRESH: Duration = Duration::from_secs(5);
/// Most tokens remembered; past it the oldest half is forgotten.
const MOST: usize = 10_000;

/// A caller and, for a client, its tenant's allowlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Known {
    /// Who.
    pub principal: Principal,
    /// The tenant's allowlist (clients only; empty allows every address).
    pub allowlist: Vec<String>,
}

/// Token hash → the caller it names, with when that was read.
#[derive(Debug, Default)]
pub(crate) struct Principals {
    inner: Mutex<HashMap<String, (Known, Instant)>>,
}

impl Principals {
    /// The caller `hash` named a moment ago, if it is still fresh.
    pub(crate) fn get(&self, hash: &str) -> Option<Known> {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < FRESH)
            .map(|(k, _)| k.clone())
    }

    /// Remembers a caller just read from the database.
    pub(crate) fn put(&self, hash: String, known: Known) {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MOST {
            map.retain(|_, (_, at)| at.elapsed() < FRESH);
            if map.len() >= MOST {
                let mut ages: Vec<Instant> = map.values().map(|(_, at)| *at).collect();
                ages.sort_unstable();
                let cut = ages[ages.len() / 2];
                map.retain(|_, (_, at)| *at > cut);
            }
        }
        map.insert(hash, (known, Instant::now()));
    }

    /// Forgets token `id` (it was revoked).
    pub(crate) fn forget_token(&self, id: &str) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, (k, _)| k.principal.token_id != id);
    }

    /// Forgets the clients of `tenant` (its allowlist changed).
    pub(crate) fn forget_tenant(&self, tenant: &str) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, (k, _)| k.principal.tenant.as_deref() != Some(tenant));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::auth::Role;

    fn known(id: &str, tenant: Option<&str>) -> Known {
        Known {
            principal: Principal {
                token_id: id.into(),
                role: Role::Client,
                tenant: tenant.map(String::from),
            },
            allowlist: vec!["10.0.0.0/8".into()],
        }
    }

    #[test]
    fn a_revoked_token_or_a_changed_tenant_is_read_again() {
        let p = Principals::default();
        p.put("h1".into(), known("t1", Some("acme")));
        p.put("h2".into(), known("t2", Some("beta")));
        assert_eq!(p.get("h1"), Some(known("t1", Some("acme"))));
        p.forget_token("t1");
        assert_eq!(p.get("h1"), None);
        assert!(p.get("h2").is_some());
        p.forget_tenant("beta");
        assert_eq!(p.get("h2"), None);
        assert_eq!(p.get("never"), None);
    }
}
