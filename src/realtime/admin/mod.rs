//! The Socket.IO Admin UI (contract §13): the server side of `@socket.io/admin-ui` on the
//! `/admin` namespace (the UI's page is `http::admin_ui`, its settings `config::admin`, the
//! `admin hash-password` command `cli::admin`).
//!
//! socketioxide has no `instrument()`, so this module speaks the protocol itself:
//! - [`auth`]: the UI's login (`{username, password}` or `{sessionId}`), rate-limited with
//!   `/auth/login`.
//! - on connect: `session`, `config {supportedFeatures}`, this node's `server_stats`, and
//!   `all_sockets` of every node ([`cluster`] asks the others over Redis).
//! - [`feed`]: every 2 s, while an admin is connected anywhere, each node compares its `/im`
//!   sockets with the previous tick and broadcasts `socket_connected` / `socket_updated` /
//!   `socket_disconnected` / `room_joined` / `room_left` and its `server_stats` to `/admin`
//!   (the adapter carries them to every node's admins). The `/im` hot path stays untouched.
//! - `_disconnect` (unless `[admin] readonly`): the hub's
//!   [`kick_socket`](crate::realtime::Hub::kick_socket) sends the `/im` socket
//!   `error {code:"FORBIDDEN"}`, then disconnects it, on whichever node it is.
//!
//! Events with message content (`event_received` / `event_sent`) are never sent: the UI is
//! for operators, not for reading users' messages.

pub mod auth;
pub mod cluster;
pub mod feed;
pub mod snapshot;

use std::sync::Arc;

use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide_core::adapter::DefinedAdapter;

use crate::error::{AppError, ErrorCode};
use crate::realtime::Hub;
use crate::realtime::redis_driver::CmDriver;
use crate::state::AppState;

pub const NAMESPACE: &str = "/admin";

/// What a socket disconnected from the Admin UI is told.
pub const OPERATOR_MESSAGE: &str =
    "an operator disconnected this socket from the Admin UI; reconnect if you still need it";

/// What every `/admin` handler shares.
pub struct Ctx<A: Adapter> {
    pub io: SocketIo<A>,
    pub state: AppState,
    /// Disconnects go through the hub, like every kick.
    pub hub: Arc<dyn Hub>,
    /// With Redis: how [`cluster`] reaches the other nodes.
    pub bus: Option<CmDriver>,
    /// The `/im` sockets of this node the admins were told about (see [`feed`]).
    pub known: feed::Known,
    /// Whether an admin is connected anywhere (else the feed rests).
    pub watch: feed::Watch,
}

impl<A: Adapter> Ctx<A> {
    fn readonly(&self) -> bool {
        self.state.settings().admin.readonly
    }

    /// The UI's `config.supportedFeatures`: `ALL_EVENTS` makes it show sockets, rooms and
    /// clients; `DISCONNECT` shows the disconnect buttons.
    fn features(&self) -> Vec<&'static str> {
        let mut f = vec![];
        if !self.readonly() {
            f.push("DISCONNECT");
        }
        f.extend(["AGGREGATED_EVENTS", "ALL_EVENTS"]);
        f
    }
}

/// Register `/admin` on `io` when `[admin]` has credentials (else the namespace does not
/// exist). Returns the adapter's init result: with Redis it must be awaited.
pub fn register<A: Adapter + DefinedAdapter>(
    io: &SocketIo<A>,
    state: &AppState,
    hub: Arc<dyn Hub>,
    bus: Option<CmDriver>,
) -> Option<A::InitRes> {
    if !state.settings().admin.enabled() {
        return None;
    }
    let ctx = Arc::new(Ctx {
        io: io.clone(),
        state: state.clone(),
        hub,
        bus,
        known: Default::default(),
        watch: Default::default(),
    });
    if ctx.bus.is_some() {
        cluster::spawn_responder(ctx.clone());
    }
    feed::spawn(ctx.clone());
    let mw_state = state.clone();
    let middleware = move |s: SocketRef<A>, TryData(auth): TryData<Value>| {
        let state = mw_state.clone();
        async move {
            let login = auth::check(&state, s.req_parts(), auth.ok().as_ref()).await?;
            s.extensions.insert(login);
            Ok::<(), AppError>(())
        }
    };
    let handler = move |s: SocketRef<A>| {
        let ctx = ctx.clone();
        async move { on_connect(ctx, s).await }
    };
    Some(io.ns(NAMESPACE, handler.with(middleware)))
}

async fn on_connect<A: Adapter>(ctx: Arc<Ctx<A>>, s: SocketRef<A>) {
    if let Some(auth::Login::Credentials { session_id }) = s.extensions.remove::<auth::Login>() {
        let _ = s.emit("session", &session_id);
    }
    let c = ctx.clone();
    s.on(
        "_disconnect",
        move |s: SocketRef<A>,
              TryData(args): TryData<(String, bool, Option<String>)>,
              ack: AckSender<A>| {
            let ctx = c.clone();
            async move {
                let reply = match disconnect_request(&ctx, &s, args.ok()).await {
                    Ok(v) => v,
                    Err(e) => e.to_ack(),
                };
                let _ = ack.send(&reply);
            }
        },
    );
    // Offered by the Node server but not here: answered, never silently ignored.
    for event in ["emit", "join", "leave"] {
        s.on(event, move |ack: AckSender<A>| async move {
            let e = AppError::with_message(
                ErrorCode::Forbidden,
                format!("`{event}` is not offered by im-server's Admin UI"),
            );
            let _ = ack.send(&e.to_ack());
        });
    }
    let _ = s.emit("config", &json!({ "supportedFeatures": ctx.features() }));
    let _ = s.emit(
        "server_stats",
        &snapshot::server_stats(&ctx.io, &ctx.state, vec![]),
    );
    let sockets = cluster::all_sockets(&ctx).await;
    let _ = s.emit("all_sockets", &sockets);
}

/// `_disconnect(nsp, close, socketId)` from the UI's disconnect buttons.
async fn disconnect_request<A: Adapter>(
    ctx: &Ctx<A>,
    admin: &SocketRef<A>,
    args: Option<(String, bool, Option<String>)>,
) -> Result<Value, AppError> {
    if ctx.readonly() {
        return Err(AppError::with_message(
            ErrorCode::Forbidden,
            "the Admin UI is read-only here; set [admin] readonly = false to allow disconnects",
        ));
    }
    let Some((nsp, _close, target)) = args else {
        return Err(AppError::bad_request(
            "_disconnect takes (namespace, close, socket id)",
        ));
    };
    if nsp != crate::realtime::NAMESPACE {
        return Err(AppError::bad_request(format!(
            "only {} sockets can be disconnected from the Admin UI",
            crate::realtime::NAMESPACE
        )));
    }
    let Some(sid) = target.as_deref().and_then(|t| t.parse().ok()) else {
        return Err(AppError::bad_request(
            "name one socket id to disconnect; whole namespaces and rooms are not offered",
        ));
    };
    let why = AppError::with_message(ErrorCode::Forbidden, OPERATOR_MESSAGE);
    let found = ctx.hub.kick_socket(sid, why).await;
    tracing::info!(admin_socket = %admin.id, target = %sid, found, "admin UI disconnected a socket");
    Ok(json!({ "ok": true, "disconnected": usize::from(found) }))
}
