//! `[external]` (contract §9): im-server in front of a backend's own token and user tables.
//! Each backend plays "the existing app": its tables are created and its rows written by the
//! test over its own connection, im-server only reads them (SQLite opened `?mode=ro`, MariaDB
//! through a SELECT-only user, PostgreSQL with hashed tokens and other column names).

use std::time::Duration;

use chrono::{DateTime, Utc};
use im_server::auth::jwt::Claims;
use im_server::config::{ExternalTokens, ExternalUsers, Secret, Settings, TokenFormat};
use im_server::startup::Application;
use loadgen::sio::Incoming;
use reqwest::Method;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Value as DbValue};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::tokens::forge;

/// The backend's own connection (read-write), to play the app that owns the tables.
struct Backend {
    db: DatabaseConnection,
    /// `external.url` for im-server (read-only where the backend allows it).
    url: String,
    /// How the backend writes `expires_at`.
    time: fn(DateTime<Utc>) -> DbValue,
    tokens_table: &'static str,
    token_col: &'static str,
    user_col: &'static str,
    revoked_col: &'static str,
    expires_col: &'static str,
    hashed: bool,
}

impl Backend {
    /// Report 000's names (`user_tokens`: `token`, `user_id`, `is_revoked`, `expires_at`).
    fn report_000(
        db: DatabaseConnection,
        url: String,
        time: fn(DateTime<Utc>) -> DbValue,
    ) -> Backend {
        Backend {
            db,
            url,
            time,
            tokens_table: "user_tokens",
            token_col: "token",
            user_col: "user_id",
            revoked_col: "is_revoked",
            expires_col: "expires_at",
            hashed: false,
        }
    }

    /// A SQLite file the backend writes and im-server opens read-only.
    async fn sqlite(path: &std::path::Path) -> Backend {
        let rw = Database::connect(format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .unwrap();
        Backend::report_000(
            rw,
            format!("sqlite://{}?mode=ro", path.display()),
            sqlite_time,
        )
    }

    /// Record a token the way the backend's login does.
    async fn issue(&self, user: Value, expires_in: i64) -> String {
        let now = Utc::now().timestamp();
        let token = sign(self.user_claim(), user.clone(), now + 3600);
        self.insert_row(&token, user, expires_in).await;
        token
    }

    fn user_claim(&self) -> &'static str {
        if self.hashed { "userId" } else { "sub" }
    }

    async fn insert_row(&self, token: &str, user: Value, expires_in: i64) {
        let key = if self.hashed {
            im_server::auth::store::token_hash(token)
        } else {
            token.to_string()
        };
        let user: DbValue = match user {
            Value::Number(n) => n.as_i64().unwrap().into(),
            Value::String(s) => s.into(),
            other => panic!("user id {other}"),
        };
        let q = Query::insert()
            .into_table(Alias::new(self.tokens_table))
            .columns([
                Alias::new(self.token_col),
                Alias::new(self.user_col),
                Alias::new(self.revoked_col),
                Alias::new(self.expires_col),
            ])
            .values_panic([
                key.into(),
                user.into(),
                revoked_value(self.hashed, false).into(),
                (self.time)(Utc::now() + chrono::Duration::seconds(expires_in)).into(),
            ])
            .to_owned();
        self.db
            .execute(&q)
            .await
            .expect("backend inserts its token row");
    }

    async fn revoke(&self, token: &str) {
        let key = if self.hashed {
            im_server::auth::store::token_hash(token)
        } else {
            token.to_string()
        };
        let q = Query::update()
            .table(Alias::new(self.tokens_table))
            .value(
                Alias::new(self.revoked_col),
                revoked_value(self.hashed, true),
            )
            .and_where(Expr::col(Alias::new(self.token_col)).eq(key))
            .to_owned();
        self.db.execute(&q).await.expect("backend revokes");
    }

    async fn exec(&self, sql: &str) {
        self.db
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// MariaDB stores the flag as TINYINT (1/0), PostgreSQL as boolean.
fn revoked_value(boolean: bool, revoked: bool) -> DbValue {
    if boolean {
        revoked.into()
    } else {
        (revoked as i32).into()
    }
}

/// A JWT as the backend signs it (HS256, same secret), the user id in `claim`.
fn sign(claim: &str, user: Value, exp: i64) -> String {
    let now = Utc::now().timestamp();
    let mut c = Claims::new(Value::Null, now, exp);
    if claim == "sub" {
        c.sub = user;
    } else {
        c.extra.insert(claim.into(), user);
    }
    c.jti = Some(uuid::Uuid::new_v4().simple().to_string());
    forge(SECRET, "HS256", &c)
}

/// The `[external]` block of docs/MIGRATING.md for report 000's schema, exactly as printed
/// there (its URL replaced by the test's), loaded through the real config layers.
fn migrating_md_settings(dir: &std::path::Path, url: &str) -> Settings {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/MIGRATING.md"))
        .expect("docs/MIGRATING.md");
    let block = toml_block(&doc, "[external]");
    std::fs::write(dir.join("im-server.toml"), block).unwrap();
    let loaded = Settings::load(&im_server::config::ConfigSources {
        config_path: None,
        dir: dir.to_path_buf(),
        env: vec![
            ("IM_EXTERNAL__URL".into(), url.into()),
            ("IM_EXTERNAL__RECHECK_SECS".into(), "1".into()),
        ],
    })
    .expect("the MIGRATING.md block loads");
    let mut s = loaded.settings;
    let t = test_settings(dir);
    s.server = t.server;
    s.database = t.database;
    s.auth.jwt_secret = Some(Secret::new(SECRET));
    s
}

/// The first ```toml block of `doc` that contains `marker`.
pub fn toml_block(doc: &str, marker: &str) -> String {
    doc.split("```toml")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains(marker))
        .unwrap_or_else(|| panic!("no ```toml block with {marker} in the doc"))
        .to_string()
}

/// The common checks, on any backend: accepted tokens with the id's JSON type kept, each
/// refusal code, messages and presence between mapped users, login/logout refused, a
/// revocation in the backend's table reaching a connected socket, /api/revoke by user.
async fn exercise(app: &TestApp, b: &Backend, alice: Value, bob: Value) {
    // Accepted: `connected.userId` keeps the column's JSON type.
    let ta = b.issue(alice.clone(), 3600).await;
    let (mut ca, info) = app.connect_ok(&ta).await;
    assert_eq!(info["userId"], alice, "{info}");
    assert_eq!(info["username"], "alice");
    let tb = b.issue(bob.clone(), 3600).await;
    let (mut cb, info) = app.connect_ok(&tb).await;
    assert_eq!(info["userId"], bob, "{info}");

    // A direct message between mapped users: stored in im-server's table, ids keep their type.
    let ack = ca
        .emit_with_ack(
            "send_message",
            json!({"to": bob, "content": "hi bob", "client_msg_id": "m1"}),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(ack[0]["ok"], true, "{ack:?}");
    let m = cb.expect_event("message", WAIT).await.unwrap();
    assert_eq!((&m[0]["from"], &m[0]["to"]), (&alice, &bob), "{m:?}");
    assert_eq!(m[0]["content"], "hi bob");
    let with = match &bob {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let (s, h) = app
        .get(&format!("/api/messages?with={with}"), Some(&ta))
        .await;
    assert_eq!(s, 200, "{h}");
    assert_eq!(h["data"]["messages"][0]["to"], bob, "{h}");
    assert_eq!(h["data"]["messages"][0]["from"], alice, "{h}");
    // An unknown recipient in the backend's users table.
    let ack = ca
        .emit_with_ack(
            "send_message",
            json!({"to": if alice.is_string() { json!("nobody_9") } else { json!(999_999) }, "content": "x"}),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(ack[0]["code"], "USER_NOT_FOUND", "{ack:?}");

    // Presence and the HTTP views name the mapped users with their ids.
    let ack = ca
        .emit_with_ack("presence:subscribe", json!({"userIds": [bob]}), WAIT)
        .await
        .unwrap();
    assert_eq!(ack[0]["online"], json!([bob]), "{ack:?}");
    let (s, online) = app.get("/auth/online", Some(&ta)).await;
    assert_eq!(s, 200, "{online}");
    let ids: Vec<&Value> = online["data"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| &u["id"])
        .collect();
    assert!(ids.contains(&&alice) && ids.contains(&&bob), "{online}");
    let (s, sess) = app.get("/auth/session", Some(&ta)).await;
    assert_eq!((s, &sess["data"]["user"]["id"]), (200, &alice), "{sess}");
    let (s, v) = app.get("/auth/validate", Some(&ta)).await;
    assert_eq!((s, &v["data"]["user"]["username"]), (200, &json!("alice")));

    // The backend issues and revokes tokens, not im-server.
    let (s, body) = app
        .post(
            "/auth/login",
            json!({"username": "alice", "password": "x"}),
            None,
        )
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("backend"),
        "{body}"
    );
    let (s, body) = app.post("/auth/logout", json!({}), Some(&ta)).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "{body}"
    );

    // Each refusal code of §9.
    let claim = b.user_claim();
    let now = Utc::now().timestamp();
    let no_row = sign(claim, alice.clone(), now + 600);
    assert_eq!(
        handshake_code(app, app.with_token(&no_row)).await,
        "TOKEN_NOT_FOUND"
    );
    let revoked = b.issue(alice.clone(), 3600).await;
    b.revoke(&revoked).await;
    assert_eq!(
        handshake_code(app, app.with_token(&revoked)).await,
        "TOKEN_REVOKED"
    );
    let expired_row = b.issue(alice.clone(), -3600).await;
    assert_eq!(
        handshake_code(app, app.with_token(&expired_row)).await,
        "TOKEN_EXPIRED"
    );
    // The row says bob, the token says alice.
    let lying = sign(claim, alice.clone(), now + 600);
    b.insert_row(&lying, bob.clone(), 3600).await;
    assert_eq!(
        handshake_code(app, app.with_token(&lying)).await,
        "TOKEN_CLAIMS_INVALID"
    );
    let ghost_id = if alice.is_string() {
        json!("ghost_1")
    } else {
        json!(424_242)
    };
    let ghost = b.issue(ghost_id, 3600).await;
    assert_eq!(
        handshake_code(app, app.with_token(&ghost)).await,
        "USER_NOT_FOUND"
    );
    let carol = if alice.is_string() {
        json!("carol_3")
    } else {
        json!(3)
    };
    let disabled = b.issue(carol, 3600).await;
    assert_eq!(
        handshake_code(app, app.with_token(&disabled)).await,
        "USER_DISABLED"
    );
    let other_claim = if claim == "sub" { "uid" } else { "sub" };
    let no_claim = sign(other_claim, alice.clone(), now + 600);
    assert_eq!(
        handshake_code(app, app.with_token(&no_claim)).await,
        "TOKEN_CLAIMS_INVALID"
    );
    // `token inspect`'s HTTP twin reports the mapped row and user.
    let (s, d) = http_json(
        Method::POST,
        &app.url("/auth/tokens/inspect"),
        Some(json!({"token": revoked})),
        None,
        Some("ext-key"),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(
        (
            &d["data"]["db"]["status"],
            &d["data"]["verdict"],
            &d["data"]["user"]["id"]
        ),
        (&json!("revoked"), &json!("TOKEN_REVOKED"), &alice),
        "{d}"
    );

    // A revocation made in the backend's table reaches the connected socket (recheck 1 s).
    b.revoke(&tb).await;
    let err = cb
        .expect_event("error", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(err[0]["code"], "TOKEN_REVOKED", "{err:?}");
    assert!(matches!(
        cb.next(WAIT).await,
        Some(Incoming::Disconnected) | Some(Incoming::Closed) | None
    ));

    // /api/revoke by user id: alice's socket goes at once, the row stays as the backend left it.
    let (s, r) = http_json(
        Method::POST,
        &app.url("/api/revoke"),
        Some(json!({"user_ids": [alice]})),
        None,
        Some("ext-key"),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["data"]["disconnected_sockets"], 1, "{r}");
    assert_eq!(r["data"]["revoked_rows"], 0, "{r}");
    let err = ca.expect_event("error", WAIT).await.unwrap();
    assert_eq!(err[0]["code"], "TOKEN_REVOKED");
    let (s, r) = http_json(
        Method::POST,
        &app.url("/api/revoke"),
        Some(json!({})),
        None,
        Some("ext-key"),
    )
    .await;
    assert_eq!((s, r["code"].as_str()), (400, Some("BAD_REQUEST")), "{r}");
}

fn external_settings(
    dir: &std::path::Path,
    url: &str,
    configure: impl FnOnce(&mut Settings),
) -> Settings {
    let mut s = test_settings(dir);
    s.server.api_key = Some(Secret::new("ext-key"));
    s.external.url = Some(Secret::new(url));
    s.external.recheck_secs = 1;
    configure(&mut s);
    s
}

fn sqlite_time(t: DateTime<Utc>) -> DbValue {
    t.format("%Y-%m-%d %H:%M:%S").to_string().into()
}

/// SQLite: string ids, raw tokens, text `expires_at`, opened read-only; the file is byte for
/// byte the same afterwards.
#[tokio::test]
async fn sqlite_external_tables_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backend.db");
    let b = Backend::sqlite(&path).await;
    b.exec(
        "CREATE TABLE users (id TEXT PRIMARY KEY, username TEXT NOT NULL, nickname TEXT, \
         role TEXT, is_active INTEGER NOT NULL DEFAULT 1)",
    )
    .await;
    b.exec(
        "CREATE TABLE user_tokens (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, \
         token TEXT NOT NULL, is_revoked INTEGER NOT NULL DEFAULT 0, expires_at TEXT NOT NULL)",
    )
    .await;
    b.exec(
        "INSERT INTO users VALUES ('kefu_001','alice','Alice','kefu',1), \
         ('kefu_002','bob','Bob','kefu',1), ('carol_3','carol','Carol','user','0')",
    )
    .await;
    let app_dir = tempfile::tempdir().unwrap();
    let settings = external_settings(app_dir.path(), &b.url, |s| {
        s.socketio.ping_interval_ms = 1000; // doctor's heartbeat step waits one ping
        s.external.tokens = Some(ExternalTokens {
            revoked: Some("is_revoked".into()),
            expires_at: Some("expires_at".into()),
            ..Default::default()
        });
        s.external.users = ExternalUsers {
            display_name: Some("nickname".into()),
            user_type: Some("role".into()),
            active: Some("is_active".into()),
            ..Default::default()
        };
    });
    let app = spawn_settings(settings, app_dir).await;
    let before = std::fs::read(&path).unwrap();
    let (s, h) = app.get("/health", None).await;
    assert_eq!((s, &h["external"]), (200, &json!("ok")), "{h}");
    let t = b.issue(json!("kefu_001"), 3600).await;
    let (_c, info) = app.connect_ok(&t).await;
    assert_eq!(info["displayName"], "Alice");
    assert_eq!(info["userType"], "kefu");
    drop(_c);
    let written = std::fs::read(&path).unwrap();

    // `token inspect` reads the same mapped tables offline: the row and the user by string id.
    let cli_dir = tempfile::tempdir().unwrap();
    let env = [
        ("JWT_SECRET", SECRET.to_string()),
        (
            "DATABASE_URL",
            format!("sqlite://{}/own.db?mode=rwc", cli_dir.path().display()),
        ),
        ("IM_EXTERNAL__URL", b.url.clone()),
        ("IM_EXTERNAL__TOKENS__REVOKED", "is_revoked".into()),
        ("IM_EXTERNAL__TOKENS__EXPIRES_AT", "expires_at".into()),
    ];
    let (code, out, err) = crate::diagnose::im_server(
        cli_dir.path(),
        &env,
        &["token", "inspect", &t, "--json"],
        None,
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        (&v["verdict"], &v["db"]["status"]),
        (&json!("OK"), &json!("found")),
        "{v}"
    );
    assert_eq!(v["user"]["id"], "kefu_001", "{v}");

    // `im-server doctor` (MIGRATING.md §6) walks the whole chain to `connected` with that token.
    let url = app.url("/im");
    let (code, out, err) = crate::diagnose::im_server(
        cli_dir.path(),
        &[],
        &["doctor", "--url", &url, "--token", &t, "--json"],
        None,
    )
    .await;
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
    assert_eq!((code, &v["ok"]), (0, &json!(true)), "{v}");
    assert!(!out.contains(t.as_str()), "doctor never prints the token");

    // `/api/publish to_users` with a string id reaches that user's sockets.
    let (mut c2, _) = app.connect_ok(&t).await;
    let (s, r) = http_json(
        Method::POST,
        &app.url("/api/publish"),
        Some(json!({"event": "order:paid", "data": {"n": 1}, "to_users": ["kefu_001"]})),
        None,
        Some("ext-key"),
    )
    .await;
    assert_eq!(
        (s, &r["data"]["delivered_to_sockets"]),
        (200, &json!(1)),
        "{r}"
    );
    assert_eq!(
        c2.expect_event("order:paid", WAIT).await.unwrap()[0]["n"],
        1
    );
    drop(c2);
    exercise(&app, &b, json!("kefu_001"), json!("kefu_002")).await;
    // Only the backend's own writes changed the file: im-server's connection is read-only.
    assert_ne!(before, written, "the backend wrote its row");
    let ro = Database::connect(b.url.clone()).await.unwrap();
    let err = ro
        .execute_unprepared("INSERT INTO users VALUES ('x','x','x','x',1)")
        .await
        .expect_err("external.url is opened read-only");
    assert!(err.to_string().contains("readonly"), "{err}");
}

/// Startup checks the mapping against the live schema, naming the key.
#[tokio::test]
async fn a_wrong_mapping_fails_startup_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backend.db");
    let rw = Backend::sqlite(&path).await.db;
    rw.execute_unprepared("CREATE TABLE users (id TEXT PRIMARY KEY, username TEXT)")
        .await
        .unwrap();
    rw.execute_unprepared("CREATE TABLE user_tokens (user_id TEXT, token TEXT)")
        .await
        .unwrap();
    let url = format!("sqlite://{}?mode=ro", path.display());
    let fails = |configure: Box<dyn FnOnce(&mut Settings)>| {
        let url = url.clone();
        async move {
            let d = tempfile::tempdir().unwrap();
            let s = external_settings(d.path(), &url, configure);
            match Application::build(s).await {
                Ok(_) => panic!("startup should fail"),
                Err(e) => e.to_string(),
            }
        }
    };
    let e = fails(Box::new(|s| {
        s.external.tokens = Some(ExternalTokens {
            revoked: Some("is_revoked".into()),
            ..Default::default()
        })
    }))
    .await;
    assert!(
        e.starts_with("external.tokens.revoked: no column is_revoked in user_tokens"),
        "{e}"
    );
    let e = fails(Box::new(|s| s.external.users.table = "members".into())).await;
    assert!(
        e.starts_with("external.users.table: no table members"),
        "{e}"
    );
    let e = fails(Box::new(|s| {
        s.external.users.id = "id; DROP TABLE users".into()
    }))
    .await;
    assert!(
        e.starts_with("external.users.id: \"id; DROP TABLE users\" is not an identifier"),
        "{e}"
    );
    let e = fails(Box::new(|s| {
        s.external.url = Some(Secret::new("mysql://reader:s3cret-pw@127.0.0.1:1/none"))
    }))
    .await;
    assert!(e.starts_with("external.url: cannot connect"), "{e}");
    assert!(
        !e.contains("s3cret-pw"),
        "the password must not be shown: {e}"
    );
    let e = fails(Box::new(|s| {
        s.external.url = Some(Secret::new("redis://x"))
    }))
    .await;
    assert!(e.starts_with("external.url: must be a mysql://"), "{e}");
}

fn mysql_time(t: DateTime<Utc>) -> DbValue {
    t.naive_utc().into()
}

/// MariaDB with report 000's `user_tokens` (raw token, `is_revoked` tinyint, DATETIME
/// `expires_at`) and a users table with string ids, read through a user granted SELECT on the
/// two tables only, configured with the block printed in docs/MIGRATING.md. The database is
/// reached through a TCP gate the test cuts and restores: handshakes fail closed with
/// AUTH_UNAVAILABLE, /health names `external`, and both recover without a restart.
#[tokio::test]
async fn mariadb_report_000_schema_with_a_select_only_user() {
    let server = service_url("IM_TEST_MYSQL_URL");
    let url = fresh_database(&server).await;
    let db_name = url.rsplit('/').next().unwrap().to_string();
    let rw = Database::connect(&url).await.unwrap();
    let reader = format!("ro_{}", &db_name[5..17]);
    let gate = TcpGate::start(host_port(&server)).await;
    let ro_url = replace_host_port(
        &format!(
            "mysql://{reader}:reader-pw@{}/{db_name}",
            host_port(&server)
        ),
        gate.addr,
    );
    let b = Backend::report_000(rw, ro_url.clone(), mysql_time);
    // Report 000's tables, as the NestJS backend created them.
    b.exec(
        "CREATE TABLE users (id VARCHAR(64) NOT NULL PRIMARY KEY, username VARCHAR(64) NOT NULL, \
         password VARCHAR(255) NOT NULL DEFAULT '', user_type VARCHAR(32) NOT NULL DEFAULT 'kefu', \
         display_name VARCHAR(128) NULL, email VARCHAR(128) NULL, \
         is_active TINYINT(1) NOT NULL DEFAULT 1, created_at DATETIME DEFAULT CURRENT_TIMESTAMP)",
    )
    .await;
    b.exec(
        "CREATE TABLE user_tokens (id INT AUTO_INCREMENT PRIMARY KEY, user_id VARCHAR(64) NOT NULL, \
         token TEXT NOT NULL, is_revoked TINYINT(1) NOT NULL DEFAULT 0, expires_at DATETIME NOT NULL, \
         created_at DATETIME DEFAULT CURRENT_TIMESTAMP)",
    )
    .await;
    b.exec(
        "INSERT INTO users (id, username, user_type, display_name, is_active) VALUES \
         ('kefu_001','alice','kefu','系统管理员',1), ('kefu_002','bob','kefu','客服001',1), \
         ('carol_3','carol','user','Carol',0)",
    )
    .await;
    b.exec(&format!(
        "CREATE USER '{reader}'@'127.0.0.1' IDENTIFIED BY 'reader-pw'"
    ))
    .await;
    b.exec(&format!(
        "GRANT SELECT ON {db_name}.user_tokens TO '{reader}'@'127.0.0.1'"
    ))
    .await;
    b.exec(&format!(
        "GRANT SELECT ON {db_name}.users TO '{reader}'@'127.0.0.1'"
    ))
    .await;

    let app_dir = tempfile::tempdir().unwrap();
    let mut settings = migrating_md_settings(app_dir.path(), &ro_url);
    settings.server.api_key = Some(Secret::new("ext-key"));
    settings.auth.cache_ttl_secs = 0;
    let app = spawn_settings(settings, app_dir).await;
    exercise(&app, &b, json!("kefu_001"), json!("kefu_002")).await;
    let t = b.issue(json!("kefu_001"), 3600).await;
    let (_c, info) = app.connect_ok(&t).await;
    assert_eq!(info["displayName"], "系统管理员");

    // The reader really is read-only.
    let ro = Database::connect(&ro_url).await.unwrap();
    let err = ro
        .execute_unprepared("UPDATE user_tokens SET is_revoked = 1")
        .await
        .expect_err("SELECT only");
    assert!(err.to_string().contains("denied"), "{err}");
    ro.close().await.ok();

    // The external database goes away, and comes back.
    gate.cut();
    let (s, h) = app.get("/health", None).await;
    assert_eq!((s, &h["external"]), (503, &json!("down")), "{h}");
    assert!(
        h["failing"]
            .as_array()
            .unwrap()
            .contains(&json!("external")),
        "{h}"
    );
    assert_eq!(
        handshake_code(&app, app.with_token(&t)).await,
        "AUTH_UNAVAILABLE"
    );
    gate.restore();
    eventually("external back in /health", 20, || async {
        app.get("/health", None).await.1["external"] == "ok"
    })
    .await;
    assert_eq!(handshake_code(&app, app.with_token(&t)).await, "OK");
    b.exec(&format!("DROP USER '{reader}'@'127.0.0.1'")).await;
}

fn pg_time(t: DateTime<Utc>) -> DbValue {
    t.into()
}

/// PostgreSQL: hashed tokens (`sha256_hex`), other table and column names, integer ids in a
/// `userId` claim (`auth.user_id_claim`), boolean flags and timestamptz, a schema-qualified
/// table.
#[tokio::test]
async fn postgres_hashed_tokens_other_names_and_user_id_claim() {
    let server = service_url("IM_TEST_POSTGRES_URL");
    let url = fresh_database(&server).await;
    let rw = Database::connect(&url).await.unwrap();
    let b = Backend {
        db: rw,
        url: url.clone(),
        time: pg_time,
        tokens_table: "sessions",
        token_col: "token_sha",
        user_col: "account_id",
        revoked_col: "revoked",
        expires_col: "valid_until",
        hashed: true,
    };
    b.exec("CREATE SCHEMA app").await;
    b.exec(
        "CREATE TABLE app.accounts (uid BIGINT PRIMARY KEY, login TEXT NOT NULL, \
         full_name TEXT, kind TEXT, enabled BOOLEAN NOT NULL DEFAULT true)",
    )
    .await;
    b.exec(
        "CREATE TABLE sessions (token_sha CHAR(64) PRIMARY KEY, account_id BIGINT NOT NULL, \
         revoked BOOLEAN NOT NULL DEFAULT false, valid_until TIMESTAMPTZ NOT NULL)",
    )
    .await;
    b.exec(
        "INSERT INTO app.accounts VALUES (1,'alice','Alice A.','agent',true), \
         (2,'bob','Bob B.','agent',true), (3,'carol','Carol','agent',false)",
    )
    .await;
    let app_dir = tempfile::tempdir().unwrap();
    let settings = external_settings(app_dir.path(), &url, |s| {
        s.auth.user_id_claim = "userId".into();
        s.external.tokens = Some(ExternalTokens {
            table: "sessions".into(),
            token: "token_sha".into(),
            token_format: TokenFormat::Sha256Hex,
            user_id: "account_id".into(),
            revoked: Some("revoked".into()),
            expires_at: Some("valid_until".into()),
        });
        s.external.users = ExternalUsers {
            table: "app.accounts".into(),
            id: "uid".into(),
            username: "login".into(),
            display_name: Some("full_name".into()),
            user_type: Some("kind".into()),
            active: Some("enabled".into()),
        };
    });
    let app = spawn_settings(settings, app_dir).await;
    exercise(&app, &b, json!(1), json!(2)).await;
}

/// Two nodes with Redis in front of the same backend tables: `/api/revoke` on one node kicks
/// a socket on the other at once, and the token is refused on both afterwards (cached
/// verdicts dropped) once the backend marks it.
#[tokio::test]
async fn api_revoke_reaches_every_node() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backend.db");
    let b = Backend::sqlite(&path).await;
    b.exec("CREATE TABLE users (id TEXT PRIMARY KEY, username TEXT NOT NULL)")
        .await;
    b.exec(
        "CREATE TABLE user_tokens (user_id TEXT NOT NULL, token TEXT NOT NULL, \
         is_revoked INTEGER NOT NULL DEFAULT 0, expires_at TEXT NOT NULL)",
    )
    .await;
    b.exec("INSERT INTO users VALUES ('kefu_001','alice'), ('kefu_002','bob')")
        .await;
    let redis_url = redis.url();
    let mut nodes = vec![];
    for id in ["node-a", "node-b"] {
        let db = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join(format!("{id}.db")).display()
        );
        nodes.push(
            NodeProcess::start(
                id,
                &[
                    ("REDIS_URL", redis_url.as_str()),
                    ("DATABASE_URL", db.as_str()),
                    ("IM_EXTERNAL__URL", b.url.as_str()),
                    ("IM_EXTERNAL__RECHECK_SECS", "3600"),
                    ("IM_EXTERNAL__TOKENS__REVOKED", "is_revoked"),
                    ("IM_EXTERNAL__TOKENS__EXPIRES_AT", "expires_at"),
                ],
            )
            .await,
        );
    }
    let t = b.issue(json!("kefu_001"), 3600).await;
    let mut on_a = loadgen::sio::Client::connect(nodes[0].sio(&t))
        .await
        .unwrap();
    let info = on_a.expect_event("connected", WAIT).await.unwrap();
    assert_eq!(info[0]["userId"], "kefu_001");
    let tb = b.issue(json!("kefu_002"), 3600).await;
    let mut bob_on_b = loadgen::sio::Client::connect(nodes[1].sio(&tb))
        .await
        .unwrap();
    bob_on_b.expect_event("connected", WAIT).await.unwrap();
    // Node b's cache holds alice's verdict too.
    let (s, _) = http_json(
        Method::GET,
        &format!("{}/auth/validate", nodes[1].base),
        None,
        Some(&t),
        None,
    )
    .await;
    assert_eq!(s, 200);

    b.revoke(&t).await;
    let (s, r) = http_json(
        Method::POST,
        &format!("{}/api/revoke", nodes[1].base),
        Some(json!({"tokens": [t]})),
        None,
        Some("cluster-key"),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["data"]["disconnected_sockets"], 1, "{r}");
    let err = on_a.expect_event("error", WAIT).await.unwrap();
    assert_eq!(err[0]["code"], "TOKEN_REVOKED");
    for n in &nodes {
        let (s, v) = http_json(
            Method::GET,
            &format!("{}/auth/validate", n.base),
            None,
            Some(&t),
            None,
        )
        .await;
        assert_eq!(
            (s, v["code"].as_str()),
            (401, Some("TOKEN_REVOKED")),
            "{}: {v}",
            n.node_id
        );
    }
    // By user, across nodes: bob is on node b, the call goes to node a.
    let (s, r) = http_json(
        Method::POST,
        &format!("{}/api/revoke", nodes[0].base),
        Some(json!({"user_ids": ["kefu_002"]})),
        None,
        Some("cluster-key"),
    )
    .await;
    assert_eq!(
        (s, &r["data"]["disconnected_sockets"]),
        (200, &json!(1)),
        "{r}"
    );
    let err = bob_on_b.expect_event("error", WAIT).await.unwrap();
    assert_eq!(err[0]["code"], "TOKEN_REVOKED");
}

/// With im-server's own tables `/api/revoke` also marks the rows.
#[tokio::test]
async fn api_revoke_with_own_tables_marks_rows() {
    let app = spawn_with(|s| s.server.api_key = Some(Secret::new("k"))).await;
    app.create_user("rv1", "pw-rv1", "user").await;
    let t1 = app.login("rv1", "pw-rv1").await;
    let t2 = app.login("rv1", "pw-rv1").await;
    let (mut c1, _) = app.connect_ok(&t1).await;
    let (s, r) = http_json(
        Method::POST,
        &app.url("/api/revoke"),
        Some(json!({"tokens": [t1]})),
        None,
        Some("k"),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (
            &r["data"]["disconnected_sockets"],
            &r["data"]["revoked_rows"]
        ),
        (&json!(1), &json!(1))
    );
    assert_eq!(
        c1.expect_event("error", WAIT).await.unwrap()[0]["code"],
        "TOKEN_REVOKED"
    );
    assert_eq!(
        handshake_code(&app, app.with_token(&t1)).await,
        "TOKEN_REVOKED"
    );
    assert_eq!(handshake_code(&app, app.with_token(&t2)).await, "OK");
    let uid = app.get("/auth/validate", Some(&t2)).await.1["data"]["user"]["id"].clone();
    assert!(uid.is_number(), "own ids stay numbers: {uid}");
    let (s, r) = http_json(
        Method::POST,
        &app.url("/api/revoke"),
        Some(json!({"user_ids": [uid]})),
        None,
        Some("k"),
    )
    .await;
    assert_eq!((s, &r["data"]["revoked_rows"]), (200, &json!(1)), "{r}");
    assert_eq!(
        handshake_code(&app, app.with_token(&t2)).await,
        "TOKEN_REVOKED"
    );
    let (s, r) = http_json(
        Method::POST,
        &app.url("/api/revoke"),
        Some(json!({"tokens": [t2]})),
        None,
        None,
    )
    .await;
    assert_eq!((s, r["code"].as_str()), (401, Some("TOKEN_MISSING")), "{r}");
}

/// The recheck of 10,000 live tokens: a handful of batched queries, and exactly the changed
/// rows refused.
#[tokio::test]
async fn the_recheck_of_ten_thousand_tokens_is_batched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backend.db");
    let rw = Backend::sqlite(&path).await.db;
    rw.execute_unprepared("CREATE TABLE users (id TEXT PRIMARY KEY, username TEXT NOT NULL)")
        .await
        .unwrap();
    rw.execute_unprepared(
        "CREATE TABLE user_tokens (user_id TEXT NOT NULL, token TEXT NOT NULL, \
         is_revoked INTEGER NOT NULL DEFAULT 0)",
    )
    .await
    .unwrap();
    let now = Utc::now().timestamp();
    let mut tokens = vec![];
    for chunk in (0..10_000).collect::<Vec<_>>().chunks(500) {
        let mut users = Query::insert()
            .into_table(Alias::new("users"))
            .columns([Alias::new("id"), Alias::new("username")])
            .to_owned();
        let mut rows = Query::insert()
            .into_table(Alias::new("user_tokens"))
            .columns([
                Alias::new("user_id"),
                Alias::new("token"),
                Alias::new("is_revoked"),
            ])
            .to_owned();
        for i in chunk {
            let id = format!("u{i}");
            let t = sign("sub", json!(id), now + 3600);
            users.values_panic([id.clone().into(), id.clone().into()]);
            rows.values_panic([id.into(), t.clone().into(), ((i % 1000 == 7) as i32).into()]);
            tokens.push(t);
        }
        rw.execute(&users).await.unwrap();
        rw.execute(&rows).await.unwrap();
    }
    let app_dir = tempfile::tempdir().unwrap();
    let s = external_settings(
        app_dir.path(),
        &format!("sqlite://{}?mode=ro", path.display()),
        |s| {
            s.external.tokens = Some(ExternalTokens {
                revoked: Some("is_revoked".into()),
                ..Default::default()
            });
        },
    );
    let app = spawn_settings(s, app_dir).await;
    let hashes: Vec<String> = tokens
        .iter()
        .map(|t| im_server::auth::store::token_hash(t))
        .collect();
    let pairs: Vec<(&str, &str)> = tokens
        .iter()
        .map(String::as_str)
        .zip(hashes.iter().map(String::as_str))
        .collect();
    let r = im_server::auth::recheck::recheck(app.state.auth(), &pairs)
        .await
        .unwrap();
    assert_eq!(r.tokens, 10_000);
    let queries = r.queries.expect("the external store counts its queries");
    assert!(queries <= 30, "{queries} queries");
    println!("recheck of 10,000 tokens: {queries} queries");
    let refused: Vec<&str> = r.refused.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(refused, vec!["TOKEN_REVOKED"; 10], "{:?}", r.refused);
    assert_eq!(r.refused[0].0, hashes[7]);
}
