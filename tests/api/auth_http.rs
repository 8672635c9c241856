//! /auth/* over HTTP: login, the envelope, policies, rate limiting, session introspection.

use serde_json::json;

use crate::helpers::*;
use im_server::config::LoginPolicy;

#[tokio::test]
async fn login_returns_token_user_and_expiry_in_the_envelope() {
    let app = spawn_app().await;
    let (status, body) = app
        .post(
            "/auth/login",
            json!({"username": "kefu1", "password": "kefu123"}),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert!(body["message"].is_string());
    let d = &body["data"];
    assert_eq!(d["token_type"], "Bearer");
    assert_eq!(d["expires_in"], 86400);
    assert!(d["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(d["user"]["username"], "kefu1");
    assert_eq!(d["user"]["user_type"], "kefu");
    assert_eq!(d["user"]["id"], 2);
    assert!(d["user"].get("password_hash").is_none());
    // The row is keyed by SHA-256 of the token; the token itself is not stored anywhere.
    let token = d["token"].as_str().unwrap();
    let row = im_server::auth::store::own::find_token(
        app.state.db(),
        &im_server::auth::store::token_hash(token),
    )
    .await
    .unwrap()
    .expect("user_tokens row");
    assert_eq!(row.user_id, 2);
    assert_eq!(row.ip.as_deref(), Some("127.0.0.1"));
    assert_ne!(row.token_hash, token);
}

#[tokio::test]
async fn unknown_user_and_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    let (s1, b1) = app
        .post(
            "/auth/login",
            json!({"username": "nobody", "password": "x"}),
            None,
        )
        .await;
    let (s2, b2) = app
        .post(
            "/auth/login",
            json!({"username": "admin", "password": "wrong"}),
            None,
        )
        .await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(b1, b2);
    assert_eq!(b1["code"], "INVALID_CREDENTIALS");
    // user_type mismatch is the same answer too.
    let (s3, b3) = app
        .post(
            "/auth/login",
            json!({"username": "admin", "password": "admin123", "user_type": "kefu"}),
            None,
        )
        .await;
    assert_eq!((s3, &b3), (401, &b1));
    let (s4, _) = app
        .post(
            "/auth/login",
            json!({"username": "kefu1", "password": "kefu123", "user_type": "kefu"}),
            None,
        )
        .await;
    assert_eq!(s4, 200);
}

#[tokio::test]
async fn malformed_bodies_are_bad_request_naming_the_field() {
    let app = spawn_app().await;
    let (status, body) = app
        .post("/auth/login", json!({"username": "admin"}), None)
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "BAD_REQUEST");
    assert!(
        body["message"].as_str().unwrap().contains("password"),
        "{body}"
    );
    let (status, body) = app
        .post("/auth/login", json!({"username": 5, "password": "x"}), None)
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("BAD_REQUEST")));
    let resp = app
        .http
        .post(app.url("/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["code"], "BAD_REQUEST");
    let resp = app
        .http
        .post(app.url("/auth/login"))
        .body("username=admin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

#[tokio::test]
async fn repeated_failures_are_rate_limited_even_with_the_right_password() {
    let app = spawn_with(|s| {
        s.auth.login_max_failures = 3;
        s.auth.login_failure_window_secs = 300;
    })
    .await;
    let mut statuses = vec![];
    for _ in 0..4 {
        let (s, _) = app
            .post(
                "/auth/login",
                json!({"username": "admin", "password": "nope"}),
                None,
            )
            .await;
        statuses.push(s);
    }
    assert_eq!(statuses, vec![401, 401, 401, 429]);
    let resp = app
        .http
        .post(app.url("/auth/login"))
        .json(&json!({"username": "admin", "password": "admin123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "RATE_LIMITED");
    // The address is limited too: another username from the same client.
    let (s, b) = app
        .post(
            "/auth/login",
            json!({"username": "kefu1", "password": "kefu123"}),
            None,
        )
        .await;
    assert_eq!((s, b["code"].as_str()), (429, Some("RATE_LIMITED")));
}

#[tokio::test]
async fn validate_session_and_heartbeat_describe_the_caller() {
    let app = spawn_app().await;
    let token = app.login("admin", "admin123").await;
    let (status, body) = app.get("/auth/validate", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["valid"], true);
    assert_eq!(body["data"]["user"]["username"], "admin");
    let (_c, _) = app.connect_ok(&token).await;
    let (status, body) = app.post("/auth/heartbeat", json!({}), Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.get("/auth/session", Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    let d = &body["data"];
    assert_eq!(d["online"], true);
    assert_eq!(d["sockets"].as_array().unwrap().len(), 1);
    assert_eq!(d["sockets"][0]["transport"], "websocket");
    assert_eq!(d["sockets"][0]["ip"], "127.0.0.1");
    assert!(d["token"]["last_used_at"].as_str().is_some());
    // Cookie works for /auth/session too.
    let resp = app
        .http
        .get(app.url("/auth/session"))
        .header("cookie", format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (status, body) = app.get("/auth/validate", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("TOKEN_MISSING"))
    );
}

#[tokio::test]
async fn multi_policy_keeps_every_token_valid() {
    let app = spawn_app().await;
    let a = app.login("admin", "admin123").await;
    let b = app.login("admin", "admin123").await;
    assert_ne!(a, b);
    assert_eq!(app.get("/auth/validate", Some(&a)).await.0, 200);
    assert_eq!(app.get("/auth/validate", Some(&b)).await.0, 200);
}

#[tokio::test]
async fn reject_new_policy_refuses_a_second_live_login() {
    let app = spawn_with(|s| s.auth.login_policy = LoginPolicy::RejectNew).await;
    let a = app.login("admin", "admin123").await;
    let (status, body) = app
        .post(
            "/auth/login",
            json!({"username": "admin", "password": "admin123"}),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("ALREADY_LOGGED_IN"))
    );
    app.post("/auth/logout", json!({}), Some(&a)).await;
    let (status, _) = app
        .post(
            "/auth/login",
            json!({"username": "admin", "password": "admin123"}),
            None,
        )
        .await;
    assert_eq!(status, 200);
}
