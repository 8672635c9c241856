//! Database connection and migrations: SQLite (embedded default), MySQL/MariaDB, PostgreSQL.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::config::ConfigError;

pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, ConfigError> {
    let mut opts = ConnectOptions::new(url.to_string());
    let sqlite = url.starts_with("sqlite:");
    opts.max_connections(if sqlite {
        max_connections.min(8)
    } else {
        max_connections
    })
    .min_connections(1)
    .connect_timeout(Duration::from_secs(5))
    .acquire_timeout(Duration::from_secs(5))
    .sqlx_logging(false)
    // On every pooled connection (a PRAGMA run once reaches one connection only): WAL lets
    // readers proceed during a write; NORMAL sync is crash-safe in WAL without an fsync per
    // commit; busy_timeout turns write contention into a short wait instead of SQLITE_BUSY.
    .map_sqlx_sqlite_opts(|o| {
        use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
        o.journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
    });
    let db = Database::connect(opts).await.map_err(|e| {
        ConfigError::new(
            "database.url",
            format!("cannot connect to {}: {e}", redact_url(url)),
        )
    })?;
    Ok(db)
}

pub async fn migrate_up(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    Migrator::up(db, None).await
}

/// A real round trip, for `/health`.
pub async fn ping(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    tokio::time::timeout(Duration::from_secs(2), db.ping())
        .await
        .map_err(|_| sea_orm::DbErr::Custom("database ping timed out".into()))?
}

/// `scheme://user:***@host/db`: a URL fit for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..s], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}
