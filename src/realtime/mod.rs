//! Socket.IO on `/im`: the handshake middleware, connection lifecycle, events, kicks.
//!
//! Owns everything that touches a socket. HTTP reaches sockets only through [`hub::Hub`], an
//! object-safe handle over `SocketIo<A>` returned by [`build_local`] / [`build_cluster`], so
//! routes do not care which adapter runs. Events are handled through the [`events::Events`]
//! registry. Depends on `auth`, `chat`, `presence`, `state`; never calls into `http`.

pub mod admin;
pub mod connect;
pub mod delivery;
pub mod emit;
pub mod events;
pub mod expiry;
pub mod hub;
pub mod recheck;
mod resync;
pub use im_redis_driver as redis_driver;
pub mod rooms;
mod ticker;

use std::sync::Arc;
use std::time::Duration;

use socketioxide::adapter::Adapter;
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{SocketIo, SocketIoBuilder};

pub use emit::Target;
pub use hub::Hub;

use crate::auth::Session;
use crate::presence::SocketInfo;
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
            user_id: self.session.user.id.clone(),
            token_hash: self.session.token_hash.clone(),
            info: self.info.clone(),
        }
    }
}

/// The Socket.IO layer for the HTTP router, and the hub that reaches its sockets.
pub struct Realtime<A: Adapter> {
    pub layer: SocketIoLayer<A>,
    pub hub: Arc<dyn Hub>,
}

/// Single node: socketioxide's in-process adapter.
pub async fn build_local(
    state: AppState,
    events: events::Events,
) -> anyhow::Result<Realtime<socketioxide::adapter::LocalAdapter>> {
    let (expiry, expiry_rx) = expiry::channel();
    let (layer, io) = configure(SocketIo::builder(), &state)
        .with_state(expiry)
        .with_state(events)
        .build_layer();
    let hub = start(&io, &state, expiry_rx, None);
    // socket.io-client 2.x (Engine.IO v3) connects to `/` first; without it the session fails.
    io.ns("/", async || {});
    io.ns(NAMESPACE, connect::on_connect.with(connect::handshake));
    crate::realtime::admin::register(&io, &state, hub.clone(), None);
    Ok(Realtime { layer, hub })
}

/// Several nodes: the Redis adapter (on a reconnecting driver) carries room broadcasts,
/// remote disconnects and `fetch_sockets` between nodes.
pub async fn build_cluster(
    state: AppState,
    events: events::Events,
    client: redis::Client,
) -> anyhow::Result<Realtime<redis_driver::ClusterAdapter<socketioxide::adapter::Emitter>>> {
    let driver = redis_driver::CmDriver::new(client).await?;
    let revocations = driver.clone();
    let admin_bus = driver.clone();
    let user_changes = driver.clone();
    let resync_bus = driver.clone();
    hub::listen_for_revocations(&revocations, &state).await?;
    let ctr = socketioxide_redis::RedisAdapterCtr::new_with_driver(
        driver,
        socketioxide_redis::RedisAdapterConfig::default(),
    );
    let (expiry, expiry_rx) = expiry::channel();
    let builder = SocketIo::builder().with_adapter::<redis_driver::ClusterAdapter<_>>(ctr);
    let (layer, io) = configure(builder, &state)
        .with_state(expiry)
        .with_state(events)
        .build_layer();
    let hub = start(&io, &state, expiry_rx, Some(revocations));
    resync::spawn(io.clone(), state.clone(), resync_bus).await?;
    hub::listen_for_user_changes(&user_changes, &state, hub.clone()).await?;
    // With a remote adapter a namespace exists only once the adapter has subscribed.
    io.ns("/", async || {}).await?;
    io.ns(NAMESPACE, connect::on_connect.with(connect::handshake))
        .await?;
    if let Some(admin) = crate::realtime::admin::register(&io, &state, hub.clone(), Some(admin_bus))
    {
        admin.await?;
    }
    Ok(Realtime { layer, hub })
}

fn start<A: Adapter>(
    io: &SocketIo<A>,
    state: &AppState,
    expiry_rx: expiry::ExpiryRx,
    revocations: Option<redis_driver::CmDriver>,
) -> Arc<dyn Hub> {
    expiry::spawn(io.clone(), state.clone(), expiry_rx);
    ticker::spawn(io.clone(), state.clone());
    let hub: Arc<dyn Hub> = Arc::new(hub::SocketHub::new(io.clone(), state.clone(), revocations));
    if state.settings().external.enabled() {
        recheck::spawn(io.clone(), state.clone(), hub.clone());
    }
    hub
}

/// CONNECT packets one Engine.IO session may send (socket.io-client sends one per namespace,
/// and one more per reconnect of that session — which opens a new session anyway).
const MAX_CONNECTS_PER_SESSION: u32 = 16;

fn configure<A: Adapter>(builder: SocketIoBuilder<A>, state: &AppState) -> SocketIoBuilder<A> {
    let s = &state.settings().socketio;
    // A session left with no namespace (a refused handshake in legacy mode, a CONNECT_ERROR
    // in strict mode) is closed after connect_timeout like one that never sent CONNECT.
    engineioxide::ns_guard::configure(engineioxide::ns_guard::NsGuardConfig {
        idle_timeout: Duration::from_millis(s.connect_timeout_ms),
        max_connects: MAX_CONNECTS_PER_SESSION,
    });
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
