//! Extractors that speak the contract: authentication through `auth::authenticate`, and JSON
//! bodies whose rejections become `400 BAD_REQUEST` in the envelope (never axum's plain text).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::auth::{self, AuthRequest, Session, Transport};
use crate::error::AppError;
use crate::state::AppState;

/// An authenticated caller (Bearer header, or any enabled source).
pub struct AuthSession(pub Session);

impl FromRequestParts<AppState> for AuthSession {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let req = AuthRequest {
            transport: Transport::Http,
            parts,
            auth_payload: None,
        };
        auth::authenticate(state, &req).await.map(AuthSession)
    }
}

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
