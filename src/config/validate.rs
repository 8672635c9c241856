//! [`Settings::validate`]: every inconsistency becomes one line naming the key, before
//! anything starts. Checks that need the network (database, Redis) happen in `startup`, in
//! the same format.

use super::secret::decode_secret;
use super::{
    AuthSettings, ConfigError, DEVELOPMENT_SECRET, Profile, Settings, TrustProxy, parse_cidr,
};

/// The algorithms a shared secret can sign with.
pub const SUPPORTED_ALGORITHMS: &[&str] = &["HS256", "HS384", "HS512"];

impl Profile {
    /// The one reading of `server.profile` (also set by `NODE_ENV` / `IM_PROFILE`). Loading
    /// keeps the raw text so an unknown name is reported here, in the one-line format.
    pub fn parse(name: &str) -> Result<Profile, ConfigError> {
        match name {
            "development" => Ok(Profile::Development),
            "production" => Ok(Profile::Production),
            other => Err(ConfigError::new(
                "server.profile",
                format!(
                    "unknown profile {other:?}; use \"development\" or \"production\" \
                     (set by server.profile, NODE_ENV or IM_PROFILE)"
                ),
            )),
        }
    }
}

impl AuthSettings {
    /// The one reading of `auth.algorithms`: the closed list a token may be verified with.
    pub fn parsed_algorithms(&self) -> Result<Vec<jsonwebtoken::Algorithm>, ConfigError> {
        if self.algorithms.is_empty() {
            return Err(ConfigError::new(
                "auth.algorithms",
                "at least one algorithm is needed, e.g. [\"HS256\"]",
            ));
        }
        self.algorithms
            .iter()
            .map(|alg| {
                SUPPORTED_ALGORITHMS
                    .contains(&alg.as_str())
                    .then(|| alg.parse().ok())
                    .flatten()
                    .ok_or_else(|| {
                        ConfigError::new(
                            "auth.algorithms",
                            format!(
                                "unknown or unsupported algorithm {alg:?}; with a shared secret \
                                 use one of {}",
                                SUPPORTED_ALGORITHMS.join(", ")
                            ),
                        )
                    })
            })
            .collect()
    }
}

impl Settings {
    /// Fail fast on anything that would make the server misbehave later. Checks that need the
    /// network (database, Redis) happen in `startup`, with the same one-line format.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Profile::parse(&self.server.profile)?;
        if self.is_production() {
            match &self.auth.jwt_secret {
                None => {
                    return Err(ConfigError::new(
                        "auth.jwt_secret",
                        "the production profile needs a JWT secret; set JWT_SECRET or \
                         IM_AUTH__JWT_SECRET (at least 32 bytes)",
                    ));
                }
                Some(_) if self.jwt_key_bytes()?.len() < 32 => {
                    return Err(ConfigError::new(
                        "auth.jwt_secret",
                        "the production profile needs a JWT secret of at least 32 bytes",
                    ));
                }
                Some(_) => {}
            }
        }
        self.jwt_key_bytes()?;
        for (i, prev) in self.auth.previous_secrets.iter().enumerate() {
            decode_secret(
                &format!("auth.previous_secrets[{i}].secret"),
                &prev.secret,
                prev.encoding,
            )?;
        }
        self.auth.parsed_algorithms()?;
        if self.auth.token_sources.is_empty() {
            return Err(ConfigError::new(
                "auth.token_sources",
                "at least one token source is needed (auth, header, query, cookie)",
            ));
        }
        if self.auth.token_ttl_secs == 0 {
            return Err(ConfigError::new("auth.token_ttl_secs", "must be above 0"));
        }
        if self.auth.login_max_failures == 0 || self.auth.login_failure_window_secs == 0 {
            return Err(ConfigError::new(
                "auth.login_max_failures",
                "login_max_failures and login_failure_window_secs must be above 0",
            ));
        }
        if let TrustProxy::Cidrs(list) = &self.server.trust_proxy {
            for c in list {
                if parse_cidr(c).is_none() {
                    return Err(ConfigError::new(
                        "server.trust_proxy",
                        format!("{c:?} is not an IP address or CIDR (e.g. 10.0.0.0/8)"),
                    ));
                }
            }
        }
        if let Some(url) = &self.redis.url {
            redis::Client::open(url.as_str()).map_err(|e| {
                ConfigError::new("redis.url", format!("not a valid Redis URL: {e}"))
            })?;
        }
        if self.redis.lease_secs < 2 {
            return Err(ConfigError::new(
                "redis.lease_secs",
                "must be at least 2 seconds",
            ));
        }
        if self.socketio.ping_interval_ms == 0 || self.socketio.ping_timeout_ms == 0 {
            return Err(ConfigError::new(
                "socketio.ping_interval_ms",
                "ping interval and timeout must be above 0",
            ));
        }
        let sio = &self.socketio;
        if sio.slow_consumer_timeout_ms == 0 {
            return Err(ConfigError::new(
                "socketio.slow_consumer_timeout_ms",
                "must be above 0",
            ));
        }
        if sio.max_queue_bytes < 65_536 {
            return Err(ConfigError::new(
                "socketio.max_queue_bytes",
                "must be at least 65536 (one large message)",
            ));
        }
        self.admin.validate()?;
        Ok(())
    }

    /// The bytes the server signs and verifies with (after base64 decoding if configured).
    pub fn jwt_key_bytes(&self) -> Result<Vec<u8>, ConfigError> {
        match &self.auth.jwt_secret {
            Some(s) => decode_secret("auth.jwt_secret", s, self.auth.jwt_secret_encoding),
            None => Ok(DEVELOPMENT_SECRET.as_bytes().to_vec()),
        }
    }

    pub fn uses_development_secret(&self) -> bool {
        self.auth.jwt_secret.is_none()
    }
}
