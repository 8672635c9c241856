//! `[limits]` (contract §11): how much one node, one user, one address and one socket may
//! take. 0 means no limit, the default for each.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsSettings {
    /// Authenticated sockets on this node; over it a new handshake gets `CONNECTION_LIMIT`.
    pub max_connections: u32,
    /// Authenticated sockets of one user across all nodes (with Redis: a shared count that
    /// forgets a dead node's sockets with its lease); over it the NEW socket is refused.
    pub max_connections_per_user: u32,
    /// Handshakes per client address (after `server.trust_proxy`) per minute, refused ones
    /// included; over it `RATE_LIMITED`.
    pub handshakes_per_ip_per_minute: u32,
    /// Events per socket per second; over it the event is not carried out and its ack is
    /// `{ok:false, code:"RATE_LIMITED"}` (the socket stays).
    pub events_per_socket_per_second: u32,
}
