//! `AppState`: the one clonable handle given to axum and to socketioxide.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use sea_orm::DatabaseConnection;

use crate::auth::jwt::Keys;
use crate::auth::limit::LoginLimiter;
use crate::chat::MessageWriter;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::realtime::Hub;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    settings: Settings,
    db: DatabaseConnection,
    keys: Keys,
    limiter: LoginLimiter,
    auth_cache: crate::auth::cache::AuthCache,
    metrics: Metrics,
    presence: Arc<dyn Presence>,
    messages: MessageWriter,
    touches: crate::auth::store::Touches,
    node_id: String,
    config_fingerprint: String,
    started: Instant,
    /// Verified against when the username is unknown, so both failures cost the same time.
    dummy_hash: String,
    /// The realtime side exists only after socketioxide's layer is built: set once at startup.
    hub: OnceLock<Arc<dyn Hub>>,
}

pub struct StateParts {
    pub settings: Settings,
    pub db: DatabaseConnection,
    pub keys: Keys,
    pub presence: Arc<dyn Presence>,
    pub node_id: String,
    pub config_fingerprint: String,
    pub dummy_hash: String,
}

impl AppState {
    pub fn new(p: StateParts) -> Self {
        let limiter = LoginLimiter::new(
            p.settings.auth.login_max_failures,
            std::time::Duration::from_secs(p.settings.auth.login_failure_window_secs),
        );
        let auth_cache = crate::auth::cache::AuthCache::new(std::time::Duration::from_secs(
            p.settings.auth.cache_ttl_secs,
        ));
        AppState(Arc::new(Inner {
            auth_cache,
            settings: p.settings,
            keys: p.keys,
            limiter,
            metrics: Metrics::new(),
            presence: p.presence,
            messages: MessageWriter::start(p.db.clone()),
            touches: crate::auth::store::Touches::start(p.db.clone()),
            db: p.db,
            node_id: p.node_id,
            config_fingerprint: p.config_fingerprint,
            started: Instant::now(),
            dummy_hash: p.dummy_hash,
            hub: OnceLock::new(),
        }))
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }
    pub fn db(&self) -> &DatabaseConnection {
        &self.0.db
    }
    pub fn keys(&self) -> &Keys {
        &self.0.keys
    }
    pub fn auth_cache(&self) -> &crate::auth::cache::AuthCache {
        &self.0.auth_cache
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
    pub fn touches(&self) -> &crate::auth::store::Touches {
        &self.0.touches
    }
    pub fn node_id(&self) -> &str {
        &self.0.node_id
    }
    pub fn config_fingerprint(&self) -> &str {
        &self.0.config_fingerprint
    }
    pub fn uptime_secs(&self) -> u64 {
        self.0.started.elapsed().as_secs()
    }
    pub fn dummy_hash(&self) -> &str {
        &self.0.dummy_hash
    }
    pub fn set_hub(&self, hub: Arc<dyn Hub>) {
        let _ = self.0.hub.set(hub);
    }
    /// The realtime hub. Present from the moment the server accepts requests.
    pub fn hub(&self) -> &Arc<dyn Hub> {
        self.0
            .hub
            .get()
            .expect("hub is set in Application::build before serving")
    }
}
