//! `/auth/*`: login, logout, validate, session, heartbeat (contract §3).

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use chrono::{Duration, Utc};
use http::request::Parts;
use serde::Deserialize;

use super::extract::{ApiJson, AuthSession};
use super::reply::Reply;
use crate::auth::jwt::Claims;
use crate::auth::session::user_json;
use crate::auth::{password, store};
use crate::clock::iso;
use crate::config::LoginPolicy;
use crate::error::{AppError, ErrorCode};
use crate::net;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
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
    parts: Parts,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Reply<serde_json::Value>, AppError> {
    let result = do_login(&state, &parts, body).await;
    state.metrics().login(match &result {
        Ok(_) => "OK",
        Err(e) => e.code.as_str(),
    });
    result
}

async fn do_login(
    state: &AppState,
    parts: &Parts,
    body: LoginBody,
) -> Result<Reply<serde_json::Value>, AppError> {
    let settings = state.settings();
    let ip = net::client_ip(parts, &settings.server.trust_proxy);
    let client = ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
    if body.username.trim().is_empty() {
        return Err(AppError::bad_request("username must not be empty"));
    }
    if let Some(wait) = state.limiter().blocked_for(&body.username, ip) {
        return Err(rate_limited(wait));
    }
    let user = crate::users::find_by_username(state.db(), &body.username)
        .await
        .map_err(AppError::auth_unavailable)?;
    // Unknown users are verified against a dummy hash: same answer, similar time.
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| state.dummy_hash().to_string());
    let password_ok = password::verify(body.password, hash).await;
    let type_ok = match (&user, &body.user_type) {
        (Some(u), Some(t)) => &u.user_type == t,
        _ => true,
    };
    let user = match user {
        Some(u) if password_ok && type_ok => u,
        _ => {
            tracing::info!(username = %body.username.chars().take(64).collect::<String>(),
                client = %client, "login failed: INVALID_CREDENTIALS");
            if let Some(wait) = state.limiter().record_failure(&body.username, ip) {
                return Err(rate_limited(wait));
            }
            return Err(ErrorCode::InvalidCredentials.into());
        }
    };
    store::check_user(&user)?;

    let now = Utc::now();
    if settings.auth.login_policy == LoginPolicy::RejectNew
        && !store::live_tokens(state.db(), user.id, None, now)
            .await?
            .is_empty()
    {
        return Err(ErrorCode::AlreadyLoggedIn.into());
    }

    let expires_at = now + Duration::seconds(settings.auth.token_ttl_secs as i64);
    let jti = uuid::Uuid::new_v4().simple().to_string();
    let claims = Claims {
        sub: serde_json::Value::String(user.id.to_string()),
        username: Some(user.username.clone()),
        user_type: Some(user.user_type.clone()),
        iat: Some(now.timestamp()),
        exp: expires_at.timestamp(),
        nbf: None,
        iss: settings.auth.issuer.clone(),
        aud: settings
            .auth
            .audience
            .clone()
            .map(serde_json::Value::String),
        jti: Some(jti.clone()),
    };
    let token = state.keys().sign(&claims).map_err(AppError::internal)?;
    let row = store::insert_token(
        state.db(),
        store::NewToken {
            user_id: user.id,
            token: &token,
            jti: &jti,
            expires_at: crate::auth::jwt::ts(claims.exp),
            user_agent: net::header(parts, "user-agent").map(str::to_string),
            ip: ip.map(|i| i.to_string()),
        },
    )
    .await?;

    if settings.auth.login_policy == LoginPolicy::KickPrevious {
        let older = store::live_tokens(state.db(), user.id, Some(row.id), now).await?;
        let ids: Vec<i64> = older.iter().map(|t| t.id).collect();
        store::revoke_many(state.db(), &ids).await?;
        let hashes = older.into_iter().map(|t| t.token_hash).collect();
        let kicked = state
            .hub()
            .kick_tokens(hashes, ErrorCode::SessionReplaced)
            .await;
        if !ids.is_empty() {
            tracing::info!(
                user_id = user.id,
                revoked = ids.len(),
                kicked,
                "kick_previous: older sessions replaced"
            );
        }
    }
    tracing::info!(user_id = user.id, client = %client, token = %crate::config::fingerprint(token.as_bytes()), "login OK");

    Ok(Reply::ok(
        "Login successful",
        serde_json::json!({
            "token": token,
            "token_type": "Bearer",
            "expires_in": settings.auth.token_ttl_secs,
            "expires_at": iso(row.expires_at),
            "user": user_json(&user),
        }),
    ))
}

fn rate_limited(wait: u64) -> AppError {
    AppError {
        retry_after: Some(wait),
        ..AppError::with_message(
            ErrorCode::RateLimited,
            format!("Too many failed login attempts. Try again in {wait} s."),
        )
    }
}

async fn logout(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
) -> Result<Reply<serde_json::Value>, AppError> {
    if let Some(id) = session.token_id {
        store::revoke(state.db(), id).await?;
    }
    let kicked = state
        .hub()
        .kick_tokens(vec![session.token_hash.clone()], ErrorCode::TokenRevoked)
        .await;
    tracing::info!(user_id = session.user.id, token = %session.token_fingerprint, kicked, "logout");
    Ok(Reply::ok(
        "Logged out",
        serde_json::json!({ "revoked": session.token_id.is_some(), "disconnected_sockets": kicked }),
    ))
}

async fn validate(AuthSession(session): AuthSession) -> Reply<serde_json::Value> {
    Reply::ok(
        "Token is valid",
        serde_json::json!({
            "valid": true,
            "user": user_json(&session.user),
            "expires_at": iso(session.expires_at),
        }),
    )
}

async fn session(
    State(state): State<AppState>,
    super::extract::AuthSessionOrCookie(session): super::extract::AuthSessionOrCookie,
) -> Result<Reply<serde_json::Value>, AppError> {
    let row = match session.token_id {
        Some(_) => store::find_token(state.db(), &session.token_hash).await?,
        None => None,
    };
    let sockets = state.hub().token_sockets(session.token_hash.clone()).await;
    let online = !sockets.is_empty();
    Ok(Reply::ok(
        "Session",
        serde_json::json!({
            "user": user_json(&session.user),
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
        store::touch(state.db(), id, now).await?;
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
    super::extract::ApiQuery(q): super::extract::ApiQuery<OnlineQuery>,
) -> Result<Reply<serde_json::Value>, AppError> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let online = state
        .presence()
        .online_users()
        .await
        .map_err(|e| AppError::internal(e.context("presence lookup failed")))?;
    let ids: Vec<i64> = online.iter().map(|o| o.user_id).collect();
    let mut find = entity::users::Entity::find().filter(entity::users::Column::Id.is_in(ids));
    if let Some(t) = q.user_type.as_deref().filter(|t| !t.is_empty()) {
        find = find.filter(entity::users::Column::UserType.eq(t));
    }
    let users = find.all(state.db()).await?;
    let mut list: Vec<serde_json::Value> = users
        .iter()
        .filter_map(|u| {
            let o = online.iter().find(|o| o.user_id == u.id)?;
            Some(serde_json::json!({
                "id": u.id,
                "username": u.username,
                "user_type": u.user_type,
                "display_name": u.display_name,
                "sockets": o.sockets,
                "since": iso(o.since),
            }))
        })
        .collect();
    list.sort_by_key(|v| v["id"].as_i64());
    Ok(Reply::ok(
        "Online users",
        serde_json::json!({ "users": list }),
    ))
}
