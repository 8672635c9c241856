//! One integration-test binary (cheap linking on 2 cores). Every test talks to a real server
//! over loopback: HTTP with reqwest, Socket.IO with `loadgen::sio` (a real Engine.IO v4 client).

mod helpers;
mod tokens;

mod admin;
mod auth_http;
mod config;
mod debug_transport;
mod delivery;
mod diagnose;
mod doctor;
mod embedding;
mod external;
mod fuzz;
mod handshake;
mod health;
mod live_sessions;
mod messages;
mod multi_node;
mod protect;
mod shutdown;
mod soak;
mod sqlite_faults;
mod storage;
