//! `loadgen`: a Socket.IO v5 / Engine.IO v4 WebSocket client ([`sio`]) used by im-server's
//! integration tests, and the load generator built on it (the `loadgen` binary).

pub mod bench;
pub mod sio;
