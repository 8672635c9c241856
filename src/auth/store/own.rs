//! im-server's own `user_tokens` and `users` tables. The raw token never reaches the
//! database: rows are keyed by its SHA-256 ([`super::token_hash`]).

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use entity::{user_tokens, users};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, Set,
};
use tokio::sync::{mpsc, oneshot};

use super::{TokenRecord, TokenStore, token_hash};
use crate::auth::session::User;
use crate::ids::UserId;

/// The store of tokens this server issued itself (`POST /auth/login`).
pub struct OwnStore {
    db: DatabaseConnection,
    touches: Touches,
}

impl OwnStore {
    /// Starts the task that writes `last_used_at` (see [`Touches`]).
    pub fn new(db: DatabaseConnection) -> Self {
        OwnStore {
            touches: Touches::start(db.clone()),
            db,
        }
    }

    /// Without the touch writer: for one-shot commands (`token inspect`) that only read.
    pub fn read_only(db: DatabaseConnection) -> Self {
        OwnStore {
            touches: Touches::none(),
            db,
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }
}

pub fn record(m: &user_tokens::Model) -> TokenRecord {
    TokenRecord {
        id: Some(m.id),
        user_id: UserId::Int(m.user_id),
        revoked: m.is_revoked,
        expires_at: Some(m.expires_at),
        created_at: Some(m.created_at),
        last_used_at: m.last_used_at,
    }
}

#[async_trait]
impl TokenStore for OwnStore {
    async fn token(&self, token: &str) -> Result<Option<TokenRecord>, DbErr> {
        Ok(find_token(&self.db, &token_hash(token))
            .await?
            .as_ref()
            .map(record))
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, DbErr> {
        Ok(find_token(&self.db, hash).await?.as_ref().map(record))
    }

    async fn users(&self, ids: &[UserId], user_type: Option<&str>) -> Result<Vec<User>, DbErr> {
        let ids = ids.iter().filter_map(UserId::as_i64);
        let mut find = users::Entity::find().filter(users::Column::Id.is_in(ids));
        if let Some(t) = user_type {
            find = find.filter(users::Column::UserType.eq(t));
        }
        Ok(find
            .all(&self.db)
            .await?
            .into_iter()
            .map(User::from)
            .collect())
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>, DbErr> {
        let Some(id) = id.as_i64() else {
            return Ok(None);
        };
        Ok(users::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(User::from))
    }

    async fn live_token_hashes(&self, user: &UserId) -> Result<Vec<String>, DbErr> {
        let Some(id) = user.as_i64() else {
            return Ok(vec![]);
        };
        Ok(live_tokens(&self.db, id, None, Utc::now())
            .await?
            .into_iter()
            .map(|t| t.token_hash)
            .collect())
    }

    async fn revoke(&self, token_hashes: &[String]) -> Result<u64, DbErr> {
        if token_hashes.is_empty() {
            return Ok(0);
        }
        let r = user_tokens::Entity::update_many()
            .col_expr(user_tokens::Column::IsRevoked, Expr::value(true))
            .filter(user_tokens::Column::TokenHash.is_in(token_hashes.iter().cloned()))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected)
    }

    fn touch(&self, record_id: i64) {
        self.touches.touch(record_id);
    }

    async fn touch_now(&self, record_id: i64, now: DateTime<Utc>) -> Result<(), DbErr> {
        user_tokens::Entity::update_many()
            .col_expr(user_tokens::Column::LastUsedAt, Expr::value(now))
            .filter(user_tokens::Column::Id.eq(record_id))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    async fn flush(&self) {
        self.touches.flush().await
    }

    fn token_table(&self) -> &str {
        "user_tokens"
    }
}

pub async fn find_token(
    db: &impl ConnectionTrait,
    hash: &str,
) -> Result<Option<user_tokens::Model>, DbErr> {
    user_tokens::Entity::find()
        .filter(user_tokens::Column::TokenHash.eq(hash))
        .one(db)
        .await
}

pub struct NewToken<'a> {
    pub user_id: i64,
    pub token: &'a str,
    pub jti: &'a str,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

pub async fn insert_token(
    db: &impl ConnectionTrait,
    t: NewToken<'_>,
) -> Result<user_tokens::Model, DbErr> {
    user_tokens::ActiveModel {
        user_id: Set(t.user_id),
        token_hash: Set(token_hash(t.token)),
        jti: Set(t.jti.to_string()),
        is_revoked: Set(false),
        expires_at: Set(t.expires_at),
        created_at: Set(Utc::now()),
        last_used_at: Set(None),
        user_agent: Set(t.user_agent.map(|s| truncate(s, 512))),
        ip: Set(t.ip.map(|s| truncate(s, 64))),
        ..Default::default()
    }
    .insert(db)
    .await
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The user's tokens that are neither revoked nor expired (optionally except one).
pub async fn live_tokens(
    db: &impl ConnectionTrait,
    user_id: i64,
    except: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Vec<user_tokens::Model>, DbErr> {
    let mut q = user_tokens::Entity::find()
        .filter(user_tokens::Column::UserId.eq(user_id))
        .filter(user_tokens::Column::IsRevoked.eq(false))
        .filter(user_tokens::Column::ExpiresAt.gt(now));
    if let Some(id) = except {
        q = q.filter(user_tokens::Column::Id.ne(id));
    }
    q.all(db).await
}

/// `last_used_at` updates, coalesced: a handshake only records the token id; one task writes
/// them all every second in one statement, instead of one write transaction per connect.
/// `POST /auth/heartbeat` sends the same command.
#[derive(Clone)]
pub struct Touches(Option<mpsc::UnboundedSender<TouchCmd>>);

enum TouchCmd {
    Touch(i64),
    Flush(oneshot::Sender<()>),
}

impl Touches {
    fn none() -> Touches {
        Touches(None)
    }

    fn start(db: DatabaseConnection) -> Touches {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut pending = HashSet::new();
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tokio::select! {
                    cmd = rx.recv() => match cmd {
                        Some(TouchCmd::Touch(id)) => { pending.insert(id); }
                        Some(TouchCmd::Flush(done)) => {
                            write_touches(&db, &mut pending).await;
                            let _ = done.send(());
                        }
                        None => {
                            write_touches(&db, &mut pending).await;
                            return;
                        }
                    },
                    _ = tick.tick() => write_touches(&db, &mut pending).await,
                }
            }
        });
        Touches(Some(tx))
    }

    fn touch(&self, token_id: i64) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(TouchCmd::Touch(token_id));
        }
    }

    async fn flush(&self) {
        let Some(tx) = &self.0 else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(TouchCmd::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_touches(db: &DatabaseConnection, pending: &mut HashSet<i64>) {
    if pending.is_empty() {
        return;
    }
    let ids: Vec<i64> = pending.drain().collect();
    let now = Utc::now();
    for chunk in ids.chunks(500) {
        let r = user_tokens::Entity::update_many()
            .col_expr(user_tokens::Column::LastUsedAt, Expr::value(now))
            .filter(user_tokens::Column::Id.is_in(chunk.iter().copied()))
            .exec(db)
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, tokens = chunk.len(), "could not record last_used_at");
        }
    }
}
