//! The events an authenticated `/im` socket handles: one [`Events`] registry, names (and
//! [`Pattern`]s) to [`EventHandler`]s, plus optional [`Lifecycle`] hooks around a socket's
//! life. The built-in events ([`builtin`]) are registered in it like any other, and so are an
//! embedding crate's own handlers and the bridge to an app's backend (`crate::bridge`).
//!
//! Each socket registers one socketioxide fallback that dispatches by name, so a socket costs
//! one handler slot however many events exist. An exact name always wins over a pattern, so a
//! built-in event is never handed to a `"*"` handler. Payloads are read with `TryData`, so a
//! malformed one becomes an ack `{ok:false, code:"BAD_REQUEST"}`, never a panic or a closed
//! socket; an unregistered event gets the same ack and the socket stays open. Handlers that
//! say [`EventHandler::ordered`] run one at a time per socket, in arrival order ([`lane`]).

pub mod builtin;
pub mod lane;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Event, SocketRef, State, TryData};

use super::emit::{self, Publication};
use super::expiry::ExpiryHandle;
use super::{NAMESPACE, SocketSession};
use crate::auth::{Session, Transport};
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
    /// Emit an application event on every node, as `/api/publish` does; without a target to
    /// this socket alone; `except_self` leaves this socket out.
    fn publish(&self, p: Publication, except_self: bool) -> BoxFuture<'static, Result<(), String>>;
    /// `error {code, message}`, then disconnect this socket (counted in `im_kicks_total`),
    /// once this event's ack has been sent.
    fn kick(&self, error: &AppError);
}

/// One event being handled.
pub struct EventCtx<'a> {
    pub state: &'a AppState,
    /// The socket's handshake request (client address, headers).
    pub parts: &'a http::request::Parts,
    pub socket: &'a dyn SocketHandle,
    pub session: &'a SocketSession,
    pub event: &'a str,
    /// Every argument as the client sent it (without the ack callback); `data` is the first.
    pub args: &'a [Value],
}

/// A handler of one client event. The returned value is the ack (an `Err` becomes
/// `{ok:false, code, message}`); an event sent without an ack is handled all the same.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    async fn handle(&self, ctx: EventCtx<'_>, data: Option<Value>) -> Result<Value, AppError>;

    /// `true`: one socket's events for this handler run one at a time in the order sent, at
    /// most [`Events::queue_bound`] waiting (beyond, the ack is `RATE_LIMITED`).
    fn ordered(&self) -> bool {
        false
    }
}

/// A socket about to be accepted (authenticated, not yet told `connected`).
pub struct ConnectCtx<'a> {
    pub state: &'a AppState,
    pub parts: &'a http::request::Parts,
    pub session: &'a Session,
    pub socket_id: &'a str,
    pub transport: Transport,
    /// The handshake `auth` payload as sent (it may hold the token: never forward that).
    pub auth: Option<&'a Value>,
}

/// What a [`Lifecycle::on_connect`] adds to an accepted socket.
#[derive(Clone, Debug, Default)]
pub struct Admission {
    /// Rooms the socket joins (reserved prefixes are dropped, see [`super::rooms::reserved`]).
    pub join: Vec<String>,
    /// Sent to the client as `connected.app`.
    pub app: Option<Value>,
}

/// A socket that has left.
#[derive(Clone, Debug)]
pub struct Departure {
    pub user: crate::auth::User,
    pub socket_id: String,
    pub reason: String,
}

/// Hooks around a socket's life. `on_connect` runs in the handshake after authentication: an
/// `Err` refuses the connection exactly like a failed authentication (legacy `error` +
/// disconnect, or strict `connect_error`). `on_disconnect` runs in its own task.
#[async_trait]
pub trait Lifecycle: Send + Sync + 'static {
    async fn on_connect(&self, ctx: ConnectCtx<'_>) -> Result<Admission, AppError>;
    async fn on_disconnect(&self, gone: Departure);
}

/// Which event names a pattern handler takes: `"*"`, `"prefix:*"` or one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    Any,
    Prefix(String),
    Name(String),
}

impl Pattern {
    pub fn parse(p: &str) -> Pattern {
        match p.strip_suffix('*') {
            Some("") => Pattern::Any,
            Some(prefix) => Pattern::Prefix(prefix.to_string()),
            None => Pattern::Name(p.to_string()),
        }
    }

    pub fn matches(&self, event: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Prefix(p) => event.starts_with(p.as_str()),
            Pattern::Name(n) => n == event,
        }
    }
}

/// Event names (and patterns) to handlers; cloned cheaply into socketioxide's state.
#[derive(Clone)]
pub struct Events {
    handlers: Arc<BTreeMap<String, Arc<dyn EventHandler>>>,
    /// Tried in order when no exact name matches.
    patterns: Arc<Vec<(Pattern, Arc<dyn EventHandler>)>>,
    lifecycle: Option<Arc<dyn Lifecycle>>,
    queue_bound: u32,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            handlers: Arc::default(),
            patterns: Arc::default(),
            lifecycle: None,
            queue_bound: 64,
        }
    }
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

    /// Handle every event matching one of `patterns` that no exact name claims.
    pub fn on_matching<'p>(
        mut self,
        patterns: impl IntoIterator<Item = &'p str>,
        handler: impl EventHandler,
    ) -> Events {
        let handler: Arc<dyn EventHandler> = Arc::new(handler);
        let list = Arc::make_mut(&mut self.patterns);
        for p in patterns {
            list.push((Pattern::parse(p), handler.clone()));
        }
        self
    }

    /// Ask `hooks` about every authenticated connection and tell it of every departure.
    pub fn lifecycle(mut self, hooks: Arc<dyn Lifecycle>) -> Events {
        self.lifecycle = Some(hooks);
        self
    }

    /// At most this many ordered events of one socket wait (beyond, `RATE_LIMITED`).
    pub fn with_queue_bound(mut self, bound: u32) -> Events {
        self.queue_bound = bound.max(1);
        self
    }

    /// These events, then `other`'s (which win on a name both have; its patterns are tried
    /// after these, its hooks replace these).
    pub fn merge(mut self, other: Events) -> Events {
        let map = Arc::make_mut(&mut self.handlers);
        for (name, h) in other.handlers.iter() {
            map.insert(name.clone(), h.clone());
        }
        Arc::make_mut(&mut self.patterns).extend(other.patterns.iter().cloned());
        if other.lifecycle.is_some() {
            self.lifecycle = other.lifecycle;
        }
        self
    }

    /// The handler of `name`: its exact registration, else the first matching pattern.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn EventHandler>> {
        self.handlers.get(name).or_else(|| {
            self.patterns
                .iter()
                .find(|(p, _)| p.matches(name))
                .map(|(_, h)| h)
        })
    }

    pub fn hooks(&self) -> Option<&Arc<dyn Lifecycle>> {
        self.lifecycle.as_ref()
    }

    pub fn queue_bound(&self) -> u32 {
        self.queue_bound
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }
}

/// Every argument of an event as sent: deserialised as a tuple, so socketioxide hands over
/// all of them rather than the first.
pub struct Args(pub Vec<Value>);

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Args, D::Error> {
        struct All;
        impl<'de> Visitor<'de> for All {
            type Value = Args;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("event arguments")
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Args, S::Error> {
                let mut args = vec![];
                while let Some(v) = seq.next_element()? {
                    args.push(v);
                }
                Ok(Args(args))
            }
        }
        d.deserialize_tuple(usize::MAX, All)
    }
}

/// Registered once per authenticated socket.
pub fn register<A: Adapter>(s: &SocketRef<A>) {
    s.on_fallback(dispatch::<A>);
}

#[allow(clippy::too_many_arguments)]
async fn dispatch<A: Adapter>(
    s: SocketRef<A>,
    Event(event): Event,
    TryData(args): TryData<Args>,
    turn: lane::Turn,
    io: SocketIo<A>,
    State(state): State<AppState>,
    State(events): State<Events>,
    State(expiry): State<ExpiryHandle>,
    reply: AckSender<A>,
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
    // Our own events by name; an application's (bridged or embedded) under one label, so the
    // metric's label set stays bounded whatever names clients send.
    state
        .metrics()
        .event_in(if events.handlers.contains_key(&event) {
            &event
        } else {
            "app"
        });
    if let lane::Turn::Full(bound) = turn {
        ack(
            reply,
            Err(AppError::with_message(
                ErrorCode::RateLimited,
                format!(
                    "{bound} events of this socket are already waiting for the app's backend; slow down"
                ),
            )),
        );
        return;
    }
    let _turn = turn.wait().await;
    let Some(session) = s.extensions.get::<SocketSession>() else {
        ack(reply, Err(AppError::new(ErrorCode::Internal)));
        return;
    };
    let socket = Sock {
        s,
        io,
        expiry,
        metrics: state.metrics().clone(),
        kick: std::sync::Mutex::new(None),
    };
    let args = args.map(|a| a.0).unwrap_or_default();
    let ctx = EventCtx {
        state: &state,
        parts: socket.s.req_parts(),
        socket: &socket,
        session: &session,
        event: &event,
        args: &args,
    };
    let data = args.first().cloned();
    let result = handler.handle(ctx, data).await;
    if let Err(e) = &result {
        tracing::debug!(sid = %socket.s.id, event = %event.chars().take(64).collect::<String>(), code = %e.code, "event refused");
    }
    ack(reply, result);
    socket.kick_if_asked();
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
    io: SocketIo<A>,
    expiry: ExpiryHandle,
    metrics: crate::metrics::Metrics,
    /// A kick asked for while handling: done after the ack, so the client gets both.
    kick: std::sync::Mutex<Option<(ErrorCode, Value)>>,
}

impl<A: Adapter> Sock<A> {
    fn kick_if_asked(&self) {
        let Some((code, event)) = self.kick.lock().unwrap().take() else {
            return;
        };
        if self.s.emit("error", &event).is_ok() {
            self.metrics.event_out("error");
        }
        self.metrics.kick(code.as_str(), 1);
        let _ = self.s.clone().disconnect();
    }
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

    fn publish(&self, p: Publication, except_self: bool) -> BoxFuture<'static, Result<(), String>> {
        let Some(ns) = self.io.of(NAMESPACE) else {
            return Box::pin(async { Err("namespace /im is not registered".to_string()) });
        };
        let op = emit::from_socket(&self.s, ns, p.target.as_ref(), except_self);
        let metrics = self.metrics.clone();
        Box::pin(async move { emit::emit(op, &p.event, &p.data, &metrics).await })
    }
    fn kick(&self, error: &AppError) {
        *self.kick.lock().unwrap() = Some((error.code, error.to_event()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(&'static str);

    #[async_trait]
    impl EventHandler for Named {
        async fn handle(&self, _: EventCtx<'_>, _: Option<Value>) -> Result<Value, AppError> {
            Ok(Value::String(self.0.into()))
        }
    }

    fn which(events: &Events, name: &str) -> Option<usize> {
        let h = events.get(name)?;
        // Identify the handler by address among the registered ones.
        let all: Vec<&Arc<dyn EventHandler>> = events
            .handlers
            .values()
            .chain(events.patterns.iter().map(|(_, h)| h))
            .collect();
        all.iter().position(|x| Arc::ptr_eq(x, h))
    }

    #[test]
    fn exact_names_win_over_patterns_and_patterns_go_in_order() {
        let events = Events::default()
            .on("send_message", Named("builtin"))
            .on_matching(["chat:*", "joinRoom"], Named("bridge-a"))
            .on_matching(["*"], Named("bridge-any"));
        assert_eq!(which(&events, "send_message"), Some(0));
        assert_eq!(which(&events, "chat:send"), Some(1));
        assert_eq!(
            which(&events, "joinRoom"),
            Some(1),
            "one handler for both patterns"
        );
        assert_eq!(
            which(&events, "joinRoomX"),
            Some(3),
            "a name is not a prefix"
        );
        assert_eq!(which(&events, "other"), Some(3));
        assert!(
            Events::default()
                .on_matching(["chat:*"], Named("x"))
                .get("chat")
                .is_none()
        );
    }

    #[test]
    fn patterns_parse() {
        assert_eq!(Pattern::parse("*"), Pattern::Any);
        assert_eq!(Pattern::parse("chat:*"), Pattern::Prefix("chat:".into()));
        assert_eq!(Pattern::parse("joinRoom"), Pattern::Name("joinRoom".into()));
    }
}
