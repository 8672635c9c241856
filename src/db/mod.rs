//! Database connection and migrations: SQLite (embedded default), MySQL/MariaDB, PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::config::ConfigError;

mod sqlite_file;

pub use sqlite_file::{SqliteFile, probe_write_lock};

/// An open database: the pool, and for a SQLite file its watch (see [`SqliteFile`]).
pub struct Opened {
    pub db: DatabaseConnection,
    pub sqlite_file: Option<Arc<SqliteFile>>,
}

/// The pool for `database.url`. `timeout` bounds every wait a request can meet: a pool
/// connection, a connect, and (SQLite) a lock another process holds (`busy_timeout`).
pub async fn connect(
    url: &str,
    max_connections: u32,
    timeout: Duration,
) -> Result<DatabaseConnection, ConfigError> {
    Ok(open(url, max_connections, timeout).await?.db)
}

/// [`connect`], keeping the SQLite file's watch (the server runs it; CLI commands do not).
pub async fn open(
    url: &str,
    max_connections: u32,
    timeout: Duration,
) -> Result<Opened, ConfigError> {
    let mut opts = ConnectOptions::new(url.to_string());
    let sqlite_file = SqliteFile::of(url);
    let sqlite = url.starts_with("sqlite:");
    opts.max_connections(if sqlite {
        max_connections.min(8)
    } else {
        max_connections
    })
    // SQLite: none, so sqlx opens no second connection beside the first while that one makes a
    // new file WAL ("database is locked"); `SqliteFile::attach` then fills the pool.
    .min_connections(if sqlite { 0 } else { 1 })
    .connect_timeout(timeout)
    .acquire_timeout(timeout)
    .sqlx_logging(false)
    // On every pooled connection (a PRAGMA run once reaches one connection only): WAL lets
    // readers proceed during a write; NORMAL sync is crash-safe in WAL without an fsync per
    // commit; busy_timeout turns contention (ours, or a lock another process holds) into a
    // bounded wait instead of an immediate SQLITE_BUSY.
    // The WAL is checkpointed by `spawn_wal_checkpointer`, off the writers' path; the raised
    // autocheckpoint is only the backstop for a process that does not run it (CLI commands).
    .map_sqlx_sqlite_opts(move |o| {
        use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
        o.journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(timeout)
            .foreign_keys(true)
            .pragma("wal_autocheckpoint", AUTOCHECKPOINT_PAGES.to_string())
    });
    if let Some(file) = sqlite_file.clone() {
        opts.map_sqlx_sqlite_pool_opts(move |o| file.hook(o));
    }
    let db = Database::connect(opts).await.map_err(|e| {
        ConfigError::new(
            "database.url",
            format!("cannot connect to {}: {e}", crate::config::redact_url(url)),
        )
    })?;
    if let Some(file) = &sqlite_file {
        file.attach(db.get_sqlite_connection_pool())
            .await
            .map_err(|e| ConfigError::new("database.url", format!("opening the pool: {e}")))?;
    }
    Ok(Opened { db, sqlite_file })
}

/// WAL pages after which a commit checkpoints by itself (SQLite's default: 1,000). Reached only
/// when the background checkpointer is not running or cannot keep up.
const AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// How often the WAL is copied back into the database file. Chat ack p99, A/B runs on 2 cores:
/// at 5,000 msg/s every second 70 ms, 250 ms 39–46 ms, 100 ms 28–33 ms, 40 ms 24–31 ms; at
/// 12,500 msg/s 100 ms kept up (p99 75 ms) where 40 ms did not. A longer interval means a
/// bigger copy and fsync, and the message writer's WAL appends wait behind it in the
/// filesystem; a shorter one spends more on checkpoints.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// SQLite only: checkpoints the WAL every 100 ms from its own pooled connection.
///
/// Why: with SQLite's automatic checkpoint, the commit that crosses 1,000 WAL pages copies them
/// into the database file and fsyncs it before it returns — inside the message writer's
/// transaction, so one batch of chat acks in every few hundred waits for it (17.6 % of the
/// server's CPU at 14k msg/s was `walCheckpoint` under the writer). A PASSIVE checkpoint here
/// never blocks writers or readers; it copies what no reader still needs. Measured: chat at
/// 10,000 msg/s went from saturated (ack p50 0.1–1.4 s) to p50 2–7 ms; at 5,000 msg/s the
/// in-writer checkpoint has the lower p99 (25–28 ms against 39–41 ms), see BENCHMARKS.md.
pub fn spawn_wal_checkpointer(db: &DatabaseConnection) -> Option<tokio::task::JoinHandle<()>> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    if db.get_database_backend() != DbBackend::Sqlite {
        return None;
    }
    let db = db.clone();
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let checkpoint =
                Statement::from_string(DbBackend::Sqlite, "PRAGMA wal_checkpoint(PASSIVE)");
            match db.query_one_raw(checkpoint).await {
                // (busy, WAL frames, frames checkpointed)
                Ok(Some(row)) => {
                    let frames: i64 = row.try_get_by_index(1).unwrap_or(-1);
                    let done: i64 = row.try_get_by_index(2).unwrap_or(-1);
                    if frames > 0 {
                        tracing::trace!(frames, done, "WAL checkpoint");
                    }
                }
                Ok(None) => {}
                // A database that went away shows in /health; the next tick tries again.
                Err(e) => tracing::debug!(error = %e, "WAL checkpoint failed"),
            }
        }
    }))
}

/// Apply pending migrations; a failure is reported against `database.url`, as every caller
/// (serve, the CLI commands) reports it.
pub async fn migrate_up(db: &DatabaseConnection) -> Result<(), ConfigError> {
    Migrator::up(db, None)
        .await
        .map_err(|e| ConfigError::new("database.url", format!("migrations failed: {e}")))
}

/// A real round trip, for `/health`.
pub async fn ping(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    tokio::time::timeout(Duration::from_secs(2), db.ping())
        .await
        .map_err(|_| sea_orm::DbErr::Custom("database ping timed out".into()))?
}
