//! Database connection and migrations: SQLite (embedded default), MySQL/MariaDB, PostgreSQL.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};

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
    .sqlx_logging(false);
    let db = Database::connect(opts).await.map_err(|e| {
        ConfigError::new(
            "database.url",
            format!("cannot connect to {}: {e}", redact_url(url)),
        )
    })?;
    if db.get_database_backend() == DbBackend::Sqlite {
        // WAL lets readers proceed during a write; busy_timeout turns lock contention into a
        // short wait instead of an immediate SQLITE_BUSY.
        for pragma in [
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA busy_timeout=5000",
            "PRAGMA foreign_keys=ON",
        ] {
            db.execute_unprepared(pragma)
                .await
                .map_err(|e| ConfigError::new("database.url", format!("{pragma} failed: {e}")))?;
        }
    }
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
