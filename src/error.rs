//! One error vocabulary for HTTP and Socket.IO (contract §5).
//!
//! [`ErrorCode`] is the closed list of codes clients see; [`AppError`] is the only error type a
//! handler, middleware or event returns. Lower-layer errors are mapped to a code at one
//! boundary and their source is logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// No token in any enabled source.
    TokenMissing,
    /// Not a JWT at all: wrong segment count, bad base64, bad JSON, oversized.
    TokenMalformed,
    /// Well-formed, but the signature does not verify with any accepted key.
    TokenInvalidSignature,
    /// The header's `alg` is not in `auth.algorithms` (includes `none`).
    TokenAlgorithmNotAllowed,
    /// `exp` (plus leeway) is in the past, or the stored row has expired.
    TokenExpired,
    /// `nbf` (minus leeway) is in the future.
    TokenNotYetValid,
    /// `iss`, `aud` or `sub` is wrong or missing.
    TokenClaimsInvalid,
    /// Valid JWT, but no `user_tokens` row has its hash.
    TokenNotFound,
    /// The row is revoked (logout, kick, rotation).
    TokenRevoked,
    /// The token's user does not exist.
    UserNotFound,
    /// The user exists but `is_active` is false.
    UserDisabled,
    /// A newer login replaced this session under `login_policy = kick_previous`.
    SessionReplaced,
    /// The database could not be asked: authentication fails closed.
    AuthUnavailable,
    /// The handshake's `Origin` is not in `cors.origins`.
    OriginDenied,
    /// Unknown user or wrong password (one answer for both).
    InvalidCredentials,
    /// Too many failed logins for a username or an address, too many handshakes from one
    /// address, too many events on one socket (contract §11).
    RateLimited,
    /// A connection limit of contract §11 (per node, per user) refused the connection.
    ConnectionLimit,
    /// A request body, query or event payload that does not fit.
    BadRequest,
    /// Authenticated, but not allowed to do this (wrong API key, someone else's token).
    Forbidden,
    /// `login_policy = reject_new` and the user already has a live token.
    AlreadyLoggedIn,
    /// The app's backend behind the bridge (§10) did not answer in time, or answered 5xx / not JSON.
    BackendUnavailable,
    /// Anything unexpected; details are in the server log.
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 22] = [
        ErrorCode::TokenMissing,
        ErrorCode::TokenMalformed,
        ErrorCode::TokenInvalidSignature,
        ErrorCode::TokenAlgorithmNotAllowed,
        ErrorCode::TokenExpired,
        ErrorCode::TokenNotYetValid,
        ErrorCode::TokenClaimsInvalid,
        ErrorCode::TokenNotFound,
        ErrorCode::TokenRevoked,
        ErrorCode::UserNotFound,
        ErrorCode::UserDisabled,
        ErrorCode::SessionReplaced,
        ErrorCode::AuthUnavailable,
        ErrorCode::OriginDenied,
        ErrorCode::InvalidCredentials,
        ErrorCode::RateLimited,
        ErrorCode::ConnectionLimit,
        ErrorCode::BadRequest,
        ErrorCode::Forbidden,
        ErrorCode::AlreadyLoggedIn,
        ErrorCode::BackendUnavailable,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::TokenMissing => "TOKEN_MISSING",
            ErrorCode::TokenMalformed => "TOKEN_MALFORMED",
            ErrorCode::TokenInvalidSignature => "TOKEN_INVALID_SIGNATURE",
            ErrorCode::TokenAlgorithmNotAllowed => "TOKEN_ALGORITHM_NOT_ALLOWED",
            ErrorCode::TokenExpired => "TOKEN_EXPIRED",
            ErrorCode::TokenNotYetValid => "TOKEN_NOT_YET_VALID",
            ErrorCode::TokenClaimsInvalid => "TOKEN_CLAIMS_INVALID",
            ErrorCode::TokenNotFound => "TOKEN_NOT_FOUND",
            ErrorCode::TokenRevoked => "TOKEN_REVOKED",
            ErrorCode::UserNotFound => "USER_NOT_FOUND",
            ErrorCode::UserDisabled => "USER_DISABLED",
            ErrorCode::SessionReplaced => "SESSION_REPLACED",
            ErrorCode::AuthUnavailable => "AUTH_UNAVAILABLE",
            ErrorCode::OriginDenied => "ORIGIN_DENIED",
            ErrorCode::InvalidCredentials => "INVALID_CREDENTIALS",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::ConnectionLimit => "CONNECTION_LIMIT",
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::AlreadyLoggedIn => "ALREADY_LOGGED_IN",
            ErrorCode::BackendUnavailable => "BACKEND_UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::TokenMissing
            | ErrorCode::TokenMalformed
            | ErrorCode::TokenInvalidSignature
            | ErrorCode::TokenAlgorithmNotAllowed
            | ErrorCode::TokenExpired
            | ErrorCode::TokenNotYetValid
            | ErrorCode::TokenClaimsInvalid
            | ErrorCode::TokenNotFound
            | ErrorCode::TokenRevoked
            | ErrorCode::UserNotFound
            | ErrorCode::SessionReplaced
            | ErrorCode::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ErrorCode::UserDisabled | ErrorCode::OriginDenied | ErrorCode::Forbidden => {
                StatusCode::FORBIDDEN
            }
            ErrorCode::AuthUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ConnectionLimit => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::AlreadyLoggedIn => StatusCode::CONFLICT,
            ErrorCode::BackendUnavailable => StatusCode::BAD_GATEWAY,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A sentence that says what to do next. Never contains request data.
    pub fn default_message(self) -> &'static str {
        match self {
            ErrorCode::TokenMissing => {
                "No token was sent. Pass it in the Socket.IO auth payload ({auth:{token}}), an \
                 'Authorization: Bearer' header, the ?token= query parameter or the token cookie."
            }
            ErrorCode::TokenMalformed => {
                "The token is not a well-formed JWT. Check that it was not truncated, quoted, \
                 URL-encoded or prefixed twice with 'Bearer' on the way."
            }
            ErrorCode::TokenInvalidSignature => {
                "The token's signature does not match this server's secret. The issuer and this \
                 server probably hold different secrets; compare fingerprints with \
                 'im-server config' or run 'im-server token inspect'."
            }
            ErrorCode::TokenAlgorithmNotAllowed => {
                "The token is signed with an algorithm this server does not accept \
                 (auth.algorithms)."
            }
            ErrorCode::TokenExpired => {
                "The token has expired. Log in again or refresh it with auth:refresh."
            }
            ErrorCode::TokenNotYetValid => {
                "The token is not valid yet (nbf in the future). Check the clocks of the issuer \
                 and this server."
            }
            ErrorCode::TokenClaimsInvalid => {
                "The token's issuer, audience or subject is not what this server expects \
                 (auth.issuer, auth.audience)."
            }
            ErrorCode::TokenNotFound => {
                "The token is a valid JWT but this server has no session for it (no user_tokens \
                 row). It was issued elsewhere or the database was reset; log in again."
            }
            ErrorCode::TokenRevoked => "The token has been revoked (logged out). Log in again.",
            ErrorCode::UserNotFound => "The token's user does not exist.",
            ErrorCode::UserDisabled => "This user account is disabled.",
            ErrorCode::SessionReplaced => {
                "This session was replaced by a newer login of the same user."
            }
            ErrorCode::AuthUnavailable => {
                "Authentication is temporarily unavailable (the database cannot be reached). \
                 Retry shortly."
            }
            ErrorCode::OriginDenied => {
                "This page's origin is not allowed. Add it to cors.origins (or FRONTEND_URL)."
            }
            ErrorCode::InvalidCredentials => "Wrong username or password.",
            ErrorCode::RateLimited => "Too many failed attempts. Wait before trying again.",
            ErrorCode::ConnectionLimit => {
                "Too many connections (for this server or this user). Close another connection \
                 or try again later."
            }
            ErrorCode::BadRequest => "The request is malformed.",
            ErrorCode::Forbidden => "You are not allowed to do this.",
            ErrorCode::AlreadyLoggedIn => {
                "This user is already logged in elsewhere and login_policy is reject_new. Log out \
                 there first."
            }
            ErrorCode::BackendUnavailable => {
                "The app's backend did not answer (unreachable, too slow, or an error). Retry \
                 shortly; the server log has the call's status and time."
            }
            ErrorCode::Internal => "Something went wrong on the server. The log has details.",
        }
    }

    /// Expected failures (a client's mistake) log at info; the rest at error.
    pub fn is_server_fault(self) -> bool {
        matches!(
            self,
            ErrorCode::Internal | ErrorCode::AuthUnavailable | ErrorCode::BackendUnavailable
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error on its way to a client: a code, a human message, and (server-side only) a source.
#[derive(Debug)]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
    /// Logged, never sent.
    pub source: Option<anyhow::Error>,
    /// Seconds for a `Retry-After` header (rate limiting).
    pub retry_after: Option<u64>,
    /// Overrides the code's status (only the 404 fallback needs this).
    pub status: Option<StatusCode>,
}

impl AppError {
    pub fn new(code: ErrorCode) -> Self {
        AppError {
            code,
            message: code.default_message().to_string(),
            source: None,
            retry_after: None,
            status: None,
        }
    }

    pub fn with_status_not_found(self) -> Self {
        AppError {
            status: Some(StatusCode::NOT_FOUND),
            ..self
        }
    }

    pub fn with_message(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError {
            message: message.into(),
            ..AppError::new(code)
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        AppError::with_message(ErrorCode::BadRequest, message)
    }

    /// An unexpected failure: the client gets `INTERNAL`, the log gets the cause.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        AppError {
            source: Some(source.into()),
            ..AppError::new(ErrorCode::Internal)
        }
    }

    /// A database error on the authentication path: fail closed.
    pub fn auth_unavailable(source: impl Into<anyhow::Error>) -> Self {
        AppError {
            source: Some(source.into()),
            ..AppError::new(ErrorCode::AuthUnavailable)
        }
    }

    /// `{code, message}`: the socket `error` event and the ack `{ok:false, ...}` payload.
    pub fn to_event(&self) -> serde_json::Value {
        serde_json::json!({ "code": self.code, "message": self.message })
    }

    pub fn to_ack(&self) -> serde_json::Value {
        serde_json::json!({ "ok": false, "code": self.code, "message": self.message })
    }

    fn log(&self) {
        if self.code.is_server_fault() {
            match &self.source {
                Some(src) => {
                    tracing::error!(code = %self.code, error = %format!("{src:#}"), "request failed")
                }
                None => tracing::error!(code = %self.code, "request failed"),
            }
        }
    }
}

impl fmt::Display for AppError {
    /// The code alone: socketioxide sends this as `connect_error`'s message in strict mode.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code.as_str())
    }
}

impl From<ErrorCode> for AppError {
    fn from(code: ErrorCode) -> Self {
        AppError::new(code)
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        AppError::internal(e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let body = axum::Json(serde_json::json!({
            "success": false,
            "code": self.code,
            "message": self.message,
        }));
        let mut resp = (self.status.unwrap_or(self.code.status()), body).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.max(1).into());
        }
        resp.extensions_mut().insert(self.code);
        resp
    }
}
