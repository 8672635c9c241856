//! `GET /api/messages?with=<userId>&before=<id>&limit=<n>`: the caller's direct-message
//! history with one user, newest first.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Deserialize;
use serde_json::Value;

use super::HttpState;
use super::extract::{ApiQuery, AuthSession};
use super::reply::Reply;
use crate::chat;
use crate::error::AppError;
use crate::state::AppState;

pub fn router() -> Router<HttpState> {
    Router::new().route("/api/messages", get(history))
}

const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 200;

#[derive(Deserialize)]
struct HistoryQuery {
    /// A user id as text (`7`, `kefu_001`), read as the store's ids are.
    with: String,
    before: Option<i64>,
    limit: Option<u64>,
}

async fn history(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Reply<Value>, AppError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let kind = state.auth().store().id_kind();
    let with = chat::parse_user_id(Some(&Value::String(q.with)), "with", kind)?;
    let rows = chat::history(state.db(), &session.user.id, &with, q.before, limit).await?;
    // The next page starts below the oldest row of this one.
    let next_before = (rows.len() as u64 == limit)
        .then(|| rows.last().map(|m| m.id))
        .flatten();
    Ok(Reply::ok(
        "Messages",
        serde_json::json!({
            "messages": rows.iter().map(|m| chat::message_json(m, kind)).collect::<Vec<_>>(),
            "next_before": next_before,
        }),
    ))
}
