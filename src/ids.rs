//! User ids. im-server's own users have integer ids; a backend's mapped users (contract §9) may
//! have string ids like `kefu_001`. A [`UserId`] keeps the JSON type of the column it came
//! from, so own-table mode stays numbers on the wire and `"kefu_001"` stays a string everywhere
//! (`connected.userId`, messages, presence, rooms `user:kefu_001`).
//!
//! [`IdKind`] is the one reading of an id arriving in JSON (the token's claim, a message's
//! `to`, a presence subscription) or from storage (Redis fields, the `messages` columns): the
//! store says which kind its id column holds.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A user id, as its store's id column holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UserId {
    Int(i64),
    Str(String),
}

impl UserId {
    /// The integer id of im-server's own tables (`None` for a string id).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            UserId::Int(n) => Some(*n),
            UserId::Str(_) => None,
        }
    }
    /// As JSON: a number stays a number, a string a string.
    pub fn to_json(&self) -> Value {
        match self {
            UserId::Int(n) => Value::from(*n),
            UserId::Str(s) => Value::from(s.as_str()),
        }
    }
}

impl fmt::Display for UserId {
    /// The stored / room form: `7`, `kefu_001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserId::Int(n) => write!(f, "{n}"),
            UserId::Str(s) => f.write_str(s),
        }
    }
}

impl From<i64> for UserId {
    fn from(n: i64) -> Self {
        UserId::Int(n)
    }
}

impl redis::ToRedisArgs for UserId {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        out.write_arg(self.to_string().as_bytes())
    }
}

impl redis::ToSingleRedisArg for UserId {}

/// Which ids a store's id column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IdKind {
    /// Integers (im-server's own `users.id`, or a backend's integer column).
    #[default]
    Int,
    /// Text (a backend's `VARCHAR` id column).
    Str,
}

/// Longest string id accepted (the `messages` columns hold 191 characters).
pub const MAX_ID_LEN: usize = 191;

impl IdKind {
    /// The id in `v`: for integer ids a positive number or a string holding one (JWT `sub` is
    /// a string by RFC 7519, many Node services sign numbers); for string ids a non-empty
    /// string, or an integer (read as its digits).
    pub fn read(self, v: &Value) -> Option<UserId> {
        match (self, v) {
            (IdKind::Int, Value::Number(n)) => n.as_i64().map(UserId::Int),
            (IdKind::Int, Value::String(s)) => s.trim().parse().ok().map(UserId::Int),
            (IdKind::Str, Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID_LEN => {
                Some(UserId::Str(s.clone()))
            }
            (IdKind::Str, Value::Number(n)) => n.as_i64().map(|n| UserId::Str(n.to_string())),
            _ => None,
        }
    }

    /// An id from its stored form ([`UserId`]'s `Display`).
    pub fn parse(self, s: &str) -> Option<UserId> {
        match self {
            IdKind::Int => s.parse().ok().map(UserId::Int),
            IdKind::Str => (!s.is_empty()).then(|| UserId::Str(s.to_string())),
        }
    }
}

/// The user id in `v` if it is an integer or a string holding one (own tables' reading).
pub fn user_id(v: &Value) -> Option<i64> {
    IdKind::Int.read(v).and_then(|id| id.as_i64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_and_numeric_strings_are_ids() {
        assert_eq!(user_id(&json!(42)), Some(42));
        assert_eq!(user_id(&json!(" 42 ")), Some(42));
        assert_eq!(user_id(&json!("kefu_001")), None);
        assert_eq!(user_id(&json!(1.5)), None);
        assert_eq!(user_id(&json!({"id": 1})), None);
    }

    #[test]
    fn string_ids_keep_their_type() {
        let id = IdKind::Str.read(&json!("kefu_001")).unwrap();
        assert_eq!(id.to_json(), json!("kefu_001"));
        assert_eq!(serde_json::to_value(&id).unwrap(), json!("kefu_001"));
        assert_eq!(id.to_string(), "kefu_001");
        assert_eq!(IdKind::Str.read(&json!(7)), Some(UserId::Str("7".into())));
        assert_eq!(IdKind::Str.read(&json!("")), None);
        assert_eq!(IdKind::Str.read(&json!(true)), None);
        let n = IdKind::Int.read(&json!("7")).unwrap();
        assert_eq!(serde_json::to_value(&n).unwrap(), json!(7));
        assert_eq!(IdKind::Int.parse("7"), Some(UserId::Int(7)));
        assert_eq!(IdKind::Str.parse("7"), Some(UserId::Str("7".into())));
    }
}
