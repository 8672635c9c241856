//! The live part of the UI: every [`TICK`], each node compares its `/im` sockets with what it
//! told the admins last time ([`Tracked`]) and broadcasts the differences, then its
//! `server_stats`, to `/admin` on every node. A snapshot for `all_sockets` runs the same step
//! first, so every socket an admin was shown is one whose disconnect will be announced.
//! A socket that came and went within one tick is not shown; nothing on the `/im` connect
//! path waits for the Admin UI.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;

use super::snapshot::{self, Shape};
use super::{Ctx, NAMESPACE};
use crate::realtime::NAMESPACE as IM;

/// The Node server emits `server_stats` every 2 s; the UI marks a server unhealthy after 10 s.
pub const TICK: Duration = Duration::from_secs(2);

/// What this node told the admins: socket id → the shape last announced, and the connections
/// and disconnections announced since the last `server_stats`. Locked across a whole step, so
/// the tick and a snapshot never announce the same change twice.
#[derive(Default)]
pub struct Tracked {
    sockets: HashMap<String, Shape>,
    connections: u64,
    disconnections: u64,
}

pub type Known = tokio::sync::Mutex<Tracked>;

pub fn spawn<A: Adapter>(ctx: Arc<Ctx<A>>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let current = snapshot::local_shapes(&ctx.io);
            let aggregated = {
                let mut tracked = ctx.known.lock().await;
                step(&ctx, &mut tracked, &current).await;
                tracked.take_aggregated()
            };
            let stats = snapshot::server_stats(&ctx.io, &ctx.state, aggregated);
            emit(&ctx, "server_stats", &stats).await;
        }
    });
}

/// This node's sockets for `all_sockets`, after announcing what changed since the last tick.
pub async fn snapshot<A: Adapter>(ctx: &Ctx<A>) -> Vec<snapshot::AdminSocket> {
    let current = snapshot::local_shapes(&ctx.io);
    let mut tracked = ctx.known.lock().await;
    step(ctx, &mut tracked, &current).await;
    current
        .into_iter()
        .filter_map(|(s, shape)| snapshot::serialize(&s, shape, &ctx.state))
        .collect()
}

impl Tracked {
    /// The UI's `aggregatedEvents` (its connection histogram), in this second's bucket.
    fn take_aggregated(&mut self) -> Vec<Value> {
        let second = Utc::now().timestamp() * 1000;
        let counts = [
            ("rawConnection", std::mem::take(&mut self.connections)),
            ("rawDisconnection", std::mem::take(&mut self.disconnections)),
        ];
        counts
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| json!({"timestamp": second, "type": t, "count": n}))
            .collect()
    }
}

/// Announce how `current` differs from what was announced before.
async fn step<A: Adapter>(ctx: &Ctx<A>, tracked: &mut Tracked, current: &[(SocketRef<A>, Shape)]) {
    let now = crate::clock::now_iso();
    let mut seen = HashSet::new();
    for (s, shape) in current {
        let id = s.id.to_string();
        seen.insert(id.clone());
        match tracked.sockets.get(&id) {
            None => {
                if let Some(full) = snapshot::serialize(s, shape.clone(), &ctx.state) {
                    emit(ctx, "socket_connected", &(full, &now)).await;
                    tracked.connections += 1;
                }
            }
            Some(old) if old != shape => {
                if old.transport != shape.transport {
                    let update = json!({"id": id, "nsp": IM, "transport": shape.transport});
                    emit(ctx, "socket_updated", &update).await;
                }
                for room in shape.rooms.difference(&old.rooms) {
                    emit(ctx, "room_joined", &(IM, room, &id, &now)).await;
                }
                for room in old.rooms.difference(&shape.rooms) {
                    emit(ctx, "room_left", &(IM, room, &id, &now)).await;
                }
            }
            Some(_) => continue,
        }
        tracked.sockets.insert(id, shape.clone());
    }
    let gone: Vec<String> = tracked
        .sockets
        .keys()
        .filter(|id| !seen.contains(*id))
        .cloned()
        .collect();
    for id in gone {
        tracked.sockets.remove(&id);
        emit(ctx, "socket_disconnected", &(IM, &id, "disconnected", &now)).await;
        tracked.disconnections += 1;
    }
}

/// Broadcast to every admin socket on every node; a failure only delays the UI.
async fn emit<A: Adapter, T: Serialize + ?Sized>(ctx: &Ctx<A>, event: &str, data: &T) {
    let Some(admins) = ctx.io.of(NAMESPACE) else {
        return;
    };
    if let Err(e) = admins.emit(event, data).await {
        tracing::debug!(error = %e, event, "admin UI: could not broadcast");
    }
}
