//! Socket.IO on `/im`: the handshake middleware, connection lifecycle, events, kicks.
//!
//! Owns everything that touches a socket. HTTP reaches sockets only through [`Hub`], an
//! object-safe handle over `SocketIo<A>`, so routes do not care which adapter runs.
//! Never calls into `http`.

pub mod connect;
pub mod events;
pub mod expiry;
pub mod rooms;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::Serialize;
use socketioxide::adapter::Adapter;
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{SocketIo, SocketIoBuilder};

use crate::auth::Session;
use crate::error::ErrorCode;
use crate::state::AppState;

pub const NAMESPACE: &str = "/im";

/// What we keep about each authenticated socket (in its extensions).
#[derive(Clone, Debug)]
pub struct SocketSession {
    pub session: Session,
    pub info: SocketInfo,
}

#[derive(Clone, Debug, Serialize)]
pub struct SocketInfo {
    pub id: String,
    #[serde(serialize_with = "ser_iso")]
    pub connected_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub transport: &'static str,
}

fn ser_iso<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::clock::iso(*t))
}

/// Realtime operations the HTTP side needs, independent of the adapter type.
pub trait Hub: Send + Sync + 'static {
    /// Send `error {code}` to every socket that authenticated with one of these tokens, then
    /// disconnect them. Returns how many sockets were kicked.
    fn kick_tokens(&self, token_hashes: Vec<String>, code: ErrorCode) -> BoxFuture<'static, usize>;
    /// Sockets currently using this token.
    fn token_sockets(&self, token_hash: String) -> BoxFuture<'static, Vec<SocketInfo>>;
    /// Close every connection (graceful shutdown).
    fn close(&self) -> BoxFuture<'static, ()>;
}

struct SocketHub<A: Adapter> {
    io: SocketIo<A>,
    state: AppState,
}

impl<A: Adapter> Hub for SocketHub<A> {
    fn kick_tokens(&self, token_hashes: Vec<String>, code: ErrorCode) -> BoxFuture<'static, usize> {
        let io = self.io.clone();
        let state = self.state.clone();
        Box::pin(async move {
            let Some(ns) = io.of(NAMESPACE) else { return 0 };
            let rooms: Vec<String> = token_hashes.iter().map(|h| rooms::token(h)).collect();
            if rooms.is_empty() {
                return 0;
            }
            let sockets = match ns.clone().within(rooms.clone()).fetch_sockets().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list sockets to kick; kicking blind");
                    vec![]
                }
            };
            let err = crate::error::AppError::new(code);
            if let Err(e) = ns
                .clone()
                .within(rooms.clone())
                .emit("error", &err.to_event())
                .await
            {
                tracing::warn!(error = %e, code = %code, "kick: could not emit error event");
            }
            if let Err(e) = ns.within(rooms).disconnect().await {
                tracing::warn!(error = %e, code = %code, "kick: could not disconnect sockets");
            }
            state.metrics().kick(code.as_str(), sockets.len() as u64);
            sockets.len()
        })
    }

    fn token_sockets(&self, token_hash: String) -> BoxFuture<'static, Vec<SocketInfo>> {
        let io = self.io.clone();
        Box::pin(async move {
            let Some(ns) = io.of(NAMESPACE) else {
                return vec![];
            };
            ns.within(rooms::token(&token_hash))
                .sockets()
                .into_iter()
                .filter_map(|s| s.extensions.get::<SocketSession>().map(|ss| ss.info))
                .collect()
        })
    }

    fn close(&self) -> BoxFuture<'static, ()> {
        let io = self.io.clone();
        Box::pin(async move { io.close().await })
    }
}

/// Build socketioxide with our settings and state and register `/im`.
pub async fn build(state: AppState) -> anyhow::Result<SocketIoLayer> {
    let (expiry, expiry_rx) = expiry::channel();
    let (layer, io) = configure(SocketIo::builder(), &state)
        .with_state(expiry)
        .build_layer();
    expiry::spawn(io.clone(), state.clone(), expiry_rx);
    set_hub(&io, &state);
    // socket.io-client 2.x (Engine.IO v3) connects to `/` first; without it the session fails.
    io.ns("/", async || {});
    io.ns(NAMESPACE, connect::on_connect.with(connect::handshake));
    Ok(layer)
}

fn configure<A: Adapter>(builder: SocketIoBuilder<A>, state: &AppState) -> SocketIoBuilder<A> {
    let s = &state.settings().socketio;
    builder
        .ping_interval(Duration::from_millis(s.ping_interval_ms))
        .ping_timeout(Duration::from_millis(s.ping_timeout_ms))
        .connect_timeout(Duration::from_millis(s.connect_timeout_ms))
        .max_payload(s.max_payload_bytes)
        // max_payload only bounds long-polling; WebSocket messages need their own cap.
        .ws_max_message_size(s.max_payload_bytes as usize)
        .ws_max_frame_size(s.max_payload_bytes as usize)
        .with_state(state.clone())
}

fn set_hub<A: Adapter>(io: &SocketIo<A>, state: &AppState) {
    state.set_hub(Arc::new(SocketHub {
        io: io.clone(),
        state: state.clone(),
    }));
}
