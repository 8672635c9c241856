//! `POST /auth/tokens/inspect` (contract §3, §6): the diagnosis of one token as JSON.
//!
//! `X-Api-Key: <server.api_key>` may inspect any token. Otherwise the caller authenticates like
//! any route (Bearer, …) and may inspect only tokens of its own user: the inspected token's
//! `sub` is read without trusting it, and a report about anyone else is `403 FORBIDDEN`.
//! Authorization is decided before the body is read, so an anonymous caller learns nothing
//! from body errors.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::routing::post;
use serde::Deserialize;

use super::HttpState;
use super::extract::{ApiJson, ApiKey, AuthSession};
use super::reply::Reply;
use crate::auth::diagnose::{self, Diagnosis};
use crate::auth::source::RawToken;
use crate::auth::store::token_hash;
use crate::config::TokenSource;
use crate::error::{AppError, ErrorCode};
use crate::realtime::Hub;
use crate::state::AppState;

pub fn router() -> Router<HttpState> {
    Router::new().route("/auth/tokens/inspect", post(inspect))
}

#[derive(Deserialize)]
struct InspectBody {
    token: String,
    /// Where the token arrives (default `auth`, the handshake payload).
    #[serde(default)]
    source: Option<TokenSource>,
}

enum Caller {
    ApiKey,
    User(crate::ids::UserId),
}

async fn inspect(
    State(state): State<AppState>,
    State(hub): State<Arc<dyn Hub>>,
    request: Request,
) -> Result<Reply<Diagnosis>, AppError> {
    let (mut parts, body) = request.into_parts();
    let caller = if parts.headers.contains_key("x-api-key") {
        ApiKey::from_request_parts(&mut parts, &state).await?;
        Caller::ApiKey
    } else {
        let AuthSession(session) = AuthSession::from_request_parts(&mut parts, &state).await?;
        Caller::User(session.user.id)
    };
    let ApiJson(body) =
        ApiJson::<InspectBody>::from_request(Request::from_parts(parts, body), &state).await?;

    if let Caller::User(me) = &caller
        && diagnose::claimed_user_ids(&body.token, state.auth().keys())
            .iter()
            .any(|id| *id != *me)
    {
        return Err(not_yours());
    }
    let sockets = match RawToken::parse(&body.token) {
        Some(t) => hub.token_sockets(token_hash(t.as_str())).await,
        None => vec![],
    };
    let d = diagnose::diagnose(state.auth(), &body.token, body.source, Some(sockets)).await;
    if let Caller::User(me) = &caller
        && d.user_ids().iter().any(|id| id != me)
    {
        return Err(not_yours());
    }
    tracing::info!(
        target: "im_server::inspect",
        by = %match caller { Caller::ApiKey => "api_key".to_string(), Caller::User(id) => format!("user:{id}") },
        token = %d.token.fingerprint.as_deref().unwrap_or("-"),
        verdict = %d.verdict,
        "token inspected"
    );
    Ok(Reply::ok("Token diagnosis", d))
}

fn not_yours() -> AppError {
    AppError::with_message(
        ErrorCode::Forbidden,
        "This token belongs to another user. Inspect your own tokens, or use X-Api-Key.",
    )
}
