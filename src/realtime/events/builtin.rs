//! The built-in events of contract §4, each an [`EventHandler`] registered in [`register`]
//! (the one list to grep for an event name).

use async_trait::async_trait;
use serde_json::Value;

use super::{EventCtx, EventHandler, Events};
use crate::auth::{AuthRequest, Purpose};
use crate::chat;
use crate::config::TokenSource;
use crate::error::{AppError, ErrorCode};
use crate::ids::{IdKind, UserId};
use crate::realtime::{SocketSession, rooms};

pub fn register(events: Events) -> Events {
    events
        .on("send_message", SendMessage)
        .on("presence:subscribe", PresenceSubscribe)
        .on("presence:unsubscribe", PresenceUnsubscribe)
        .on("auth:refresh", Refresh)
        .on("messages:sync", Sync)
}

/// Most presence subscriptions one event may carry.
const MAX_PRESENCE_IDS: usize = 1000;

/// `send_message {to, content, client_msg_id?}`: stored first, then delivered as `message` to
/// the recipient's sockets and the sender's other sockets (any node), then acknowledged.
struct SendMessage;

#[async_trait]
impl EventHandler for SendMessage {
    async fn handle(&self, ctx: EventCtx<'_>, data: Option<Value>) -> Result<Value, AppError> {
        let me = ctx.session.session.user.id.clone();
        let kind = ctx.state.auth().store().id_kind();
        let out = chat::Outgoing::parse(data.as_ref(), kind)?;
        let to = out.to.clone();
        let stored = ctx.state.messages().store(me.clone(), out).await?;
        let m = &stored.message;
        if stored.created {
            let event = chat::message_json(m, kind);
            let delivered = ctx
                .socket
                .broadcast(
                    vec![rooms::user(&to), rooms::user(&me)],
                    "message".into(),
                    event,
                )
                .await;
            if delivered.is_err() {
                tracing::warn!(
                    message_id = m.id,
                    "message stored but not delivered to every socket"
                );
            }
        }
        Ok(serde_json::json!({
            "ok": true,
            "id": m.id,
            "created_at": crate::clock::iso(m.created_at),
            "duplicate": !stored.created,
        }))
    }
}

/// `messages:sync {after_id, limit?}`: the caller's messages after `after_id`, oldest first,
/// paged; what a socket that reconnects missed (contract §4).
struct Sync;

#[async_trait]
impl EventHandler for Sync {
    async fn handle(&self, ctx: EventCtx<'_>, data: Option<Value>) -> Result<Value, AppError> {
        let me = &ctx.session.session.user.id;
        let kind = ctx.state.auth().store().id_kind();
        let req = chat::sync::SyncRequest::parse(data.as_ref())?;
        let page = chat::sync::after(ctx.state.db(), me, req.after_id, req.limit).await?;
        let messages: Vec<Value> = page
            .messages
            .iter()
            .map(|m| chat::message_json(m, kind))
            .collect();
        Ok(serde_json::json!({ "ok": true, "messages": messages, "more": page.more }))
    }
}

fn user_ids(data: Option<&Value>, kind: IdKind) -> Result<Vec<UserId>, AppError> {
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
        .map(|v| chat::parse_user_id(Some(v), "userIds[]", kind))
        .collect()
}

fn presence_rooms(ids: &[UserId]) -> Vec<String> {
    ids.iter().map(rooms::presence).collect()
}

/// `presence:subscribe {userIds}`: join their presence rooms; ack those online now.
struct PresenceSubscribe;

#[async_trait]
impl EventHandler for PresenceSubscribe {
    async fn handle(&self, ctx: EventCtx<'_>, data: Option<Value>) -> Result<Value, AppError> {
        let ids = user_ids(data.as_ref(), ctx.state.auth().store().id_kind())?;
        ctx.socket.join(presence_rooms(&ids));
        let online = ctx
            .state
            .presence()
            .online_of(&ids)
            .await
            .map_err(|e| AppError::internal(e.context("presence lookup failed")))?;
        Ok(serde_json::json!({ "ok": true, "online": online }))
    }
}

struct PresenceUnsubscribe;

#[async_trait]
impl EventHandler for PresenceUnsubscribe {
    async fn handle(&self, ctx: EventCtx<'_>, data: Option<Value>) -> Result<Value, AppError> {
        let ids = user_ids(data.as_ref(), ctx.state.auth().store().id_kind())?;
        ctx.socket.leave(presence_rooms(&ids));
        Ok(serde_json::json!({ "ok": true }))
    }
}

/// `auth:refresh {token}`: switch this socket to a newer token of the same user, keeping the
/// connection. Authenticated like a handshake (log line, metrics); on failure the socket keeps
/// its old token.
struct Refresh;

#[async_trait]
impl EventHandler for Refresh {
    async fn handle(&self, ctx: EventCtx<'_>, data: Option<Value>) -> Result<Value, AppError> {
        let result = refresh(&ctx, data).await;
        if let Err(e) = &result {
            tracing::info!(sid = %ctx.socket.id(), code = %e.code, "auth:refresh refused");
        }
        result
    }
}

async fn refresh(ctx: &EventCtx<'_>, data: Option<Value>) -> Result<Value, AppError> {
    if data
        .as_ref()
        .and_then(|d| d.get("token"))
        .and_then(Value::as_str)
        .is_none_or(|t| t.trim().is_empty())
    {
        return Err(AppError::bad_request(
            "auth:refresh needs {token: \"<jwt>\"}",
        ));
    }
    let current: &SocketSession = ctx.session;
    let transport = match current.info.transport.as_str() {
        "polling" => crate::auth::Transport::Polling,
        _ => crate::auth::Transport::WebSocket,
    };
    let session = ctx
        .state
        .auth()
        .authenticate(&AuthRequest {
            purpose: Purpose::Refresh,
            transport,
            sources: &[TokenSource::Auth],
            parts: ctx.parts,
            auth_payload: data.as_ref(),
        })
        .await?;
    if session.user.id != current.session.user.id {
        return Err(AppError::with_message(
            ErrorCode::Forbidden,
            "auth:refresh must use a token of the same user; reconnect to switch users",
        ));
    }
    ctx.socket
        .leave(vec![rooms::token(&current.session.token_hash)]);
    ctx.socket.join(vec![rooms::token(&session.token_hash)]);
    ctx.socket.schedule_expiry(session.expires_at);
    let expires_at = session.expires_at;
    ctx.socket.set_session(SocketSession {
        session,
        info: current.info.clone(),
    });
    Ok(serde_json::json!({ "ok": true, "expiresAt": crate::clock::iso(expires_at) }))
}
