//! JWT issue and verify. The accepted algorithm list is closed (HS256/384/512 from
//! `auth.algorithms`): the token's own header never chooses how it is checked, so `alg: none`
//! and algorithm confusion cannot pass.

use std::collections::HashSet;

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{ConfigError, Settings, fingerprint};
use crate::error::ErrorCode;
use crate::ids::{IdKind, UserId};

/// Tokens above this size are refused before any parsing (a 100 KB "token" is an attack or a
/// bug, never a session).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Claims as they appear in tokens: `sub` may be a string (ours, RFC 7519) or a number
/// (many Node services sign `sub: user.id`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    /// Missing `sub` deserialises as null and fails as TOKEN_CLAIMS_INVALID, not as malformed.
    #[serde(default)]
    pub sub: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    #[serde(default)]
    pub iat: Option<i64>,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Every other claim: a backend's token may name its user in `userId`, `uid`…
    /// (`auth.user_id_claim`).
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, Value>,
}

impl Claims {
    /// Claims with only `sub`, `iat` and `exp` set; the rest is added field by field.
    pub fn new(sub: impl Into<Value>, iat: i64, exp: i64) -> Claims {
        Claims {
            sub: sub.into(),
            username: None,
            user_type: None,
            iat: Some(iat),
            exp,
            nbf: None,
            iss: None,
            aud: None,
            jti: None,
            extra: serde_json::Map::new(),
        }
    }

    /// The claims of a token for this user id (`sub` a string, as this server issues it).
    pub fn for_user(user_id: i64, iat: i64, exp: i64) -> Claims {
        Claims::new(user_id.to_string(), iat, exp)
    }

    /// The value of the claim named `name` (`sub` or any other), if present.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        match name {
            "sub" => Some(&self.sub).filter(|v| !v.is_null()),
            other => self.extra.get(other),
        }
    }

    /// The user id in the claim `name` (`auth.user_id_claim`), read as the store's ids are.
    pub fn user_id(&self, name: &str, kind: IdKind) -> Option<UserId> {
        self.claim(name).and_then(|v| kind.read(v))
    }
    pub fn expires_at(&self) -> DateTime<Utc> {
        ts(self.exp)
    }
}

/// A base64url JSON segment of a JWT, read without trusting it; the error says what it is not.
pub fn decode_segment(seg: &str) -> Result<Value, String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(seg.trim_end_matches('='))
        .map_err(|_| "is not base64url".to_string())?;
    serde_json::from_slice(&bytes).map_err(|_| "is not JSON".to_string())
}

/// The token's header, unverified.
pub fn unverified_header(token: &str) -> Result<Value, String> {
    decode_segment(token.split('.').next().unwrap_or(""))
}

/// The token's claims, unverified (`None` when there is no second segment).
pub fn unverified_claims(token: &str) -> Option<Result<Value, String>> {
    token.split('.').nth(1).map(decode_segment)
}

/// The user id a token claims in `claim`, unverified.
pub fn claimed_user_id(token: &str, claim: &str, kind: IdKind) -> Option<UserId> {
    unverified_claims(token)?
        .ok()
        .and_then(|c| c.get(claim).and_then(|v| kind.read(v)))
}

pub fn ts(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

/// One HMAC key the server accepts.
#[derive(Clone)]
pub struct Key {
    pub bytes: Vec<u8>,
    pub fingerprint: String,
    /// `None` for the current key; previous keys stop verifying after this instant.
    pub valid_until: Option<DateTime<Utc>>,
}

impl Key {
    fn new(bytes: Vec<u8>, valid_until: Option<DateTime<Utc>>) -> Self {
        Key {
            fingerprint: fingerprint(&bytes),
            bytes,
            valid_until,
        }
    }
}

/// Which key verified a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyUsed {
    Current,
    Previous(usize),
}

#[derive(Clone, Debug)]
pub struct Verified {
    pub claims: Claims,
    pub user_id: UserId,
    pub key: KeyUsed,
}

/// Everything needed to issue and verify tokens; built once from validated settings.
#[derive(Clone)]
pub struct Keys {
    pub current: Key,
    pub previous: Vec<Key>,
    pub algorithms: Vec<Algorithm>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway_secs: u64,
    /// `auth.user_id_claim`: the claim holding the user id.
    pub user_id_claim: String,
    /// How the store's ids read (set by the [`super::Authenticator`] from its store).
    pub id_kind: IdKind,
}

impl Keys {
    pub fn from_settings(s: &Settings) -> Result<Keys, ConfigError> {
        let algorithms = s.auth.parsed_algorithms()?;
        let mut previous = vec![];
        for (i, p) in s.auth.previous_secrets.iter().enumerate() {
            let key = format!("auth.previous_secrets[{i}].secret");
            let bytes = crate::config::decode_secret(&key, &p.secret, p.encoding)?;
            previous.push(Key::new(bytes, Some(p.valid_until)));
        }
        let keys = Keys {
            current: Key::new(s.jwt_key_bytes()?, None),
            previous,
            algorithms,
            issuer: s.auth.issuer.clone(),
            audience: s.auth.audience.clone(),
            leeway_secs: s.auth.leeway_secs,
            user_id_claim: s.auth.user_id_claim.clone(),
            id_kind: IdKind::Int,
        };
        keys.self_test()?;
        Ok(keys)
    }

    /// jsonwebtoken panics at the first use when its crypto backend is misconfigured; find
    /// out at startup instead of at the first login.
    fn self_test(&self) -> Result<(), ConfigError> {
        let now = Utc::now().timestamp();
        let mut claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone().map(Value::String),
            ..Claims::for_user(0, now, now + 60)
        };
        if self.user_id_claim != "sub" {
            claims
                .extra
                .insert(self.user_id_claim.clone(), Value::from(0));
        }
        let token = self.sign(&claims).map_err(|e| {
            ConfigError::new("auth.algorithms", format!("cannot sign a test token: {e}"))
        })?;
        self.verify(&token, now).map_err(|code| {
            ConfigError::new(
                "auth.algorithms",
                format!("cannot verify a test token: {code}"),
            )
        })?;
        Ok(())
    }

    /// Sign with the current key and the first configured algorithm.
    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        let header = Header::new(self.algorithms[0]);
        jsonwebtoken::encode(
            &header,
            claims,
            &EncodingKey::from_secret(&self.current.bytes),
        )
    }

    /// The `alg` named by the token's header, read without trusting it (so `none` and unknown
    /// names are reported as "not allowed" rather than "malformed").
    pub fn header_alg(token: &str) -> Result<String, ErrorCode> {
        unverified_header(token)
            .ok()
            .and_then(|h| h.get("alg").and_then(Value::as_str).map(str::to_string))
            .ok_or(ErrorCode::TokenMalformed)
    }

    /// Verify shape, algorithm, signature (current key, then previous keys still within their
    /// `valid_until`), then `exp`/`nbf` with leeway, `iss`/`aud` when configured, and `sub`.
    pub fn verify(&self, token: &str, now: i64) -> Result<Verified, ErrorCode> {
        if token.len() > MAX_TOKEN_BYTES || token.split('.').count() != 3 {
            return Err(ErrorCode::TokenMalformed);
        }
        let alg_name = Self::header_alg(token)?;
        // RFC 7515 §4.1.11: a `crit` extension the recipient does not implement MUST be
        // rejected, and this server implements none.
        if unverified_header(token).is_ok_and(|h| h.get("crit").is_some()) {
            return Err(ErrorCode::TokenMalformed);
        }
        let alg = alg_name
            .parse::<Algorithm>()
            .ok()
            .filter(|a| self.algorithms.contains(a))
            .ok_or(ErrorCode::TokenAlgorithmNotAllowed)?;
        let validation = self.validation(alg);

        let mut result = self.decode_with(token, &self.current, &validation);
        let mut used = KeyUsed::Current;
        if matches!(result, Err(ErrorCode::TokenInvalidSignature)) {
            let now = ts(now);
            for (i, key) in self.previous.iter().enumerate() {
                if key.valid_until.is_some_and(|until| until < now) {
                    continue;
                }
                let r = self.decode_with(token, key, &validation);
                if !matches!(r, Err(ErrorCode::TokenInvalidSignature)) {
                    result = r;
                    used = KeyUsed::Previous(i);
                    break;
                }
            }
        }
        let claims = result?;
        // An `iat` in the future is a clock ahead of ours (the issuer's): like `nbf`.
        if claims
            .iat
            .is_some_and(|iat| iat > now + self.leeway_secs as i64)
        {
            return Err(ErrorCode::TokenNotYetValid);
        }
        let user_id = claims
            .user_id(&self.user_id_claim, self.id_kind)
            .ok_or(ErrorCode::TokenClaimsInvalid)?;
        Ok(Verified {
            claims,
            user_id,
            key: used,
        })
    }

    pub fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.algorithms = vec![alg];
        v.leeway = self.leeway_secs;
        v.validate_exp = true;
        v.validate_nbf = true;
        // `sub` is checked by `Claims::user_id` (jsonwebtoken would insist it be a string).
        v.required_spec_claims = HashSet::from(["exp".to_string()]);
        match &self.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
        }
        v
    }

    /// Decode with one key; every failure becomes the contract's code.
    pub fn decode_with(
        &self,
        token: &str,
        key: &Key,
        validation: &Validation,
    ) -> Result<Claims, ErrorCode> {
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&key.bytes), validation)
            .map(|d| d.claims)
            .map_err(|e| match code_for(e.kind()) {
                // jsonwebtoken reads `sub` as a string and fails the whole JSON on an object or
                // an array, after the signature held: the subject is invalid, not the token.
                ErrorCode::TokenMalformed if sub_is_not_a_value(token) => {
                    ErrorCode::TokenClaimsInvalid
                }
                code => code,
            })
    }
}

/// Whether the (well-formed) claims carry a `sub` that is an object or an array.
fn sub_is_not_a_value(token: &str) -> bool {
    matches!(
        unverified_claims(token),
        Some(Ok(c)) if c.get("sub").is_some_and(|s| s.is_object() || s.is_array())
    )
}

pub fn code_for(kind: &ErrorKind) -> ErrorCode {
    match kind {
        ErrorKind::InvalidSignature => ErrorCode::TokenInvalidSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            ErrorCode::TokenAlgorithmNotAllowed
        }
        ErrorKind::ExpiredSignature => ErrorCode::TokenExpired,
        ErrorKind::ImmatureSignature => ErrorCode::TokenNotYetValid,
        ErrorKind::InvalidIssuer
        | ErrorKind::InvalidAudience
        | ErrorKind::InvalidSubject
        | ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_) => ErrorCode::TokenClaimsInvalid,
        _ => ErrorCode::TokenMalformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn keys() -> Keys {
        let mut s = Settings::default();
        s.auth.jwt_secret = Some(Secret::new("a-test-secret-that-is-long-enough-123"));
        Keys::from_settings(&s).unwrap()
    }

    fn claims(exp_in: i64) -> Claims {
        let now = Utc::now().timestamp();
        Claims::for_user(7, now, now + exp_in)
    }

    #[test]
    fn round_trip_and_codes() {
        let k = keys();
        let now = Utc::now().timestamp();
        let t = k.sign(&claims(60)).unwrap();
        assert_eq!(k.verify(&t, now).unwrap().user_id, UserId::Int(7));
        let expired = k.sign(&claims(-3600)).unwrap();
        assert_eq!(
            k.verify(&expired, now).unwrap_err(),
            ErrorCode::TokenExpired
        );
        assert_eq!(
            k.verify("a.b.c", now).unwrap_err(),
            ErrorCode::TokenMalformed
        );
        // alg: none
        let none = format!(
            "{}.{}.",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(r#"{"sub":"1","exp":9999999999}"#)
        );
        assert_eq!(
            k.verify(&none, now).unwrap_err(),
            ErrorCode::TokenAlgorithmNotAllowed
        );
    }

    /// A token signed with the test key, with any header and claims.
    fn signed(header: Value, claims: Value) -> String {
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let input = format!("{}.{}", b64(&header), b64(&claims));
        let key = jsonwebtoken::EncodingKey::from_secret(b"a-test-secret-that-is-long-enough-123");
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).unwrap();
        format!("{input}.{sig}")
    }

    #[test]
    fn crit_future_iat_and_a_structured_sub_get_their_own_codes() {
        let k = keys();
        let now = Utc::now().timestamp();
        let hs = serde_json::json!({"alg": "HS256", "typ": "JWT"});
        let ok = signed(hs.clone(), serde_json::json!({"sub": "7", "exp": now + 60}));
        assert_eq!(
            k.verify(&ok, now).unwrap().user_id,
            UserId::Int(7),
            "the helper signs validly"
        );
        let crit = signed(
            serde_json::json!({"alg": "HS256", "crit": ["exp-ext"], "exp-ext": 1}),
            serde_json::json!({"sub": "7", "exp": now + 60}),
        );
        assert_eq!(k.verify(&crit, now).unwrap_err(), ErrorCode::TokenMalformed);
        let ahead = signed(
            hs.clone(),
            serde_json::json!({"sub": "7", "iat": now + 3600, "exp": now + 7200}),
        );
        assert_eq!(
            k.verify(&ahead, now).unwrap_err(),
            ErrorCode::TokenNotYetValid
        );
        let within = signed(
            hs.clone(),
            serde_json::json!({"sub": "7", "iat": now + 10, "exp": now + 60}),
        );
        assert!(k.verify(&within, now).is_ok(), "within the leeway");
        for sub in [serde_json::json!({"id": 7}), serde_json::json!([7])] {
            let t = signed(hs.clone(), serde_json::json!({"sub": sub, "exp": now + 60}));
            assert_eq!(
                k.verify(&t, now).unwrap_err(),
                ErrorCode::TokenClaimsInvalid
            );
        }
    }

    #[test]
    fn numeric_sub_is_accepted() {
        let k = keys();
        let mut c = claims(60);
        c.sub = serde_json::json!(42);
        let t = k.sign(&c).unwrap();
        assert_eq!(
            k.verify(&t, Utc::now().timestamp()).unwrap().user_id,
            UserId::Int(42)
        );
    }
}
