//! Where the rows behind a token live: the [`TokenStore`] trait and the records every store
//! yields. Authentication, diagnosis, `token inspect` and revocation read tokens and users only
//! through it, so a second store (the app backend's own tables) plugs in behind the same path.

pub mod external;
pub mod mapping;
pub mod own;

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::DbErr;
use sha2::{Digest, Sha256};

pub use external::ExternalStore;
pub use own::OwnStore;

use super::session::User;
use crate::ids::{IdKind, UserId};

/// The store the settings ask for: the backend's mapped tables when `external.url` is set
/// (connected and checked against the live schema), else im-server's own (`own()`).
pub async fn open(
    settings: &crate::config::Settings,
    own: impl FnOnce() -> OwnStore,
) -> Result<std::sync::Arc<dyn TokenStore>, crate::config::ConfigError> {
    Ok(if settings.external.enabled() {
        std::sync::Arc::new(ExternalStore::connect(&settings.external).await?)
    } else {
        std::sync::Arc::new(own())
    })
}

/// SHA-256 hex of a token: the key of its row in im-server's own tables, its socket room and
/// its cache entry. The raw token is never stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A token's row, as any store records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// The row's id, where the table has one (`last_used_at` is written by it).
    pub id: Option<i64>,
    pub user_id: UserId,
    pub revoked: bool,
    /// `None`: the table records no expiry (the JWT's `exp` still applies).
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The tables behind tokens and users. Reads are what a handshake needs; writes are what this
/// server may do there (none at all for a backend's tables, which the backend owns).
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// The row recorded for this token (the raw token: each store keys it its own way).
    async fn token(&self, token: &str) -> Result<Option<TokenRecord>, DbErr>;
    /// A row by [`token_hash`], read fresh (`/auth/session`); `None` where rows are keyed
    /// by the raw token alone.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, DbErr>;
    /// The rows of many tokens at once, keyed by [`token_hash`] (missing tokens are absent):
    /// the periodic recheck of live sockets, a few queries for thousands of tokens.
    async fn tokens(&self, tokens: &[&str]) -> Result<HashMap<String, TokenRecord>, DbErr> {
        let mut out = HashMap::new();
        for t in tokens {
            if let Some(r) = self.token(t).await? {
                out.insert(token_hash(t), r);
            }
        }
        Ok(out)
    }
    /// The user with this id.
    async fn user(&self, id: &UserId) -> Result<Option<User>, DbErr>;
    /// Those of `ids` that exist (of `user_type`, when given), in any order.
    async fn users(&self, ids: &[UserId], user_type: Option<&str>) -> Result<Vec<User>, DbErr>;
    /// What the id column holds: how an id in JSON (a claim, a message's `to`) is read.
    fn id_kind(&self) -> IdKind {
        IdKind::Int
    }
    /// Whether tokens have rows here at all (`[external]` without `[external.tokens]`: only
    /// the JWT and the user are checked).
    fn has_token_rows(&self) -> bool {
        true
    }
    /// Whether this server issued the tokens (own tables: login and logout work here).
    fn issues_tokens(&self) -> bool {
        true
    }
    /// Queries sent so far, where the store counts them (the recheck's cost is measured by it).
    fn queries_sent(&self) -> Option<u64> {
        None
    }
    /// Whether the tables answer (`/health`'s `external`); `None` for the own tables, which
    /// `/health` already checks as `database`.
    async fn ping(&self) -> Option<Result<(), String>> {
        None
    }
    /// [`token_hash`] of the user's tokens that are neither revoked nor expired, where this
    /// store knows them (own tables; a backend's tokens are kicked by user room instead).
    async fn live_token_hashes(&self, _user: &UserId) -> Result<Vec<String>, DbErr> {
        Ok(vec![])
    }
    /// Mark these tokens (by [`token_hash`]) revoked where this store may write; how many rows.
    async fn revoke(&self, token_hashes: &[String]) -> Result<u64, DbErr>;
    /// Note that a token's row was used (a socket connected); written later, coalesced.
    fn touch(&self, record_id: i64);
    /// Record use now (`POST /auth/heartbeat`).
    async fn touch_now(&self, record_id: i64, now: DateTime<Utc>) -> Result<(), DbErr>;
    /// Write pending touches now (graceful shutdown).
    async fn flush(&self);
    /// The table a token's row lives in, for reports ("no user_tokens row has …").
    fn token_table(&self) -> &str;
}

/// One lookup of a store, as a verdict sees it.
#[derive(Clone, Debug)]
pub enum Lookup<T> {
    /// Not asked: not required, or an earlier step already decided.
    NotChecked,
    /// The store could not be asked; the cause is logged, never shown to a client.
    Unavailable(String),
    Missing,
    Found(T),
}

impl<T> Lookup<T> {
    pub fn from_result(r: Result<Option<T>, DbErr>) -> Self {
        match r {
            Ok(Some(v)) => Lookup::Found(v),
            Ok(None) => Lookup::Missing,
            Err(e) => Lookup::Unavailable(e.to_string()),
        }
    }
    /// The store's error, when it did not answer.
    pub fn unavailable(&self) -> Option<&String> {
        match self {
            Lookup::Unavailable(cause) => Some(cause),
            _ => None,
        }
    }
    pub fn found(&self) -> Option<&T> {
        match self {
            Lookup::Found(v) => Some(v),
            _ => None,
        }
    }
}
