//! User ids as they arrive in JSON: a number, or a numeric string (JWT `sub` is a string by
//! RFC 7519; many JavaScript clients and Node services send numbers). One reading for the
//! token's `sub`, a message's `to` and a presence subscription.

use serde_json::Value;

/// The user id in `v`, if it is an integer or a string holding one.
pub fn user_id(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
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
}
