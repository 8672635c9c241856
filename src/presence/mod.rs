//! Who is online, cluster-wide: the registry of authenticated sockets.
//!
//! One trait, two implementations chosen at start: [`local::LocalPresence`] (in-process, the
//! embedded default) and [`redis::RedisPresence`] (shared by every node through Redis, with
//! per-node leases so a node that dies without saying goodbye drops out). Both report the
//! *transitions* — a user's first socket up, last socket down — that drive `presence` events,
//! so the cost of a connect is independent of how many users exist. They also count each
//! user's connection places (`limits.max_connections_per_user`) the same way.

pub mod local;
pub mod redis;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids::UserId;

/// What `/auth/session` and a diagnosis show about one live socket.
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

/// One authenticated socket as the registry knows it.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct SocketEntry {
    pub user_id: UserId,
    pub token_hash: String,
    pub info: SocketInfo,
}

#[derive(Clone, Debug, Serialize)]
pub struct OnlineUser {
    pub user_id: UserId,
    pub sockets: u64,
    pub since: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct NodeInfo {
    pub node_id: String,
    pub version: String,
    pub config_fingerprint: String,
    pub connections: i64,
}

#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// Record a socket; `true` when it is its user's first socket anywhere.
    async fn socket_up(&self, entry: &SocketEntry) -> anyhow::Result<bool>;
    /// Replace what is recorded about a socket (its transport after an upgrade).
    async fn socket_update(&self, entry: &SocketEntry) -> anyhow::Result<()>;
    /// Forget a socket; `true` when it was its user's last socket anywhere.
    async fn socket_down(&self, entry: &SocketEntry) -> anyhow::Result<bool>;
    /// Those of `user_ids` with at least one socket anywhere.
    async fn online_of(&self, user_ids: &[UserId]) -> anyhow::Result<Vec<UserId>>;
    /// Every online user with its socket count and the time its first socket came up.
    async fn online_users(&self) -> anyhow::Result<Vec<OnlineUser>>;
    /// Sockets currently authenticated with this token, on every node.
    async fn token_sockets(&self, token_hash: &str) -> anyhow::Result<Vec<SocketInfo>>;
    /// Live nodes (`None` when running as a single node without Redis).
    async fn nodes(&self) -> anyhow::Result<Option<Vec<NodeInfo>>>;
    /// Periodic work: refresh this node's lease, and return the users that went offline because
    /// another node died (their sockets are gone with it).
    async fn tick(&self, me: &NodeInfo) -> anyhow::Result<Vec<UserId>>;
    /// Take one of `max` connection places of this user, counted on every live node at once
    /// (`limits.max_connections_per_user`); `false` when all are taken. A dead node's places
    /// go with its lease.
    async fn take_place(&self, user_id: &UserId, max: u32) -> anyhow::Result<bool>;
    /// Give back a place [`take_place`](Self::take_place) gave.
    async fn give_back_place(&self, user_id: &UserId) -> anyhow::Result<()>;
    /// Whether the backing store answers (`None`: there is none).
    async fn ping(&self) -> Option<Result<(), String>>;
}
