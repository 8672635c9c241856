//! Catching up after a reconnect: `messages:sync {after_id, limit?}` pages the caller's direct
//! messages (sent and received) after an id, and `connected.lastMessageId` says where the
//! caller stands. A socket the server cut off (a slow consumer) or that lost its connection
//! asks for exactly what it missed.
//!
//! "from = me OR to = me, id > after" is two range scans, one on `(from_user_id, id)` and one on
//! `(to_user_id, id)` (migration `m20261201_000004`), merged here: an OR would make SQLite,
//! MariaDB and PostgreSQL each pick their own, often whole-table, plan.

use entity::messages;
use sea_orm::sea_query::{Alias, Expr, Func, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::Value;

use crate::error::AppError;
use crate::ids::UserId;

/// Messages one `messages:sync` returns when it names no limit.
pub const DEFAULT_LIMIT: u64 = 100;
/// Most messages one `messages:sync` returns; a larger limit is lowered to it.
pub const MAX_LIMIT: u64 = 500;
/// Content bytes after which a page ends early (`more: true`): 500 messages of 64 KiB would be
/// one 32 MB ack, more than clients' frame limits (16 MiB in tungstenite) and a queue can take.
pub const MAX_PAGE_BYTES: usize = 1 << 20;

/// A validated `messages:sync` payload.
#[derive(Debug, PartialEq)]
pub struct SyncRequest {
    pub after_id: i64,
    pub limit: u64,
}

impl SyncRequest {
    /// `{after_id, limit?}`: `after_id` a message id ≥ 0 (`null`: from the first message),
    /// `limit` 1 or more (default 100, at most 500).
    pub fn parse(data: Option<&Value>) -> Result<SyncRequest, AppError> {
        let d = data
            .filter(|d| d.is_object())
            .ok_or_else(|| AppError::bad_request("messages:sync needs {after_id, limit?}"))?;
        let after_id = match d.get("after_id") {
            Some(Value::Null) => 0,
            Some(v) => whole_number(v).filter(|n| *n >= 0).ok_or_else(|| {
                AppError::bad_request("after_id must be a message id (a number ≥ 0) or null")
            })?,
            None => {
                return Err(AppError::bad_request(
                    "messages:sync needs after_id: the last message id seen (lastMessageId)",
                ));
            }
        };
        let limit = match d.get("limit") {
            None | Some(Value::Null) => DEFAULT_LIMIT,
            Some(v) => whole_number(v)
                .filter(|n| *n >= 1)
                .map(|n| (n as u64).min(MAX_LIMIT))
                .ok_or_else(|| {
                    AppError::bad_request(format!(
                        "limit must be a whole number from 1 to {MAX_LIMIT}"
                    ))
                })?,
        };
        Ok(SyncRequest { after_id, limit })
    }
}

/// A JSON integer, or a string holding one (as many JS clients send ids).
fn whole_number(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// One page of `messages:sync`, oldest first.
pub struct Page {
    pub messages: Vec<messages::Model>,
    /// More messages follow the last one of this page.
    pub more: bool,
}

/// `me`'s messages (sent or received) with id > `after_id`, oldest first, at most `limit`.
pub async fn after(
    db: &impl ConnectionTrait,
    me: &UserId,
    after_id: i64,
    limit: u64,
) -> Result<Page, DbErr> {
    let me = me.to_string();
    // limit + 1 of each side: the first limit + 1 of the union are among them, and the extra
    // one says whether there is more.
    let side = |col: messages::Column| {
        messages::Entity::find()
            .filter(col.eq(me.as_str()))
            .filter(messages::Column::Id.gt(after_id))
            .order_by_asc(messages::Column::Id)
            .limit(limit + 1)
            .all(db)
    };
    let (sent, received) = futures_util::try_join!(
        side(messages::Column::FromUserId),
        side(messages::Column::ToUserId)
    )?;
    let mut messages = merge_by_id(sent, received);
    let mut bytes = 0;
    let fits = messages
        .iter()
        .take(limit as usize)
        .position(|m| {
            bytes += m.content.len();
            bytes > MAX_PAGE_BYTES
        })
        .map_or(limit as usize, |over| over.max(1));
    let more = messages.len() > fits;
    messages.truncate(fits);
    Ok(Page { messages, more })
}

/// Two lists sorted by id merged into one, a message in both (sent to oneself) once.
fn merge_by_id(a: Vec<messages::Model>, b: Vec<messages::Model>) -> Vec<messages::Model> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.id == y.id => {
                b.next();
                true
            }
            (Some(x), Some(y)) => x.id < y.id,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return out,
        };
        out.extend(if take_a { a.next() } else { b.next() });
    }
}

/// The newest id among `me`'s messages (sent or received), `None` without any: one statement,
/// two index lookups (`MAX(id)` of each index's `me` range).
pub async fn last_id(db: &impl ConnectionTrait, me: &UserId) -> Result<Option<i64>, DbErr> {
    use sea_orm::sea_query::ExprTrait as _;
    let me = me.to_string();
    let newest = |col: messages::Column| -> SelectStatement {
        Query::select()
            .expr(Func::max(Expr::col(messages::Column::Id)))
            .from(messages::Entity)
            .and_where(Expr::col(col).eq(me.as_str()))
            .to_owned()
    };
    let stmt = Query::select()
        .expr_as(
            Expr::SubQuery(None, Box::new(newest(messages::Column::FromUserId).into())),
            Alias::new("sent"),
        )
        .expr_as(
            Expr::SubQuery(None, Box::new(newest(messages::Column::ToUserId).into())),
            Alias::new("received"),
        )
        .to_owned();
    let Some(row) = db.query_one(&stmt).await? else {
        return Ok(None);
    };
    let sent: Option<i64> = row.try_get("", "sent")?;
    let received: Option<i64> = row.try_get("", "received")?;
    Ok(Ord::max(sent, received))
}

/// The newest message stored before `t` (0 when there is none): where an outage that began
/// at `t` starts to matter. A backward walk of the primary key that stops at the first row
/// older than `t`, so it reads only what came after `t`.
pub async fn id_before(
    db: &impl ConnectionTrait,
    t: chrono::DateTime<chrono::Utc>,
) -> Result<i64, DbErr> {
    let row = messages::Entity::find()
        .filter(messages::Column::CreatedAt.lt(t))
        .order_by_desc(messages::Column::Id)
        .one(db)
        .await?;
    Ok(row.map_or(0, |m| m.id))
}

/// Everyone with a message (sent or received) after `after_id`: a range of the primary key.
pub async fn users_after(
    db: &impl ConnectionTrait,
    after_id: i64,
) -> Result<std::collections::HashSet<String>, DbErr> {
    let rows: Vec<(String, String)> = messages::Entity::find()
        .select_only()
        .column(messages::Column::FromUserId)
        .column(messages::Column::ToUserId)
        .filter(messages::Column::Id.gt(after_id))
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().flat_map(|(a, b)| [a, b]).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Result<SyncRequest, String> {
        SyncRequest::parse(Some(&v)).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_limits_and_bad_arguments() {
        assert_eq!(
            parse(json!({"after_id": 5})).unwrap(),
            SyncRequest {
                after_id: 5,
                limit: DEFAULT_LIMIT
            }
        );
        assert_eq!(
            parse(json!({"after_id": null, "limit": "7"}))
                .unwrap()
                .after_id,
            0
        );
        assert_eq!(
            parse(json!({"after_id": 0, "limit": 9999})).unwrap().limit,
            MAX_LIMIT
        );
        for bad in [
            json!({}),
            json!([1]),
            json!({"after_id": -1}),
            json!({"after_id": 1.5}),
            json!({"after_id": "x"}),
            json!({"after_id": 1, "limit": 0}),
            json!({"after_id": 1, "limit": true}),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad} accepted");
        }
        assert!(SyncRequest::parse(None).is_err());
    }

    fn m(id: i64) -> messages::Model {
        messages::Model {
            id,
            from_user_id: "1".into(),
            to_user_id: "2".into(),
            content: String::new(),
            client_msg_id: None,
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn merge_keeps_id_order_and_a_message_to_oneself_once() {
        let ids = |v: Vec<messages::Model>| v.into_iter().map(|m| m.id).collect::<Vec<_>>();
        let merged = merge_by_id(vec![m(1), m(4), m(5)], vec![m(2), m(4), m(9)]);
        assert_eq!(ids(merged), vec![1, 2, 4, 5, 9]);
        assert_eq!(ids(merge_by_id(vec![], vec![m(3)])), vec![3]);
    }
}
