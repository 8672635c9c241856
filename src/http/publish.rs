//! `POST /api/publish`: a backend pushes an event to users, rooms, a user type or everyone on
//! `/im`, across all nodes ("purchase completed, refresh access" to a user's open tabs).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde::Deserialize;
use serde_json::Value;

use super::HttpState;
use super::extract::{ApiJson, ApiKey};
use super::reply::Reply;
use crate::error::AppError;
use crate::realtime::{Hub, Target, rooms};

pub fn router() -> Router<HttpState> {
    Router::new().route("/api/publish", post(publish))
}

/// Names the client library or our own protocol give a meaning; a publish must not forge them.
const RESERVED: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "error",
    "connected",
    "message",
    "presence",
    "token_expiring",
    "newListener",
    "removeListener",
    "ping",
    "pong",
];

#[derive(Deserialize)]
struct PublishBody {
    event: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    to_users: Vec<crate::ids::UserId>,
    #[serde(default)]
    rooms: Vec<String>,
    #[serde(default)]
    user_type: Option<String>,
    #[serde(default)]
    broadcast: bool,
}

async fn publish(
    State(hub): State<Arc<dyn Hub>>,
    _key: ApiKey,
    ApiJson(body): ApiJson<PublishBody>,
) -> Result<Reply<Value>, AppError> {
    let event = body.event.trim();
    if event.is_empty() || event.len() > 128 {
        return Err(AppError::bad_request(
            "event must be a name of 1 to 128 characters",
        ));
    }
    if RESERVED.contains(&event) {
        return Err(AppError::bad_request(format!(
            "event {event:?} is reserved; pick an application event name"
        )));
    }
    let target = if body.broadcast {
        Target::Everyone
    } else {
        let mut targets: Vec<String> = body.to_users.iter().map(rooms::user).collect();
        targets.extend(body.rooms.iter().filter(|r| !r.is_empty()).cloned());
        if let Some(t) = body.user_type.as_deref().filter(|t| !t.is_empty()) {
            targets.push(rooms::user_type(t));
        }
        if targets.is_empty() {
            return Err(AppError::bad_request(
                "no target: give to_users, rooms, user_type, or broadcast: true",
            ));
        }
        Target::Rooms(targets)
    };
    let delivered = hub
        .publish(target, event.to_string(), body.data)
        .await
        .map_err(|e| AppError::internal(anyhow::anyhow!("publish failed: {e}")))?;
    Ok(Reply::ok(
        "Published",
        serde_json::json!({ "delivered_to_sockets": delivered }),
    ))
}
