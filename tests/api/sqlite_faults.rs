//! Issue 13 §5: the SQLite file replaced, moved away or locked while the server runs. What a
//! user checks: handshakes fail closed with AUTH_UNAVAILABLE (never accepted from a file
//! nobody reads, never a hang), `/health` says why, writes never go into an unlinked file, and
//! the server recovers by itself when the file is back.

use std::path::Path;

use sea_orm::sqlx::{self, Connection, Executor};
use serde_json::{Value, json};

use crate::helpers::*;

/// The server with no cached verdicts, so every handshake asks the database.
async fn uncached() -> TestApp {
    spawn_with(|s| {
        s.auth.cache_ttl_secs = 0;
        s.database.timeout_secs = 1;
    })
    .await
}

fn db_path(app: &TestApp) -> std::path::PathBuf {
    app.dir.path().join("im.db")
}

/// The file at `path`, opened by the test itself (not through the server): what is really in it.
async fn contents(path: &Path, sql: &str) -> i64 {
    let url = format!("sqlite://{}?mode=ro", path.display());
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let n: (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut c)
        .await
        .unwrap();
    n.0
}

async fn health(app: &TestApp) -> (u16, Value) {
    app.get("/health", None).await
}

async fn send(c: &loadgen::sio::Client, content: &str) -> Value {
    c.emit_with_ack("send_message", json!({"to": 2, "content": content}), WAIT)
        .await
        .expect("an ack, never a hang")[0]
        .clone()
}

#[tokio::test]
async fn a_file_moved_away_fails_closed_and_the_server_recovers_when_it_is_back() {
    let app = uncached().await;
    let token = app.login("admin", "admin123").await;
    let (open, _) = app.connect_ok(&token).await;
    let db = db_path(&app);
    let away = db.with_extension("db.away");
    std::fs::rename(&db, &away).unwrap();

    assert_eq!(
        handshake_code(&app, app.with_token(&token)).await,
        "AUTH_UNAVAILABLE",
        "a handshake is not accepted from a file no one can see any more"
    );
    let (status, body) = app.get("/auth/validate", Some(&token)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("AUTH_UNAVAILABLE")),
        "{body}"
    );
    let ack = send(&open, "into the void?").await;
    assert_eq!(ack["ok"], false, "a write is refused, not lost: {ack}");
    let (status, h) = health(&app).await;
    assert_eq!((status, h["database"].as_str()), (503, Some("down")), "{h}");
    assert!(
        h["database_reason"].as_str().unwrap().contains("is gone"),
        "{h}"
    );
    // No empty database was created in its place.
    assert!(
        !db.exists(),
        "the server must not create a new, empty im.db"
    );

    std::fs::rename(&away, &db).unwrap();
    eventually("health green with the file back", 10, || async {
        health(&app).await.0 == 200
    })
    .await;
    assert_eq!(handshake_code(&app, app.with_token(&token)).await, "OK");
    let ack = send(&open, "after the return").await;
    assert_eq!(ack["ok"], true, "{ack}");
    let stored = contents(
        &db,
        "SELECT count(*) FROM messages WHERE content IN ('into the void?', 'after the return')",
    )
    .await;
    assert_eq!(stored, 1, "only the acked message is in the file");
}

#[tokio::test]
async fn a_restore_from_backup_is_taken_into_use_and_writes_land_in_the_restored_file() {
    let app = uncached().await;
    let token = app.login("admin", "admin123").await;
    let (open, _) = app.connect_ok(&token).await;
    let db = db_path(&app);
    let backup = db.with_extension("db.backup");
    {
        // A consistent one-file backup (what `sqlite3 im.db ".backup …"` makes).
        let url = format!("sqlite://{}", db.display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        c.execute(sqlx::AssertSqlSafe(format!(
            "VACUUM INTO '{}'",
            backup.display()
        )))
        .await
        .unwrap();
    }
    assert_eq!(send(&open, "before the restore").await["ok"], true);

    // The restore: the backup moved over the live file while the server runs.
    std::fs::rename(&backup, &db).unwrap();
    let (status, h) = health(&app).await;
    assert_eq!((status, h["database"].as_str()), (503, Some("down")), "{h}");
    assert!(
        h["database_reason"]
            .as_str()
            .unwrap()
            .contains("was replaced"),
        "{h}"
    );
    eventually("the restored file taken into use", 15, || async {
        health(&app).await.0 == 200
    })
    .await;
    assert_eq!(handshake_code(&app, app.with_token(&token)).await, "OK");
    // A socket that lived through it still sends, and the message is in the file at the path.
    let ack = send(&open, "after the restore").await;
    assert_eq!(ack["ok"], true, "{ack}");
    let in_file = |content: &'static str| {
        let db = db.clone();
        async move {
            contents(
                &db,
                &format!("SELECT count(*) FROM messages WHERE content = '{content}'"),
            )
            .await
        }
    };
    assert_eq!(
        in_file("after the restore").await,
        1,
        "written into the restored file"
    );
    assert_eq!(
        in_file("before the restore").await,
        0,
        "the restored file is the backup, without what came after it"
    );
    let (_, history) = app.get("/api/messages?with=2", Some(&token)).await;
    let contents: Vec<&str> = history["data"]["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("{history}"))
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(contents, ["after the restore"], "{history}");
}

#[tokio::test]
async fn a_file_locked_by_another_process_bounds_every_wait_and_shows_in_health() {
    let app = uncached().await;
    let token = app.login("admin", "admin123").await;
    let (open, _) = app.connect_ok(&token).await;
    // What a `sqlite3` shell or a script left inside a transaction does: it holds the write
    // lock (in WAL mode readers go on; every write waits for the lock).
    let url = format!("sqlite://{}", db_path(&app).display());
    let mut locker = sqlx::SqliteConnection::connect(&url).await.unwrap();
    locker
        .execute("BEGIN EXCLUSIVE; DELETE FROM messages WHERE 0;")
        .await
        .unwrap();

    // Reading goes on: authentication does not depend on the write lock.
    let (status, body) = app.get("/auth/validate", Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    // A write waits database.timeout_secs, then fails with a clear answer (never a hang).
    let ack = send(&open, "while locked").await;
    assert_eq!(ack["ok"], false, "{ack}");
    assert_eq!(ack["code"], "INTERNAL", "{ack}");
    let (status, h) = health(&app).await;
    assert_eq!((status, h["database"].as_str()), (503, Some("down")), "{h}");
    assert!(
        h["database_reason"].as_str().unwrap().contains("locked"),
        "{h}"
    );

    locker.execute("COMMIT").await.unwrap();
    locker.close().await.unwrap();
    eventually("health green once the lock is gone", 10, || async {
        health(&app).await.0 == 200
    })
    .await;
    assert_eq!(send(&open, "after the lock").await["ok"], true);
    let (status, _) = app.get("/auth/validate", Some(&token)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn health_sees_a_sqlite_file_replaced_under_the_server_and_its_return() {
    let app = spawn_app().await;
    let (status, h) = health(&app).await;
    assert_eq!((status, h["database"].as_str()), (200, Some("ok")), "{h}");
    let db = db_path(&app);
    let (kept, copy) = (db.with_extension("db.kept"), db.with_extension("db.copy"));
    // Another file moved over the configured path.
    std::fs::hard_link(&db, &kept).unwrap();
    std::fs::copy(&db, &copy).unwrap();
    std::fs::rename(&copy, &db).unwrap();
    let (status, h) = health(&app).await;
    assert_eq!((status, h["database"].as_str()), (503, Some("down")), "{h}");
    assert_eq!(h["failing"], json!(["database"]), "{h}");
    // The original back in place: healthy again at once, without a restart.
    std::fs::rename(&kept, &db).unwrap();
    let (status, h) = health(&app).await;
    assert_eq!((status, h["database"].as_str()), (200, Some("ok")), "{h}");
}
