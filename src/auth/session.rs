//! The only output of authentication, and the user it names.

use chrono::{DateTime, Utc};
use entity::users;

use crate::config::TokenSource;
use crate::ids::UserId;

/// A user as authentication sees it, whichever store it came from (own `users` table today;
/// a mapped table of the app's backend next). Never carries a password hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub user_type: String,
    pub display_name: String,
    pub email: Option<String>,
    pub is_active: bool,
}

impl From<users::Model> for User {
    fn from(m: users::Model) -> Self {
        User {
            id: UserId::Int(m.id),
            username: m.username,
            user_type: m.user_type,
            display_name: m.display_name,
            email: m.email,
            is_active: m.is_active,
        }
    }
}

impl User {
    /// The JSON `user` object of the HTTP API (contract §3).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "username": self.username,
            "user_type": self.user_type,
            "display_name": self.display_name,
            "email": self.email,
        })
    }
}

#[derive(Clone, Debug)]
pub struct Session {
    pub user: User,
    /// The token's row id; `None` with `auth.require_db_record = false`.
    pub token_id: Option<i64>,
    /// SHA-256 hex of the token: names its socket room and its `user_tokens` row.
    pub token_hash: String,
    /// The token itself, in memory only: the periodic recheck of `[external]` rows looks raw
    /// tokens up by value. Prints as its fingerprint.
    pub token: crate::config::Secret,
    pub token_fingerprint: String,
    pub source: TokenSource,
    pub issued_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
}
