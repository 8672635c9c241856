//! Tokens as other services make them: claims, signatures with any key and algorithm, raw
//! base64url segments. Shared by every test that needs a token login did not issue.

use base64::Engine as _;
use chrono::Utc;
use im_server::auth::jwt::Claims;
use jsonwebtoken::{Algorithm, EncodingKey};

/// Claims for user `sub`, issued now, expiring `exp_in` seconds from now (negative: expired).
pub fn claims(sub: i64, exp_in: i64) -> Claims {
    let now = Utc::now().timestamp();
    Claims::for_user(sub, now, now + exp_in)
}

/// Sign claims the way another service would: with its own key bytes and algorithm.
pub fn forge_bytes(key: &[u8], alg: Algorithm, claims: &Claims) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        claims,
        &EncodingKey::from_secret(key),
    )
    .unwrap()
}

/// Sign with a secret's text and an algorithm name (`"HS256"`).
pub fn forge(secret: &str, alg: &str, claims: &Claims) -> String {
    forge_bytes(secret.as_bytes(), alg.parse().unwrap(), claims)
}

/// Unpadded base64url, as in a JWT segment.
pub fn b64(s: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}
