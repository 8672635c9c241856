//! The bridge (contract §10): an app's own client events (`chat:send`, `joinRoom`…) are POSTed
//! to its backend, signed, and the answer is carried out — `ack` to the client, `emit` on `/im`
//! across nodes through the same [`Publication`] as `/api/publish`, `join` / `leave` of the
//! calling socket, `disconnect` with a code. Optionally the backend is asked about every
//! authenticated connection (`on_connect`, fail closed) and told of every departure
//! (`on_disconnect`, at most 3 tries).
//!
//! It is one [`EventHandler`] (for the configured patterns; built-in names always win) and one
//! [`Lifecycle`] in the [`Events`] registry: the same extension point an embedding crate uses.
//! Its events are [`EventHandler::ordered`]: one socket's reach the backend one at a time, in
//! the order sent, at most `queue_per_socket` waiting.

pub mod call;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::auth::User;
use crate::config::{BridgeSettings, ConfigError};
use crate::error::AppError;
use crate::metrics::Metrics;
use crate::realtime::emit::Publication;
use crate::realtime::events::{
    Admission, ConnectCtx, Departure, EventCtx, EventHandler, Events, Lifecycle,
};
use crate::realtime::rooms;
use call::{Caller, Reply};

/// How many times `on_disconnect` is tried in all while the backend fails, and the first pause.
const DISCONNECT_TRIES: u32 = 3;
const DISCONNECT_BACKOFF: Duration = Duration::from_millis(200);

#[derive(Clone)]
pub struct Bridge {
    caller: Arc<Caller>,
    settings: Arc<BridgeSettings>,
}

impl Bridge {
    /// The bridge `settings` describe, or `None` when `bridge.url` is unset.
    pub fn from_settings(
        settings: &BridgeSettings,
        node_id: &str,
        metrics: &Metrics,
    ) -> Result<Option<Bridge>, ConfigError> {
        let Some(url) = &settings.url else {
            return Ok(None);
        };
        let url = reqwest::Url::parse(url)
            .map_err(|e| ConfigError::new("bridge.url", format!("not a URL: {e}")))?;
        let caller = Caller::new(
            url,
            settings.secret.clone().filter(|s| !s.expose().is_empty()),
            node_id.to_string(),
            Duration::from_millis(settings.timeout_ms),
            metrics.clone(),
        )
        .map_err(|e| ConfigError::new("bridge.url", format!("HTTP client: {e}")))?;
        if caller.secret.is_none() {
            tracing::warn!(
                "bridge.secret is not set: bridge calls are not signed (refused in production)"
            );
        }
        Ok(Some(Bridge {
            caller: Arc::new(caller),
            settings: Arc::new(settings.clone()),
        }))
    }

    /// `events` with this bridge taking the configured event patterns (and the lifecycle hooks
    /// when `on_connect` / `on_disconnect` ask for them).
    pub fn register(self, events: Events) -> Events {
        let patterns: Vec<String> = self.settings.events.clone();
        let mut events = events
            .on_matching(patterns.iter().map(String::as_str), self.clone())
            .with_queue_bound(self.settings.queue_per_socket);
        if self.settings.on_connect || self.settings.on_disconnect {
            events = events.lifecycle(Arc::new(self));
        }
        events
    }

    fn base(&self, kind: &str, user: &User, socket_id: &str) -> Value {
        json!({
            "type": kind,
            "user": {
                "id": user.id,
                "username": user.username,
                "user_type": user.user_type,
                "display_name": user.display_name,
            },
            "socket_id": socket_id,
            "node_id": self.caller.node_id,
        })
    }
}

#[async_trait]
impl EventHandler for Bridge {
    async fn handle(&self, ctx: EventCtx<'_>, _data: Option<Value>) -> Result<Value, AppError> {
        let mut body = self.base("event", &ctx.session.session.user, &ctx.socket.id());
        body["event"] = json!(ctx.event);
        body["args"] = json!(ctx.args);
        // The token room names a session: not the backend's business.
        let rooms: Vec<String> = ctx
            .socket
            .rooms()
            .into_iter()
            .filter(|r| !r.starts_with("token:"))
            .collect();
        body["rooms"] = json!(rooms);
        let reply = self.caller.call("event", Some(ctx.event), &body).await?;
        carry_out(&ctx, reply).await
    }

    fn ordered(&self) -> bool {
        true
    }
}

/// `leave`, `join`, then the emits, then the ack; a `disconnect` follows the ack.
async fn carry_out(ctx: &EventCtx<'_>, reply: Reply) -> Result<Value, AppError> {
    let leave = rooms::app_rooms(reply.leave);
    if !leave.is_empty() {
        ctx.socket.leave(leave);
    }
    let join = rooms::app_rooms(reply.join);
    if !join.is_empty() {
        ctx.socket.join(join);
    }
    for e in reply.emit {
        match Publication::new(&e.event, e.data, &e.targets, true) {
            Ok(p) => {
                let _ = ctx.socket.publish(p, e.except_sender).await;
            }
            Err(why) => {
                tracing::warn!(event = %ctx.event.chars().take(64).collect::<String>(), %why, "bridge reply: an emit was skipped")
            }
        }
    }
    if let Some(refusal) = reply.disconnect {
        ctx.socket.kick(&refusal.to_error());
    }
    Ok(reply.ack.unwrap_or_else(|| json!({ "ok": true })))
}

#[async_trait]
impl Lifecycle for Bridge {
    async fn on_connect(&self, ctx: ConnectCtx<'_>) -> Result<Admission, AppError> {
        if !self.settings.on_connect {
            return Ok(Admission::default());
        }
        let mut auth = ctx.auth.cloned().unwrap_or(Value::Null);
        if let Some(map) = auth.as_object_mut() {
            map.remove("token");
        }
        let parts = ctx.parts;
        let mut body = self.base("connect", &ctx.session.user, ctx.socket_id);
        body["handshake"] = json!({
            "address": crate::net::client_ip(parts, &ctx.state.settings().server.trust_proxy)
                .map(|ip| ip.to_string()),
            "user_agent": crate::net::header(parts, "user-agent"),
            "origin": crate::net::header(parts, "origin"),
            "transport": ctx.transport.as_str(),
            "auth": auth,
        });
        let reply = self.caller.call("connect", None, &body).await?;
        if let Some(refusal) = reply.disconnect {
            return Err(refusal.to_error());
        }
        Ok(Admission {
            join: reply.join,
            app: reply.data,
        })
    }

    async fn on_disconnect(&self, gone: Departure) {
        if !self.settings.on_disconnect {
            return;
        }
        let mut body = self.base("disconnect", &gone.user, &gone.socket_id);
        body["reason"] = json!(gone.reason);
        let mut pause = DISCONNECT_BACKOFF;
        for attempt in 1..=DISCONNECT_TRIES {
            match self.caller.call("disconnect", None, &body).await {
                Err(e) if e.code == crate::error::ErrorCode::BackendUnavailable => {
                    if attempt < DISCONNECT_TRIES {
                        tokio::time::sleep(pause).await;
                        pause *= 2;
                    }
                }
                // An answer (even a 4xx) is an answer: nothing to retry.
                _ => return,
            }
        }
    }
}
