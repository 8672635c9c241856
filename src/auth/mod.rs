//! Authentication: THE path every HTTP route, every Socket.IO handshake and `auth:refresh`
//! go through, and the only place a token is judged.
//!
//! `Parts (+auth JSON)` → [`source::find`] → [`jwt::Keys::verify`] → [`store::TokenStore`] (row,
//! user; [`cache`] in front) → [`decide::decide`] → [`Session`]. [`Authenticator`] holds the
//! keys, cache and store and writes the per-handshake log line; [`diagnose`] gathers the same
//! evidence without stopping at the first failure and asks the same `decide`; [`revoke`] is the
//! one way a token stops working (rows, cache on every node, live sockets).
//!
//! Depends on `config`, `error`, `net`, `metrics`, `clock`, `ids` and `presence` (the socket
//! records a diagnosis lists); never on `state`, `realtime` or `http`.

pub mod authenticator;
pub mod cache;
pub mod control;
pub mod decide;
pub mod diagnose;
pub mod jwt;
pub mod limit;
pub mod password;
pub mod recheck;
pub mod revoke;
pub mod session;
pub mod source;
pub mod store;

use http::request::Parts;
use serde_json::Value;

pub use authenticator::Authenticator;
pub use session::{Session, User};

use crate::config::TokenSource;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Http,
    WebSocket,
    Polling,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::WebSocket => "websocket",
            Transport::Polling => "polling",
        }
    }
}

/// Why a token is being checked: decides the Origin check and whether it counts as a handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// An HTTP route (no Origin check: CORS guards browsers there).
    Http,
    /// A Socket.IO namespace CONNECT: `cors.origins` applies to the WebSocket `Origin` too.
    Handshake,
    /// `auth:refresh` on a connected socket (its Origin was checked at connect).
    Refresh,
}

/// What a request offers for authentication.
pub struct AuthRequest<'a> {
    pub purpose: Purpose,
    pub transport: Transport,
    /// Where a token may come from: `auth.token_sources` for handshakes; for HTTP the route
    /// decides (Bearer only, so a cookie cannot trigger a state change cross-site).
    pub sources: &'a [TokenSource],
    pub parts: &'a Parts,
    /// The Socket.IO handshake `auth` payload, or the `auth:refresh` payload (absent for HTTP
    /// and socket.io-client 2.x).
    pub auth_payload: Option<&'a Value>,
}
