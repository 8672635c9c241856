//! Migrations up, down, up again and a user round trip on SQLite, MariaDB and PostgreSQL,
//! through the real `im-server migrate` / `user add` commands.

use crate::helpers::*;

fn im_server(db_url: &str, args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    run_cli(dir.path(), args, &[("DATABASE_URL", db_url)])
}

async fn round_trip(db_url: &str) {
    use migration::MigratorTrait;
    let all = migration::Migrator::migrations().len();
    let (ok, out) = im_server(db_url, &["migrate", "up"]);
    assert!(ok, "{out}");
    let (ok, out) = im_server(db_url, &["migrate", "status"]);
    assert!(ok && out.matches("Applied").count() == all, "{out}");
    let (ok, out) = im_server(db_url, &["migrate", "down"]);
    assert!(ok, "{out}");
    let (ok, out) = im_server(db_url, &["migrate", "status"]);
    assert!(ok && out.matches("Pending").count() == all, "{out}");
    let (ok, out) = im_server(db_url, &["migrate", "up"]);
    assert!(ok, "{out}");
    let (ok, out) = im_server(
        db_url,
        &[
            "user",
            "add",
            "--username",
            "agent7",
            "--password",
            "pw-7",
            "--type",
            "kefu",
            "--display-name",
            "Agent Seven",
        ],
    );
    assert!(ok && out.contains("username=agent7"), "{out}");
    let (ok, out) = im_server(
        db_url,
        &["user", "add", "--username", "agent7", "--password", "other"],
    );
    assert!(!ok && out.contains("already taken"), "{out}");

    // The same code path the server uses reads it back, and the password verifies.
    let db = im_server::db::connect(db_url, 2, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let u = im_server::users::find_by_username(&db, "agent7")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (u.user_type.as_str(), u.display_name.as_str(), u.is_active),
        ("kefu", "Agent Seven", true)
    );
    assert!(u.password_hash.starts_with("$argon2id$"));
    assert!(im_server::auth::password::verify("pw-7".into(), u.password_hash.clone()).await);
    // Timestamps come back as UTC.
    assert!((chrono::Utc::now() - u.created_at).num_seconds().abs() < 120);
    db.close().await.ok();
}

#[tokio::test]
async fn migrations_and_users_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("s.db").display()
    ))
    .await;
}

#[tokio::test]
async fn migrations_and_users_on_mariadb() {
    round_trip(&fresh_database(&service_url("IM_TEST_MYSQL_URL")).await).await;
}

#[tokio::test]
async fn migrations_and_users_on_postgres() {
    round_trip(&fresh_database(&service_url("IM_TEST_POSTGRES_URL")).await).await;
}

#[tokio::test]
async fn the_whole_login_and_handshake_path_works_on_mariadb_and_postgres() {
    for var in ["IM_TEST_MYSQL_URL", "IM_TEST_POSTGRES_URL"] {
        let url = fresh_database(&service_url(var)).await;
        let app = spawn_with(|s| s.database.url = url).await;
        let token = app.login("admin", "admin123").await;
        let (c, info) = app.connect_ok(&token).await;
        assert_eq!(info["username"], "admin", "{var}");
        // Messages go through the batch writer (RETURNING on PostgreSQL, a transaction on MySQL).
        let em = c.emitter();
        let sends: Vec<_> = (0..10)
            .map(|i| {
                let em = em.clone();
                tokio::spawn(async move {
                    em.emit_with_ack(
                        "send_message",
                        serde_json::json!({"to": 2, "content": format!("m{i}")}),
                        WAIT,
                    )
                    .await
                    .unwrap()[0]
                        .clone()
                })
            })
            .collect();
        for s in sends {
            assert_eq!(s.await.unwrap()["ok"], true, "{var}");
        }
        let (_, page) = app.get("/api/messages?with=2", Some(&token)).await;
        assert_eq!(
            page["data"]["messages"].as_array().unwrap().len(),
            10,
            "{var}: {page}"
        );
        // messages:sync and lastMessageId read the same rows through their own indexes.
        let newest = page["data"]["messages"][0]["id"].as_i64();
        let (again, info) = app.connect_ok(&token).await;
        assert_eq!(info["lastMessageId"].as_i64(), newest, "{var}");
        let synced = crate::delivery::sync_all(&again, 0, 4).await;
        assert_eq!(synced.len(), 10, "{var}");
        assert_eq!(synced.last().unwrap()["id"].as_i64(), newest, "{var}");
        assert_eq!(
            app.post("/auth/logout", serde_json::json!({}), Some(&token))
                .await
                .0,
            200
        );
        assert_eq!(
            app.get("/auth/validate", Some(&token)).await.1["code"],
            "TOKEN_REVOKED",
            "{var}"
        );
    }
}

/// A database created before string user ids (messages with BIGINT ids and foreign keys)
/// migrates in place: its messages keep their ids and read back as numbers, its indexes stay,
/// and string ids fit afterwards. Going down again works while every id is a number.
async fn messages_migrate_in_place(db_url: &str) {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::ConnectionTrait;
    use sea_orm::sea_query::{Alias, Query};
    let db = im_server::db::connect(db_url, 2, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    Migrator::up(&db, Some(3)).await.unwrap();
    let mut ids = vec![];
    for name in ["mig_a", "mig_b"] {
        let u = im_server::users::create(
            &db,
            im_server::users::NewUser {
                username: name.into(),
                password: "pw".into(),
                user_type: "user".into(),
                display_name: None,
                email: None,
            },
        )
        .await
        .unwrap();
        ids.push(u.id);
    }
    let (a, b) = (ids[0], ids[1]);
    let mut insert = Query::insert()
        .into_table(Alias::new("messages"))
        .columns(["from_user_id", "to_user_id", "content", "created_at"].map(Alias::new))
        .to_owned();
    for (from, to, text) in [(a, b, "one"), (b, a, "two")] {
        insert.values_panic([
            from.into(),
            to.into(),
            text.into(),
            chrono::Utc::now().into(),
        ]);
    }
    db.execute(&insert).await.unwrap();
    Migrator::up(&db, None).await.unwrap();

    let (me, with) = (
        im_server::ids::UserId::Int(a),
        im_server::ids::UserId::Int(b),
    );
    let rows = im_server::chat::history(&db, &me, &with, None, 10)
        .await
        .unwrap();
    let shown: Vec<_> = rows
        .iter()
        .map(|m| im_server::chat::message_json(m, im_server::ids::IdKind::Int))
        .map(|j| (j["from"].clone(), j["to"].clone(), j["content"].clone()))
        .collect();
    assert_eq!(
        shown,
        vec![
            (b.into(), a.into(), "two".into()),
            (a.into(), b.into(), "one".into())
        ],
        "{db_url}"
    );
    if db_url.starts_with("sqlite") {
        let names: Vec<String> = db
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='messages' AND sql IS NOT NULL ORDER BY name",
            ))
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get_by_index::<String>(0).unwrap())
            .collect();
        // Every index the table had before the rebuild, messages:sync's included.
        assert_eq!(
            names,
            [
                "idx_messages_conversation",
                "idx_messages_from_id",
                "idx_messages_to_id",
                "uniq_messages_client_msg"
            ]
        );
    }
    // A backend's string ids fit now (no foreign key to im-server's users).
    let mut insert = Query::insert()
        .into_table(Alias::new("messages"))
        .columns(["from_user_id", "to_user_id", "content", "created_at"].map(Alias::new))
        .to_owned();
    insert.values_panic([
        "kefu_001".into(),
        "kefu_002".into(),
        "x".into(),
        chrono::Utc::now().into(),
    ]);
    db.execute(&insert).await.unwrap();
    db.execute_unprepared("DELETE FROM messages WHERE from_user_id = 'kefu_001'")
        .await
        .unwrap();
    Migrator::down(&db, Some(1)).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(
        im_server::chat::history(&db, &me, &with, None, 10)
            .await
            .unwrap()
            .len(),
        2,
        "{db_url}"
    );
    db.close().await.ok();
}

#[tokio::test]
async fn messages_migrate_in_place_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    messages_migrate_in_place(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("m.db").display()
    ))
    .await;
    messages_migrate_in_place(&fresh_database(&service_url("IM_TEST_MYSQL_URL")).await).await;
    messages_migrate_in_place(&fresh_database(&service_url("IM_TEST_POSTGRES_URL")).await).await;
}
