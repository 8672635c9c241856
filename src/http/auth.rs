//! `/auth/*`: login, logout, validate, session, heartbeat, online (contract §3). Handlers only
//! translate: the decisions live in `login`, `auth::revoke` and `users::online`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::routing::{get, post};
use chrono::Utc;
use http::request::Parts;
use serde::Deserialize;

use super::HttpState;
use super::extract::{ApiJson, ApiQuery, AuthSession, AuthSessionOrCookie};
use super::reply::Reply;
use crate::auth::revoke::{self, Revocation};
use crate::clock::iso;
use crate::error::{AppError, ErrorCode};
use crate::login::{self, Client, Credentials};
use crate::net;
use crate::realtime::Hub;
use crate::state::AppState;

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/auth/validate", get(validate))
        .route("/auth/session", get(session))
        .route("/auth/heartbeat", post(heartbeat))
        .route("/auth/online", get(online))
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
    #[serde(default)]
    user_type: Option<String>,
}

/// Takes `Parts` for the client address and user agent; `ConnectInfo` is read from them.
async fn login(
    State(state): State<AppState>,
    State(hub): State<Arc<dyn Hub>>,
    parts: Parts,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Reply<serde_json::Value>, AppError> {
    let creds = Credentials {
        username: body.username,
        password: body.password,
        user_type: body.user_type,
    };
    let client = Client {
        ip: net::client_ip(&parts, &state.settings().server.trust_proxy),
        user_agent: net::header(&parts, "user-agent").map(str::to_string),
    };
    let result = login::login(&state, hub.as_kicker(), creds, client).await;
    state
        .metrics()
        .login(result.as_ref().err().map_or("OK", |e| e.code.as_str()));
    let issued = result?;
    Ok(Reply::ok(
        "Login successful",
        serde_json::json!({
            "token": issued.token,
            "token_type": "Bearer",
            "expires_in": state.settings().auth.token_ttl_secs,
            "expires_at": iso(issued.expires_at),
            "user": issued.user.to_json(),
        }),
    ))
}

async fn logout(
    State(state): State<AppState>,
    State(hub): State<Arc<dyn Hub>>,
    mut parts: Parts,
) -> Result<Reply<serde_json::Value>, AppError> {
    if !state.auth().store().issues_tokens() {
        return Err(crate::login::backend_issues_tokens());
    }
    let AuthSession(session) = AuthSession::from_request_parts(&mut parts, &state).await?;
    let done = revoke::revoke(
        state.auth(),
        hub.as_kicker(),
        Revocation::tokens(vec![session.token_hash.clone()], ErrorCode::TokenRevoked),
    )
    .await?;
    tracing::info!(user_id = %session.user.id, token = %session.token_fingerprint,
        kicked = done.sockets, "logout");
    Ok(Reply::ok(
        "Logged out",
        serde_json::json!({
            "revoked": session.token_id.is_some(),
            "disconnected_sockets": done.sockets,
        }),
    ))
}

async fn validate(AuthSession(session): AuthSession) -> Reply<serde_json::Value> {
    Reply::ok(
        "Token is valid",
        serde_json::json!({
            "valid": true,
            "user": session.user.to_json(),
            "expires_at": iso(session.expires_at),
        }),
    )
}

async fn session(
    State(state): State<AppState>,
    State(hub): State<Arc<dyn Hub>>,
    AuthSessionOrCookie(session): AuthSessionOrCookie,
) -> Result<Reply<serde_json::Value>, AppError> {
    let row = match session.token_id {
        Some(_) => {
            state
                .auth()
                .store()
                .token_by_hash(&session.token_hash)
                .await?
        }
        None => None,
    };
    let sockets = hub.token_sockets(session.token_hash.clone()).await;
    let online = !sockets.is_empty();
    Ok(Reply::ok(
        "Session",
        serde_json::json!({
            "user": session.user.to_json(),
            "token": {
                "id": session.token_id,
                "fingerprint": session.token_fingerprint,
                "source": session.source.as_str(),
                "issued_at": session.issued_at.map(iso),
                "expires_at": iso(session.expires_at),
                "last_used_at": row.and_then(|r| r.last_used_at).map(iso),
            },
            "sockets": sockets,
            "online": online,
        }),
    ))
}

async fn heartbeat(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
) -> Result<Reply<serde_json::Value>, AppError> {
    let now = Utc::now();
    if let Some(id) = session.token_id {
        state.auth().store().touch_now(id, now).await?;
    }
    Ok(Reply::ok(
        "Heartbeat recorded",
        serde_json::json!({ "last_used_at": iso(now), "expires_at": iso(session.expires_at) }),
    ))
}

#[derive(Deserialize)]
struct OnlineQuery {
    user_type: Option<String>,
}

/// Users with at least one socket on any node, with their socket counts.
async fn online(
    State(state): State<AppState>,
    AuthSession(_caller): AuthSession,
    ApiQuery(q): ApiQuery<OnlineQuery>,
) -> Result<Reply<serde_json::Value>, AppError> {
    let user_type = q.user_type.as_deref().filter(|t| !t.is_empty());
    let users =
        crate::users::online(state.presence().as_ref(), state.auth().store(), user_type).await?;
    Ok(Reply::ok(
        "Online users",
        serde_json::json!({ "users": users }),
    ))
}
