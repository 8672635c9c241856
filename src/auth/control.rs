//! An operator's change reaching a running node without Redis: `im-server user disable` on
//! the same machine as a single node posts it to `POST /api/control/user-active`, signed as a
//! JWT with the node's own `auth.jwt_secret` (both read the same configuration). No second
//! secret to configure, and a CLI holding another secret is refused, which says which
//! configuration drifted.
//!
//! The token's audience is [`AUDIENCE`]: no handshake or Bearer route accepts it (a token with
//! an `aud` the server does not expect is refused there), and this route accepts nothing else.

use chrono::Utc;
use jsonwebtoken::{DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::jwt::Keys;
use super::revoke::UserChange;
use crate::error::ErrorCode;

pub const AUDIENCE: &str = "im-server:control";

/// The route the CLI posts to.
pub const USER_ACTIVE_PATH: &str = "/api/control/user-active";

/// How long a signed change may take to arrive (the CLI posts it at once).
const VALID_SECS: i64 = 30;

#[derive(Serialize, Deserialize)]
struct ControlClaims {
    aud: String,
    iat: i64,
    exp: i64,
    user_change: UserChange,
}

/// The change, signed with the current key for [`verify`].
pub fn sign(keys: &Keys, change: UserChange) -> Result<String, jsonwebtoken::errors::Error> {
    let now = Utc::now().timestamp();
    let claims = ControlClaims {
        aud: AUDIENCE.into(),
        iat: now,
        exp: now + VALID_SECS,
        user_change: change,
    };
    jsonwebtoken::encode(
        &Header::new(keys.algorithms[0]),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&keys.current.bytes),
    )
}

/// The change, if `token` was signed by [`sign`] with this node's current key and is fresh.
pub fn verify(keys: &Keys, token: &str) -> Result<UserChange, ErrorCode> {
    let mut validation = Validation::new(keys.algorithms[0]);
    validation.set_audience(&[AUDIENCE]);
    validation.leeway = keys.leeway_secs;
    jsonwebtoken::decode::<ControlClaims>(
        token,
        &DecodingKey::from_secret(&keys.current.bytes),
        &validation,
    )
    .map(|t| t.claims.user_change)
    .map_err(|_| ErrorCode::Forbidden)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, Settings};

    fn keys(secret: &str) -> Keys {
        let mut s = Settings::default();
        s.auth.jwt_secret = Some(Secret::new(secret));
        Keys::from_settings(&s).unwrap()
    }

    #[test]
    fn only_the_same_secret_and_the_control_audience_pass() {
        let ours = keys("control-test-secret-0123456789abcdef");
        let change = UserChange {
            user_id: 7,
            active: false,
        };
        let token = sign(&ours, change).unwrap();
        let back = verify(&ours, &token).unwrap();
        assert_eq!((back.user_id, back.active), (7, false));
        let theirs = keys("another-secret-0123456789abcdef-xyz");
        assert_eq!(verify(&theirs, &token).err(), Some(ErrorCode::Forbidden));
        // A user's token (no control audience) is not a control token.
        let now = Utc::now().timestamp();
        let user = ours
            .sign(&super::super::jwt::Claims::for_user(7, now, now + 60))
            .unwrap();
        assert_eq!(verify(&ours, &user).err(), Some(ErrorCode::Forbidden));
    }

    #[test]
    fn a_user_route_refuses_a_control_token() {
        let ours = keys("control-test-secret-0123456789abcdef");
        let token = sign(
            &ours,
            UserChange {
                user_id: 7,
                active: true,
            },
        )
        .unwrap();
        assert!(ours.verify(&token, Utc::now().timestamp()).is_err());
    }
}
