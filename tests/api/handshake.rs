//! The /im handshake: every token source, every code a handshake can produce (each provoked for
//! real), legacy and strict modes, and the same verdict over HTTP and Socket.IO.

use base64::Engine as _;
use chrono::Utc;
use im_server::config::{FailureMode, Secret, SecretEncoding, TokenSource};
use loadgen::sio::{ConnectOptions, Incoming};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::tokens::{b64, claims, forge};

#[tokio::test]
async fn valid_token_in_auth_gets_connected_with_every_field() {
    let app = spawn_app().await;
    let token = app.login("admin", "admin123").await;
    let (c, info) = app.connect_ok(&token).await;
    assert_eq!(info["userId"], 1);
    assert_eq!(info["username"], "admin");
    assert_eq!(info["userType"], "admin");
    assert_eq!(info["displayName"], "Administrator");
    assert_eq!(info["socketId"].as_str(), c.sid());
    let expires =
        chrono::DateTime::parse_from_rfc3339(info["expiresAt"].as_str().unwrap()).unwrap();
    let server_time =
        chrono::DateTime::parse_from_rfc3339(info["serverTime"].as_str().unwrap()).unwrap();
    assert!((expires - server_time).num_seconds() > 86_000);
    assert!(info["expiresAt"].as_str().unwrap().ends_with('Z'));
    // Where messages:sync would resume: null before any message.
    assert_eq!(info.get("lastMessageId"), Some(&serde_json::Value::Null));
}

#[tokio::test]
async fn every_token_source_is_accepted_and_bearer_prefix_is_stripped() {
    let app = spawn_app().await;
    let token = app.login("admin", "admin123").await;
    let cases: Vec<(&str, ConnectOptions)> = vec![
        ("auth", app.with_token(&token)),
        (
            "auth+Bearer",
            ConnectOptions {
                auth: Some(json!({"token": format!("Bearer {token}")})),
                ..app.sio_options()
            },
        ),
        (
            "header",
            ConnectOptions {
                headers: vec![("Authorization".into(), format!("Bearer {token}"))],
                ..app.sio_options()
            },
        ),
        (
            "query token",
            ConnectOptions {
                query: vec![("token".into(), token.clone())],
                ..app.sio_options()
            },
        ),
        (
            "query jwt_token",
            ConnectOptions {
                query: vec![("jwt_token".into(), token.clone())],
                ..app.sio_options()
            },
        ),
        (
            "cookie",
            ConnectOptions {
                headers: vec![("Cookie".into(), format!("theme=dark; token={token}"))],
                ..app.sio_options()
            },
        ),
    ];
    for (name, opts) in cases {
        assert_eq!(handshake_code(&app, opts).await, "OK", "source {name}");
    }
}

#[tokio::test]
async fn disabled_sources_are_ignored() {
    let app = spawn_with(|s| s.auth.token_sources = vec![TokenSource::Auth]).await;
    let token = app.login("admin", "admin123").await;
    let via_query = ConnectOptions {
        query: vec![("token".into(), token.clone())],
        ..app.sio_options()
    };
    assert_eq!(handshake_code(&app, via_query).await, "TOKEN_MISSING");
    assert_eq!(handshake_code(&app, app.with_token(&token)).await, "OK");
}

#[tokio::test]
async fn legacy_mode_sends_connect_then_error_then_server_disconnect() {
    let app = spawn_app().await;
    let mut c = app.connect_with(app.sio_options()).await;
    let first = c.next(WAIT).await.unwrap();
    assert!(matches!(first, Incoming::Connected { .. }), "first {first}");
    let second = c.next(WAIT).await.unwrap();
    match &second {
        Incoming::Event { name, args } => {
            assert_eq!(name, "error");
            assert_eq!(args[0]["code"], "TOKEN_MISSING");
            assert!(args[0]["message"].as_str().unwrap().contains("auth"));
        }
        other => panic!("expected error, got {other}"),
    }
    let third = c.next(WAIT).await.unwrap();
    assert_eq!(third, Incoming::Disconnected);
}

#[tokio::test]
async fn strict_mode_rejects_with_connect_error_whose_message_is_the_code() {
    let app = spawn_with(|s| s.auth.failure_mode = FailureMode::Strict).await;
    let mut c = app.connect(&"garbage").await;
    match c.next(WAIT).await.unwrap() {
        Incoming::ConnectError(v) => assert_eq!(v["message"], "TOKEN_MALFORMED"),
        other => panic!("expected connect_error, got {other}"),
    }
}

#[tokio::test]
async fn every_jwt_failure_gets_its_code() {
    let app = spawn_with(|s| {
        s.auth.issuer = Some("im-server".into());
        s.auth.audience = Some("im-clients".into());
        s.auth.leeway_secs = 5;
    })
    .await;
    let mut ok_claims = claims(1, 3600);
    ok_claims.iss = Some("im-server".into());
    ok_claims.aud = Some(json!("im-clients"));

    let mut expired = ok_claims.clone();
    expired.exp = Utc::now().timestamp() - 3600;
    let mut not_yet = ok_claims.clone();
    not_yet.nbf = Some(Utc::now().timestamp() + 3600);
    let mut wrong_iss = ok_claims.clone();
    wrong_iss.iss = Some("someone-else".into());
    let mut wrong_aud = ok_claims.clone();
    wrong_aud.aud = Some(json!("other-app"));
    let mut no_sub = ok_claims.clone();
    no_sub.sub = json!("not-a-number");
    let alg_none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&serde_json::to_string(&ok_claims).unwrap())
    );
    // The other service holds the base64 *text* of our secret and signs with it as UTF-8.
    let b64_secret = base64::engine::general_purpose::STANDARD.encode(SECRET);

    let cases: Vec<(&str, String, &str)> = vec![
        ("garbage", "garbage".into(), "TOKEN_MALFORMED"),
        (
            "three junk segments",
            "abc.def.ghi".into(),
            "TOKEN_MALFORMED",
        ),
        ("100 KB", "a".repeat(100 * 1024), "TOKEN_MALFORMED"),
        (
            "another secret",
            forge("some-other-services-secret-0123456789", "HS256", &ok_claims),
            "TOKEN_INVALID_SIGNATURE",
        ),
        (
            "base64 form of the secret",
            forge(&b64_secret, "HS256", &ok_claims),
            "TOKEN_INVALID_SIGNATURE",
        ),
        ("alg none", alg_none, "TOKEN_ALGORITHM_NOT_ALLOWED"),
        (
            "HS512 when HS256 only",
            forge(SECRET, "HS512", &ok_claims),
            "TOKEN_ALGORITHM_NOT_ALLOWED",
        ),
        ("expired", forge(SECRET, "HS256", &expired), "TOKEN_EXPIRED"),
        (
            "not yet valid",
            forge(SECRET, "HS256", &not_yet),
            "TOKEN_NOT_YET_VALID",
        ),
        (
            "wrong issuer",
            forge(SECRET, "HS256", &wrong_iss),
            "TOKEN_CLAIMS_INVALID",
        ),
        (
            "wrong audience",
            forge(SECRET, "HS256", &wrong_aud),
            "TOKEN_CLAIMS_INVALID",
        ),
        (
            "sub not a user id",
            forge(SECRET, "HS256", &no_sub),
            "TOKEN_CLAIMS_INVALID",
        ),
        (
            "valid JWT without a row",
            forge(SECRET, "HS256", &ok_claims),
            "TOKEN_NOT_FOUND",
        ),
    ];
    for (name, token, code) in cases {
        let got = handshake_code(&app, app.with_token(&token)).await;
        assert_eq!(got, code, "case {name}");
        // One path: HTTP says the same.
        let (status, body) = app.get("/auth/validate", Some(&token)).await;
        assert_eq!(body["code"], code, "HTTP case {name}: {body}");
        assert!(status == 401 || status == 403, "HTTP case {name}: {status}");
        assert!(!body.to_string().contains(SECRET));
    }
}

#[tokio::test]
async fn base64_secret_configured_on_one_side_is_accepted_when_both_agree() {
    let raw = "shared-raw-secret-bytes-0123456789abcdef";
    let b64_secret = base64::engine::general_purpose::STANDARD.encode(raw);
    let app = spawn_with(|s| {
        s.auth.jwt_secret = Some(Secret::new(b64_secret.clone()));
        s.auth.jwt_secret_encoding = SecretEncoding::Base64;
        s.auth.require_db_record = false;
    })
    .await;
    // Signed with the decoded bytes: accepted.
    let good = forge(raw, "HS256", &claims(1, 600));
    assert_eq!(handshake_code(&app, app.with_token(&good)).await, "OK");
    // Signed with the base64 text as if it were the key: refused.
    let bad = forge(&b64_secret, "HS256", &claims(1, 600));
    assert_eq!(
        handshake_code(&app, app.with_token(&bad)).await,
        "TOKEN_INVALID_SIGNATURE"
    );
}

#[tokio::test]
async fn previous_secret_is_accepted_until_valid_until() {
    let old = "the-old-secret-before-rotation-0123456789";
    let app = spawn_with(|s| {
        s.auth.require_db_record = false;
        s.auth.previous_secrets = vec![
            im_server::config::PreviousSecret {
                secret: Secret::new(old),
                encoding: SecretEncoding::Utf8,
                valid_until: Utc::now() + chrono::Duration::hours(1),
            },
            im_server::config::PreviousSecret {
                secret: Secret::new("an-expired-previous-secret-0123456789"),
                encoding: SecretEncoding::Utf8,
                valid_until: Utc::now() - chrono::Duration::hours(1),
            },
        ];
    })
    .await;
    let t = forge(old, "HS256", &claims(1, 600));
    assert_eq!(handshake_code(&app, app.with_token(&t)).await, "OK");
    let t = forge(
        "an-expired-previous-secret-0123456789",
        "HS256",
        &claims(1, 600),
    );
    assert_eq!(
        handshake_code(&app, app.with_token(&t)).await,
        "TOKEN_INVALID_SIGNATURE"
    );
}

#[tokio::test]
async fn revoked_disabled_and_unknown_users_get_their_codes() {
    let app = spawn_app().await;
    let user = app.create_user("alice", "alice-pass", "user").await;
    let token = app.login("alice", "alice-pass").await;
    let (status, _) = app.post("/auth/logout", json!({}), Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(
        handshake_code(&app, app.with_token(&token)).await,
        "TOKEN_REVOKED"
    );

    let token = app.login("alice", "alice-pass").await;
    use sea_orm::{ActiveModelTrait, Set};
    let mut active: entity::users::ActiveModel = user.into();
    active.is_active = Set(false);
    active.update(app.state.db()).await.unwrap();
    assert_eq!(
        handshake_code(&app, app.with_token(&token)).await,
        "USER_DISABLED"
    );
    let (status, body) = app
        .post(
            "/auth/login",
            json!({"username": "alice", "password": "alice-pass"}),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("USER_DISABLED"))
    );

    let jwt_only = spawn_with(|s| s.auth.require_db_record = false).await;
    let ghost = forge(SECRET, "HS256", &claims(999, 600));
    assert_eq!(
        handshake_code(&jwt_only, jwt_only.with_token(&ghost)).await,
        "USER_NOT_FOUND"
    );
}

#[tokio::test]
async fn foreign_origin_is_denied_when_origins_are_configured() {
    let app = spawn_with(|s| s.cors.origins = Some(vec!["http://app.example".into()])).await;
    let token = app.login("admin", "admin123").await;
    let with_origin = |o: &str| ConnectOptions {
        auth: Some(json!({"token": token})),
        headers: vec![("Origin".into(), o.into())],
        ..app.sio_options()
    };
    assert_eq!(
        handshake_code(&app, with_origin("http://evil.example")).await,
        "ORIGIN_DENIED"
    );
    assert_eq!(
        handshake_code(&app, with_origin("http://app.example")).await,
        "OK"
    );
}

#[tokio::test]
async fn handshake_with_database_gone_fails_closed_with_auth_unavailable() {
    let pg = service_url("IM_TEST_POSTGRES_URL");
    let db_url = fresh_database(&pg).await;
    let gate = TcpGate::start(host_port(&db_url)).await;
    let url = replace_host_port(&db_url, gate.addr);
    let app = spawn_with(|s| s.database.url = url).await;
    let token = app.login("admin", "admin123").await;
    let unseen = app.login("kefu1", "kefu123").await;
    let via = |t: &str| app.with_token(&t);
    assert_eq!(handshake_code(&app, via(&token)).await, "OK");
    gate.cut();
    // A token the server cannot check now is refused...
    assert_eq!(handshake_code(&app, via(&unseen)).await, "AUTH_UNAVAILABLE");
    assert_eq!(
        app.get("/auth/validate", Some(&unseen)).await.1["code"],
        "AUTH_UNAVAILABLE"
    );
    // ...while one verified seconds ago rides out the blip from the auth cache (revocations
    // through the server invalidate that cache at once; see auth_cache_* tests).
    assert_eq!(handshake_code(&app, via(&token)).await, "OK");
    gate.restore();
    // The pool reconnects by itself.
    let mut code = String::new();
    for _ in 0..20 {
        // The token that was refused while the database was gone (never cached).
        code = handshake_code(&app, via(&unseen)).await;
        if code == "OK" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(code, "OK");
}

#[tokio::test]
async fn unknown_event_with_ack_gets_bad_request_and_socket_stays_open() {
    let app = spawn_app().await;
    let token = app.login("admin", "admin123").await;
    let (c, _) = app.connect_ok(&token).await;
    let ack = c
        .emit_with_ack("no_such_event", json!({"x": 1}), WAIT)
        .await
        .unwrap();
    assert_eq!(ack[0]["ok"], false);
    assert_eq!(ack[0]["code"], "BAD_REQUEST");
    let ack: Vec<Value> = c
        .emit_with_ack("auth:refresh", json!("not an object"), WAIT)
        .await
        .unwrap();
    assert_eq!(ack[0]["code"], "BAD_REQUEST");
    assert!(!c.is_closed());
}

#[tokio::test]
async fn auth_cache_never_outlives_a_revocation() {
    let app = spawn_with(|s| s.auth.cache_ttl_secs = 3600).await;
    let token = app.login("admin", "admin123").await;
    let via = || app.with_token(&token.clone());
    assert_eq!(handshake_code(&app, via()).await, "OK"); // now cached for an hour
    app.post("/auth/logout", json!({}), Some(&token)).await;
    assert_eq!(handshake_code(&app, via()).await, "TOKEN_REVOKED");
    assert_eq!(
        app.get("/auth/validate", Some(&token)).await.1["code"],
        "TOKEN_REVOKED"
    );
}
