//! Every event an authenticated `/im` socket handles, registered in one list.
//!
//! Payloads are parsed with `TryData` so a malformed one becomes an ack
//! `{ok:false, code:"BAD_REQUEST"}`, never a panic or a closed socket.

use serde_json::Value;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Event, SocketRef, State, TryData};

use super::expiry::ExpiryHandle;
use super::{SocketSession, rooms};
use crate::auth::{self, source};
use crate::chat;
use crate::error::{AppError, ErrorCode};
use crate::state::AppState;

/// Event names we count by name in metrics; anything else is counted as "unknown".
const KNOWN: &[&str] = &[
    "send_message",
    "presence:subscribe",
    "presence:unsubscribe",
    "auth:refresh",
    "messages:sync",
];

/// Most presence subscriptions one event may carry.
const MAX_PRESENCE_IDS: usize = 1000;

pub fn register<A: Adapter>(s: &SocketRef<A>) {
    s.on("send_message", on_send_message::<A>);
    s.on("presence:subscribe", on_presence_subscribe::<A>);
    s.on("presence:unsubscribe", on_presence_unsubscribe::<A>);
    s.on("auth:refresh", on_refresh::<A>);
    s.on("messages:sync", on_sync::<A>);
    s.on_fallback(on_unknown::<A>);
}

fn session_of<A: Adapter>(s: &SocketRef<A>) -> Result<SocketSession, AppError> {
    s.extensions
        .get::<SocketSession>()
        .ok_or_else(|| AppError::new(ErrorCode::Internal))
}

/// `send_message {to, content, client_msg_id?}`: stored first, then delivered as `message` to
/// the recipient's sockets and the sender's other sockets (any node), then acknowledged.
async fn on_send_message<A: Adapter>(
    s: SocketRef<A>,
    TryData(data): TryData<Value>,
    reply: AckSender<A>,
    State(state): State<AppState>,
) {
    state.metrics().event_in("send_message");
    let result = send_message(&s, data.ok(), &state).await;
    ack(reply, result);
}

async fn send_message<A: Adapter>(
    s: &SocketRef<A>,
    data: Option<Value>,
    state: &AppState,
) -> Result<Value, AppError> {
    let me = session_of(s)?.session.user.id;
    let out = chat::Outgoing::parse(data.as_ref())?;
    let to = out.to;
    let stored = state.messages().store(me, out).await?;
    let m = &stored.message;
    if stored.created {
        let event = chat::message_json(m);
        if let Err(e) = s
            .to([rooms::user(to), rooms::user(me)])
            .emit("message", &event)
            .await
            && !super::delivery::reached_every_live_socket(&e)
        {
            tracing::warn!(error = %e, message_id = m.id, "message stored but not delivered to every socket");
        }
        state.metrics().event_out("message");
    }
    Ok(serde_json::json!({
        "ok": true,
        "id": m.id,
        "created_at": crate::clock::iso(m.created_at),
        "duplicate": !stored.created,
    }))
}

/// `messages:sync {after_id, limit?}`: the caller's messages after `after_id`, oldest first,
/// paged; what a socket that reconnects missed (contract §4).
async fn on_sync<A: Adapter>(
    s: SocketRef<A>,
    TryData(data): TryData<Value>,
    reply: AckSender<A>,
    State(state): State<AppState>,
) {
    state.metrics().event_in("messages:sync");
    let result = async {
        let me = session_of(&s)?.session.user.id;
        let req = chat::sync::SyncRequest::parse(data.as_ref().ok())?;
        let page = chat::sync::after(state.db(), me, req.after_id, req.limit).await?;
        let messages: Vec<Value> = page.messages.iter().map(chat::message_json).collect();
        Ok(serde_json::json!({ "ok": true, "messages": messages, "more": page.more }))
    }
    .await;
    ack(reply, result);
}

fn user_ids(data: Option<&Value>) -> Result<Vec<i64>, AppError> {
    let list = data
        .and_then(|d| d.get("userIds"))
        .and_then(Value::as_array)
        .ok_or_else(|| AppError::bad_request("expected {userIds: [id, ...]}"))?;
    if list.len() > MAX_PRESENCE_IDS {
        return Err(AppError::bad_request(format!(
            "at most {MAX_PRESENCE_IDS} userIds per event"
        )));
    }
    list.iter()
        .map(|v| chat::parse_user_id(Some(v), "userIds[]"))
        .collect()
}

async fn on_presence_subscribe<A: Adapter>(
    s: SocketRef<A>,
    TryData(data): TryData<Value>,
    reply: AckSender<A>,
    State(state): State<AppState>,
) {
    state.metrics().event_in("presence:subscribe");
    let result = async {
        let ids = user_ids(data.as_ref().ok())?;
        s.join(
            ids.iter()
                .map(|id| rooms::presence(*id))
                .collect::<Vec<_>>(),
        );
        let online = state
            .presence()
            .online_of(&ids)
            .await
            .map_err(|e| AppError::internal(e.context("presence lookup failed")))?;
        Ok(serde_json::json!({ "ok": true, "online": online }))
    }
    .await;
    ack(reply, result);
}

async fn on_presence_unsubscribe<A: Adapter>(
    s: SocketRef<A>,
    TryData(data): TryData<Value>,
    reply: AckSender<A>,
    State(state): State<AppState>,
) {
    state.metrics().event_in("presence:unsubscribe");
    let result = user_ids(data.as_ref().ok()).map(|ids| {
        s.leave(
            ids.iter()
                .map(|id| rooms::presence(*id))
                .collect::<Vec<_>>(),
        );
        serde_json::json!({ "ok": true })
    });
    ack(reply, result);
}

fn ack<A: Adapter>(ack: AckSender<A>, result: Result<Value, AppError>) {
    let body = match result {
        Ok(v) => v,
        Err(e) => e.to_ack(),
    };
    let _ = ack.send(&body);
}

/// `auth:refresh {token}`: switch this socket to a newer token of the same user, keeping the
/// connection. On failure the socket keeps its old token.
async fn on_refresh<A: Adapter>(
    s: SocketRef<A>,
    TryData(data): TryData<Value>,
    reply: AckSender<A>,
    State(state): State<AppState>,
    State(expiry): State<ExpiryHandle>,
) {
    state.metrics().event_in("auth:refresh");
    let result = refresh(&s, data.ok(), &state, &expiry).await;
    if let Err(e) = &result {
        tracing::info!(sid = %s.id, code = %e.code, "auth:refresh refused");
    }
    ack(reply, result);
}

async fn refresh<A: Adapter>(
    s: &SocketRef<A>,
    data: Option<Value>,
    state: &AppState,
    expiry: &ExpiryHandle,
) -> Result<Value, AppError> {
    let raw = data
        .as_ref()
        .and_then(|d| d.get("token"))
        .and_then(Value::as_str)
        .and_then(source::RawToken::parse)
        .ok_or_else(|| AppError::bad_request("auth:refresh needs {token: \"<jwt>\"}"))?;
    let current = session_of(s)?;
    let found = source::Found {
        source: crate::config::TokenSource::Auth,
        token: raw,
    };
    let session = auth::verify_token(state, &found).await?;
    if session.user.id != current.session.user.id {
        return Err(AppError::with_message(
            ErrorCode::Forbidden,
            "auth:refresh must use a token of the same user; reconnect to switch users",
        ));
    }
    s.leave(rooms::token(&current.session.token_hash));
    s.join(rooms::token(&session.token_hash));
    expiry.schedule(s.id, session.expires_at);
    let expires_at = session.expires_at;
    s.extensions.insert(SocketSession {
        session,
        info: current.info,
    });
    Ok(serde_json::json!({ "ok": true, "expiresAt": crate::clock::iso(expires_at) }))
}

/// Unknown events: an ack `BAD_REQUEST` if one was asked for; the socket stays open.
async fn on_unknown<A: Adapter>(
    Event(event): Event,
    reply: AckSender<A>,
    State(state): State<AppState>,
) {
    state
        .metrics()
        .event_in(if KNOWN.contains(&event.as_str()) {
            &event
        } else {
            "unknown"
        });
    ack(
        reply,
        Err(AppError::bad_request(format!(
            "unknown event {:?}",
            event.chars().take(64).collect::<String>()
        ))),
    );
}
