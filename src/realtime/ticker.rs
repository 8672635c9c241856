//! The presence ticker: renews this node's lease, announces users lost with a dead node, and
//! keeps recorded transports current (socketioxide has no upgrade callback).

use std::time::Duration;

use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;

use super::{NAMESPACE, SocketSession, connect, emit};
use crate::state::AppState;

/// Sockets start on polling and usually upgrade to WebSocket a moment later: bring recorded
/// transports up to date.
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

/// Every `redis.lease_secs / 3`.
pub fn spawn<A: Adapter>(io: SocketIo<A>, state: AppState) {
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
                            emit::announce_presence(&ns, state.metrics(), &user_id, false).await;
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
