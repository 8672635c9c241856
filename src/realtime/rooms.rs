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

/// Rooms only the server puts sockets in: an app (bridge reply, `on_connect`) may not join or
/// leave them (`user:` and `type:` address users; `token:` is how logout reaches a socket).
pub fn reserved(room: &str) -> bool {
    ["user:", "type:", "token:"]
        .iter()
        .any(|p| room.starts_with(p))
}

/// `rooms` without the reserved ones (each dropped one logged): what an app may join or leave.
pub fn app_rooms(rooms: Vec<String>) -> Vec<String> {
    rooms
        .into_iter()
        .filter(|r| {
            let ok = !r.is_empty() && !reserved(r);
            if !ok {
                tracing::warn!(room = %r.chars().take(64).collect::<String>(), "ignoring a reserved room name from the app");
            }
            ok
        })
        .collect()
}
