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
        if self.database.timeout_secs == 0 {
            return Err(ConfigError::new("database.timeout_secs", "must be above 0"));
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
        self.validate_external()?;
        if self.auth.user_id_claim.trim().is_empty() {
            return Err(ConfigError::new(
                "auth.user_id_claim",
                "must name the claim holding the user id, e.g. \"sub\" or \"userId\"",
            ));
        }
        self.validate_bridge()?;
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

    /// `[external]`: the URL's scheme and every mapped name, before anything connects (whether
    /// the tables and columns exist is checked against the live schema in `startup`).
    fn validate_external(&self) -> Result<(), ConfigError> {
        let x = &self.external;
        let Some(url) = &x.url else { return Ok(()) };
        let scheme = url.expose().split(':').next().unwrap_or("");
        if !["mysql", "mariadb", "postgres", "postgresql", "sqlite"].contains(&scheme) {
            return Err(ConfigError::new(
                "external.url",
                "must be a mysql://, postgres:// or sqlite:// URL",
            ));
        }
        if x.recheck_secs == 0 {
            return Err(ConfigError::new("external.recheck_secs", "must be above 0"));
        }
        if let Some(t) = &x.tokens {
            identifier("external.tokens.table", &t.table, true)?;
            identifier("external.tokens.token", &t.token, false)?;
            identifier("external.tokens.user_id", &t.user_id, false)?;
            optional_identifier("external.tokens.revoked", &t.revoked)?;
            optional_identifier("external.tokens.expires_at", &t.expires_at)?;
        }
        let u = &x.users;
        identifier("external.users.table", &u.table, true)?;
        identifier("external.users.id", &u.id, false)?;
        identifier("external.users.username", &u.username, false)?;
        optional_identifier("external.users.display_name", &u.display_name)?;
        optional_identifier("external.users.user_type", &u.user_type)?;
        optional_identifier("external.users.active", &u.active)?;
        Ok(())
    }

    fn validate_bridge(&self) -> Result<(), ConfigError> {
        let b = &self.bridge;
        let Some(url) = &b.url else { return Ok(()) };
        match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(ConfigError::new(
                    "bridge.url",
                    format!("{url:?} is not an http(s) URL, e.g. http://127.0.0.1:4000/im/bridge"),
                ));
            }
        }
        if self.is_production() && b.secret.as_ref().is_none_or(|s| s.expose().is_empty()) {
            return Err(ConfigError::new(
                "bridge.secret",
                "the production profile signs every bridge call; set bridge.secret \
                 (IM_BRIDGE__SECRET) to the key the app's backend verifies X-Im-Signature with",
            ));
        }
        if b.events.is_empty() {
            return Err(ConfigError::new(
                "bridge.events",
                "name at least one event: [\"*\"], names, or prefixes like \"chat:*\"",
            ));
        }
        for e in &b.events {
            let star = e.find('*');
            if e.is_empty() || star.is_some_and(|i| i != e.len() - 1) {
                return Err(ConfigError::new(
                    "bridge.events",
                    format!("{e:?}: use \"*\", an event name, or a prefix ending in \"*\""),
                ));
            }
        }
        if b.timeout_ms == 0 {
            return Err(ConfigError::new("bridge.timeout_ms", "must be above 0"));
        }
        if b.queue_per_socket == 0 {
            return Err(ConfigError::new(
                "bridge.queue_per_socket",
                "must be above 0",
            ));
        }
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

/// A table or column name of `[external]`: `[A-Za-z_][A-Za-z0-9_]*` (tables may be
/// `schema.table`), so it can be quoted for any backend and never carries SQL.
pub fn identifier(key: &str, name: &str, table: bool) -> Result<(), ConfigError> {
    let part_ok = |p: &str| {
        let mut c = p.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            && p.len() <= 64
    };
    let parts: Vec<&str> = name.split('.').collect();
    let ok = match parts.as_slice() {
        [one] => part_ok(one),
        [schema, t] if table => part_ok(schema) && part_ok(t),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!(
                "{name:?} is not an identifier: use letters, digits and _ (not starting with a \
                 digit){}",
                if table {
                    ", optionally schema.table"
                } else {
                    ""
                }
            ),
        ))
    }
}

fn optional_identifier(key: &str, name: &Option<String>) -> Result<(), ConfigError> {
    name.as_deref()
        .map_or(Ok(()), |n| identifier(key, n, false))
}
