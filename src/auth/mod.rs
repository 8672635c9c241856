//! Authentication: THE path every HTTP route and every Socket.IO handshake goes through.
//!
//! `Parts (+auth JSON)` → [`source::find`] → [`jwt::Keys::verify`] → [`store::check_row`] →
//! [`store::check_user`] → [`Session`]. Each step returns the contract's code on failure and
//! never reaches back. Only [`authenticate`] writes the per-handshake log line. `diagnose` runs
//! the same steps without stopping at the first failure.

pub mod cache;
pub mod diagnose;
pub mod jwt;
pub mod limit;
pub mod password;
pub mod session;
pub mod source;
pub mod store;

use std::time::Instant;

use chrono::Utc;
use http::request::Parts;
use serde_json::Value;

pub use session::Session;

use crate::config::TokenSource;
use crate::error::{AppError, ErrorCode};
use crate::net;
use crate::state::AppState;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Http,
    WebSocket,
    Polling,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::WebSocket => "websocket",
            Transport::Polling => "polling",
        }
    }
}

/// What a request offers for authentication.
pub struct AuthRequest<'a> {
    pub transport: Transport,
    /// Where a token may come from: `auth.token_sources` for handshakes; for HTTP the route
    /// decides (Bearer only, so a cookie cannot trigger a state change cross-site).
    pub sources: &'a [TokenSource],
    pub parts: &'a Parts,
    /// The Socket.IO handshake `auth` payload (absent for HTTP and socket.io-client 2.x).
    pub auth_payload: Option<&'a Value>,
}

/// Authenticate one request or handshake, and log the decision in one line.
pub async fn authenticate(state: &AppState, req: &AuthRequest<'_>) -> Result<Session, AppError> {
    let started = Instant::now();
    let settings = state.settings();
    let found = source::find(req.parts, req.auth_payload, &settings.auth, req.sources);
    let ignored = match &found {
        None => source::ignored(req.parts, req.auth_payload, &settings.auth, req.sources),
        Some(_) => None,
    }
    .unwrap_or_else(|| "-".into());
    let result = steps(state, req, found.as_ref()).await;

    let elapsed = started.elapsed();
    let verdict = match &result {
        Ok(_) => "OK",
        Err(e) => e.code.as_str(),
    };
    let source = found.as_ref().map(|f| f.source.as_str()).unwrap_or("none");
    let client = net::client_ip(req.parts, &settings.server.trust_proxy)
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let origin = net::header(req.parts, "origin").unwrap_or("-");
    let user_id = result
        .as_ref()
        .ok()
        .map(|s| s.user.id.to_string())
        .unwrap_or_else(|| "-".into());
    let token_fp = found
        .as_ref()
        .map(|f| f.token.fingerprint())
        .unwrap_or_else(|| "-".into());
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    let transport = req.transport.as_str();
    match &result {
        Err(e) if e.code.is_server_fault() => tracing::error!(
            target: "im_server::handshake", transport = %transport, source = %source,
            verdict = %verdict, user_id = %user_id, token = %token_fp,
            elapsed_ms = %format!("{elapsed_ms:.2}"), client = %client, origin = %origin,
            ignored = %ignored, error = e.source.as_ref().map(|s| format!("{s:#}")),
            "auth {verdict}"
        ),
        _ => tracing::info!(
            target: "im_server::handshake", transport = %transport, source = %source,
            verdict = %verdict, user_id = %user_id, token = %token_fp,
            elapsed_ms = %format!("{elapsed_ms:.2}"), client = %client, origin = %origin,
            ignored = %ignored, "auth {verdict}"
        ),
    }
    if req.transport != Transport::Http {
        state.metrics().handshake(verdict, source, elapsed);
    }
    result
}

async fn steps(
    state: &AppState,
    req: &AuthRequest<'_>,
    found: Option<&source::Found>,
) -> Result<Session, AppError> {
    if req.transport != Transport::Http
        && !net::origin_allowed(state.settings(), net::header(req.parts, "origin"))
    {
        return Err(ErrorCode::OriginDenied.into());
    }
    verify_token(state, found.ok_or(ErrorCode::TokenMissing)?).await
}

/// The token steps shared by handshakes, HTTP and `auth:refresh`: JWT, then the
/// `user_tokens` row (unless `auth.require_db_record = false`), then the user.
pub async fn verify_token(state: &AppState, found: &source::Found) -> Result<Session, AppError> {
    let now = Utc::now();
    let verified = state.keys().verify(found.token.as_str(), now.timestamp())?;
    let db_started = Instant::now();
    let result = lookup(state, found, &verified, now).await;
    state.metrics().auth_db(db_started.elapsed());
    result
}

/// The database half of [`verify_token`]: row, then user (from the cache when fresh), checked
/// in the order the contract's codes are decided. Timed as a whole, whatever the verdict.
async fn lookup(
    state: &AppState,
    found: &source::Found,
    verified: &jwt::Verified,
    now: chrono::DateTime<Utc>,
) -> Result<Session, AppError> {
    let settings = state.settings();
    let token_hash = store::token_hash(found.token.as_str());
    let cached = match state.auth_cache().get(&token_hash) {
        Some(c) => c,
        None => load(state, &token_hash, verified.user_id).await?,
    };
    let token_id = match &cached.row {
        Some(row) => {
            store::check_row(row, now, settings.auth.leeway_secs)?;
            if row.user_id != verified.user_id {
                // A row whose user differs from `sub` was not issued for this token.
                return Err(ErrorCode::TokenNotFound.into());
            }
            Some(row.id)
        }
        None => None,
    };
    let user = cached.user.ok_or(ErrorCode::UserNotFound)?;
    store::check_user(&user)?;

    Ok(Session {
        user,
        token_id,
        token_hash,
        token_fingerprint: found.token.fingerprint(),
        source: found.source,
        issued_at: verified.claims.iat.map(jwt::ts),
        expires_at: verified.claims.expires_at(),
    })
}

/// Ask the database for the token's row (unless `require_db_record = false`) and the user of
/// `sub`. What was found is cached (a revoked row or a disabled user stays refused); a missing
/// row is not, so a token is never remembered as unknown.
async fn load(state: &AppState, token_hash: &str, user_id: i64) -> Result<cache::Cached, AppError> {
    let db = state.db();
    let row = if state.settings().auth.require_db_record {
        Some(
            store::find_token(db, token_hash)
                .await
                .map_err(AppError::auth_unavailable)?
                .ok_or(ErrorCode::TokenNotFound)?,
        )
    } else {
        None
    };
    let user = store::find_user(db, user_id)
        .await
        .map_err(AppError::auth_unavailable)?;
    let cached = cache::Cached { row, user };
    if cached.user.is_some() {
        state.auth_cache().put(token_hash, cached.clone());
    }
    Ok(cached)
}
