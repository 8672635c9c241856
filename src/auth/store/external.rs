//! The backend's own token and user tables (`[external]`, contract §9), read and never
//! written: a database user with `SELECT` on the two tables is enough.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, QueryResult};

use super::mapping::{Cell, Mapping};
use super::{TokenRecord, TokenStore, token_hash};
use crate::auth::session::User;
use crate::config::{ConfigError, ExternalSettings, TokenFormat};
use crate::ids::{IdKind, UserId};

/// Tokens (or user ids) per `IN (…)` list: the recheck of 10,000 sockets is 10 + 10 queries.
pub const BATCH: usize = 1000;

pub struct ExternalStore {
    db: DatabaseConnection,
    /// Statements sent to the backend's database ([`TokenStore::queries_sent`]).
    queries: AtomicU64,
    map: Mapping,
    kind: IdKind,
    token_table: String,
}

impl ExternalStore {
    /// Connect to `external.url` and check the mapping against its live schema; every failure
    /// is one line naming the key.
    pub async fn connect(x: &ExternalSettings) -> Result<ExternalStore, ConfigError> {
        let url = x
            .url
            .as_ref()
            .ok_or_else(|| ConfigError::new("external.url", "not set"))?;
        let mut opts = ConnectOptions::new(url.expose().to_string());
        opts.max_connections(x.max_connections.max(1))
            .min_connections(0)
            .connect_timeout(Duration::from_secs(3))
            .acquire_timeout(Duration::from_secs(3))
            .sqlx_logging(false);
        let db = Database::connect(opts).await.map_err(|e| {
            ConfigError::new(
                "external.url",
                format!(
                    "cannot connect to {}: {}",
                    crate::config::redact_url(url.expose()),
                    e.to_string().replace(url.expose(), "<external.url>")
                ),
            )
        })?;
        let map = Mapping::new(x);
        let kind = map.check(&db).await?;
        Ok(ExternalStore {
            token_table: map
                .tokens
                .as_ref()
                .map_or_else(String::new, |t| t.table.name.clone()),
            db,
            queries: AtomicU64::new(0),
            map,
            kind,
        })
    }

    /// A row as [`Mapping::select_tokens`] selects it: `(the column's key, record)`.
    fn record(&self, row: &QueryResult) -> Option<(String, TokenRecord)> {
        let t = self.map.tokens.as_ref()?;
        let key = Cell::read(row, 0).text()?;
        let user_id = Cell::read(row, 1).user_id(self.kind)?;
        let mut i = 2;
        let mut next = |present: bool| {
            present.then(|| {
                i += 1;
                Cell::read(row, i - 1)
            })
        };
        let revoked = next(t.revoked.is_some()).is_some_and(|c| c.truthy());
        let expires_at = next(t.expires_at.is_some()).and_then(|c| c.time());
        Some((
            key,
            TokenRecord {
                id: None,
                user_id,
                revoked,
                expires_at,
                created_at: None,
                last_used_at: None,
            },
        ))
    }

    fn user_of(&self, row: &QueryResult) -> Option<User> {
        let u = &self.map.users;
        let id = Cell::read(row, 0).user_id(self.kind)?;
        let username = Cell::read(row, 1).text().unwrap_or_default();
        let mut i = 2;
        let mut next = |present: bool| {
            present.then(|| {
                i += 1;
                Cell::read(row, i - 1)
            })
        };
        let display_name = next(u.display_name.is_some()).and_then(|c| c.text());
        let user_type = next(u.user_type.is_some()).and_then(|c| c.text());
        let active = next(u.active.is_some()).is_none_or(|c| c.active());
        Some(User {
            id,
            display_name: display_name.unwrap_or_else(|| username.clone()),
            username,
            user_type: user_type.unwrap_or_else(|| "user".into()),
            email: None,
            is_active: active,
        })
    }

    async fn rows(&self, keys: Vec<String>) -> Result<Vec<(String, TokenRecord)>, DbErr> {
        let Some(q) = self.map.select_tokens(keys) else {
            return Ok(vec![]);
        };
        self.queries.fetch_add(1, Ordering::Relaxed);
        let rows = self.db.query_all(&q).await?;
        Ok(rows.iter().filter_map(|r| self.record(r)).collect())
    }
}

#[async_trait]
impl TokenStore for ExternalStore {
    async fn token(&self, token: &str) -> Result<Option<TokenRecord>, DbErr> {
        let key = self.map.token_key(token);
        Ok(self
            .rows(vec![key.clone()])
            .await?
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, r)| r))
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, DbErr> {
        match self.map.tokens.as_ref().map(|t| t.format) {
            Some(TokenFormat::Sha256Hex) => Ok(self
                .rows(vec![hash.to_string()])
                .await?
                .into_iter()
                .next()
                .map(|(_, r)| r)),
            _ => Ok(None),
        }
    }

    async fn tokens(&self, tokens: &[&str]) -> Result<HashMap<String, TokenRecord>, DbErr> {
        let mut out = HashMap::new();
        for chunk in tokens.chunks(BATCH) {
            let by_key: HashMap<String, String> = chunk
                .iter()
                .map(|t| (self.map.token_key(t), token_hash(t)))
                .collect();
            for (key, record) in self.rows(by_key.keys().cloned().collect()).await? {
                if let Some(hash) = by_key.get(&key) {
                    out.insert(hash.clone(), record);
                }
            }
        }
        Ok(out)
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>, DbErr> {
        Ok(self
            .users(std::slice::from_ref(id), None)
            .await?
            .into_iter()
            .find(|u| u.id == *id))
    }

    async fn users(&self, ids: &[UserId], user_type: Option<&str>) -> Result<Vec<User>, DbErr> {
        let mut out = vec![];
        for chunk in ids.chunks(BATCH) {
            let q = self.map.select_users(chunk, self.kind);
            self.queries.fetch_add(1, Ordering::Relaxed);
            for row in self.db.query_all(&q).await? {
                if let Some(u) = self.user_of(&row)
                    && user_type.is_none_or(|t| t == u.user_type)
                {
                    out.push(u);
                }
            }
        }
        Ok(out)
    }

    /// Never: the backend revokes its own tokens; im-server only kicks and forgets.
    async fn revoke(&self, _token_hashes: &[String]) -> Result<u64, DbErr> {
        Ok(0)
    }

    fn touch(&self, _record_id: i64) {}

    async fn touch_now(&self, _record_id: i64, _now: DateTime<Utc>) -> Result<(), DbErr> {
        Ok(())
    }

    async fn flush(&self) {}

    fn token_table(&self) -> &str {
        &self.token_table
    }

    fn id_kind(&self) -> IdKind {
        self.kind
    }

    fn has_token_rows(&self) -> bool {
        self.map.tokens.is_some()
    }

    fn issues_tokens(&self) -> bool {
        false
    }

    fn queries_sent(&self) -> Option<u64> {
        Some(self.queries.load(Ordering::Relaxed))
    }

    async fn ping(&self) -> Option<Result<(), String>> {
        let r = tokio::time::timeout(Duration::from_secs(3), self.db.ping()).await;
        Some(match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out after 3 s".into()),
        })
    }
}
