//! What a failed broadcast means for delivery (contract §4: nothing is dropped silently).
//!
//! A socket's queue never refuses a packet while the socket lives; a broadcast fails for a
//! socket only when that socket is already closing, e.g. a slow consumer being cut off. Such a
//! socket's client reconnects and catches up with `messages:sync`: the broadcast reached every
//! live socket, which is not an error for the caller.

use socketioxide::{BroadcastError, SocketError};

/// True when only sockets already closing refused the broadcast.
pub fn reached_every_live_socket(e: &BroadcastError) -> bool {
    matches!(e, BroadcastError::Socket(errs) if errs.iter().all(|e| matches!(e, SocketError::Closed)))
}
