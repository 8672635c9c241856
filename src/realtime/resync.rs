//! After a Redis outage: the sockets that may have missed messages.
//!
//! While a node cannot reach Redis it hears none of the other nodes' broadcasts, and its own
//! broadcasts reach no other node: a message sent on node A to a user connected on node B is
//! stored and acked, but B's socket never gets its `message` event, and nothing tells the
//! client. Contract §4 says a message is never dropped silently, so — as with a slow consumer —
//! such a socket is closed at the transport: the client reconnects by itself, `connected`
//! carries `lastMessageId`, and `messages:sync` gives exactly what it missed.
//!
//! When a node's link comes back it resyncs its own sockets (it missed the others' messages)
//! and announces on Redis where its outage began, so every other node resyncs its sockets too
//! (they missed its messages — nodes notice a restarted Redis up to a few seconds apart, and a
//! node whose link is cut alone drops its broadcasts for as long as that lasts). Requests that
//! arrive close together are merged into one pass.
//!
//! Which sockets: those of users with a message stored since shortly before the outage was
//! noticed (primary-key range reads), or every socket when the database cannot say. Counted in
//! `im_kicks_total{reason="CLUSTER_RESYNC"}`.

use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide_redis::drivers::Driver;
use tokio::sync::mpsc;

use super::{NAMESPACE, SocketSession, redis_driver::CmDriver};
use crate::state::AppState;

/// How long before the outage was noticed messages may already have been lost (the driver's
/// heartbeat notices within a second or two; clocks of nodes differ a little).
const BEFORE_NOTICED: chrono::TimeDelta = chrono::TimeDelta::seconds(5);
/// After Redis answers again, time for the adapter to re-subscribe before announcing.
const SETTLE: Duration = Duration::from_secs(1);
/// Resync requests this close together (this node's and the others') make one pass.
const MERGE: Duration = Duration::from_secs(2);

/// Where nodes announce the end of their outage: `{"node": id, "after_id": n | null}`.
const CHANNEL: &str = "im:resync";

pub const REASON: &str = "CLUSTER_RESYNC";

/// Messages after this id may not have reached every socket; `None`: unknown, any message.
type Mark = Option<i64>;

#[derive(serde::Serialize, serde::Deserialize)]
struct Announcement {
    node: String,
    after_id: Mark,
}

pub async fn spawn<A: Adapter>(
    io: SocketIo<A>,
    state: AppState,
    bus: CmDriver,
) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::unbounded_channel::<Mark>();
    tokio::spawn(worker(io, state.clone(), rx));
    let mut heard = bus.subscribe(CHANNEL.into(), 64).await?;
    let (me, others) = (state.node_id().to_string(), tx.clone());
    tokio::spawn(async move {
        while let Some((_, payload)) = heard.next().await {
            match serde_json::from_slice::<Announcement>(&payload) {
                Ok(a) if a.node == me => {}
                Ok(a) => {
                    tracing::info!(node = %a.node, after_id = ?a.after_id, "another node's Redis outage ended: resyncing");
                    let _ = others.send(a.after_id);
                }
                Err(e) => tracing::warn!(error = %e, "ignoring a malformed resync announcement"),
            }
        }
    });
    tokio::spawn(watch_own_link(state, bus, tx));
    Ok(())
}

/// This node's outages: the mark when one begins, a resync and an announcement when it ends.
async fn watch_own_link(state: AppState, bus: CmDriver, tx: mpsc::UnboundedSender<Mark>) {
    let mut reachable = bus.reachability();
    let mut outage: Option<Mark> = None;
    while reachable.changed().await.is_ok() {
        let up = *reachable.borrow_and_update();
        if !up {
            if outage.is_none() {
                let since = Utc::now() - BEFORE_NOTICED;
                let mark = crate::chat::sync::id_before(state.db(), since).await;
                outage = Some(mark.inspect_err(|e| tracing::warn!(error = %e, "cannot read the message watermark for the Redis outage; every socket will resync")).ok());
            }
            continue;
        }
        let Some(mark) = outage else { continue };
        tokio::time::sleep(SETTLE).await;
        if !*reachable.borrow() {
            continue; // down again: the same outage goes on
        }
        outage = None;
        let _ = tx.send(mark);
        let said = Announcement {
            node: state.node_id().to_string(),
            after_id: mark,
        };
        let payload = serde_json::to_vec(&said).unwrap_or_default();
        if let Err(e) = bus.publish(CHANNEL.into(), payload).await {
            tracing::warn!(error = %e, "could not announce the end of the Redis outage");
        }
    }
}

async fn worker<A: Adapter>(
    io: SocketIo<A>,
    state: AppState,
    mut rx: mpsc::UnboundedReceiver<Mark>,
) {
    while let Some(first) = rx.recv().await {
        let mut mark = first;
        let merge_until = tokio::time::Instant::now() + MERGE;
        while let Ok(Some(more)) = tokio::time::timeout_at(merge_until, rx.recv()).await {
            mark = match (mark, more) {
                (Some(a), Some(b)) => Some(a.min(b)),
                _ => None,
            };
        }
        resync(&io, &state, mark).await;
    }
}

async fn resync<A: Adapter>(io: &SocketIo<A>, state: &AppState, mark: Mark) {
    let Some(ns) = io.of(NAMESPACE) else { return };
    let users = match mark {
        Some(after) => match crate::chat::sync::users_after(state.db(), after).await {
            Ok(u) => Some(u),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list who had messages during the Redis outage; every socket resyncs");
                None
            }
        },
        None => None,
    };
    let mut closed = 0u64;
    for s in ns.sockets() {
        let Some(ss) = s.extensions.get::<SocketSession>() else {
            continue;
        };
        if users
            .as_ref()
            .is_none_or(|u| u.contains(&ss.session.user.id.to_string()))
        {
            s.close_transport();
            closed += 1;
        }
    }
    state.metrics().kick(REASON, closed);
    tracing::warn!(
        sockets = closed,
        users = users.as_ref().map(|u| u.len()),
        "after a Redis outage: sockets that may have missed cross-node messages were closed; \
         their clients reconnect and catch up from connected.lastMessageId"
    );
}
