//! # im-server
//!
//! A Socket.IO-compatible realtime IM server: one auth path for HTTP and Socket.IO, one
//! vocabulary of error codes, a log line per handshake, and tokens that explain themselves.
//!
//! # Layout — in handshake order
//! - [`cli`]: `serve | migrate | user | token inspect | config`; `main.rs` only calls it.
//! - [`config`]: figment layers → [`config::Settings`]; `validate()` names the failing key.
//! - [`startup`]: `Application::build` (the seam shared by CLI, tests and embedders) and the drain;
//!   [`serve`]: the accept loop (hyper with a header read timeout).
//! - [`net`]: client address (trust_proxy) and Origin checks for both transports.
//! - [`auth`]: THE authentication path: [`auth::Authenticator`] over a [`auth::store::TokenStore`]
//!   (im-server's own tables, or a backend's mapped by `[external]`), one
//!   [`auth::decide::decide`] for handshake, diagnosis and the periodic [`auth::recheck`], one
//!   [`auth::revoke::revoke`].
//! - [`limits`]: contract §11, asked inside the handshake: address rate, node and user places,
//!   each socket's event budget.
//! - [`state`]: [`state::AppState`], what every handler shares (never the hub).
//! - [`realtime`]: `/im` handshake middleware, the [`realtime::events::Events`] registry, the
//!   one emit path, kicks, expiry timers; [`realtime::Hub`] is how HTTP reaches sockets.
//! - [`bridge`]: the app's own events, forwarded to its backend over signed HTTP (contract §10):
//!   one [`realtime::events::EventHandler`] + [`realtime::events::Lifecycle`] in the registry.
//! - [`http`]: the JSON API, one `router()` per module, over `HttpState { app, hub }`.
//! - [`login`]: `POST /auth/login`'s decision; [`users`]: creation, seeding, who is online.
//! - [`chat`]: direct messages (validate, store, history); [`presence`]: who is online, local or
//!   via Redis, and the socket records.
//! - [`error`]: [`error::ErrorCode`] (contract §5) and [`error::AppError`].
//! - [`realtime::admin`]: the Socket.IO Admin UI's `/admin` namespace (its page is
//!   [`http::admin_ui`], its settings [`config::admin`]).
//! - [`doctor`]: `im-server doctor`, the same chain walked from the client's side (no server state).
//! - [`ids`] (a [`ids::UserId`] keeps its store's JSON type), [`db`], [`metrics`], [`telemetry`], [`clock`], [`shutdown`]: small shared parts.
//!
//! # What points where (no cycles)
//! `cli → {startup, doctor} → {http, bridge → realtime} → {login, users} → state → chat → auth →
//! limits → presence → {net, db, metrics, ids, clock} → {config, error}` (checked by the module
//! graph having no cycle: `config` knows no feature module, `realtime::admin` lives under
//! `realtime`). `auth` never sees `state`, `realtime` or
//! `http`: revocation reaches sockets through the [`auth::revoke::SocketKicker`] trait that the
//! hub implements, and a diagnosis is handed the live sockets by its caller. `realtime` never
//! calls `http`; `presence` knows nothing of socketioxide.

pub mod auth;
pub mod bridge;
pub mod chat;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod doctor;
pub mod error;
pub mod http;
pub mod ids;
pub mod limits;
pub mod login;
pub mod metrics;
pub mod net;
pub mod presence;
pub mod realtime;
pub mod serve;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod users;
