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
