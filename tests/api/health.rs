//! /health really pings the database: 200 when it answers, 503 naming it when it does not.

use crate::helpers::*;

#[tokio::test]
async fn health_is_green_on_sqlite() {
    let app = spawn_app().await;
    let (status, body) = app.get("/health", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["redis"], "disabled");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["connections"], 0);
    assert!(
        body["config_fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(
        body["node_id"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{}", app.addr.port()))
    );
}

#[tokio::test]
async fn health_is_503_naming_the_database_while_it_is_gone_and_recovers() {
    let pg = service_url("IM_TEST_POSTGRES_URL");
    let db_url = fresh_database(&pg).await;
    let gate = TcpGate::start(host_port(&db_url)).await;
    let app = spawn_with(|s| s.database.url = replace_host_port(&db_url, gate.addr)).await;
    assert_eq!(app.get("/health", None).await.0, 200);
    gate.cut();
    let (status, body) = app.get("/health", None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"], "down");
    assert_eq!(body["failing"], serde_json::json!(["database"]));
    gate.restore();
    let mut status = 0;
    for _ in 0..40 {
        status = app.get("/health", None).await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(status, 200, "recovers once the database is back");
}

#[tokio::test]
async fn connections_count_authenticated_sockets() {
    let app = spawn_app().await;
    let token = app.login("admin", "admin123").await;
    let (c, _) = app.connect_ok(&token).await;
    assert_eq!(app.get("/health", None).await.1["connections"], 1);
    c.close().await;
    let mut n = serde_json::Value::Null;
    for _ in 0..20 {
        n = app.get("/health", None).await.1["connections"].clone();
        if n == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(n, 0);
}

/// The first column of `sql`'s first row on one pooled connection of the app's SQLite database.
async fn sqlite_value<T: sea_orm::TryGetable>(app: &TestApp, sql: &str) -> T {
    use sea_orm::{ConnectionTrait, Statement};
    app.state
        .db()
        .query_one_raw(Statement::from_string(sea_orm::DbBackend::Sqlite, sql))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap()
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_on_every_connection() {
    let app = spawn_app().await;
    for _ in 0..4 {
        let mode: String = sqlite_value(&app, "PRAGMA journal_mode").await;
        assert_eq!(mode, "wal");
    }
}

/// The WAL is copied into the database file by the background checkpointer, not only when a
/// commit crosses `wal_autocheckpoint` pages (which a few rows never do). An `immutable=1`
/// connection reads the main file alone, ignoring the WAL: the new user shows there only once a
/// checkpoint ran.
#[tokio::test]
async fn sqlite_wal_is_checkpointed_in_the_background() {
    use sea_orm::{ConnectionTrait, Statement};
    let app = spawn_app().await;
    let pages: i64 = sqlite_value(&app, "PRAGMA wal_autocheckpoint").await;
    assert_eq!(
        pages, 10_000,
        "the writer's own checkpoint is only a backstop"
    );

    app.create_user("checkpointed", "a-password-1", "user")
        .await;
    let file = app.dir.path().join("im.db");
    let main_file_only = format!("sqlite://{}?immutable=1", file.display());
    eventually("the new user is in the database file itself", 10, || {
        let url = main_file_only.clone();
        async move {
            let db = sea_orm::Database::connect(url).await.unwrap();
            // Before the first checkpoint even the tables exist only in the WAL.
            let found = db
                .query_one_raw(Statement::from_string(
                    sea_orm::DbBackend::Sqlite,
                    "SELECT count(*) FROM users WHERE username = 'checkpointed'",
                ))
                .await
                .ok()
                .flatten()
                .and_then(|row| row.try_get_by_index::<i64>(0).ok());
            db.close().await.ok();
            found == Some(1)
        }
    })
    .await;
}
