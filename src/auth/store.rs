//! The `user_tokens` and `users` rows behind a token. The raw token never reaches the
//! database: rows are keyed by its SHA-256.

use chrono::{DateTime, Duration, Utc};
use entity::{user_tokens, users};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set,
};
use sha2::{Digest, Sha256};

use crate::error::ErrorCode;

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
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

pub async fn find_user(db: &impl ConnectionTrait, id: i64) -> Result<Option<users::Model>, DbErr> {
    users::Entity::find_by_id(id).one(db).await
}

/// The row's verdict, the same leeway as the JWT's `exp`.
pub fn check_row(
    row: &user_tokens::Model,
    now: DateTime<Utc>,
    leeway_secs: u64,
) -> Result<(), ErrorCode> {
    if row.is_revoked {
        Err(ErrorCode::TokenRevoked)
    } else if row.expires_at + Duration::seconds(leeway_secs as i64) < now {
        Err(ErrorCode::TokenExpired)
    } else {
        Ok(())
    }
}

pub fn check_user(user: &users::Model) -> Result<(), ErrorCode> {
    if user.is_active {
        Ok(())
    } else {
        Err(ErrorCode::UserDisabled)
    }
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

pub async fn touch(
    db: &impl ConnectionTrait,
    token_id: i64,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    user_tokens::Entity::update_many()
        .col_expr(user_tokens::Column::LastUsedAt, Expr::value(now))
        .filter(user_tokens::Column::Id.eq(token_id))
        .exec(db)
        .await
        .map(|_| ())
}

pub async fn revoke(db: &impl ConnectionTrait, token_id: i64) -> Result<(), DbErr> {
    user_tokens::Entity::update_many()
        .col_expr(user_tokens::Column::IsRevoked, Expr::value(true))
        .filter(user_tokens::Column::Id.eq(token_id))
        .exec(db)
        .await
        .map(|_| ())
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

pub async fn revoke_many(db: &impl ConnectionTrait, ids: &[i64]) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    user_tokens::Entity::update_many()
        .col_expr(user_tokens::Column::IsRevoked, Expr::value(true))
        .filter(user_tokens::Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await
        .map(|_| ())
}

/// `last_used_at` updates, coalesced: a handshake only records the token id; one task writes
/// them all every second in one statement, instead of one write transaction per connect.
#[derive(Clone)]
pub struct Touches(tokio::sync::mpsc::UnboundedSender<TouchCmd>);

pub enum TouchCmd {
    Touch(i64),
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl Touches {
    pub fn start(db: sea_orm::DatabaseConnection) -> Touches {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut pending = std::collections::HashSet::new();
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
        Touches(tx)
    }

    pub fn touch(&self, token_id: i64) {
        let _ = self.0.send(TouchCmd::Touch(token_id));
    }

    /// Write what is pending now (graceful shutdown).
    pub async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.0.send(TouchCmd::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_touches(
    db: &sea_orm::DatabaseConnection,
    pending: &mut std::collections::HashSet<i64>,
) {
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
