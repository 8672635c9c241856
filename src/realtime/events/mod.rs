//! The events an authenticated `/im` socket handles: one [`Events`] registry, names to
//! [`EventHandler`]s. The built-in events ([`builtin`]) are registered in it like any other,
//! and so are an embedding crate's own handlers and (next) the bridge to an app's backend.
//!
//! Each socket registers one socketioxide fallback that dispatches by name, so a socket costs
//! one handler slot however many events exist. Payloads are read with `TryData`, so a malformed
//! one becomes an ack `{ok:false, code:"BAD_REQUEST"}`, never a panic or a closed socket; an
//! unregistered event gets the same ack and the socket stays open.

pub mod builtin;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde_json::Value;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Event, SocketRef, State, TryData};

use super::SocketSession;
use super::emit;
use super::expiry::ExpiryHandle;
use crate::error::{AppError, ErrorCode};
use crate::state::AppState;

/// What a handler may do with the socket that sent the event, whatever the adapter.
pub trait SocketHandle: Send + Sync {
    fn id(&self) -> String;
    /// The rooms this socket is in (on this node).
    fn rooms(&self) -> Vec<String>;
    fn join(&self, rooms: Vec<String>);
    fn leave(&self, rooms: Vec<String>);
    /// Replace the socket's session (after `auth:refresh`).
    fn set_session(&self, session: SocketSession);
    /// Re-arm the socket's expiry timers.
    fn schedule_expiry(&self, expires_at: DateTime<Utc>);
    /// Emit to every socket in `rooms` on every node, except this one.
    fn broadcast(
        &self,
        rooms: Vec<String>,
        event: String,
        data: Value,
    ) -> BoxFuture<'static, Result<(), String>>;
}

/// One event being handled.
pub struct EventCtx<'a> {
    pub state: &'a AppState,
    /// The socket's handshake request (client address, headers).
    pub parts: &'a http::request::Parts,
    pub socket: &'a dyn SocketHandle,
    pub session: &'a SocketSession,
    pub event: &'a str,
}

/// A handler of one client event. The returned value is the ack (an `Err` becomes
/// `{ok:false, code, message}`); an event sent without an ack is handled all the same.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    async fn handle(&self, ctx: EventCtx<'_>, data: Option<Value>) -> Result<Value, AppError>;
}

/// Event names to handlers; cloned cheaply into socketioxide's state.
#[derive(Clone, Default)]
pub struct Events {
    handlers: Arc<BTreeMap<String, Arc<dyn EventHandler>>>,
}

impl Events {
    /// The built-in events of contract §4.
    pub fn builtin() -> Events {
        builtin::register(Events::default())
    }

    /// Handle `name` with `handler` (replacing a handler of the same name).
    pub fn on(mut self, name: impl Into<String>, handler: impl EventHandler) -> Events {
        Arc::make_mut(&mut self.handlers).insert(name.into(), Arc::new(handler));
        self
    }

    /// These events, then `other`'s (which win on a name both have).
    pub fn merge(mut self, other: Events) -> Events {
        let map = Arc::make_mut(&mut self.handlers);
        for (name, h) in other.handlers.iter() {
            map.insert(name.clone(), h.clone());
        }
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn EventHandler>> {
        self.handlers.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }
}

/// Registered once per authenticated socket.
pub fn register<A: Adapter>(s: &SocketRef<A>) {
    s.on_fallback(dispatch::<A>);
}

async fn dispatch<A: Adapter>(
    s: SocketRef<A>,
    Event(event): Event,
    TryData(data): TryData<Value>,
    reply: AckSender<A>,
    State(state): State<AppState>,
    State(events): State<Events>,
    State(expiry): State<ExpiryHandle>,
) {
    // Contract §11: over the socket's rate the event is not carried out; the socket stays.
    if let Some(budget) = s.extensions.get::<crate::limits::EventBudget>()
        && !budget.spend()
    {
        ack(
            reply,
            Err(AppError::with_message(
                ErrorCode::RateLimited,
                "Too many events on this socket: slow down (limits.events_per_socket_per_second).",
            )),
        );
        return;
    }
    let Some(handler) = events.get(&event).cloned() else {
        state.metrics().event_in("unknown");
        ack(
            reply,
            Err(AppError::bad_request(format!(
                "unknown event {:?}",
                event.chars().take(64).collect::<String>()
            ))),
        );
        return;
    };
    state.metrics().event_in(&event);
    let Some(session) = s.extensions.get::<SocketSession>() else {
        ack(reply, Err(AppError::new(ErrorCode::Internal)));
        return;
    };
    let socket = Sock {
        s,
        expiry,
        metrics: state.metrics().clone(),
    };
    let ctx = EventCtx {
        state: &state,
        parts: socket.s.req_parts(),
        socket: &socket,
        session: &session,
        event: &event,
    };
    let result = handler.handle(ctx, data.ok()).await;
    if let Err(e) = &result {
        tracing::debug!(sid = %socket.s.id, event = %event.chars().take(64).collect::<String>(), code = %e.code, "event refused");
    }
    ack(reply, result);
}

fn ack<A: Adapter>(ack: AckSender<A>, result: Result<Value, AppError>) {
    let body = match result {
        Ok(v) => v,
        Err(e) => e.to_ack(),
    };
    let _ = ack.send(&body);
}

/// A socketioxide socket as a [`SocketHandle`].
struct Sock<A: Adapter> {
    s: SocketRef<A>,
    expiry: ExpiryHandle,
    metrics: crate::metrics::Metrics,
}

impl<A: Adapter> SocketHandle for Sock<A> {
    fn id(&self) -> String {
        self.s.id.to_string()
    }
    fn rooms(&self) -> Vec<String> {
        self.s.rooms().into_iter().map(|r| r.to_string()).collect()
    }
    fn join(&self, rooms: Vec<String>) {
        self.s.join(rooms);
    }
    fn leave(&self, rooms: Vec<String>) {
        self.s.leave(rooms);
    }
    fn set_session(&self, session: SocketSession) {
        self.s.extensions.insert(session);
    }
    fn schedule_expiry(&self, expires_at: DateTime<Utc>) {
        self.expiry.schedule(self.s.id, expires_at);
    }
    fn broadcast(
        &self,
        rooms: Vec<String>,
        event: String,
        data: Value,
    ) -> BoxFuture<'static, Result<(), String>> {
        let op = self.s.to(rooms);
        let metrics = self.metrics.clone();
        Box::pin(async move { emit::emit(op, &event, &data, &metrics).await })
    }
}
