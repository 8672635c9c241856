//! Extractors that speak the contract: authentication through `auth::authenticate`, and JSON
//! bodies whose rejections become `400 BAD_REQUEST` in the envelope (never axum's plain text).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use serde::de::DeserializeOwned;

use axum::extract::FromRef;

use crate::auth::{AuthRequest, Purpose, Session, Transport};
use crate::config::TokenSource;
use crate::error::{AppError, ErrorCode};
use crate::state::AppState;
use sha2::Digest;

/// An authenticated caller: `Authorization: Bearer` only. A cookie is sent by the browser on
/// cross-site requests too, so it must never authorize a state change (CSRF logout).
pub struct AuthSession(pub Session);

/// Bearer, or the `auth.cookie_name` cookie: for read-only introspection (`/auth/session`).
pub struct AuthSessionOrCookie(pub Session);

async fn authenticate_http(
    parts: &Parts,
    state: &AppState,
    sources: &[TokenSource],
) -> Result<Session, AppError> {
    let req = AuthRequest {
        purpose: Purpose::Http,
        transport: Transport::Http,
        sources,
        parts,
        auth_payload: None,
    };
    state.auth().authenticate(&req).await
}

/// An extractor that authenticates from the given sources.
macro_rules! session_extractor {
    ($name:ident, $sources:expr) => {
        impl<S: Send + Sync> FromRequestParts<S> for $name
        where
            AppState: FromRef<S>,
        {
            type Rejection = AppError;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
                authenticate_http(parts, &AppState::from_ref(state), $sources)
                    .await
                    .map($name)
            }
        }
    };
}

session_extractor!(AuthSession, &[TokenSource::Header]);
session_extractor!(
    AuthSessionOrCookie,
    &[TokenSource::Header, TokenSource::Cookie]
);

/// `axum::Json` with contract-shaped rejections that name the offending field.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(AppError::bad_request(rejection_message(&rejection))),
        }
    }
}

fn rejection_message(r: &JsonRejection) -> String {
    match r {
        JsonRejection::MissingJsonContentType(_) => {
            "expected a JSON body with 'Content-Type: application/json'".to_string()
        }
        JsonRejection::JsonSyntaxError(_) => format!("the body is not valid JSON: {}", inner(r)),
        JsonRejection::JsonDataError(_) => format!("invalid request body: {}", inner(r)),
        _ => r.body_text(),
    }
}

/// serde's own words ("missing field `password` at line 1 column 20"), without axum's prefix.
fn inner(r: &JsonRejection) -> String {
    let text = r.body_text();
    match text.split_once(": ") {
        Some((_, rest)) => rest.to_string(),
        None => text,
    }
}

/// A caller holding `server.api_key` in `X-Api-Key` (server-to-server routes).
/// Missing: 401 `TOKEN_MISSING`; wrong, or no key configured: 403 `FORBIDDEN`.
pub struct ApiKey;

impl<S: Send + Sync> FromRequestParts<S> for ApiKey
where
    AppState: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let state = &AppState::from_ref(state);
        let given = parts
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                AppError::with_message(
                    ErrorCode::TokenMissing,
                    "Send the API key in the X-Api-Key header.",
                )
            })?;
        let Some(key) = &state.settings().server.api_key else {
            return Err(AppError::with_message(
                ErrorCode::Forbidden,
                "The server API is off: set server.api_key (IM_SERVER__API_KEY) to enable it.",
            ));
        };
        // Compare digests, so the time taken says nothing about how much of the key matched.
        if sha2::Sha256::digest(given.as_bytes()) == sha2::Sha256::digest(key.expose().as_bytes()) {
            Ok(ApiKey)
        } else {
            Err(AppError::with_message(
                ErrorCode::Forbidden,
                "The X-Api-Key is not this server's API key.",
            ))
        }
    }
}

/// `axum::extract::Query` with contract-shaped rejections.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| AppError::bad_request(format!("invalid query: {}", e.body_text())))
    }
}
