//! # im-server
//!
//! A Socket.IO-compatible realtime IM server: one auth path for HTTP and Socket.IO, one
//! vocabulary of error codes, a log line per handshake, and tokens that explain themselves.
//!
//! # Layout — in handshake order
//! - [`cli`]: `serve | migrate | user add | token inspect | config`; `main.rs` only calls it.
//! - [`config`]: figment layers → [`config::Settings`]; `validate()` names the failing key.
//! - [`startup`]: `Application::build` (the seam shared by CLI and tests) and the drain.
//! - [`net`]: client address (trust_proxy) and Origin checks for both transports.
//! - [`auth`]: THE authentication path: source → jwt → store → [`auth::Session`].
//! - [`realtime`]: `/im` handshake middleware, rooms, events, kicks, expiry timers.
//! - [`http`]: the JSON API, one `router()` per module; the client-demo page.
//! - [`error`]: [`error::ErrorCode`] (contract §5) and [`error::AppError`].
//! - [`chat`]: direct messages (validate, store, history); [`presence`]: who is online, local or via Redis.
//! - [`admin`]: the Socket.IO Admin UI on `/admin` (namespace and page).
//! - [`users`], [`db`], [`metrics`], [`telemetry`], [`clock`], [`shutdown`], [`state`].

pub mod admin;
pub mod auth;
pub mod chat;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod metrics;
pub mod net;
pub mod presence;
pub mod realtime;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod users;
