//! Contract §11 and issue 13: one verdict for every mangled token on both transports, limits,
//! wrong paths, half-upgrades, the login limiter under a parallel burst, disabled users.

use im_server::auth::diagnose;
use im_server::config::TokenSource;
use loadgen::sio::ConnectOptions;
use serde_json::json;

use crate::helpers::*;

/// `GET /auth/validate` with a raw `Authorization` value (any bytes): status and code.
async fn validate_with(app: &TestApp, authorization: &[u8]) -> (u16, String) {
    let resp = app
        .http
        .get(app.url("/auth/validate"))
        .header(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(authorization).unwrap(),
        )
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap();
    (status, body["code"].as_str().unwrap_or("-").to_string())
}

#[tokio::test]
async fn bearer_twice_and_non_ascii_are_malformed_on_every_source_and_in_the_diagnosis() {
    let app = spawn_app().await;
    let token = app.login("admin", "admin123").await;
    assert_eq!(
        validate_with(&app, format!("Bearer {token}").as_bytes()).await.0,
        200
    );
    let twice = format!("Bearer Bearer {token}");
    assert_eq!(
        validate_with(&app, twice.as_bytes()).await,
        (401, "TOKEN_MALFORMED".into())
    );
    let mut non_ascii = format!("Bearer {token}").into_bytes();
    non_ascii.extend_from_slice("é".as_bytes());
    assert_eq!(
        validate_with(&app, &non_ascii).await,
        (401, "TOKEN_MALFORMED".into()),
        "a token with a non-ASCII byte was sent: malformed, not missing"
    );
    let header = ConnectOptions {
        headers: vec![("Authorization".into(), twice.clone())],
        ..app.sio_options()
    };
    assert_eq!(handshake_code(&app, header).await, "TOKEN_MALFORMED");
    assert_eq!(
        handshake_code(&app, app.with_token(&twice)).await,
        "TOKEN_MALFORMED"
    );
    // The diagnosis of the same value from the same source gives the handshake's code, and
    // names the damage.
    for source in [TokenSource::Header, TokenSource::Auth] {
        let d = diagnose::diagnose(app.state.auth(), &twice, Some(source), None).await;
        let d = serde_json::to_value(&d).unwrap();
        assert_eq!(d["verdict"], "TOKEN_MALFORMED", "{source:?}: {d}");
        assert!(d.to_string().contains("Bearer"), "names the second Bearer: {d}");
    }
}

#[tokio::test]
async fn crit_future_iat_and_structured_sub_get_their_codes_in_handshake_and_diagnosis() {
    use crate::tokens::b64;
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp();
    let sign = |header: serde_json::Value, claims: serde_json::Value| {
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
        let sig =
            jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
                .unwrap();
        format!("{input}.{sig}")
    };
    let hs = json!({"alg": "HS256", "typ": "JWT"});
    let cases = [
        (
            sign(
                json!({"alg": "HS256", "crit": ["urn:x"], "urn:x": true}),
                json!({"sub": "1", "exp": now + 600}),
            ),
            "TOKEN_MALFORMED",
            "crit",
        ),
        (
            sign(hs.clone(), json!({"sub": "1", "iat": now + 7200, "exp": now + 9000})),
            "TOKEN_NOT_YET_VALID",
            "clock",
        ),
        (
            sign(hs.clone(), json!({"sub": {"id": 1}, "exp": now + 600})),
            "TOKEN_CLAIMS_INVALID",
            "sub",
        ),
        (
            sign(hs.clone(), json!({"sub": [1], "exp": now + 600})),
            "TOKEN_CLAIMS_INVALID",
            "sub",
        ),
    ];
    for (token, code, named) in cases {
        assert_eq!(handshake_code(&app, app.with_token(&token)).await, code);
        let (status, body) = app.get("/auth/validate", Some(&token)).await;
        assert_eq!((status, body["code"].as_str().unwrap()), (401, code));
        let d = diagnose::diagnose(app.state.auth(), &token, None, None).await;
        let d = serde_json::to_value(&d).unwrap();
        assert_eq!(d["verdict"], code, "{d}");
        assert!(d.to_string().contains(named), "the diagnosis names {named}: {d}");
    }
}

#[test]
fn url_passwords_never_appear_in_config_output_or_startup_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_im-server"))
            .args(args)
            .current_dir(dir.path())
            .env_clear()
            .env("JWT_SECRET", SECRET)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let urls = [
        ("DATABASE_URL", "mysql://im:db-pw-0f1e@127.0.0.1:1/im"),
        ("REDIS_URL", "redis://:redis-pw-9a8b@127.0.0.1:1/?protocol=resp3"),
    ];
    for args in [&["config"][..], &["config", "--json"]] {
        let (ok, out) = run(args, &urls);
        assert!(ok, "{out}");
        assert!(!out.contains("db-pw-0f1e") && !out.contains("redis-pw-9a8b"), "{out}");
        assert!(out.contains("mysql://im:***@127.0.0.1:1/im"), "user and host kept: {out}");
        assert!(out.contains("redis://:***@127.0.0.1:1/"), "{out}");
    }
    // Unreachable database, then unreachable Redis: the one-line error names the key, not the
    // password.
    let (ok, out) = run(&["serve"], &urls[..1]);
    assert!(!ok && out.contains("database.url"), "{out}");
    assert!(!out.contains("db-pw-0f1e") && out.contains("im:***@"), "{out}");
    let (ok, out) = run(&["serve"], &urls[1..]);
    assert!(!ok && out.contains("redis.url"), "{out}");
    assert!(!out.contains("redis-pw-9a8b"), "{out}");
}

#[tokio::test]
async fn a_parallel_burst_of_guesses_gets_no_more_tries_than_a_sequential_one() {
    let app = spawn_with(|s| {
        s.auth.login_max_failures = 5;
        s.auth.login_failure_window_secs = 300;
    })
    .await;
    let login = |password: &'static str| {
        let (http, url) = (app.http.clone(), app.url("/auth/login"));
        async move {
            let r = http
                .post(url)
                .json(&json!({"username": "admin", "password": password}))
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    // Hold admin's turn so the whole burst queues behind it, then add the right password
    // last and let them go: the server judges them one after another, in arrival order.
    let held = app.state.limiter().attempt("admin", None).await;
    let wrong: Vec<_> = (0..59).map(|_| tokio::spawn(login("wrong"))).collect();
    eventually("59 guesses queued", 20, || async {
        app.state.limiter().attempts_in_flight("admin") == 60
    })
    .await;
    let right = tokio::spawn(login("admin123"));
    eventually("the right password queued last", 20, || async {
        app.state.limiter().attempts_in_flight("admin") == 61
    })
    .await;
    drop(held);
    let mut statuses = vec![];
    for w in wrong {
        statuses.push(w.await.unwrap());
    }
    let n = |code| statuses.iter().filter(|s| **s == code).count();
    assert_eq!((n(401), n(429)), (5, 54), "as many guesses as sequentially");
    assert_eq!(right.await.unwrap(), 429, "the lockout holds for the right password");
}
