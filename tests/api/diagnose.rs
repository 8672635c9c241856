//! Token diagnosis (contract §6): `diagnose()`, `POST /auth/tokens/inspect` and
//! `im-server token inspect`. Every cause is provoked for real; the verdict is checked against
//! a real handshake for every code a token can produce; no output carries a secret, a hash or
//! the whole token. `docs` keeps docs/TROUBLESHOOTING.md's examples in step with the code.

mod docs;

use std::process::Stdio;

use base64::Engine as _;
use chrono::Utc;
use im_server::auth::diagnose::{self, Diagnosis};
use im_server::auth::jwt::Claims;
use im_server::config::{PreviousSecret, Secret, SecretEncoding};
use jsonwebtoken::{Algorithm, EncodingKey};
use loadgen::sio::ConnectOptions;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::helpers::*;
pub use crate::tokens::{b64, claims, forge, forge_bytes};

pub const API_KEY: &str = "inspect-test-api-key-0123456789";

/// Header says `header_alg`, signature is `sig_alg` over the same bytes.
fn mislabelled(key: &[u8], header_alg: &str, sig_alg: Algorithm, claims: &Claims) -> String {
    let input = format!(
        "{}.{}",
        b64(format!(r#"{{"typ":"JWT","alg":"{header_alg}"}}"#).as_bytes()),
        b64(&serde_json::to_vec(claims).unwrap())
    );
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(key), sig_alg)
        .unwrap();
    format!("{input}.{sig}")
}

pub fn in_auth(app: &TestApp, token: &str) -> ConnectOptions {
    ConnectOptions {
        auth: Some(json!({ "token": token })),
        ..app.sio_options()
    }
}

pub async fn inspect_with_key(app: &TestApp, token: &str) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url("/auth/tokens/inspect"))
        .header("X-Api-Key", API_KEY)
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Everything that must never appear in any output of these tests.
pub struct Forbidden(pub Vec<(String, String)>);

impl Forbidden {
    pub async fn of(app: &TestApp) -> Forbidden {
        let mut v = vec![
            ("the JWT secret".to_string(), SECRET.to_string()),
            (
                "the JWT secret in base64".into(),
                base64::engine::general_purpose::STANDARD.encode(SECRET),
            ),
            ("the API key".into(), API_KEY.to_string()),
        ];
        let users = app
            .state
            .db()
            .query_all_raw(sea_orm::Statement::from_string(
                app.state.db().get_database_backend(),
                "SELECT password_hash FROM users",
            ))
            .await
            .unwrap_or_default();
        for row in users {
            let h: String = row.try_get("", "password_hash").unwrap();
            v.push(("a password hash".into(), h));
        }
        Forbidden(v)
    }

    pub fn token(&mut self, t: &str) {
        if t.len() >= 20 {
            self.0.push(("a whole token".into(), t.to_string()));
            self.0
                .push(("a token hash".into(), im_server::auth::store::token_hash(t)));
        }
    }

    pub fn assert_clean(&self, what: &str, text: &str) {
        for (name, value) in &self.0 {
            assert!(
                !text.contains(value.as_str()),
                "{what} contains {name}:\n{text}"
            );
        }
    }
}

async fn disable(app: &TestApp, user: entity::users::Model) {
    let mut active: entity::users::ActiveModel = user.into();
    active.is_active = Set(false);
    active.update(app.state.db()).await.unwrap();
}

async fn expire_row(app: &TestApp, token: &str) {
    let row = im_server::auth::store::own::find_token(
        app.state.db(),
        &im_server::auth::store::token_hash(token),
    )
    .await
    .unwrap()
    .unwrap();
    let mut active: entity::user_tokens::ActiveModel = row.into();
    active.expires_at = Set(Utc::now() - chrono::Duration::hours(1));
    active.update(app.state.db()).await.unwrap();
}

/// The three verdicts for one token: `diagnose()`, `POST /auth/tokens/inspect`, a handshake.
async fn three_verdicts(app: &TestApp, token: &str, forbidden: &mut Forbidden) -> [String; 3] {
    forbidden.token(token);
    let d = diagnose::diagnose(app.state.auth(), token, None, None).await;
    let d_json = serde_json::to_string(&d).unwrap();
    forbidden.assert_clean("diagnose()", &d_json);
    forbidden.assert_clean("render_text", &diagnose::render_text(&d));
    let (status, body) = inspect_with_key(app, token).await;
    assert_eq!(status, 200, "{body}");
    forbidden.assert_clean("/auth/tokens/inspect", &body.to_string());
    let handshake = handshake_code(app, in_auth(app, token)).await;
    [
        d.verdict.clone(),
        body["data"]["verdict"].as_str().unwrap_or("?").to_string(),
        handshake,
    ]
}

#[tokio::test]
async fn diagnose_verdict_equals_inspect_verdict_equals_handshake_code_for_every_token_code() {
    let app = spawn_with(|s| {
        s.auth.issuer = Some("im-server".into());
        s.auth.audience = Some("im-clients".into());
        s.auth.leeway_secs = 5;
        s.server.api_key = Some(Secret::new(API_KEY));
    })
    .await;
    let mut forbidden = Forbidden::of(&app).await;
    let alice = app.create_user("alice", "alice-pass", "user").await;
    let bob = app.create_user("bob", "bob-pass", "user").await;
    let good = app.login("admin", "admin123").await;

    let mut ok = claims(1, 3600);
    ok.iss = Some("im-server".into());
    ok.aud = Some(json!("im-clients"));
    let with = |f: &dyn Fn(&mut Claims)| {
        let mut c = ok.clone();
        f(&mut c);
        c
    };
    let now = Utc::now().timestamp();
    let revoked = app.login("alice", "alice-pass").await;
    let (status, _) = app.post("/auth/logout", json!({}), Some(&revoked)).await;
    assert_eq!(status, 200);
    let row_expired = app.login("alice", "alice-pass").await;
    expire_row(&app, &row_expired).await;
    let disabled = app.login("bob", "bob-pass").await;
    disable(&app, bob).await;
    let _ = alice;

    let cases: Vec<(&str, String, &str)> = vec![
        ("login token", good.clone(), "OK"),
        ("empty", "".into(), "TOKEN_MISSING"),
        ("only Bearer", "Bearer   ".into(), "TOKEN_MISSING"),
        ("garbage", "garbage".into(), "TOKEN_MALFORMED"),
        ("quoted", format!("\"{good}\""), "TOKEN_MALFORMED"),
        ("url-encoded", good.replace('.', "%2E"), "TOKEN_MALFORMED"),
        (
            "Bearer twice",
            format!("Bearer Bearer {good}"),
            "TOKEN_MALFORMED",
        ),
        ("100 KB", "a".repeat(100 * 1024), "TOKEN_MALFORMED"),
        (
            "another secret",
            forge("some-other-services-secret-0123456789", "HS256", &ok),
            "TOKEN_INVALID_SIGNATURE",
        ),
        (
            "truncated",
            good[..good.len() - 11].to_string(),
            "TOKEN_INVALID_SIGNATURE",
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none"}"#),
                b64(&serde_json::to_vec(&ok).unwrap())
            ),
            "TOKEN_ALGORITHM_NOT_ALLOWED",
        ),
        (
            "HS512",
            forge(SECRET, "HS512", &ok),
            "TOKEN_ALGORITHM_NOT_ALLOWED",
        ),
        (
            "jwt expired",
            forge(SECRET, "HS256", &with(&|c| c.exp = now - 3600)),
            "TOKEN_EXPIRED",
        ),
        ("row expired", row_expired.clone(), "TOKEN_EXPIRED"),
        (
            "not yet valid",
            forge(SECRET, "HS256", &with(&|c| c.nbf = Some(now + 3600))),
            "TOKEN_NOT_YET_VALID",
        ),
        (
            "wrong issuer",
            forge(
                SECRET,
                "HS256",
                &with(&|c| c.iss = Some("someone-else".into())),
            ),
            "TOKEN_CLAIMS_INVALID",
        ),
        (
            "wrong audience",
            forge(SECRET, "HS256", &with(&|c| c.aud = Some(json!("other")))),
            "TOKEN_CLAIMS_INVALID",
        ),
        (
            "sub not an id",
            forge(SECRET, "HS256", &with(&|c| c.sub = json!("admin"))),
            "TOKEN_CLAIMS_INVALID",
        ),
        ("no row", forge(SECRET, "HS256", &ok), "TOKEN_NOT_FOUND"),
        ("revoked", revoked.clone(), "TOKEN_REVOKED"),
        ("disabled user", disabled.clone(), "USER_DISABLED"),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (name, token, want) in &cases {
        let got = three_verdicts(&app, token, &mut forbidden).await;
        assert_eq!(
            got,
            [want.to_string(), want.to_string(), want.to_string()],
            "case {name}"
        );
        seen.insert(*want);
    }

    // USER_NOT_FOUND needs a JWT-only server (with a row, the user's rows go with the user).
    let jwt_only = spawn_with(|s| {
        s.auth.require_db_record = false;
        s.server.api_key = Some(Secret::new(API_KEY));
    })
    .await;
    let ghost = forge(SECRET, "HS256", &claims(999, 600));
    let got = three_verdicts(&jwt_only, &ghost, &mut forbidden).await;
    assert_eq!(got, ["USER_NOT_FOUND", "USER_NOT_FOUND", "USER_NOT_FOUND"]);
    let fine = forge(SECRET, "HS256", &claims(1, 600));
    assert_eq!(
        three_verdicts(&jwt_only, &fine, &mut forbidden).await,
        ["OK", "OK", "OK"]
    );
    seen.insert("USER_NOT_FOUND");

    // AUTH_UNAVAILABLE: the user_tokens table goes away under a running server (SQLite only).
    let broken = spawn_with(|s| s.server.api_key = Some(Secret::new(API_KEY))).await;
    let token = forge(SECRET, "HS256", &claims(1, 600));
    broken
        .state
        .db()
        .execute_unprepared("ALTER TABLE user_tokens RENAME TO user_tokens_gone")
        .await
        .unwrap();
    let got = three_verdicts(&broken, &token, &mut forbidden).await;
    assert_eq!(
        got,
        ["AUTH_UNAVAILABLE", "AUTH_UNAVAILABLE", "AUTH_UNAVAILABLE"]
    );
    seen.insert("AUTH_UNAVAILABLE");

    // Every code a token can produce (SESSION_REPLACED is a kick of a live socket, seen by a
    // later handshake as TOKEN_REVOKED; ORIGIN_DENIED is about the page, not the token).
    let token_codes = [
        "OK",
        "TOKEN_MISSING",
        "TOKEN_MALFORMED",
        "TOKEN_INVALID_SIGNATURE",
        "TOKEN_ALGORITHM_NOT_ALLOWED",
        "TOKEN_EXPIRED",
        "TOKEN_NOT_YET_VALID",
        "TOKEN_CLAIMS_INVALID",
        "TOKEN_NOT_FOUND",
        "TOKEN_REVOKED",
        "USER_NOT_FOUND",
        "USER_DISABLED",
        "AUTH_UNAVAILABLE",
    ];
    for code in token_codes {
        assert!(seen.contains(code), "no case produced {code}");
    }
}

fn cause(d: &Diagnosis) -> &str {
    d.signature.cause.map_or("-", |c| c.as_str())
}

#[tokio::test]
async fn each_signature_cause_is_found_by_actually_trying_it() {
    let old = "the-old-secret-before-rotation-0123456789";
    let retired = "a-retired-secret-past-valid-until-0123456";
    let app = spawn_with(|s| {
        s.auth.previous_secrets = vec![
            PreviousSecret {
                secret: Secret::new(old),
                encoding: SecretEncoding::Utf8,
                valid_until: Utc::now() + chrono::Duration::hours(1),
            },
            PreviousSecret {
                secret: Secret::new(retired),
                encoding: SecretEncoding::Utf8,
                valid_until: Utc::now() - chrono::Duration::hours(3),
            },
        ];
    })
    .await;
    let server_fp = app.state.auth().keys().current.fingerprint.clone();
    let c = claims(1, 600);
    let d = |t: String| {
        let state = app.state.clone();
        async move { diagnose::diagnose(state.auth(), &t, None, None).await }
    };

    let x = d(forge("some-other-services-secret-0123456789", "HS256", &c)).await;
    assert_eq!(
        (x.signature.status.as_str(), cause(&x)),
        ("invalid", "other_secret")
    );
    assert!(
        x.signature.detail.as_ref().unwrap().contains(&server_fp),
        "{:?}",
        x.signature
    );

    let x = d(forge(retired, "HS256", &c)).await;
    assert_eq!(
        (x.signature.status.as_str(), cause(&x)),
        ("invalid", "previous_secret_expired")
    );
    let detail = x.signature.detail.clone().unwrap();
    assert!(
        detail.contains("auth.previous_secrets[1]") && detail.contains("3h ago"),
        "{detail}"
    );

    let x = d(forge(old, "HS256", &c)).await;
    assert_eq!(x.signature.status, "valid");
    assert!(
        x.signature
            .key
            .as_ref()
            .unwrap()
            .starts_with("auth.previous_secrets[0]")
    );
    assert_eq!(x.verdict, "TOKEN_NOT_FOUND");

    // The issuer was handed the base64 text of our secret and signs with that text.
    let encoded = base64::engine::general_purpose::STANDARD.encode(SECRET);
    let x = d(forge(&encoded, "HS256", &c)).await;
    assert_eq!(
        (x.signature.status.as_str(), cause(&x)),
        ("invalid", "base64_encoded_secret")
    );
    let x = d(forge(encoded.trim_end_matches('='), "HS256", &c)).await;
    assert_eq!(cause(&x), "base64_encoded_secret", "unpadded form");

    // Header HS256, signature HS512 over the same key.
    let x = d(mislabelled(
        SECRET.as_bytes(),
        "HS256",
        Algorithm::HS512,
        &c,
    ))
    .await;
    assert_eq!(
        (x.signature.status.as_str(), cause(&x)),
        ("invalid", "algorithm_mismatch")
    );

    // HS512 is not in auth.algorithms: found out what it is signed with anyway.
    let x = d(forge(SECRET, "HS512", &c)).await;
    assert_eq!(
        (x.signature.status.as_str(), cause(&x)),
        ("not_checked", "algorithm_not_allowed")
    );
    assert!(
        x.signature
            .detail
            .as_ref()
            .unwrap()
            .contains("with this server's secret")
    );
    assert_eq!(x.verdict, "TOKEN_ALGORITHM_NOT_ALLOWED");
    let x = d(forge("some-other-services-secret-0123456789", "HS384", &c)).await;
    assert!(
        x.signature
            .detail
            .as_ref()
            .unwrap()
            .contains("not with this server's secret")
    );

    // Cut short: a signature of 32 of 43 characters (still base64), of 1 (not base64 any
    // more: malformed), and a token without its last part.
    let good = forge(SECRET, "HS256", &c);
    let x = d(good[..good.len() - 11].to_string()).await;
    assert_eq!(
        (x.signature.status.as_str(), cause(&x)),
        ("invalid", "truncated")
    );
    assert!(
        x.signature
            .detail
            .as_ref()
            .unwrap()
            .contains("32 of the 43")
    );
    let x = d(good[..good.len() - 42].to_string()).await;
    assert_eq!(
        (cause(&x), x.verdict.as_str()),
        ("truncated", "TOKEN_MALFORMED"),
        "{:?}",
        x.signature
    );
    let two = good.rsplit_once('.').unwrap().0.to_string();
    let x = d(two).await;
    assert_eq!(
        (cause(&x), x.verdict.as_str()),
        ("truncated", "TOKEN_MALFORMED")
    );
}

#[tokio::test]
async fn base64_decoded_secret_is_recognised_both_ways_round() {
    // This server holds base64 text as UTF-8; the issuer decodes it and signs with the bytes.
    let raw = "shared-raw-secret-bytes-0123456789abcdef";
    let text = base64::engine::general_purpose::STANDARD.encode(raw);
    let utf8_server = spawn_with(|s| s.auth.jwt_secret = Some(Secret::new(text.clone()))).await;
    let t = forge(raw, "HS256", &claims(1, 600));
    let x = diagnose::diagnose(utf8_server.state.auth(), &t, None, None).await;
    assert_eq!(
        (x.signature.status.as_str(), cause(&x)),
        ("invalid", "base64_decoded_secret")
    );
    assert!(
        x.signature
            .hint
            .as_ref()
            .unwrap()
            .contains("jwt_secret_encoding = \"base64\"")
    );
    assert_eq!(
        handshake_code(&utf8_server, in_auth(&utf8_server, &t)).await,
        "TOKEN_INVALID_SIGNATURE"
    );

    // This server decodes (encoding = base64); the issuer signs with the text.
    let b64_server = spawn_with(|s| {
        s.auth.jwt_secret = Some(Secret::new(text.clone()));
        s.auth.jwt_secret_encoding = SecretEncoding::Base64;
    })
    .await;
    let t = forge(&text, "HS256", &claims(1, 600));
    let x = diagnose::diagnose(b64_server.state.auth(), &t, None, None).await;
    assert_eq!(
        (x.signature.status.as_str(), cause(&x)),
        ("invalid", "base64_encoded_secret")
    );
    assert!(
        x.signature
            .hint
            .as_ref()
            .unwrap()
            .contains("jwt_secret_encoding = \"utf8\"")
    );
}

#[tokio::test]
async fn every_transit_mangling_is_named_and_the_repaired_token_is_checked() {
    let app = spawn_app().await;
    let good = app.login("admin", "admin123").await;
    let wrapped = format!("{}\n{}", &good[..60], &good[60..]);
    let cases: Vec<(&str, String, &str)> = vec![
        ("double quotes", format!("\"{good}\""), "quotes"),
        ("single quotes", format!("'{good}'"), "quotes"),
        ("escaped JSON quotes", format!("\\\"{good}\\\""), "quotes"),
        ("%2E for dots", good.replace('.', "%2E"), "url_encoded"),
        (
            "%20 after Bearer",
            format!("Bearer%20{good}"),
            "url_encoded",
        ),
        ("+ after Bearer", format!("Bearer+{good}"), "url_encoded"),
        (
            "Bearer twice",
            format!("Bearer Bearer {good}"),
            "bearer_twice",
        ),
        ("line-wrapped", wrapped, "whitespace"),
    ];
    for (name, token, kind) in cases {
        let x = diagnose::diagnose(app.state.auth(), &token, None, None).await;
        assert!(
            x.transit.findings.iter().any(|f| f.kind == kind),
            "{name}: {:?}",
            x.transit
        );
        let repaired = x
            .transit
            .repaired
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: not repaired"));
        assert_eq!(
            (repaired.signature.as_str(), repaired.verdict.as_str()),
            ("valid", "OK"),
            "{name}"
        );
        assert_eq!(cause(&x), "mangled_in_transit", "{name}: {:?}", x.signature);
        assert!(
            x.signature
                .detail
                .as_ref()
                .unwrap()
                .contains("signature is valid"),
            "{name}"
        );
        assert!(!x.accepted, "{name}");
        assert_eq!(
            x.verdict,
            handshake_code(&app, in_auth(&app, &token)).await,
            "{name}"
        );
    }
    // One `Bearer ` and surrounding whitespace are the server's to strip: not damage.
    let x = diagnose::diagnose(app.state.auth(), &format!("  Bearer {good}\n"), None, None).await;
    assert!(x.transit.findings.is_empty(), "{:?}", x.transit);
    assert_eq!(x.verdict, "OK");
}

#[tokio::test]
async fn claims_show_dates_and_relative_phrases_and_clock_skew() {
    let app = spawn_with(|s| s.auth.require_db_record = false).await;
    let now = Utc::now().timestamp();
    let mut c = claims(1, -3 * 3600);
    c.iat = Some(now - 4 * 3600);
    let x = diagnose::diagnose(app.state.auth(), &forge(SECRET, "HS256", &c), None, None).await;
    assert_eq!(x.claims.exp_relative.as_deref(), Some("expired 3h ago"));
    assert_eq!(x.claims.iat_relative.as_deref(), Some("issued 4h ago"));
    assert!(x.claims.exp_utc.as_deref().unwrap().ends_with('Z'));
    assert_eq!(x.verdict, "TOKEN_EXPIRED");
    assert!(
        x.explanation.contains("expired 3h ago"),
        "{}",
        x.explanation
    );

    let mut c = claims(1, 20 * 60);
    c.iat = Some(now + 2 * 3600);
    c.nbf = Some(now + 2 * 3600);
    let x = diagnose::diagnose(app.state.auth(), &forge(SECRET, "HS256", &c), None, None).await;
    assert_eq!(x.claims.exp_relative.as_deref(), Some("expires in 20m"));
    assert_eq!(
        x.claims.nbf_relative.as_deref(),
        Some("becomes valid in 2h")
    );
    assert!(
        x.claims.problems.iter().any(|p| p.contains("clock")),
        "{:?}",
        x.claims.problems
    );
    assert_eq!(x.verdict, "TOKEN_NOT_YET_VALID");
}

#[tokio::test]
async fn inspect_endpoint_authorizes_by_api_key_or_own_bearer_only() {
    let app = spawn_with(|s| s.server.api_key = Some(Secret::new(API_KEY))).await;
    let alice = app.create_user("alice", "alice-pass", "user").await;
    let admin_token = app.login("admin", "admin123").await;
    let alice_token = app.login("alice", "alice-pass").await;
    let url = app.url("/auth/tokens/inspect");
    let send = |key: Option<&'static str>, bearer: Option<String>, body: Value| {
        let mut req = app.http.post(url.clone()).json(&body);
        if let Some(k) = key {
            req = req.header("X-Api-Key", k);
        }
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };

    let (s, b) = send(None, None, json!({"token": admin_token})).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("TOKEN_MISSING")), "{b}");
    let (s, b) = send(Some("wrong"), None, json!({"token": admin_token})).await;
    assert_eq!((s, b["code"].as_str()), (403, Some("FORBIDDEN")), "{b}");
    let (s, b) = send(Some(API_KEY), None, json!({"token": alice_token})).await;
    assert_eq!((s, b["success"].as_bool()), (200, Some(true)), "{b}");
    assert_eq!(b["data"]["user"]["username"], "alice");
    assert_eq!(b["data"]["verdict"], "OK");
    assert_eq!(b["data"]["accepted"], true);
    for key in [
        "source",
        "header",
        "claims",
        "signature",
        "db",
        "user",
        "sockets",
        "accepted",
        "verdict",
    ] {
        assert!(b["data"].get(key).is_some(), "no {key} in {b}");
    }

    // Own token, and a live socket shows up.
    let (_c, _) = app.connect_ok(&alice_token).await;
    let (s, b) = send(
        None,
        Some(alice_token.clone()),
        json!({"token": alice_token}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["sockets"].as_array().unwrap().len(), 1, "{b}");
    assert_eq!(b["data"]["db"]["status"], "found");
    // Someone else's token, real or merely claiming their sub.
    let (s, b) = send(
        None,
        Some(alice_token.clone()),
        json!({"token": admin_token}),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (403, Some("FORBIDDEN")), "{b}");
    let forged = forge(
        "whatever-secret-0123456789-abcdef",
        "HS256",
        &claims(1, 600),
    );
    let (s, _) = send(None, Some(alice_token.clone()), json!({"token": forged})).await;
    assert_eq!(s, 403);
    let quoted_admin = format!("\"{admin_token}\"");
    let (s, _) = send(
        None,
        Some(alice_token.clone()),
        json!({"token": quoted_admin}),
    )
    .await;
    assert_eq!(s, 403, "the repaired token's sub counts too");
    // Own-sub token, even forged: allowed, and it says why it fails.
    let mine = forge(
        "whatever-secret-0123456789-abcdef",
        "HS256",
        &claims(alice.id, 600),
    );
    let (s, b) = send(None, Some(alice_token.clone()), json!({"token": mine})).await;
    assert_eq!(
        (s, b["data"]["signature"]["cause"].as_str()),
        (200, Some("other_secret")),
        "{b}"
    );
    // Body errors only after authorization.
    let (s, b) = send(None, Some(alice_token.clone()), json!({"tokn": "x"})).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("BAD_REQUEST")));
    assert!(b["message"].as_str().unwrap().contains("token"), "{b}");
    let (s, _) = send(None, None, json!({"tokn": "x"})).await;
    assert_eq!(s, 401);

    // No API key configured: a key is refused, not ignored.
    let keyless = spawn_app().await;
    let resp = keyless
        .http
        .post(keyless.url("/auth/tokens/inspect"))
        .header("X-Api-Key", API_KEY)
        .json(&json!({"token": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
}

/// Run the real binary in `dir` with only `env`; returns (exit code, stdout, stderr).
pub async fn im_server(
    dir: &std::path::Path,
    env: &[(&str, String)],
    args: &[&str],
    stdin: Option<&str>,
) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_im-server"));
    cmd.current_dir(dir)
        .env_clear()
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run im-server");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("im-server finishes")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The environment that makes the CLI see the same configuration as `app`.
pub fn env_of(app: &TestApp) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", app.state.settings().database.url.clone()),
        ("JWT_SECRET", SECRET.to_string()),
    ]
}

#[tokio::test]
async fn token_inspect_cli_prints_sections_and_exits_by_verdict() {
    let app = spawn_app().await;
    let mut forbidden = Forbidden::of(&app).await;
    let token = app.login("admin", "admin123").await;
    forbidden.token(&token);
    let env = env_of(&app);
    let dir = tempfile::tempdir().unwrap();

    let (code, out, err) = im_server(dir.path(), &env, &["token", "inspect", &token], None).await;
    assert_eq!(code, 0, "{out}{err}");
    for section in [
        "Token",
        "Source",
        "Header",
        "Claims",
        "Signature",
        "Database",
        "User",
        "Sockets",
        "Verdict",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(section)),
            "no {section} section:\n{out}"
        );
    }
    assert!(out.contains("not available offline"), "{out}");
    assert!(out.contains("OK — accepted"), "{out}");
    forbidden.assert_clean("token inspect stdout", &out);
    forbidden.assert_clean("token inspect stderr", &err);

    // From stdin, as JSON, for a token that fails: exit 1.
    let (status, _) = app.post("/auth/logout", json!({}), Some(&token)).await;
    assert_eq!(status, 200);
    let (code, out, err) = im_server(
        dir.path(),
        &env,
        &["token", "inspect", "-", "--json"],
        Some(&format!("{token}\n")),
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["verdict"], "TOKEN_REVOKED");
    assert_eq!(v["db"]["status"], "revoked");
    assert_eq!(v["accepted"], false);
    assert!(v["sockets"].is_null());
    assert!(
        v["transit"]["findings"].as_array().unwrap().is_empty(),
        "one newline from stdin is not damage"
    );
    forbidden.assert_clean("token inspect --json", &out);
    forbidden.assert_clean("token inspect stderr", &err);

    // Same verdict as the running server's diagnosis.
    let live = diagnose::diagnose(app.state.auth(), &token, None, None).await;
    assert_eq!(live.verdict, v["verdict"]);

    // A configuration problem is one line on stderr, exit 1.
    let (code, _, err) = im_server(
        dir.path(),
        &[("IM_AUTH__ALGORITHMS", "RS256".to_string())],
        &["token", "inspect", &token],
        None,
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("auth.algorithms"), "{err}");
    forbidden.assert_clean("token inspect stderr", &err);
}

#[tokio::test]
async fn config_fingerprint_cli_prints_what_health_reports_for_the_same_settings() {
    let app = spawn_with(|s| {
        s.auth.issuer = Some("im-server".into());
        s.auth.algorithms = vec!["HS256".into(), "HS512".into()];
    })
    .await;
    let (_, health) = app.get("/health", None).await;
    let served = health["config_fingerprint"].as_str().unwrap().to_string();
    assert!(served.starts_with("sha256:"), "{health}");

    let dir = tempfile::tempdir().unwrap();
    let same = vec![
        ("JWT_SECRET", SECRET.to_string()),
        ("IM_AUTH__ISSUER", "im-server".to_string()),
        ("IM_AUTH__ALGORITHMS", "HS256,HS512".to_string()),
    ];
    let (code, out, err) = im_server(dir.path(), &same, &["config", "--fingerprint"], None).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), served);
    assert!(!out.contains(SECRET) && !err.contains(SECRET));

    // A node with another secret (say, a PM2 process started without the .env) differs.
    let drift = vec![
        (
            "JWT_SECRET",
            "another-secret-on-another-node-012345".to_string(),
        ),
        ("IM_AUTH__ISSUER", "im-server".to_string()),
        ("IM_AUTH__ALGORITHMS", "HS256,HS512".to_string()),
    ];
    let (_, other, _) = im_server(dir.path(), &drift, &["config", "--fingerprint"], None).await;
    assert_ne!(other.trim(), served);
}
