//! `AppState`: what every request and socket handler shares — settings, the database, the
//! [`Authenticator`], presence, the message writer, metrics. Built once in `startup`.
//!
//! The realtime hub is not in here: it exists only once socketioxide's layer is built from
//! this state, so HTTP gets it beside the state (`http::HttpState`) and nothing can ask for it
//! too early.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;

use crate::auth::Authenticator;
use crate::auth::limit::LoginLimiter;
use crate::chat::MessageWriter;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::presence::Presence;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    settings: Arc<Settings>,
    db: DatabaseConnection,
    auth: Authenticator,
    limiter: LoginLimiter,
    metrics: Metrics,
    presence: Arc<dyn Presence>,
    messages: MessageWriter,
    node_id: String,
    started: Instant,
    /// Verified against when the username is unknown, so both failures cost the same time.
    dummy_hash: String,
    /// SQLite: the watched file under the pool, for `/health` (see [`crate::db::SqliteFile`]).
    sqlite_file: Option<Arc<crate::db::SqliteFile>>,
}

pub struct StateParts {
    pub settings: Arc<Settings>,
    pub db: DatabaseConnection,
    pub sqlite_file: Option<Arc<crate::db::SqliteFile>>,
    pub auth: Authenticator,
    pub metrics: Metrics,
    pub presence: Arc<dyn Presence>,
    pub node_id: String,
    pub dummy_hash: String,
}

impl AppState {
    /// Starts the message writer (a task on the database).
    pub fn new(p: StateParts) -> Self {
        let limiter = LoginLimiter::new(
            p.settings.auth.login_max_failures,
            Duration::from_secs(p.settings.auth.login_failure_window_secs),
        );
        AppState(Arc::new(Inner {
            sqlite_file: p.sqlite_file,
            limiter,
            messages: MessageWriter::start(p.db.clone(), p.auth.store_arc()),
            settings: p.settings,
            db: p.db,
            auth: p.auth,
            metrics: p.metrics,
            presence: p.presence,
            node_id: p.node_id,
            started: Instant::now(),
            dummy_hash: p.dummy_hash,
        }))
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }
    pub fn db(&self) -> &DatabaseConnection {
        &self.0.db
    }
    pub fn sqlite_file(&self) -> Option<&Arc<crate::db::SqliteFile>> {
        self.0.sqlite_file.as_ref()
    }
    pub fn auth(&self) -> &Authenticator {
        &self.0.auth
    }
    pub fn limiter(&self) -> &LoginLimiter {
        &self.0.limiter
    }
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }
    pub fn presence(&self) -> &Arc<dyn Presence> {
        &self.0.presence
    }
    pub fn messages(&self) -> &MessageWriter {
        &self.0.messages
    }
    pub fn node_id(&self) -> &str {
        &self.0.node_id
    }
    pub fn config_fingerprint(&self) -> &str {
        self.0.auth.config_fingerprint()
    }
    pub fn uptime_secs(&self) -> u64 {
        self.0.started.elapsed().as_secs()
    }
    pub fn dummy_hash(&self) -> &str {
        &self.0.dummy_hash
    }
}
