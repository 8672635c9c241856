//! The `/admin` login, as `@socket.io/admin-ui` speaks it: the handshake `auth` is either
//! `{username, password}` (the UI's form) or `{sessionId}` (what the UI kept from an earlier
//! login and sends when the page is reloaded).
//!
//! Failures are `connect_error` whatever `auth.failure_mode` says (the UI shows nothing else),
//! with the code as message, as strict `/im` handshakes do. Wrong credentials count in the
//! same per-username tally as failed `/auth/login` attempts ([`crate::auth::limit`]).
//!
//! A session id is stateless: `<expiry>.<HMAC>` under a key derived from the configured
//! password hash and the JWT key, so every node accepts it, it survives restarts, and
//! changing the admin password ends every session.

use chrono::Utc;
use hmac::{Hmac, Mac};
use http::request::Parts;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::password;
use crate::config::Secret;
use crate::config::admin::HashKind;
use crate::error::{AppError, ErrorCode};
use crate::net;
use crate::state::AppState;

/// How long a session id from the `session` event stays valid.
pub const SESSION_TTL_SECS: i64 = 24 * 3600;

/// How an accepted admin socket logged in.
#[derive(Clone, Debug)]
pub enum Login {
    /// With a session id from an earlier login.
    Session,
    /// With the credentials: the new session id to hand to the UI.
    Credentials { session_id: String },
}

/// The check run by the `/admin` connect middleware.
pub async fn check(
    state: &AppState,
    parts: &Parts,
    auth: Option<&Value>,
) -> Result<Login, AppError> {
    let settings = state.settings();
    let (username, hash) = settings
        .admin
        .credentials()
        .ok_or_else(|| AppError::new(ErrorCode::Forbidden))?;
    if !origin_ok(state, parts) {
        return Err(ErrorCode::OriginDenied.into());
    }
    let field = |name: &str| auth.and_then(|a| a.get(name)).and_then(Value::as_str);
    if let Some(sid) = field("sessionId")
        && sessions(state, username, hash).verify(sid, Utc::now().timestamp())
    {
        return Ok(Login::Session);
    }
    let Some(given_user) = field("username") else {
        return Err(ErrorCode::InvalidCredentials.into());
    };
    let given_password = field("password").unwrap_or_default().to_string();
    let ip = net::client_ip(parts, &settings.server.trust_proxy);
    let client = ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
    let shown_user: String = given_user.chars().take(64).collect();
    if state.limiter().blocked_for(given_user, ip).is_some() {
        tracing::info!(username = %shown_user, client = %client, "admin login refused: RATE_LIMITED");
        return Err(ErrorCode::RateLimited.into());
    }
    // Always verify, so a wrong username costs the same time as a wrong password.
    let password_ok = verify_password(given_password, hash).await;
    if password_ok && constant_time_eq(given_user.as_bytes(), username.as_bytes()) {
        tracing::info!(username = %shown_user, client = %client, "admin logged in");
        let expires = Utc::now().timestamp() + SESSION_TTL_SECS;
        return Ok(Login::Credentials {
            session_id: sessions(state, username, hash).issue(expires),
        });
    }
    let code = match state.limiter().record_failure(given_user, ip) {
        Some(_) => ErrorCode::RateLimited,
        None => ErrorCode::InvalidCredentials,
    };
    tracing::info!(username = %shown_user, client = %client, "admin login failed: {code}");
    Err(code.into())
}

/// argon2id or bcrypt, on the hashing pool either way.
pub async fn verify_password(password: String, hash: &Secret) -> bool {
    let hash = hash.expose().to_string();
    match HashKind::parse(&hash) {
        Ok(HashKind::Argon2id) => password::verify(password, hash).await,
        Ok(HashKind::Bcrypt) => password::on_pool(move || bcrypt::verify(password, &hash))
            .await
            .is_ok_and(|r| r.unwrap_or(false)),
        Err(_) => false,
    }
}

/// The UI served at `/admin/` connects from the server's own origin, which `cors.origins`
/// need not list (in production it lists nothing by default).
fn origin_ok(state: &AppState, parts: &Parts) -> bool {
    let origin = net::header(parts, "origin");
    if net::origin_allowed(state.settings(), origin) {
        return true;
    }
    let host = net::header(parts, "host");
    match (origin, host) {
        (Some(o), Some(h)) => o
            .split_once("://")
            .is_some_and(|(_, rest)| rest.trim_end_matches('/') == h),
        _ => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (ha, hb) = (Sha256::digest(a), Sha256::digest(b));
    ha.iter()
        .zip(hb.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Issues and checks session ids for one set of admin credentials.
struct Sessions {
    key: [u8; 32],
    username: String,
}

fn sessions(state: &AppState, username: &str, hash: &Secret) -> Sessions {
    let mut d = Sha256::new();
    d.update(b"im-server admin session v1\0");
    d.update(&state.auth().keys().current.bytes);
    d.update(b"\0");
    d.update(hash.expose().as_bytes());
    Sessions {
        key: d.finalize().into(),
        username: username.to_string(),
    }
}

impl Sessions {
    fn mac(&self, expires: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("{}\0{expires}", self.username).as_bytes());
        mac
    }

    fn issue(&self, expires: i64) -> String {
        format!(
            "{expires}.{}",
            hex::encode(self.mac(expires).finalize().into_bytes())
        )
    }

    fn verify(&self, session_id: &str, now: i64) -> bool {
        let Some((exp, tag)) = session_id.split_once('.') else {
            return false;
        };
        let (Ok(expires), Ok(tag)) = (exp.parse::<i64>(), hex::decode(tag)) else {
            return false;
        };
        expires > now && self.mac(expires).verify_slice(&tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_kinds_are_recognised_and_junk_is_not() {
        let bcrypt = bcrypt::hash("pw", 4).unwrap();
        assert_eq!(HashKind::parse(&bcrypt), Ok(HashKind::Bcrypt));
        let argon = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        assert_eq!(HashKind::parse(argon), Ok(HashKind::Argon2id));
        assert!(HashKind::parse("admin123").is_err());
        assert!(HashKind::parse("$2b$10$short").is_err());
    }

    #[tokio::test]
    async fn bcrypt_and_argon2id_hashes_both_verify() {
        let bcrypt = Secret::new(bcrypt::hash("ops-pass", 4).unwrap());
        assert!(verify_password("ops-pass".into(), &bcrypt).await);
        assert!(!verify_password("ops-pas".into(), &bcrypt).await);
        let argon = Secret::new(password::hash("ops-pass".into()).await.unwrap());
        assert!(verify_password("ops-pass".into(), &argon).await);
        assert!(!verify_password("other".into(), &argon).await);
        assert!(!verify_password("ops-pass".into(), &Secret::new("ops-pass")).await);
    }

    #[test]
    fn a_session_id_is_bound_to_its_key_and_expiry() {
        let s = Sessions {
            key: [7; 32],
            username: "ops".into(),
        };
        let id = s.issue(2000);
        assert!(s.verify(&id, 1000));
        assert!(!s.verify(&id, 2000), "expired");
        let forged = format!("3000.{}", id.split_once('.').unwrap().1);
        assert!(!s.verify(&forged, 1000), "expiry is under the MAC");
        let other = Sessions {
            key: [8; 32],
            username: "ops".into(),
        };
        assert!(
            !other.verify(&id, 1000),
            "another password hash, another key"
        );
        assert!(!s.verify("garbage", 1000));
    }
}
