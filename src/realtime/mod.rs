//! Socket.IO on `/im`: the handshake middleware, connection lifecycle, events, kicks.
//!
//! Owns everything that touches a socket. HTTP reaches sockets only through [`Hub`], an
//! object-safe handle over `SocketIo<A>`, so routes do not care which adapter runs.
//! Never calls into `http`.

pub mod connect;
pub mod delivery;
pub mod events;
pub mod expiry;
pub mod redis_driver;
pub mod rooms;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;
use socketioxide::adapter::Adapter;
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::operators::BroadcastOperators;
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

impl SocketSession {
    /// What presence records about this socket.
    pub fn presence_entry(&self) -> crate::presence::SocketEntry {
        crate::presence::SocketEntry {
            user_id: self.session.user.id,
            token_hash: self.session.token_hash.clone(),
            info: self.info.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct SocketInfo {
    pub id: String,
    #[serde(serialize_with = "ser_iso")]
    pub connected_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub transport: String,
}

fn ser_iso<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::clock::iso(*t))
}

/// Who a server publish goes to.
pub enum Target {
    Everyone,
    Rooms(Vec<String>),
}

/// Realtime operations the HTTP side needs, independent of the adapter type.
pub trait Hub: Send + Sync + 'static {
    /// Send `error {code}` to every socket that authenticated with one of these tokens, then
    /// disconnect them. Returns how many sockets were kicked.
    fn kick_tokens(&self, token_hashes: Vec<String>, code: ErrorCode) -> BoxFuture<'static, usize>;
    /// Sockets currently using this token.
    fn token_sockets(&self, token_hash: String) -> BoxFuture<'static, Vec<SocketInfo>>;
    /// Emit `event` on `/im` to every socket of the target, on every node; returns how many
    /// sockets that was.
    fn publish(
        &self,
        target: Target,
        event: String,
        data: Value,
    ) -> BoxFuture<'static, Result<usize, String>>;
    /// Close every connection (graceful shutdown).
    fn close(&self) -> BoxFuture<'static, ()>;
}

struct SocketHub<A: Adapter> {
    io: SocketIo<A>,
    state: AppState,
    /// With Redis: where revocations are announced so every node drops its cached auth.
    revocations: Option<redis_driver::CmDriver>,
}

/// The Redis channel that carries revoked token hashes between nodes.
const REVOCATIONS: &str = "im:revoked";

impl<A: Adapter> Hub for SocketHub<A> {
    fn kick_tokens(&self, token_hashes: Vec<String>, code: ErrorCode) -> BoxFuture<'static, usize> {
        let io = self.io.clone();
        let state = self.state.clone();
        let revocations = self.revocations.clone();
        Box::pin(async move {
            // Forget cached auth first, here and on every node, so no new handshake with these
            // tokens can be accepted from a cache after the kick.
            state.auth_cache().invalidate(&token_hashes);
            if let Some(bus) = revocations {
                use socketioxide_redis::drivers::Driver;
                let payload = serde_json::to_vec(&token_hashes).unwrap_or_default();
                if let Err(e) = bus.publish(REVOCATIONS.into(), payload).await {
                    tracing::warn!(error = %e, "could not announce a revocation to other nodes");
                }
            }
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
        let presence = self.state.presence().clone();
        let io = self.io.clone();
        Box::pin(async move {
            let mut list = presence.token_sockets(&token_hash).await.unwrap_or_else(|e| {
                tracing::warn!(error = %format!("{e:#}"), "presence: cannot list a token's sockets");
                vec![]
            });
            // Sockets of this node answer with their live transport (a polling socket may have
            // upgraded since it was recorded; other nodes refresh theirs on each tick).
            if let Some(ns) = io.of(NAMESPACE) {
                for info in &mut list {
                    if let Some(s) = info.id.parse().ok().and_then(|sid| ns.get_socket(sid)) {
                        info.transport = connect::transport_of(&s).as_str().to_string();
                    }
                }
            }
            list
        })
    }

    fn publish(
        &self,
        target: Target,
        event: String,
        data: Value,
    ) -> BoxFuture<'static, Result<usize, String>> {
        let io = self.io.clone();
        let state = self.state.clone();
        Box::pin(async move {
            let ns = io.of(NAMESPACE).ok_or("namespace /im is not registered")?;
            let op = match target {
                Target::Everyone => ns,
                Target::Rooms(rooms) => ns.to(rooms),
            };
            let n = op
                .clone()
                .fetch_sockets()
                .await
                .map_err(|e| e.to_string())?
                .len();
            match op.emit(&event, &data).await {
                Err(e) if !delivery::reached_every_live_socket(&e) => return Err(e.to_string()),
                _ => {}
            }
            state.metrics().event_out("publish");
            Ok(n)
        })
    }

    fn close(&self) -> BoxFuture<'static, ()> {
        let io = self.io.clone();
        Box::pin(async move { io.close().await })
    }
}

/// Single node: socketioxide's in-process adapter.
pub async fn build_local(state: AppState) -> anyhow::Result<SocketIoLayer> {
    let (expiry, expiry_rx) = expiry::channel();
    let (layer, io) = configure(SocketIo::builder(), &state)
        .with_state(expiry)
        .build_layer();
    start(&io, &state, expiry_rx, None);
    // socket.io-client 2.x (Engine.IO v3) connects to `/` first; without it the session fails.
    io.ns("/", async || {});
    io.ns(NAMESPACE, connect::on_connect.with(connect::handshake));
    Ok(layer)
}

/// Several nodes: the Redis adapter (on a reconnecting driver) carries room broadcasts,
/// remote disconnects and `fetch_sockets` between nodes.
pub async fn build_cluster(
    state: AppState,
    client: redis::Client,
) -> anyhow::Result<SocketIoLayer<redis_driver::ClusterAdapter<socketioxide::adapter::Emitter>>> {
    let driver = redis_driver::CmDriver::new(client).await?;
    let revocations = driver.clone();
    listen_for_revocations(&revocations, &state).await?;
    let ctr = socketioxide_redis::RedisAdapterCtr::new_with_driver(
        driver,
        socketioxide_redis::RedisAdapterConfig::default(),
    );
    let (expiry, expiry_rx) = expiry::channel();
    let builder = SocketIo::builder().with_adapter::<redis_driver::ClusterAdapter<_>>(ctr);
    let (layer, io) = configure(builder, &state).with_state(expiry).build_layer();
    start(&io, &state, expiry_rx, Some(revocations));
    // With a remote adapter a namespace exists only once the adapter has subscribed.
    io.ns("/", async || {}).await?;
    io.ns(NAMESPACE, connect::on_connect.with(connect::handshake))
        .await?;
    Ok(layer)
}

fn start<A: Adapter>(
    io: &SocketIo<A>,
    state: &AppState,
    expiry_rx: expiry::ExpiryRx,
    revocations: Option<redis_driver::CmDriver>,
) {
    expiry::spawn(io.clone(), state.clone(), expiry_rx);
    spawn_presence_ticker(io.clone(), state.clone());
    state.set_hub(Arc::new(SocketHub {
        io: io.clone(),
        state: state.clone(),
        revocations,
    }));
}

/// Drop cached auth of tokens another node revoked. The subscription is resumed by the driver
/// after a Redis restart.
async fn listen_for_revocations(
    bus: &redis_driver::CmDriver,
    state: &AppState,
) -> anyhow::Result<()> {
    use futures_util::StreamExt;
    use socketioxide_redis::drivers::Driver;
    let mut stream = bus.subscribe(REVOCATIONS.into(), 1024).await?;
    let state = state.clone();
    tokio::spawn(async move {
        while let Some((_, payload)) = stream.next().await {
            match serde_json::from_slice::<Vec<String>>(&payload) {
                Ok(hashes) => state.auth_cache().invalidate(&hashes),
                Err(e) => tracing::warn!(error = %e, "ignoring a malformed revocation message"),
            }
        }
    });
    Ok(())
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
        // tungstenite zero-fills this per socket; Socket.IO frames of idle sockets are tiny
        // (measured 24.2 → 21.2 KiB per idle socket going from 4096).
        .ws_read_buffer_size(1024)
        // Past 128 queued packets a socket buffers on, within these bounds, then is cut off.
        .max_queue_bytes(s.max_queue_bytes as usize)
        .slow_consumer_timeout(Duration::from_millis(s.slow_consumer_timeout_ms))
        .with_state(state.clone())
}

/// Tell the subscribers of `user_id` that its first socket came up or its last went away.
pub async fn announce_presence<A: Adapter>(
    op: &BroadcastOperators<A>,
    state: &AppState,
    user_id: i64,
    online: bool,
) {
    let event =
        serde_json::json!({ "userId": user_id, "online": online, "at": crate::clock::now_iso() });
    match op
        .clone()
        .to(rooms::presence(user_id))
        .emit("presence", &event)
        .await
    {
        Ok(()) => state.metrics().event_out("presence"),
        Err(e) => tracing::warn!(error = %e, user_id, "could not emit presence"),
    }
}

/// Sockets start on polling and usually upgrade to WebSocket a moment later; socketioxide
/// has no upgrade callback, so the ticker brings recorded transports up to date.
async fn refresh_upgraded_transports<A: Adapter>(io: &SocketIo<A>, state: &AppState) {
    let Some(ns) = io.of(NAMESPACE) else { return };
    for s in ns.sockets() {
        let live = connect::transport_of(&s).as_str();
        let Some(mut ss) = s.extensions.get::<SocketSession>() else {
            continue;
        };
        if ss.info.transport == live {
            continue;
        }
        ss.info.transport = live.to_string();
        let entry = ss.presence_entry();
        s.extensions.insert(ss);
        if let Err(e) = state.presence().socket_update(&entry).await {
            tracing::debug!(error = %format!("{e:#}"), "presence: could not update a transport");
        }
    }
}

/// Renew this node's presence lease and announce users lost with a dead node.
fn spawn_presence_ticker<A: Adapter>(io: SocketIo<A>, state: AppState) {
    let every = Duration::from_millis(state.settings().redis.lease_secs * 1000 / 3);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        let mut healthy = true;
        loop {
            tick.tick().await;
            let me = crate::presence::NodeInfo {
                node_id: state.node_id().to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                config_fingerprint: state.config_fingerprint().to_string(),
                connections: state.metrics().connections.get(),
            };
            refresh_upgraded_transports(&io, &state).await;
            match state.presence().tick(&me).await {
                Ok(offline) => {
                    if !healthy {
                        tracing::info!("presence store reachable again");
                        healthy = true;
                    }
                    if let Some(ns) = io.of(NAMESPACE) {
                        for user_id in offline {
                            announce_presence(&ns, &state, user_id, false).await;
                        }
                    }
                }
                Err(e) if healthy => {
                    tracing::error!(error = %format!("{e:#}"), "presence store unreachable; will keep retrying");
                    healthy = false;
                }
                Err(_) => {}
            }
        }
    });
}
