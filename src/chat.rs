//! Direct messages: validate, store, page history. Delivery is the realtime layer's job; a
//! message is acknowledged only once its row is stored.

pub mod sync;

use std::collections::HashSet;

use std::sync::Arc;

use chrono::Utc;
use entity::messages;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set, TransactionTrait,
    TryIntoModel,
};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::auth::store::TokenStore;
use crate::clock::iso;
use crate::error::{AppError, ErrorCode};
use crate::ids::{IdKind, UserId};

pub const MAX_CONTENT_BYTES: usize = 65_536;
pub const MAX_CLIENT_MSG_ID: usize = 128;

/// Message text: non-empty (not just whitespace) UTF-8, at most 64 KiB.
pub struct MessageContent(String);

impl MessageContent {
    pub fn parse(v: Option<&Value>) -> Result<MessageContent, AppError> {
        let s = v
            .and_then(Value::as_str)
            .ok_or_else(|| AppError::bad_request("content must be a string"))?;
        if s.trim().is_empty() {
            return Err(AppError::bad_request("content must not be empty"));
        }
        if s.len() > MAX_CONTENT_BYTES {
            return Err(AppError::bad_request(format!(
                "content is {} bytes; the limit is {MAX_CONTENT_BYTES}",
                s.len()
            )));
        }
        Ok(MessageContent(s.to_string()))
    }
}

/// A user id given in JSON, read as the token store's ids are: a positive number (or a
/// numeric string, as many JS clients send) for integer ids, a string for a backend's text ids.
pub fn parse_user_id(v: Option<&Value>, field: &str, kind: IdKind) -> Result<UserId, AppError> {
    v.and_then(|v| kind.read(v))
        .filter(|id| id.as_i64().is_none_or(|n| n > 0))
        .ok_or_else(|| {
            AppError::bad_request(match kind {
                IdKind::Int => format!("{field} must be a user id (a positive number)"),
                IdKind::Str => format!("{field} must be a user id (a string)"),
            })
        })
}

/// A validated `send_message` payload.
pub struct Outgoing {
    pub to: UserId,
    pub content: MessageContent,
    pub client_msg_id: Option<String>,
}

impl Outgoing {
    pub fn parse(data: Option<&Value>, kind: IdKind) -> Result<Outgoing, AppError> {
        let d = data.filter(|d| d.is_object()).ok_or_else(|| {
            AppError::bad_request("send_message needs {to, content, client_msg_id?}")
        })?;
        let client_msg_id = match d.get("client_msg_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_CLIENT_MSG_ID => {
                Some(s.clone())
            }
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => {
                return Err(AppError::bad_request(format!(
                    "client_msg_id must be a string of 1 to {MAX_CLIENT_MSG_ID} characters"
                )));
            }
        };
        Ok(Outgoing {
            to: parse_user_id(d.get("to"), "to", kind)?,
            content: MessageContent::parse(d.get("content"))?,
            client_msg_id,
        })
    }
}

pub struct Stored {
    pub message: messages::Model,
    /// False when `client_msg_id` matched an earlier message (a client retry).
    pub created: bool,
}

/// Store a message from `from`. A repeated `client_msg_id` returns the first message.
/// `known_users` remembers recipients that exist, sparing a lookup per message.
pub async fn store(
    db: &impl ConnectionTrait,
    users: &dyn TokenStore,
    from: &UserId,
    out: Outgoing,
    known_users: &mut HashSet<UserId>,
) -> Result<Stored, AppError> {
    if let Some(cmid) = &out.client_msg_id
        && let Some(existing) = find_by_client_id(db, from, cmid).await?
    {
        return Ok(Stored {
            message: existing,
            created: false,
        });
    }
    if !known_users.contains(&out.to) {
        if users.user(&out.to).await?.is_none() {
            return Err(user_not_found(&out.to));
        }
        if known_users.len() > 100_000 {
            known_users.clear();
        }
        known_users.insert(out.to.clone());
    }
    let inserted = new_row(from, &out, Utc::now()).insert(db).await;
    match inserted {
        Ok(message) => Ok(Stored {
            message,
            created: true,
        }),
        // Two retries raced: the unique (from, client_msg_id) index kept the first.
        Err(e)
            if matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ) =>
        {
            let cmid = out.client_msg_id.as_deref().unwrap_or_default();
            let message = find_by_client_id(db, from, cmid)
                .await?
                .ok_or_else(|| AppError::internal(e))?;
            Ok(Stored {
                message,
                created: false,
            })
        }
        Err(e)
            if matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
            ) =>
        {
            known_users.remove(&out.to);
            Err(user_not_found(&out.to))
        }
        Err(e) => Err(e.into()),
    }
}

/// The row one message becomes: the single place both write paths build it.
fn new_row(from: &UserId, out: &Outgoing, now: chrono::DateTime<Utc>) -> messages::ActiveModel {
    messages::ActiveModel {
        from_user_id: Set(from.to_string()),
        to_user_id: Set(out.to.to_string()),
        content: Set(out.content.0.clone()),
        client_msg_id: Set(out.client_msg_id.clone()),
        created_at: Set(now),
        ..Default::default()
    }
}

fn user_not_found(id: &UserId) -> AppError {
    AppError::with_message(
        ErrorCode::UserNotFound,
        format!("There is no user with id {id}."),
    )
}

/// Group commit: messages from every socket of this node are written by one task, many per
/// transaction, and each sender is answered only after its transaction committed. Under load
/// this turns N commits into one; alone, a message waits for nobody.
#[derive(Clone)]
pub struct MessageWriter(mpsc::Sender<Job>);

struct Job {
    from: UserId,
    out: Outgoing,
    reply: oneshot::Sender<Result<Stored, AppError>>,
}

/// Most messages one transaction carries.
const BATCH: usize = 256;

impl MessageWriter {
    /// Recipients are looked up in `users` (im-server's own users, or a backend's).
    pub fn start(db: DatabaseConnection, users: Arc<dyn TokenStore>) -> MessageWriter {
        let (tx, rx) = mpsc::channel(4 * BATCH);
        tokio::spawn(write_loop(db, users, rx));
        MessageWriter(tx)
    }

    pub async fn store(&self, from: UserId, out: Outgoing) -> Result<Stored, AppError> {
        let (reply, answer) = oneshot::channel();
        self.0
            .send(Job { from, out, reply })
            .await
            .map_err(|_| AppError::internal(anyhow::anyhow!("message writer stopped")))?;
        answer
            .await
            .map_err(|_| AppError::internal(anyhow::anyhow!("message writer dropped a message")))?
    }
}

async fn write_loop(
    db: DatabaseConnection,
    users: Arc<dyn TokenStore>,
    mut rx: mpsc::Receiver<Job>,
) {
    let mut known_users = HashSet::new();
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        match write_batch(&db, &*users, &mut batch, &mut known_users).await {
            Ok(results) => {
                for (job, result) in batch.drain(..).zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            // No connection to the database: one message alone would meet the same, and
            // each would wait the pool's timeout again, so the last of N queued senders would
            // wait N timeouts (the fault soak saw acks later than 15 s). One answer for all.
            Err(e) if unreachable(&e) => {
                tracing::warn!(error = %e, size = batch.len(), "database unreachable; messages not stored");
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(not_stored()));
                }
            }
            // The transaction failed as a whole (e.g. PostgreSQL aborts it on the first
            // error): give every message its own transaction and its own answer.
            Err(e) => {
                tracing::debug!(error = %e, size = batch.len(), "batch failed; writing one by one");
                for job in batch.drain(..) {
                    let result = store(&db, &*users, &job.from, job.out, &mut known_users).await;
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}

/// Whether `e` says the database could not be reached (no pooled connection within the
/// timeout, a connect or the connection itself failing), not that the statement was refused.
fn unreachable(e: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx};
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => matches!(
            **e,
            sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
        ),
        _ => false,
    }
}

fn not_stored() -> AppError {
    AppError::with_message(
        ErrorCode::Internal,
        "The database is unavailable: the message was not stored. Send it again later.",
    )
}

/// The whole batch in one statement (SQLite: `insert_consecutive`; PostgreSQL: `INSERT …
/// RETURNING`), else (MySQL) one transaction. Unknown recipients are answered without failing the
/// batch (one `IN (…)` lookup for the ids not yet known). Anything else — a repeated
/// `client_msg_id` hitting the unique index, a recipient deleted meanwhile — fails the batch,
/// and `write_loop` retries it message by message, where each case gets its precise answer.
async fn write_batch(
    db: &DatabaseConnection,
    users: &dyn TokenStore,
    batch: &mut [Job],
    known_users: &mut HashSet<UserId>,
) -> Result<Vec<Result<Stored, AppError>>, sea_orm::DbErr> {
    let unknown: Vec<UserId> = batch
        .iter()
        .map(|j| &j.out.to)
        .filter(|id| !known_users.contains(*id))
        .cloned()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if !unknown.is_empty() {
        if known_users.len() > 100_000 {
            known_users.clear();
        }
        let found = users.users(&unknown, None).await?;
        known_users.extend(found.into_iter().map(|u| u.id));
    }
    let now = Utc::now();
    let rows: Vec<messages::ActiveModel> = batch
        .iter()
        .filter(|j| known_users.contains(&j.out.to))
        .map(|j| new_row(&j.from, &j.out, now))
        .collect();
    let mut stored: Vec<messages::Model> = if rows.is_empty() {
        vec![]
    } else if db.get_database_backend() == DbBackend::Sqlite {
        insert_consecutive(db, rows).await?
    } else if db.support_returning() {
        messages::Entity::insert_many(rows)
            .exec_with_returning(db)
            .await?
    } else {
        let txn = db.begin().await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(row.insert(&txn).await?);
        }
        txn.commit().await?;
        out
    };
    // Ids are assigned in VALUES order; RETURNING's row order is not promised.
    stored.sort_by_key(|m| m.id);
    let mut stored = stored.into_iter();
    Ok(batch
        .iter()
        .map(|j| {
            if !known_users.contains(&j.out.to) {
                return Err(user_not_found(&j.out.to));
            }
            stored
                .next()
                .map(|message| Stored {
                    message,
                    created: true,
                })
                .ok_or_else(|| {
                    AppError::internal(anyhow::anyhow!("batch insert returned too few rows"))
                })
        })
        .collect())
}

/// SQLite: the batch as one INSERT without RETURNING, ids computed from `last_insert_rowid`.
///
/// The statement runs under SQLite's single write lock and gives each new row the table's
/// largest rowid + 1, so one statement's rows are consecutive. Why not RETURNING: sqlx passes
/// each returned row from its SQLite thread to ours separately — a cross-thread wake-up per
/// message, the largest item of a chat message's cost under load (perf: futex and context
/// switches); this way a batch is one request and one answer.
async fn insert_consecutive(
    db: &DatabaseConnection,
    rows: Vec<messages::ActiveModel>,
) -> Result<Vec<messages::Model>, sea_orm::DbErr> {
    let stmt = messages::Entity::insert_many(rows.iter().cloned()).build(DbBackend::Sqlite);
    let last = db.execute_raw(stmt).await?.last_insert_id() as i64;
    let first = last + 1 - rows.len() as i64;
    rows.into_iter()
        .zip(first..)
        .map(|(mut row, id)| {
            row.id = Set(id);
            row.try_into_model()
        })
        .collect()
}

async fn find_by_client_id(
    db: &impl ConnectionTrait,
    from: &UserId,
    cmid: &str,
) -> Result<Option<messages::Model>, sea_orm::DbErr> {
    messages::Entity::find()
        .filter(messages::Column::FromUserId.eq(from.to_string()))
        .filter(messages::Column::ClientMsgId.eq(cmid))
        .one(db)
        .await
}

/// The conversation between `me` and `with`, newest first, `limit` rows with id < `before`.
pub async fn history(
    db: &impl ConnectionTrait,
    me: &UserId,
    with: &UserId,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<messages::Model>, sea_orm::DbErr> {
    let (me, with) = (me.to_string(), with.to_string());
    let pair = Condition::any()
        .add(
            Condition::all()
                .add(messages::Column::FromUserId.eq(me.as_str()))
                .add(messages::Column::ToUserId.eq(with.as_str())),
        )
        .add(
            Condition::all()
                .add(messages::Column::FromUserId.eq(with.as_str()))
                .add(messages::Column::ToUserId.eq(me.as_str())),
        );
    let mut q = messages::Entity::find().filter(pair);
    if let Some(b) = before {
        q = q.filter(messages::Column::Id.lt(b));
    }
    q.order_by_desc(messages::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// The `message` event / history item shape (contract §4); the user ids read as `kind` (the
/// columns hold their text form), so own users' ids stay numbers.
pub fn message_json(m: &messages::Model, kind: IdKind) -> Value {
    let id = |s: &str| {
        kind.parse(s)
            .map_or_else(|| Value::from(s), |id| id.to_json())
    };
    json!({
        "id": m.id,
        "from": id(&m.from_user_id),
        "to": id(&m.to_user_id),
        "content": m.content,
        "created_at": iso(m.created_at),
        "client_msg_id": m.client_msg_id,
    })
}
