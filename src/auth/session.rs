//! The only output of authentication.

use chrono::{DateTime, Utc};
use entity::users;

use crate::config::TokenSource;

#[derive(Clone, Debug)]
pub struct Session {
    pub user: users::Model,
    /// The `user_tokens` row; `None` only with `auth.require_db_record = false`.
    pub token_id: Option<i64>,
    /// SHA-256 hex of the token: names its socket room and its `user_tokens` row.
    pub token_hash: String,
    pub token_fingerprint: String,
    pub source: TokenSource,
    pub issued_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
}

/// The JSON `user` object of the HTTP API (contract §3).
pub fn user_json(u: &users::Model) -> serde_json::Value {
    serde_json::json!({
        "id": u.id,
        "username": u.username,
        "user_type": u.user_type,
        "display_name": u.display_name,
        "email": u.email,
    })
}
