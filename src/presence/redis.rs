//! Presence shared through Redis. Every node keeps its own hashes and a lease (a heartbeat
//! score in `im:nodes`); readers only trust nodes whose lease is fresh, and the first node to
//! notice an expired lease reaps it: the dead node's users who are not online elsewhere are
//! reported offline, its keys deleted.
//!
//! Keys: `im:nodes` (zset node → heartbeat ms), `im:node:{id}:info` (NodeInfo JSON),
//! `im:node:{id}:users` (user → socket count), `im:node:{id}:since` (user → first-up ms),
//! `im:node:{id}:sockets` (sid → SocketEntry JSON), `im:tok:{token_hash}` ("node|sid" → SocketInfo),
//! `im:node:{id}:places` (user → connection places taken on that node).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use super::SocketInfo;
use super::{NodeInfo, OnlineUser, Presence, SocketEntry};
use crate::ids::{IdKind, UserId};

pub struct RedisPresence {
    conn: ConnectionManager,
    node_id: String,
    lease: Duration,
    /// How the user ids stored as hash fields read back (the token store's ids).
    kind: IdKind,
}

fn k_node(id: &str, part: &str) -> String {
    format!("im:node:{id}:{part}")
}
fn k_tok(hash: &str) -> String {
    format!("im:tok:{hash}")
}
const NODES: &str = "im:nodes";

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl RedisPresence {
    /// Connect, clear what a previous run of this node id left behind, and take the lease.
    pub async fn start(
        client: redis::Client,
        node_id: String,
        lease: Duration,
        kind: IdKind,
    ) -> anyhow::Result<Self> {
        // Bounded waits: a Redis outage must slow a handshake by at most this, never hang it.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        let p = RedisPresence {
            conn,
            node_id,
            lease,
            kind,
        };
        p.purge_node(&p.node_id.clone()).await?;
        Ok(p)
    }

    async fn live_nodes(&self) -> anyhow::Result<Vec<String>> {
        let mut c = self.conn.clone();
        let min = now_ms() - self.lease.as_millis() as i64;
        Ok(c.zrangebyscore(NODES, min, "+inf").await?)
    }

    async fn other_live_nodes(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .live_nodes()
            .await?
            .into_iter()
            .filter(|n| n != &self.node_id)
            .collect())
    }

    /// Whether `user_id` has sockets on any of `nodes`.
    async fn online_on(&self, nodes: &[String], user_id: &UserId) -> anyhow::Result<bool> {
        let mut c = self.conn.clone();
        for n in nodes {
            let count: Option<i64> = c.hget(k_node(n, "users"), user_id).await?;
            if count.unwrap_or(0) > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The writes that record one socket: in this node's socket hash and its token's hash.
    fn record(&self, p: &mut redis::Pipeline, e: &SocketEntry) -> anyhow::Result<()> {
        let me = &self.node_id;
        p.hset(k_node(me, "sockets"), &e.info.id, serde_json::to_string(e)?)
            .ignore()
            .hset(
                k_tok(&e.token_hash),
                format!("{me}|{}", e.info.id),
                serde_json::to_string(&e.info)?,
            )
            .ignore();
        Ok(())
    }

    /// Delete a node's keys and its entries in token hashes; returns its users.
    async fn purge_node(&self, node: &str) -> anyhow::Result<Vec<UserId>> {
        let mut c = self.conn.clone();
        let sockets: HashMap<String, String> = c.hgetall(k_node(node, "sockets")).await?;
        let users: HashMap<String, i64> = c.hgetall(k_node(node, "users")).await?;
        let mut pipe = redis::pipe();
        for (sid, json) in &sockets {
            if let Ok(e) = serde_json::from_str::<SocketEntry>(json) {
                pipe.hdel(k_tok(&e.token_hash), format!("{node}|{sid}"))
                    .ignore();
            }
        }
        for part in ["users", "since", "sockets", "info", "places"] {
            pipe.del(k_node(node, part)).ignore();
        }
        pipe.zrem(NODES, node).ignore();
        pipe.query_async::<()>(&mut c).await?;
        Ok(users
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .filter_map(|(u, _)| self.kind.parse(&u))
            .collect())
    }
}

/// Take a place when the user's places on every live node (and this one, leased or not yet)
/// add up to less than the maximum: read and write in one script, so two nodes admitting the
/// same user at once cannot both take the last place.
const TAKE_PLACE: &str = r#"
local me, user, max = ARGV[2], ARGV[3], tonumber(ARGV[4])
local nodes = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')
local total = tonumber(redis.call('HGET', 'im:node:' .. me .. ':places', user) or '0')
for _, n in ipairs(nodes) do
  if n ~= me then
    total = total + tonumber(redis.call('HGET', 'im:node:' .. n .. ':places', user) or '0')
  end
end
if total >= max then return 0 end
redis.call('HINCRBY', 'im:node:' .. me .. ':places', user, 1)
return 1
"#;

const GIVE_BACK_PLACE: &str = r#"
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
"#;

#[async_trait]
impl Presence for RedisPresence {
    async fn take_place(&self, user_id: &UserId, max: u32) -> anyhow::Result<bool> {
        let mut c = self.conn.clone();
        let min = now_ms() - self.lease.as_millis() as i64;
        let taken: i64 = redis::Script::new(TAKE_PLACE)
            .key(NODES)
            .arg(min)
            .arg(&self.node_id)
            .arg(user_id)
            .arg(max)
            .invoke_async(&mut c)
            .await?;
        Ok(taken == 1)
    }

    async fn give_back_place(&self, user_id: &UserId) -> anyhow::Result<()> {
        let mut c = self.conn.clone();
        redis::Script::new(GIVE_BACK_PLACE)
            .key(k_node(&self.node_id, "places"))
            .arg(user_id)
            .invoke_async::<i64>(&mut c)
            .await?;
        Ok(())
    }

    async fn socket_up(&self, e: &SocketEntry) -> anyhow::Result<bool> {
        let mut c = self.conn.clone();
        let me = &self.node_id;
        let mut p = redis::pipe();
        p.hincr(k_node(me, "users"), &e.user_id, 1)
            .hset_nx(
                k_node(me, "since"),
                &e.user_id,
                e.info.connected_at.timestamp_millis(),
            )
            .ignore();
        self.record(&mut p, e)?;
        let (count,): (i64,) = p.query_async(&mut c).await?;
        if count != 1 {
            return Ok(false);
        }
        Ok(!self
            .online_on(&self.other_live_nodes().await?, &e.user_id)
            .await?)
    }

    async fn socket_update(&self, e: &SocketEntry) -> anyhow::Result<()> {
        let mut c = self.conn.clone();
        let mut p = redis::pipe();
        self.record(&mut p, e)?;
        p.query_async::<()>(&mut c).await?;
        Ok(())
    }

    async fn socket_down(&self, e: &SocketEntry) -> anyhow::Result<bool> {
        let mut c = self.conn.clone();
        let me = &self.node_id;
        let (count,): (i64,) = redis::pipe()
            .hincr(k_node(me, "users"), &e.user_id, -1)
            .hdel(k_node(me, "sockets"), &e.info.id)
            .ignore()
            .hdel(k_tok(&e.token_hash), format!("{me}|{}", e.info.id))
            .ignore()
            .query_async(&mut c)
            .await?;
        if count > 0 {
            return Ok(false);
        }
        redis::pipe()
            .hdel(k_node(me, "users"), &e.user_id)
            .hdel(k_node(me, "since"), &e.user_id)
            .query_async::<()>(&mut c)
            .await?;
        Ok(!self
            .online_on(&self.other_live_nodes().await?, &e.user_id)
            .await?)
    }

    async fn online_of(&self, ids: &[UserId]) -> anyhow::Result<Vec<UserId>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let mut c = self.conn.clone();
        let mut online = HashSet::new();
        for n in self.live_nodes().await? {
            let counts: Vec<Option<i64>> = redis::cmd("HMGET")
                .arg(k_node(&n, "users"))
                .arg(ids)
                .query_async(&mut c)
                .await?;
            for (id, count) in ids.iter().zip(counts) {
                if count.unwrap_or(0) > 0 {
                    online.insert(id.clone());
                }
            }
        }
        Ok(ids
            .iter()
            .filter(|id| online.contains(id))
            .cloned()
            .collect())
    }

    async fn online_users(&self) -> anyhow::Result<Vec<OnlineUser>> {
        let mut c = self.conn.clone();
        let mut all: HashMap<UserId, OnlineUser> = HashMap::new();
        for n in self.live_nodes().await? {
            let users: HashMap<String, i64> = c.hgetall(k_node(&n, "users")).await?;
            let since: HashMap<String, i64> = c.hgetall(k_node(&n, "since")).await?;
            for (field, count) in users.into_iter().filter(|(_, c)| *c > 0) {
                let Some(id) = self.kind.parse(&field) else {
                    continue;
                };
                let t = since
                    .get(&field)
                    .and_then(|ms| Utc.timestamp_millis_opt(*ms).single())
                    .unwrap_or_else(Utc::now);
                let e = all.entry(id.clone()).or_insert(OnlineUser {
                    user_id: id,
                    sockets: 0,
                    since: t,
                });
                e.sockets += count as u64;
                e.since = e.since.min(t);
            }
        }
        Ok(all.into_values().collect())
    }

    async fn token_sockets(&self, token_hash: &str) -> anyhow::Result<Vec<SocketInfo>> {
        let mut c = self.conn.clone();
        let live: HashSet<String> = self.live_nodes().await?.into_iter().collect();
        let entries: HashMap<String, String> = c.hgetall(k_tok(token_hash)).await?;
        Ok(entries
            .into_iter()
            .filter(|(field, _)| field.split('|').next().is_some_and(|n| live.contains(n)))
            .filter_map(|(_, json)| serde_json::from_str(&json).ok())
            .collect())
    }

    async fn nodes(&self) -> anyhow::Result<Option<Vec<NodeInfo>>> {
        let mut c = self.conn.clone();
        let mut out = vec![];
        for n in self.live_nodes().await? {
            let json: Option<String> = c.get(k_node(&n, "info")).await?;
            if let Some(info) = json.and_then(|j| serde_json::from_str::<NodeInfo>(&j).ok()) {
                out.push(info);
            }
        }
        out.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok(Some(out))
    }

    async fn tick(&self, me: &NodeInfo) -> anyhow::Result<Vec<UserId>> {
        let mut c = self.conn.clone();
        let lease_ms = self.lease.as_millis() as u64;
        redis::pipe()
            .zadd(NODES, &self.node_id, now_ms())
            .ignore()
            .set_ex(
                k_node(&self.node_id, "info"),
                serde_json::to_string(me)?,
                (lease_ms / 1000).max(1),
            )
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        let dead: Vec<String> = c
            .zrangebyscore(NODES, "-inf", format!("({}", now_ms() - lease_ms as i64))
            .await?;
        let mut offline = vec![];
        for node in dead {
            // One reaper per dead node, whichever live node gets here first.
            let lock: Option<String> = redis::cmd("SET")
                .arg(format!("im:reap:{node}"))
                .arg(&self.node_id)
                .arg("NX")
                .arg("PX")
                .arg(lease_ms)
                .query_async(&mut c)
                .await?;
            if lock.is_none() {
                continue;
            }
            let users = self.purge_node(&node).await?;
            let live = self.live_nodes().await?;
            for u in users {
                if !self.online_on(&live, &u).await? {
                    offline.push(u);
                }
            }
            tracing::warn!(node = %node, offline = offline.len(), "a node's lease expired: its sockets are gone");
        }
        Ok(offline)
    }

    async fn ping(&self) -> Option<Result<(), String>> {
        let mut c = self.conn.clone();
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            redis::cmd("PING").query_async::<String>(&mut c),
        )
        .await;
        Some(match r {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".into()),
        })
    }
}
