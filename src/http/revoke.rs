//! `POST /api/revoke` (`X-Api-Key`, contract §3): the backend says tokens or users stop now.
//! Every live socket using one of the tokens or belonging to one of the users, on every node,
//! gets `error {code:"TOKEN_REVOKED"}` and is disconnected, and cached verdicts are dropped,
//! all through [`revoke::revoke`] (which also marks own-table rows; a backend's are its own).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde::Deserialize;
use serde_json::Value;

use super::HttpState;
use super::extract::{ApiJson, ApiKey};
use super::reply::Reply;
use crate::auth::control;
use crate::auth::revoke::{self, Revocation};
use crate::auth::source::RawToken;
use crate::auth::store::token_hash;
use crate::chat::parse_user_id;
use crate::error::{AppError, ErrorCode};
use crate::realtime::Hub;
use crate::state::AppState;

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/api/revoke", post(revoke))
        .route(control::USER_ACTIVE_PATH, post(user_active))
}

/// `im-server user disable|enable` on a node without Redis (see [`control`]): what every node
/// does on hearing the change on Redis, done here. Answers the sockets kicked.
async fn user_active(
    State(state): State<AppState>,
    State(hub): State<Arc<dyn Hub>>,
    headers: axum::http::HeaderMap,
) -> Result<Reply<Value>, AppError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::source::strip_bearer)
        .ok_or_else(|| AppError::new(ErrorCode::Forbidden))?;
    let change = control::verify(state.auth().keys(), token).map_err(|code| {
        AppError::with_message(
            code,
            "not signed with this server's auth.jwt_secret (or older than 30 s): the CLI and \
             the server read different configurations",
        )
    })?;
    let kicked =
        revoke::user_changed(state.auth(), hub.as_kicker(), change.user_id, change.active).await;
    Ok(Reply::ok(
        "user change applied",
        serde_json::json!({ "kicked": kicked }),
    ))
}

/// Most tokens plus users one request may name.
const MAX_TARGETS: usize = 10_000;

#[derive(Deserialize)]
struct RevokeBody {
    #[serde(default)]
    tokens: Vec<String>,
    #[serde(default)]
    user_ids: Vec<Value>,
}

async fn revoke(
    State(state): State<AppState>,
    State(hub): State<Arc<dyn Hub>>,
    _key: ApiKey,
    ApiJson(body): ApiJson<RevokeBody>,
) -> Result<Reply<Value>, AppError> {
    if body.tokens.is_empty() && body.user_ids.is_empty() {
        return Err(AppError::bad_request(
            "give tokens: [token] and/or user_ids: [id]",
        ));
    }
    if body.tokens.len() + body.user_ids.len() > MAX_TARGETS {
        return Err(AppError::bad_request(format!(
            "at most {MAX_TARGETS} tokens and user_ids per request"
        )));
    }
    let token_hashes = body
        .tokens
        .iter()
        .map(|t| {
            RawToken::parse(t)
                .map(|t| token_hash(t.as_str()))
                .ok_or_else(|| AppError::bad_request("tokens[] must be non-empty strings"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let kind = state.auth().store().id_kind();
    let user_ids = body
        .user_ids
        .iter()
        .map(|v| parse_user_id(Some(v), "user_ids[]", kind))
        .collect::<Result<Vec<_>, _>>()?;
    let (tokens, users) = (token_hashes.len(), user_ids.len());
    let done = revoke::revoke(
        state.auth(),
        hub.as_kicker(),
        Revocation {
            token_hashes,
            user_ids,
            code: ErrorCode::TokenRevoked,
        },
    )
    .await?;
    tracing::info!(
        tokens,
        users,
        rows = done.rows,
        kicked = done.sockets,
        "api/revoke"
    );
    Ok(Reply::ok(
        "Revoked",
        serde_json::json!({
            "disconnected_sockets": done.sockets,
            "revoked_rows": done.rows,
        }),
    ))
}
