//! One socket's ordered events, one at a time, in the order they arrived, at most `bound`
//! waiting: the per-socket serialiser the registry offers to [`super::EventHandler::ordered`]
//! handlers (the bridge).
//!
//! socketioxide reads one socket's packets one by one and runs each handler as its own task,
//! so arrival order is only known while it extracts the handler's arguments: the [`Turn`]
//! extractor takes a ticket there, before the spawn; the task then waits for its ticket to come
//! up. Beyond `bound` tickets outstanding the event gets no ticket (its ack says RATE_LIMITED),
//! so a flood holds at most `bound` tasks per socket, never one per event without limit.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use socketioxide::adapter::Adapter;
use socketioxide::extract::{Event, State};
use socketioxide::handler::{FromMessageParts, Value as SioValue};
use socketioxide::socket::Socket;
use tokio::sync::Notify;

use super::Events;

/// One socket's ticket counters (in its extensions).
#[derive(Default)]
pub struct Lane {
    /// Tickets handed out; only the packet-reading path writes it, one packet at a time.
    issued: AtomicU64,
    /// Tickets finished.
    done: AtomicU64,
    turn: Notify,
}

#[derive(Clone, Default)]
pub struct LaneRef(Arc<Lane>);

/// Where an event stands in its socket's lane.
pub enum Turn {
    /// Not an ordered event: run at once.
    Free,
    /// Run when every earlier ticket of this socket has finished.
    Ticket(Arc<Lane>, u64),
    /// `bound` events of this socket are already waiting.
    Full(u32),
}

impl<A: Adapter> FromMessageParts<A> for Turn {
    type Error = Infallible;

    fn from_message_parts(
        s: &Arc<Socket<A>>,
        v: &mut SioValue,
        ack: &Option<i64>,
    ) -> Result<Self, Infallible> {
        let Ok(Event(name)) = Event::from_message_parts(s, v, ack) else {
            return Ok(Turn::Free);
        };
        let Ok(State(events)) = State::<Events>::from_message_parts(s, v, ack) else {
            return Ok(Turn::Free);
        };
        if !events.get(&name).is_some_and(|h| h.ordered()) {
            return Ok(Turn::Free);
        }
        // Made on a socket's first ordered event, so sockets that never send one pay nothing.
        let LaneRef(lane) = s.extensions.get::<LaneRef>().unwrap_or_else(|| {
            let lane = LaneRef::default();
            s.extensions.insert(lane.clone());
            lane
        });
        let issued = lane.issued.load(Ordering::Acquire);
        let waiting = issued - lane.done.load(Ordering::Acquire);
        if waiting >= u64::from(events.queue_bound()) {
            return Ok(Turn::Full(events.queue_bound()));
        }
        lane.issued.store(issued + 1, Ordering::Release);
        Ok(Turn::Ticket(lane, issued))
    }
}

impl Turn {
    /// Wait for this event's turn; the returned guard passes it on when dropped.
    pub async fn wait(self) -> Option<Finished> {
        let Turn::Ticket(lane, ticket) = self else {
            return None;
        };
        loop {
            let notified = lane.turn.notified();
            if lane.done.load(Ordering::Acquire) == ticket {
                break;
            }
            notified.await;
        }
        Some(Finished(lane))
    }
}

/// Held while an ordered event runs; dropping it (even on a panic) lets the next one go.
pub struct Finished(Arc<Lane>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.done.fetch_add(1, Ordering::AcqRel);
        self.0.turn.notify_waiters();
    }
}
