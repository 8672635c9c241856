//! UTC timestamp columns that behave the same on every backend.
//!
//! MySQL/MariaDB `TIMESTAMP` ends in 2038 and converts through the session time zone, so there
//! we store `DATETIME` holding UTC; PostgreSQL gets `timestamptz`, SQLite RFC 3339 text. The
//! entities read all three as `DateTimeUtc`.
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema;
use sea_orm_migration::sea_orm::DatabaseBackend;

pub fn utc<T: IntoIden>(backend: DatabaseBackend, col: T) -> ColumnDef {
    match backend {
        DatabaseBackend::MySql => schema::date_time(col),
        _ => schema::timestamp_with_time_zone(col),
    }
}

pub fn utc_null<T: IntoIden>(backend: DatabaseBackend, col: T) -> ColumnDef {
    match backend {
        DatabaseBackend::MySql => schema::date_time_null(col),
        _ => schema::timestamp_with_time_zone_null(col),
    }
}
