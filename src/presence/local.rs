//! In-process presence for a single node.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::SocketInfo;
use super::{NodeInfo, OnlineUser, Presence, SocketEntry};
use crate::ids::UserId;

#[derive(Default)]
pub struct LocalPresence {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    users: HashMap<UserId, (u64, DateTime<Utc>)>,
    /// token hash → socket id → info
    tokens: HashMap<String, HashMap<String, SocketInfo>>,
    /// user → connection places taken
    places: HashMap<UserId, u32>,
}

impl LocalPresence {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Presence for LocalPresence {
    async fn socket_up(&self, e: &SocketEntry) -> anyhow::Result<bool> {
        let mut g = self.lock();
        g.tokens
            .entry(e.token_hash.clone())
            .or_default()
            .insert(e.info.id.clone(), e.info.clone());
        let slot = g
            .users
            .entry(e.user_id.clone())
            .or_insert((0, e.info.connected_at));
        slot.0 += 1;
        Ok(slot.0 == 1)
    }

    async fn take_place(&self, user_id: &UserId, max: u32) -> anyhow::Result<bool> {
        let mut g = self.lock();
        let taken = g.places.entry(user_id.clone()).or_default();
        let free = *taken < max;
        if free {
            *taken += 1;
        }
        Ok(free)
    }

    async fn give_back_place(&self, user_id: &UserId) -> anyhow::Result<()> {
        let mut g = self.lock();
        if let Some(taken) = g.places.get_mut(user_id) {
            *taken = taken.saturating_sub(1);
            if *taken == 0 {
                g.places.remove(user_id);
            }
        }
        Ok(())
    }

    async fn socket_update(&self, e: &SocketEntry) -> anyhow::Result<()> {
        let mut g = self.lock();
        if let Some(info) = g
            .tokens
            .get_mut(&e.token_hash)
            .and_then(|m| m.get_mut(&e.info.id))
        {
            *info = e.info.clone();
        }
        Ok(())
    }

    async fn socket_down(&self, e: &SocketEntry) -> anyhow::Result<bool> {
        let mut g = self.lock();
        if let Some(socks) = g.tokens.get_mut(&e.token_hash) {
            socks.remove(&e.info.id);
            if socks.is_empty() {
                g.tokens.remove(&e.token_hash);
            }
        }
        let last = match g.users.get_mut(&e.user_id) {
            Some(slot) if slot.0 <= 1 => true,
            Some(slot) => {
                slot.0 -= 1;
                false
            }
            None => false,
        };
        if last {
            g.users.remove(&e.user_id);
        }
        Ok(last)
    }

    async fn online_of(&self, ids: &[UserId]) -> anyhow::Result<Vec<UserId>> {
        let g = self.lock();
        Ok(ids
            .iter()
            .filter(|id| g.users.contains_key(id))
            .cloned()
            .collect())
    }

    async fn online_users(&self) -> anyhow::Result<Vec<OnlineUser>> {
        let g = self.lock();
        Ok(g.users
            .iter()
            .map(|(id, (n, since))| OnlineUser {
                user_id: id.clone(),
                sockets: *n,
                since: *since,
            })
            .collect())
    }

    async fn token_sockets(&self, token_hash: &str) -> anyhow::Result<Vec<SocketInfo>> {
        Ok(self
            .lock()
            .tokens
            .get(token_hash)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn nodes(&self) -> anyhow::Result<Option<Vec<NodeInfo>>> {
        Ok(None)
    }

    async fn tick(&self, _me: &NodeInfo) -> anyhow::Result<Vec<UserId>> {
        Ok(vec![])
    }

    async fn ping(&self) -> Option<Result<(), String>> {
        None
    }
}
