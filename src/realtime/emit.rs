//! The one emit path for server-sent events on `/im`: `/api/publish`, `message` deliveries,
//! `presence`, kicks and the bridge's replies all go through [`emit`], which reaches
//! every node through the adapter, counts `im_events_total{direction="out"}` and logs a
//! failure once, with the event name (never the payload). An application's own event
//! (`/api/publish` or a bridge reply's `emit`) is checked and aimed by [`Publication`].

use serde::{Deserialize, Serialize};
use serde_json::Value;
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

/// The operator for an emit on behalf of socket `s` (a bridge reply): `target` on every node,
/// without `s` when `except_self`; no target at all = `s` alone. `ns` is the whole namespace.
pub fn from_socket<A: Adapter>(
    s: &socketioxide::socket::Socket<A>,
    ns: BroadcastOperators<A>,
    target: Option<&Target>,
    except_self: bool,
) -> BroadcastOperators<A> {
    match (target, except_self) {
        (None, _) => s.within(Vec::<String>::new()),
        (Some(Target::Everyone), false) => ns,
        (Some(Target::Everyone), true) => s.broadcast(),
        (Some(Target::Rooms(r)), false) => s.within(r.clone()),
        (Some(Target::Rooms(r)), true) => s.to(r.clone()),
    }
}

/// Names the client library or our own protocol give a meaning; an app event must not forge them.
const RESERVED: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "error",
    "connected",
    "message",
    "presence",
    "token_expiring",
    "newListener",
    "removeListener",
    "ping",
    "pong",
];

/// The targets of an application event, as `/api/publish` and a bridge reply's `emit` name them.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Targets {
    #[serde(default)]
    pub to_users: Vec<crate::ids::UserId>,
    #[serde(default)]
    pub rooms: Vec<String>,
    #[serde(default)]
    pub user_type: Option<String>,
    #[serde(default)]
    pub broadcast: bool,
}

impl Targets {
    /// The union of the targets; `None` when none is named.
    pub fn resolve(&self) -> Option<Target> {
        if self.broadcast {
            return Some(Target::Everyone);
        }
        let mut rooms: Vec<String> = self.to_users.iter().map(rooms::user).collect();
        rooms.extend(self.rooms.iter().filter(|r| !r.is_empty()).cloned());
        if let Some(t) = self.user_type.as_deref().filter(|t| !t.is_empty()) {
            rooms.push(rooms::user_type(t));
        }
        (!rooms.is_empty()).then_some(Target::Rooms(rooms))
    }
}

/// An application's event for `/im`, its name checked and its target resolved: what
/// `/api/publish` and a bridge reply's `emit` both send, through [`emit`].
pub struct Publication {
    pub event: String,
    pub data: Value,
    /// `None` only when the caller allowed it (a bridge reply: the sender alone).
    pub target: Option<Target>,
}

impl Publication {
    /// `targetless_ok`: no target is allowed (else it is an error).
    pub fn new(
        event: &str,
        data: Value,
        targets: &Targets,
        targetless_ok: bool,
    ) -> Result<Publication, String> {
        let event = event.trim();
        if event.is_empty() || event.len() > 128 {
            return Err("event must be a name of 1 to 128 characters".into());
        }
        if RESERVED.contains(&event) {
            return Err(format!(
                "event {event:?} is reserved; pick an application event name"
            ));
        }
        let target = targets.resolve();
        if target.is_none() && !targetless_ok {
            return Err("no target: give to_users, rooms, user_type, or broadcast: true".into());
        }
        Ok(Publication {
            event: event.to_string(),
            data,
            target,
        })
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
