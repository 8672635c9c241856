//! The live part of the UI: every [`TICK`], each node compares its `/im` sockets with what it
//! saw last time and broadcasts the differences, then its `server_stats`, to `/admin` on every
//! node. A socket that came and went within one tick is not shown; nothing on the `/im`
//! connect path waits for the Admin UI.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};
use socketioxide::adapter::Adapter;

use super::snapshot::{self, Shape};
use super::{Ctx, NAMESPACE};
use crate::realtime::NAMESPACE as IM;

/// The Node server emits `server_stats` every 2 s; the UI marks a server unhealthy after 10 s.
pub const TICK: Duration = Duration::from_secs(2);

pub fn spawn<A: Adapter>(ctx: Arc<Ctx<A>>) {
    tokio::spawn(async move {
        let mut known: HashMap<String, Shape> = HashMap::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let counts = step(&ctx, &mut known).await;
            let stats = snapshot::server_stats(&ctx.io, &ctx.state, counts.aggregated());
            emit(&ctx, "server_stats", &stats).await;
        }
    });
}

#[derive(Default)]
struct Counts {
    connections: u64,
    disconnections: u64,
}

impl Counts {
    /// The UI's `aggregatedEvents` (its connection histogram), one second's bucket.
    fn aggregated(&self) -> Vec<Value> {
        let second = Utc::now().timestamp() * 1000;
        [
            ("rawConnection", self.connections),
            ("rawDisconnection", self.disconnections),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| json!({"timestamp": second, "type": t, "count": n}))
        .collect()
    }
}

async fn step<A: Adapter>(ctx: &Ctx<A>, known: &mut HashMap<String, Shape>) -> Counts {
    let mut counts = Counts::default();
    let now = crate::clock::now_iso();
    let mut seen = HashSet::new();
    for (s, shape) in snapshot::local_shapes(&ctx.io) {
        let id = s.id.to_string();
        seen.insert(id.clone());
        match known.get(&id) {
            None => {
                if let Some(full) = snapshot::serialize(&s, shape.clone(), &ctx.state) {
                    emit(ctx, "socket_connected", &(full, &now)).await;
                    counts.connections += 1;
                }
            }
            Some(old) if *old != shape => {
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
        known.insert(id, shape);
    }
    let gone: Vec<String> = known.keys().filter(|id| !seen.contains(*id)).cloned().collect();
    for id in gone {
        known.remove(&id);
        emit(ctx, "socket_disconnected", &(IM, &id, "disconnected", &now)).await;
        counts.disconnections += 1;
    }
    counts
}

/// Broadcast to every admin socket on every node; a failure only delays the UI.
async fn emit<A: Adapter, T: Serialize + ?Sized>(ctx: &Ctx<A>, event: &str, data: &T) {
    let Some(admins) = ctx.io.of(NAMESPACE) else { return };
    if let Err(e) = admins.emit(event, data).await {
        tracing::debug!(error = %e, event, "admin UI: could not broadcast");
    }
}
