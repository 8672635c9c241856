//! Secrets in configuration: a newtype that never prints its value, fingerprints to compare
//! two services' keys without showing them, and the key bytes of a configured secret.

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ConfigError, SecretEncoding};

/// A secret value. `Debug`, `Display` and `Serialize` show only its fingerprint, so a secret
/// can never leak through a log line, an error or `im-server config`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The raw value: only for the code that signs, verifies or compares with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn fingerprint(&self) -> String {
        fingerprint(self.0.as_bytes())
    }
}

/// `sha256:` + the first 12 hex chars of SHA-256: enough to compare two services' keys,
/// useless for recovering them.
pub fn fingerprint(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    format!("sha256:{}", &hex::encode(digest)[..12])
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fingerprint())
    }
}
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fingerprint())
    }
}
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("<redacted {}>", self.fingerprint()))
    }
}

/// The key bytes of a secret: its text, or what its base64 decodes to.
pub fn decode_secret(key: &str, s: &Secret, enc: SecretEncoding) -> Result<Vec<u8>, ConfigError> {
    match enc {
        SecretEncoding::Utf8 => Ok(s.expose().as_bytes().to_vec()),
        SecretEncoding::Base64 => decode_base64(s.expose()).ok_or_else(|| {
            ConfigError::new(
                key,
                format!(
                    "the secret ({}) is not valid base64 although jwt_secret_encoding = \
                     \"base64\"; fix the value or set the encoding to utf8",
                    s.fingerprint()
                ),
            )
        }),
    }
}

/// Standard or URL-safe base64, padded or not: whichever form the other service exported.
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s).ok())
}

/// `scheme://user:***@host/db`: a URL with its userinfo password hidden, user and host kept —
/// THE form every URL is shown in (`im-server config`, logs, errors). Text that is not a URL
/// with a password comes back unchanged.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    // The authority ends at the first '/', '?' or '#'; its userinfo at the last '@' in it
    // (a password may itself contain '@' when not percent-encoded).
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    match authority[..at].split_once(':') {
        Some((user, _password)) => {
            format!("{}://{user}:***@{}", &url[..scheme_end], &rest[at + 1..])
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn only_the_password_of_a_url_is_hidden() {
        assert_eq!(
            redact_url("mysql://im:secret@db/im"),
            "mysql://im:***@db/im"
        );
        assert_eq!(
            redact_url("redis://:p@ss@127.0.0.1:6379/?protocol=resp3"),
            "redis://:***@127.0.0.1:6379/?protocol=resp3"
        );
        assert_eq!(redact_url("postgres://im@db/im"), "postgres://im@db/im");
        assert_eq!(
            redact_url("sqlite://im.db?mode=rwc&x=a@b"),
            "sqlite://im.db?mode=rwc&x=a@b"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
