//! A short-lived cache of the database half of authentication (`user_tokens` row + user),
//! keyed by token hash: a reconnect storm or a reload of many tabs costs no query per
//! handshake.
//!
//! Revocation stays immediate: every revocation this server makes (logout, kick_previous,
//! `/api/revoke`) goes through [`super::revoke::revoke`], which drops the entries here and,
//! with Redis, on every node. Only changes made behind the server's back (SQL by hand) wait
//! for `auth.cache_ttl_secs`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::session::User;
use super::store::{Lookup, TokenRecord};

/// What the store said about a token: its row (`NotChecked` when rows are not required) and
/// the user of its `sub`.
#[derive(Clone)]
pub struct Cached {
    pub row: Lookup<TokenRecord>,
    pub user: Lookup<User>,
}

pub struct AuthCache {
    ttl: Duration,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, (Instant, Cached)>,
    /// Hashes invalidated within the last TTL: a lookup that read the row just before the
    /// revocation must not put the stale answer back.
    tombstones: HashMap<String, Instant>,
}

/// Entries kept at most; beyond it, expired entries are swept, then everything is dropped.
const MAX_ENTRIES: usize = 200_000;

impl AuthCache {
    pub fn new(ttl: Duration) -> Self {
        AuthCache {
            ttl,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, token_hash: &str) -> Option<Cached> {
        if self.ttl.is_zero() {
            return None;
        }
        let inner = self.lock();
        let (at, c) = inner.entries.get(token_hash)?;
        (at.elapsed() < self.ttl).then(|| c.clone())
    }

    pub fn put(&self, token_hash: &str, c: Cached) {
        if self.ttl.is_zero() {
            return;
        }
        let ttl = self.ttl;
        let mut inner = self.lock();
        if inner
            .tombstones
            .get(token_hash)
            .is_some_and(|at| at.elapsed() < ttl)
        {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if inner.entries.len() >= MAX_ENTRIES {
                inner.entries.clear();
            }
        }
        inner
            .entries
            .insert(token_hash.to_string(), (Instant::now(), c));
    }

    /// Drop every entry of these users (and keep it from coming back within the TTL, as
    /// [`Self::invalidate`] does for tokens).
    pub fn invalidate_users(&self, user_ids: &[crate::ids::UserId]) {
        if user_ids.is_empty() {
            return;
        }
        let inner = self.lock();
        let gone: Vec<String> = inner
            .entries
            .iter()
            .filter(|(_, (_, c))| {
                c.user.found().is_some_and(|u| user_ids.contains(&u.id))
                    || c.row.found().is_some_and(|r| user_ids.contains(&r.user_id))
            })
            .map(|(h, _)| h.clone())
            .collect();
        drop(inner);
        self.invalidate(&gone);
    }

    pub fn invalidate(&self, token_hashes: &[String]) {
        let ttl = self.ttl;
        let mut inner = self.lock();
        inner.tombstones.retain(|_, at| at.elapsed() < ttl);
        let now = Instant::now();
        for h in token_hashes {
            inner.entries.remove(h);
            inner.tombstones.insert(h.clone(), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Cached {
        Cached {
            row: Lookup::NotChecked,
            user: Lookup::Missing,
        }
    }

    #[test]
    fn invalidated_tokens_are_not_put_back_by_a_lookup_in_flight() {
        let c = AuthCache::new(Duration::from_secs(10));
        c.put("a", entry());
        assert!(c.get("a").is_some());
        c.invalidate(&["a".to_string()]);
        assert!(c.get("a").is_none());
        c.put("a", entry()); // a lookup that read the row before the revocation
        assert!(c.get("a").is_none());
    }

    #[test]
    fn zero_ttl_disables_the_cache() {
        let c = AuthCache::new(Duration::ZERO);
        c.put("a", entry());
        assert!(c.get("a").is_none());
    }
}
