//! The live part of the UI: every [`TICK`], each node compares its `/im` sockets with what it
//! told the admins last time ([`Tracked`]) and broadcasts the differences, then its
//! `server_stats`, to `/admin` on every node. A snapshot for `all_sockets` runs the same step
//! first, so every socket an admin was shown is one whose disconnect will be announced.
//! A socket that came and went within one tick is not shown; nothing on the `/im` connect
//! path waits for the Admin UI.
//!
//! While no admin is connected anywhere the tick does nothing but notice that: nodes with an
//! admin say so on Redis every tick ([`Watch`]), and a node that has heard nothing for
//! [`WATCH_WINDOW`] stops comparing. When an admin appears, the snapshot it asks for
//! re-learns the sockets silently (it shows them all anyway) and announcing resumes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;

use super::snapshot::{self, Shape, room_label};
use super::{Ctx, NAMESPACE};
use crate::realtime::NAMESPACE as IM;

/// The Node server emits `server_stats` every 2 s; the UI marks a server unhealthy after 10 s.
pub const TICK: Duration = Duration::from_secs(2);
/// How long one sign of an admin (local socket, heartbeat, snapshot request) keeps a node
/// comparing.
pub const WATCH_WINDOW: Duration = Duration::from_secs(7);

/// What this node told the admins: socket → the shape last announced, and the connections
/// and disconnections announced since the last `server_stats`. Locked across a whole step, so
/// the tick and a snapshot never announce the same change twice.
#[derive(Default)]
pub struct Tracked {
    sockets: HashMap<Sid, Shape>,
    /// `false` after a pause: `sockets` is stale and is re-learnt without announcing.
    active: bool,
    connections: u64,
    disconnections: u64,
}

pub type Known = tokio::sync::Mutex<Tracked>;

/// When this node last had a sign that an admin is connected somewhere.
#[derive(Default)]
pub struct Watch(std::sync::Mutex<Option<Instant>>);

impl Watch {
    pub fn seen(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    fn recent(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() < WATCH_WINDOW)
    }
}

/// The Redis channel on which nodes with an admin connected say so every tick.
pub const WATCHING: &str = "im:admin:watching";

pub fn spawn<A: Adapter>(ctx: Arc<Ctx<A>>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let local_admins = ctx
                .io
                .of(NAMESPACE)
                .is_some_and(|ns| !ns.sockets().is_empty());
            if local_admins {
                ctx.watch.seen();
                if let Some(bus) = &ctx.bus {
                    use socketioxide_redis::drivers::Driver;
                    let _ = bus.publish(WATCHING.into(), vec![]).await;
                }
            }
            if !ctx.watch.recent() {
                ctx.known.lock().await.active = false;
                continue;
            }
            let aggregated = {
                let mut tracked = ctx.known.lock().await;
                let current = current(&ctx, &tracked);
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
    ctx.watch.seen();
    let mut tracked = ctx.known.lock().await;
    let current = current(ctx, &tracked);
    step(ctx, &mut tracked, &current).await;
    current
        .into_iter()
        .filter_map(|(s, shape)| snapshot::serialize(&s, shape, &ctx.state))
        .collect()
}

fn current<A: Adapter>(ctx: &Ctx<A>, tracked: &Tracked) -> Vec<(SocketRef<A>, Shape)> {
    snapshot::local_shapes(&ctx.io, &|sid| tracked.sockets.contains_key(&sid))
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

/// Announce how `current` differs from what was announced before (after a pause: re-learn it).
async fn step<A: Adapter>(ctx: &Ctx<A>, tracked: &mut Tracked, current: &[(SocketRef<A>, Shape)]) {
    if !tracked.active {
        tracked.sockets = current.iter().map(|(s, sh)| (s.id, sh.clone())).collect();
        tracked.active = true;
        return;
    }
    let now = crate::clock::now_iso();
    let mut seen = HashSet::new();
    for (s, shape) in current {
        seen.insert(s.id);
        let id = s.id.to_string();
        match tracked.sockets.get(&s.id) {
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
                let labels = |sh: &Shape| -> BTreeSet<String> {
                    sh.rooms.iter().map(|r| room_label(r)).collect()
                };
                let (was, is) = (labels(old), labels(shape));
                for room in is.difference(&was) {
                    emit(ctx, "room_joined", &(IM, room, &id, &now)).await;
                }
                for room in was.difference(&is) {
                    emit(ctx, "room_left", &(IM, room, &id, &now)).await;
                }
            }
            Some(_) => continue,
        }
        tracked.sockets.insert(s.id, shape.clone());
    }
    let gone: Vec<Sid> = tracked
        .sockets
        .keys()
        .filter(|id| !seen.contains(*id))
        .copied()
        .collect();
    for sid in gone {
        tracked.sockets.remove(&sid);
        let id = sid.to_string();
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
