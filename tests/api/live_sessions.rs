//! Live sockets follow their token: logout and kick_previous disconnect them, expiry warns then
//! disconnects, auth:refresh moves a socket to a newer token.

use std::time::{Duration, Instant};

use im_server::config::LoginPolicy;
use loadgen::sio::Incoming;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn logout_kicks_every_socket_of_that_token_within_a_second() {
    let app = spawn_app().await;
    let token = app.login("admin", "admin123").await;
    let other = app.login("admin", "admin123").await;
    let (mut a, _) = app.connect_ok(&token).await;
    let (mut b, _) = app.connect_ok(&token).await;
    let (mut keep, _) = app.connect_ok(&other).await;
    let started = Instant::now();
    let (status, body) = app.post("/auth/logout", json!({}), Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["disconnected_sockets"], 2);
    for c in [&mut a, &mut b] {
        let err = expect_rejected(c).await;
        assert_eq!(err["code"], "TOKEN_REVOKED");
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "kick took {:?}",
        started.elapsed()
    );
    // The other token's socket is untouched.
    assert!(keep.next(Duration::from_millis(300)).await.is_none());
    assert_eq!(
        app.get("/auth/validate", Some(&token)).await.1["code"],
        "TOKEN_REVOKED"
    );
}

#[tokio::test]
async fn kick_previous_replaces_the_older_session() {
    let app = spawn_with(|s| s.auth.login_policy = LoginPolicy::KickPrevious).await;
    let first = app.login("admin", "admin123").await;
    let (mut c, _) = app.connect_ok(&first).await;
    let second = app.login("admin", "admin123").await;
    let err = expect_rejected(&mut c).await;
    assert_eq!(err["code"], "SESSION_REPLACED");
    assert_eq!(
        app.get("/auth/validate", Some(&first)).await.1["code"],
        "TOKEN_REVOKED"
    );
    assert_eq!(app.get("/auth/validate", Some(&second)).await.0, 200);
}

#[tokio::test]
async fn an_expiring_token_is_warned_then_disconnected_at_expiry() {
    let app = spawn_with(|s| {
        s.auth.token_ttl_secs = 3;
        s.auth.expiry_warning_secs = 2;
        s.auth.leeway_secs = 0;
    })
    .await;
    let token = app.login("admin", "admin123").await;
    let (mut c, _) = app.connect_ok(&token).await;
    let warn = c
        .expect_event("token_expiring", Duration::from_secs(4))
        .await
        .unwrap();
    let left = warn[0]["secondsLeft"].as_i64().unwrap();
    assert!((0..=2).contains(&left), "secondsLeft {left}");
    assert!(warn[0]["expiresAt"].is_string());
    let err = expect_rejected(&mut c).await;
    assert_eq!(err["code"], "TOKEN_EXPIRED");
}

#[tokio::test]
async fn auth_refresh_switches_the_socket_to_a_newer_token() {
    let app = spawn_app().await;
    let a = app.login("admin", "admin123").await;
    let b = app.login("admin", "admin123").await;
    let (mut c, _) = app.connect_ok(&a).await;
    let ack = c
        .emit_with_ack("auth:refresh", json!({"token": b}), WAIT)
        .await
        .unwrap();
    assert_eq!(ack[0]["ok"], true, "{ack:?}");
    assert!(ack[0]["expiresAt"].as_str().unwrap().ends_with('Z'));
    // Logging out the old token no longer touches this socket...
    app.post("/auth/logout", json!({}), Some(&a)).await;
    assert!(c.next(Duration::from_millis(400)).await.is_none());
    // ...the new one does.
    app.post("/auth/logout", json!({}), Some(&b)).await;
    assert_eq!(expect_rejected(&mut c).await["code"], "TOKEN_REVOKED");
}

#[tokio::test]
async fn a_refused_refresh_keeps_the_old_token() {
    let app = spawn_app().await;
    app.create_user("bob", "bob-pass", "user").await;
    let a = app.login("admin", "admin123").await;
    let bob = app.login("bob", "bob-pass").await;
    let (mut c, _) = app.connect_ok(&a).await;
    let ack = c
        .emit_with_ack("auth:refresh", json!({"token": "garbage"}), WAIT)
        .await
        .unwrap();
    assert_eq!(
        (ack[0]["ok"].as_bool(), ack[0]["code"].as_str()),
        (Some(false), Some("TOKEN_MALFORMED"))
    );
    let ack = c
        .emit_with_ack("auth:refresh", json!({"token": bob}), WAIT)
        .await
        .unwrap();
    assert_eq!(ack[0]["code"], "FORBIDDEN");
    assert!(!c.is_closed());
    app.post("/auth/logout", json!({}), Some(&a)).await;
    let first = c.next(WAIT).await.unwrap();
    assert!(
        matches!(&first, Incoming::Event { name, args } if name == "error" && args[0]["code"] == "TOKEN_REVOKED"),
        "{first}"
    );
}

#[tokio::test]
async fn auth_refresh_is_authenticated_and_counted_like_a_handshake() {
    let app = spawn_app().await;
    let a = app.login("admin", "admin123").await;
    let b = app.login("admin", "admin123").await;
    let (c, _) = app.connect_ok(&a).await;
    let ok_before = handshakes(&app, "OK", "auth").await;
    let bad_before = handshakes(&app, "TOKEN_MALFORMED", "auth").await;
    let ack = c
        .emit_with_ack("auth:refresh", json!({"token": "not.a.jwt"}), WAIT)
        .await
        .unwrap();
    assert_eq!(ack[0]["code"], "TOKEN_MALFORMED", "{ack:?}");
    let ack = c
        .emit_with_ack(
            "auth:refresh",
            json!({"token": format!("Bearer {b}")}),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(
        ack[0]["ok"], true,
        "one leading Bearer is stripped, as in a handshake: {ack:?}"
    );
    assert_eq!(
        handshakes(&app, "TOKEN_MALFORMED", "auth").await,
        bad_before + 1
    );
    assert_eq!(handshakes(&app, "OK", "auth").await, ok_before + 1);
}
