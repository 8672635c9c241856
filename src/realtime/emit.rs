//! The one emit path for server-sent events on `/im`: `/api/publish`, `message` deliveries,
//! `presence`, kicks and (next) the bridge's replies all go through [`emit`], which reaches
//! every node through the adapter, counts `im_events_total{direction="out"}` and logs a
//! failure once, with the event name (never the payload).

use serde::Serialize;
use socketioxide::adapter::Adapter;
use socketioxide::operators::BroadcastOperators;

use super::rooms;
use crate::ids::UserId;
use crate::metrics::Metrics;

/// Who a server emit goes to.
#[derive(Clone, Debug)]
pub enum Target {
    Everyone,
    Rooms(Vec<String>),
}

impl Target {
    /// The operator for this target on `ns` (rooms on every node).
    pub fn on<A: Adapter>(self, ns: BroadcastOperators<A>) -> BroadcastOperators<A> {
        match self {
            Target::Everyone => ns,
            Target::Rooms(rooms) => ns.to(rooms),
        }
    }
}

/// Events this server itself sends; others (published or bridged) count as `app`, so the
/// metric's label set stays bounded whatever names an application uses.
const SERVER_EVENTS: &[&str] = &[
    "connected",
    "error",
    "message",
    "presence",
    "token_expiring",
];

fn metric_label(event: &str) -> &str {
    if SERVER_EVENTS.contains(&event) {
        event
    } else {
        "app"
    }
}

/// Emit `event` to every socket `op` selects, on every node.
pub async fn emit<A: Adapter>(
    op: BroadcastOperators<A>,
    event: &str,
    data: &impl Serialize,
    metrics: &Metrics,
) -> Result<(), String> {
    match op.emit(event, data).await {
        // Refused only by sockets already closing (a slow consumer being cut off): every live
        // socket got it, and the closing ones catch up with `messages:sync`.
        Err(e) if !super::delivery::reached_every_live_socket(&e) => {
            tracing::warn!(error = %e, event, "emit failed");
            Err(e.to_string())
        }
        _ => {
            metrics.event_out(metric_label(event));
            Ok(())
        }
    }
}

/// Like [`emit`], and tells how many sockets the target held (asked of every node first).
pub async fn emit_counted<A: Adapter>(
    op: BroadcastOperators<A>,
    event: &str,
    data: &impl Serialize,
    metrics: &Metrics,
) -> Result<usize, String> {
    let n = op
        .clone()
        .fetch_sockets()
        .await
        .map_err(|e| e.to_string())?
        .len();
    emit(op, event, data, metrics).await?;
    Ok(n)
}

/// Tell the subscribers of `user_id` that its first socket came up or its last went away.
pub async fn announce_presence<A: Adapter>(
    op: &BroadcastOperators<A>,
    metrics: &Metrics,
    user_id: &UserId,
    online: bool,
) {
    let event =
        serde_json::json!({ "userId": user_id, "online": online, "at": crate::clock::now_iso() });
    let _ = emit(
        op.clone().to(rooms::presence(user_id)),
        "presence",
        &event,
        metrics,
    )
    .await;
}
