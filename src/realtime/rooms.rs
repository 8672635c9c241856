//! Room names: the only place they are built, so a grep for a room lands here.

use crate::ids::UserId;

pub fn user(id: &UserId) -> String {
    format!("user:{id}")
}

pub fn user_type(t: &str) -> String {
    format!("type:{t}")
}

/// Every socket that authenticated with one `user_tokens` row: the unit of logout and kick.
pub fn token(token_hash: &str) -> String {
    format!("token:{token_hash}")
}

/// Subscribers of one user's presence transitions.
pub fn presence(user_id: &UserId) -> String {
    format!("presence:{user_id}")
}
