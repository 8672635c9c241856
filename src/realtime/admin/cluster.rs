//! `all_sockets` of every node. socketioxide's `fetch_sockets()` gives remote sockets only as
//! `{id, server_id, ns}`: no user, transport, address or handshake. So each node answers a
//! snapshot request on Redis with its own [`AdminSocket`]s, and the asking node merges them.
//!
//! Channels: `im:admin:snapshot` (requests, every node listens) and
//! `im:admin:snapshot#<uuid>` (the one asker's replies). The asker expects one reply per
//! other listener (`PUBSUB NUMSUB`) and waits at most [`REPLY_WAIT`], so a dying node costs a
//! short delay, never a hang.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use socketioxide::adapter::Adapter;
use socketioxide_redis::drivers::Driver;

use super::Ctx;
use super::snapshot::AdminSocket;

const REQUESTS: &str = "im:admin:snapshot";
const REPLY_WAIT: Duration = Duration::from_secs(3);

#[derive(Serialize, Deserialize)]
struct Request {
    reply: String,
    from: String,
}

/// This node's sockets, plus every other node's when running with Redis.
pub async fn all_sockets<A: Adapter>(ctx: &Ctx<A>) -> Vec<AdminSocket> {
    let mut sockets = super::feed::snapshot(ctx).await;
    if let Some(bus) = &ctx.bus {
        match remote_sockets(bus, ctx.state.node_id()).await {
            Ok(more) => sockets.extend(more),
            Err(e) => tracing::warn!(error = %format!("{e:#}"),
                "admin UI: other nodes' sockets are missing from all_sockets"),
        }
    }
    sockets
}

async fn remote_sockets(
    bus: &crate::realtime::redis_driver::CmDriver,
    me: &str,
) -> anyhow::Result<Vec<AdminSocket>> {
    let reply = format!("{REQUESTS}#{}", uuid::Uuid::new_v4().simple());
    let mut stream = bus.subscribe(reply.clone(), 64).await?;
    let listeners = bus.num_serv(REQUESTS).await?;
    let others = usize::from(listeners.saturating_sub(1));
    let request = serde_json::to_vec(&Request {
        reply: reply.clone(),
        from: me.to_string(),
    })?;
    let mut out = vec![];
    if others > 0 {
        bus.publish(REQUESTS.into(), request).await?;
        let deadline = tokio::time::Instant::now() + REPLY_WAIT;
        for _ in 0..others {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some((_, payload))) => {
                    match serde_json::from_slice::<Vec<AdminSocket>>(&payload) {
                        Ok(list) => out.extend(list),
                        Err(e) => {
                            tracing::warn!(error = %e, "admin UI: a node sent a malformed snapshot")
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        expected = others,
                        "admin UI: not every node answered in time"
                    );
                    break;
                }
            }
        }
    }
    let _ = bus.unsubscribe(reply).await;
    Ok(out)
}

/// Answer other nodes' snapshot requests with this node's sockets, and note other nodes'
/// "an admin is watching" ticks (runs for the server's life; the driver re-subscribes after a
/// Redis restart).
pub fn spawn_responder<A: Adapter>(ctx: Arc<Ctx<A>>) {
    let Some(bus) = ctx.bus.clone() else { return };
    let watch_ctx = ctx.clone();
    let watch_bus = bus.clone();
    tokio::spawn(async move {
        match watch_bus.subscribe(super::feed::WATCHING.into(), 16).await {
            Ok(mut stream) => {
                while stream.next().await.is_some() {
                    watch_ctx.watch.seen();
                }
            }
            Err(e) => tracing::error!(error = %e, "admin UI: cannot listen for other nodes' \
                admins; this node's changes reach them only while it has admins of its own"),
        }
    });
    tokio::spawn(async move {
        let mut stream = match bus.subscribe(REQUESTS.into(), 64).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "admin UI: cannot listen for snapshot requests; \
                    this node's sockets will be missing on other nodes' UIs");
                return;
            }
        };
        while let Some((_, payload)) = stream.next().await {
            let Ok(req) = serde_json::from_slice::<Request>(&payload) else {
                tracing::warn!("admin UI: ignoring a malformed snapshot request");
                continue;
            };
            if req.from == ctx.state.node_id() {
                continue;
            }
            let sockets = super::feed::snapshot(&ctx).await;
            match serde_json::to_vec(&sockets) {
                Ok(body) => {
                    let _ = bus.publish(req.reply, body).await;
                }
                Err(e) => tracing::warn!(error = %e, "admin UI: cannot serialize a snapshot"),
            }
        }
    });
}
