//! `Application::build` is the seam the CLI, `cargo run` and the tests share: validate config,
//! connect and migrate the database, build state, HTTP and Socket.IO, bind the listener.
//! `run_until_stopped` serves until the given shutdown future resolves, then drains within
//! `server.shutdown_timeout_secs`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::auth::Authenticator;
use crate::auth::jwt::Keys;
use crate::auth::store::OwnStore;
use crate::config::{ConfigError, Settings};
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::presence::local::LocalPresence;
use crate::presence::redis::RedisPresence;
use crate::realtime::Hub;
use crate::realtime::events::Events;
use crate::state::{AppState, StateParts};

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    hub: Arc<dyn Hub>,
}

impl Application {
    /// The server with the built-in events of contract §4.
    pub async fn build(settings: Settings) -> Result<Application, ConfigError> {
        Self::build_with_events(settings, Events::default()).await
    }

    /// The server with `events` handled besides the built-in ones (an embedding crate's own
    /// handlers; one of the same name replaces the built-in).
    pub async fn build_with_events(
        settings: Settings,
        events: Events,
    ) -> Result<Application, ConfigError> {
        settings.validate()?;
        let keys = Keys::from_settings(&settings)?;
        if settings.uses_development_secret() {
            tracing::warn!(
                fingerprint = %keys.current.fingerprint,
                "auth.jwt_secret is not set: using the built-in development secret (refused in production)"
            );
        }
        let crate::db::Opened { db, sqlite_file } = crate::db::open(
            &settings.database.url,
            settings.database.max_connections,
            settings.database.timeout(),
        )
        .await?;
        crate::db::migrate_up(&db).await?;
        if let Some(url) = &settings.redis.url {
            check_redis(url).await?;
        }
        if !settings.is_production() {
            crate::users::seed_demo_users(&db).await.map_err(|e| {
                ConfigError::new("database.url", format!("seeding demo users failed: {e:#}"))
            })?;
        }
        let dummy_hash = crate::auth::password::hash("not-a-real-password".into())
            .await
            .map_err(|e| ConfigError::new("auth", format!("argon2 self-test failed: {e}")))?;

        let addr = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&addr).await.map_err(|e| {
            ConfigError::new("server.port", format!("cannot listen on {addr}: {e}"))
        })?;
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(settings.server.port);
        let node_id = settings
            .server
            .node_id
            .clone()
            .unwrap_or_else(|| format!("{}:{port}", crate::net::hostname()));
        let redis_client = match &settings.redis.url {
            Some(url) => Some(
                redis::Client::open(url.as_str())
                    .map_err(|e| ConfigError::new("redis.url", e.to_string()))?,
            ),
            None => None,
        };
        let store = crate::auth::store::open(&settings, || OwnStore::new(db.clone())).await?;
        let presence: Arc<dyn Presence> = match &redis_client {
            Some(client) => {
                let client = client.clone();
                let lease = Duration::from_secs(settings.redis.lease_secs);
                Arc::new(
                    RedisPresence::start(client, node_id.clone(), lease, store.id_kind())
                        .await
                        .map_err(|e| ConfigError::new("redis.url", format!("presence: {e:#}")))?,
                )
            }
            None => Arc::new(LocalPresence::default()),
        };
        let settings = Arc::new(settings);
        let metrics = Metrics::new();
        let limits = crate::limits::Limits::new(&settings.limits, Some(presence.clone()));
        let auth =
            Authenticator::new(settings.clone(), keys, store, metrics.clone()).with_limits(limits);
        let state = AppState::new(StateParts {
            settings,
            db,
            sqlite_file,
            auth,
            metrics,
            presence,
            node_id,
            dummy_hash,
        });
        let mut events = Events::builtin().merge(events);
        if let Some(bridge) = crate::bridge::Bridge::from_settings(
            &state.settings().bridge,
            state.node_id(),
            state.metrics(),
        )? {
            events = bridge.register(events);
        }
        let adapter_err =
            |e: anyhow::Error| ConfigError::new("redis.url", format!("Socket.IO adapter: {e:#}"));
        let (router, hub) = match redis_client {
            None => {
                let rt = crate::realtime::build_local(state.clone(), events)
                    .await
                    .map_err(adapter_err)?;
                let hub = rt.hub.clone();
                (crate::http::router(state.clone(), rt), hub)
            }
            Some(client) => {
                let rt = crate::realtime::build_cluster(state.clone(), events, client)
                    .await
                    .map_err(adapter_err)?;
                let hub = rt.hub.clone();
                (crate::http::router(state.clone(), rt), hub)
            }
        };

        let limiter_state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                limiter_state.limiter().housekeeping();
                limiter_state.auth().limits().housekeeping();
            }
        });
        Ok(Application {
            listener,
            router,
            state,
            hub,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn hub(&self) -> &Arc<dyn Hub> {
        &self.hub
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Application {
            listener,
            router,
            state,
            hub,
        } = self;
        let checkpointer = crate::db::spawn_wal_checkpointer(state.db());
        let file_watch = state.sqlite_file().map(|f| f.spawn_watch());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let mut graceful_rx = stop_rx.clone();
        let graceful = async move {
            let _ = graceful_rx.wait_for(|stop| *stop).await;
            tracing::info!("shutting down: no new connections; closing sockets");
            hub.close().await;
        };
        let header_timeout = Duration::from_secs(state.settings().server.header_read_timeout_secs);
        let serve = crate::serve::serve(listener, router, header_timeout, graceful);
        let drain = Duration::from_secs(state.settings().server.shutdown_timeout_secs);
        let mut deadline_rx = stop_rx;
        let deadline = async move {
            let _ = deadline_rx.wait_for(|stop| *stop).await;
            tokio::time::sleep(drain).await;
        };
        tokio::select! {
            r = serve => r?,
            _ = deadline => tracing::warn!(secs = drain.as_secs(), "drain timed out; closing remaining connections"),
        }
        state.auth().store().flush().await;
        for task in [checkpointer, file_watch].into_iter().flatten() {
            task.abort();
        }
        if let Err(e) = state.db().clone().close().await {
            tracing::warn!(error = %e, "closing the database pool failed");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

async fn check_redis(url: &str) -> Result<(), ConfigError> {
    let fail = |e: String| {
        ConfigError::new(
            "redis.url",
            format!("Redis is configured but unreachable: {e}"),
        )
    };
    let client = redis::Client::open(url).map_err(|e| fail(e.to_string()))?;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| fail("timed out after 5 s".into()))?
    .map_err(|e| fail(e.to_string()))?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(())
}
