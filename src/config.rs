//! Settings: the only reader of configuration (contract §2).
//!
//! Layers, later wins: built-in defaults → TOML file → `.env` in the working dir →
//! `IM_<SECTION>__<KEY>` environment → the common aliases (`PORT`, `JWT_SECRET`, …).
//! `.env` is read as its own provider (never copied into the process environment) so that
//! `im-server config` can say where every value came from. [`Settings::validate`] turns every
//! inconsistency into one line naming the key.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile as FigmentProfile, Provider};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Development,
    Production,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretEncoding {
    Utf8,
    Base64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// NestJS-gateway compatible: `connect`, then `error {code,message}`, then server disconnect.
    Legacy,
    /// The connect middleware rejects: `connect_error` whose message is the code.
    Strict,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginPolicy {
    Multi,
    KickPrevious,
    RejectNew,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenSource {
    Auth,
    Header,
    Query,
    Cookie,
}

impl TokenSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::Auth => "auth",
            TokenSource::Header => "header",
            TokenSource::Query => "query",
            TokenSource::Cookie => "cookie",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `server.trust_proxy`: `false`, `true` (any peer), or a list of CIDRs of trusted proxies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum TrustProxy {
    All(bool),
    Cidrs(Vec<String>),
}

impl<'de> Deserialize<'de> for TrustProxy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            List(Vec<String>),
            Str(String),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Bool(b) => TrustProxy::All(b),
            Raw::List(l) => TrustProxy::Cidrs(l),
            Raw::Str(s) => match s.trim() {
                "true" | "1" | "yes" => TrustProxy::All(true),
                "false" | "0" | "no" | "" => TrustProxy::All(false),
                list => TrustProxy::Cidrs(split_list(list)),
            },
        })
    }
}

impl TrustProxy {
    pub fn enabled(&self) -> bool {
        !matches!(self, TrustProxy::All(false))
    }
    /// Whether a direct peer at `ip` is a proxy whose forwarding headers we believe.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        match self {
            TrustProxy::All(b) => *b,
            TrustProxy::Cidrs(list) => list
                .iter()
                .filter_map(|c| parse_cidr(c))
                .any(|net| net.contains(&ip)),
        }
    }
}

fn parse_cidr(s: &str) -> Option<ipnet::IpNet> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
}

/// A list written as TOML array, or as one comma-separated string (as env vars are).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawList {
    List(Vec<String>),
    Str(String),
}

impl RawList {
    fn into_vec(self) -> Vec<String> {
        match self {
            RawList::List(l) => l,
            RawList::Str(s) => split_list(&s),
        }
    }
}

fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    RawList::deserialize(d).map(RawList::into_vec)
}

fn opt_string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(Option::<RawList>::deserialize(d)?.map(RawList::into_vec))
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub auth: AuthSettings,
    pub cors: CorsSettings,
    pub socketio: SocketIoSettings,
    pub log: LogSettings,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// `development` | `production` (validated, so a typo fails fast instead of running as dev).
    pub profile: String,
    pub trust_proxy: TrustProxy,
    pub api_key: Option<Secret>,
    /// Name of this node in `/health` and cluster views; defaults to `<hostname>:<port>`.
    pub node_id: Option<String>,
    /// Upper bound for the graceful drain after SIGTERM (keep below PM2 `kill_timeout`).
    pub shutdown_timeout_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RedisSettings {
    pub url: Option<String>,
    /// A node that stops renewing its presence lease for this long is considered dead: its
    /// sockets drop out of presence, `/auth/online` and `/health` `nodes`.
    pub lease_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub secret: Secret,
    #[serde(default = "default_encoding")]
    pub encoding: SecretEncoding,
    pub valid_until: DateTime<Utc>,
}

fn default_encoding() -> SecretEncoding {
    SecretEncoding::Utf8
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthSettings {
    pub jwt_secret: Option<Secret>,
    pub jwt_secret_encoding: SecretEncoding,
    pub previous_secrets: Vec<PreviousSecret>,
    #[serde(deserialize_with = "string_list")]
    pub algorithms: Vec<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway_secs: u64,
    pub token_ttl_secs: u64,
    pub token_sources: Vec<TokenSource>,
    #[serde(deserialize_with = "string_list")]
    pub query_params: Vec<String>,
    pub cookie_name: String,
    pub require_db_record: bool,
    pub failure_mode: FailureMode,
    pub login_policy: LoginPolicy,
    pub expiry_warning_secs: u64,
    /// How long a verified token's row and user may be reused without asking the database.
    /// Revocations made through the server (logout, kick_previous) take effect at once on
    /// every node; only edits made directly in the database wait this long. 0 disables.
    pub cache_ttl_secs: u64,
    /// Failed logins allowed per username and per client address before `RATE_LIMITED`.
    pub login_max_failures: u32,
    /// The window in which those failures are counted (one failure is forgiven per
    /// `window / max_failures`).
    pub login_failure_window_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CorsSettings {
    /// `None`: the profile's default (development: any origin; production: none).
    #[serde(default, deserialize_with = "opt_string_list")]
    pub origins: Option<Vec<String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SocketIoSettings {
    pub ping_interval_ms: u64,
    pub ping_timeout_ms: u64,
    pub max_payload_bytes: u64,
    pub connect_timeout_ms: u64,
    /// Bytes a socket may have queued once past 128 packets; beyond: SLOW_CONSUMER disconnect.
    pub max_queue_bytes: u64,
    /// How long a socket's queue may stay past 128 packets before a SLOW_CONSUMER disconnect.
    pub slow_consumer_timeout_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogSettings {
    /// An `EnvFilter` directive; `RUST_LOG` overrides it.
    pub level: String,
    pub format: LogFormat,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server: ServerSettings {
                host: "0.0.0.0".into(),
                port: 3000,
                profile: "development".into(),
                trust_proxy: TrustProxy::All(false),
                api_key: None,
                node_id: None,
                shutdown_timeout_secs: 10,
            },
            database: DatabaseSettings {
                url: "sqlite://im.db?mode=rwc".into(),
                max_connections: 16,
            },
            redis: RedisSettings {
                url: None,
                lease_secs: 15,
            },
            auth: AuthSettings {
                jwt_secret: None,
                jwt_secret_encoding: SecretEncoding::Utf8,
                previous_secrets: vec![],
                algorithms: vec!["HS256".into()],
                issuer: None,
                audience: None,
                leeway_secs: 30,
                token_ttl_secs: 86_400,
                token_sources: vec![
                    TokenSource::Auth,
                    TokenSource::Header,
                    TokenSource::Query,
                    TokenSource::Cookie,
                ],
                query_params: vec!["token".into(), "jwt_token".into()],
                cookie_name: "token".into(),
                require_db_record: true,
                failure_mode: FailureMode::Legacy,
                login_policy: LoginPolicy::Multi,
                expiry_warning_secs: 60,
                cache_ttl_secs: 10,
                login_max_failures: 5,
                login_failure_window_secs: 300,
            },
            cors: CorsSettings { origins: None },
            socketio: SocketIoSettings {
                ping_interval_ms: 25_000,
                ping_timeout_ms: 20_000,
                max_payload_bytes: 1_000_000,
                connect_timeout_ms: 45_000,
                max_queue_bytes: 4 << 20,
                slow_consumer_timeout_ms: 10_000,
            },
            log: LogSettings {
                // PostgreSQL NOTICEs ("relation … already exists, skipping") are not news.
                level: "info,sqlx::postgres::notice=warn".into(),
                format: LogFormat::Text,
            },
        }
    }
}

/// Secret used in development when none is configured: stable across restarts so tokens
/// survive `cargo run`, and loudly reported as such. Production refuses to start without one.
pub const DEVELOPMENT_SECRET: &str = "im-server-development-secret-do-not-use-in-production";

/// Where configuration is read from. [`ConfigSources::from_process`] is what the binary uses;
/// tests build one by hand so they never touch the process environment.
#[derive(Clone, Debug, Default)]
pub struct ConfigSources {
    /// `--config PATH` / `IM_CONFIG`; otherwise `im-server.toml` in `dir` if it exists.
    pub config_path: Option<PathBuf>,
    /// The working directory holding `im-server.toml` and `.env`.
    pub dir: PathBuf,
    pub env: Vec<(String, String)>,
}

impl ConfigSources {
    pub fn from_process(config_path: Option<PathBuf>) -> Self {
        ConfigSources {
            config_path,
            dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            env: std::env::vars().collect(),
        }
    }
}

/// A configuration problem: one line, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Environment aliases teams already use, and the key each one sets.
const ALIASES: &[(&str, &str)] = &[
    ("PORT", "server.port"),
    ("HOST", "server.host"),
    ("DATABASE_URL", "database.url"),
    ("REDIS_URL", "redis.url"),
    ("JWT_SECRET", "auth.jwt_secret"),
    ("FRONTEND_URL", "cors.origins"),
    ("NODE_ENV", "server.profile"),
    ("IM_PROFILE", "server.profile"),
];

/// Variables in the `IM_` namespace that are not `IM_<SECTION>__<KEY>` settings.
const NOT_SETTINGS: &[&str] = &["IM_CONFIG", "IM_PROFILE"];

/// A figment provider over `KEY=value` pairs (process env or `.env`), either the `IM_` keys or
/// the aliases, so each layer has its own name in provenance.
struct KvProvider {
    name: &'static str,
    pairs: Vec<(String, String)>,
    aliases: bool,
}

impl KvProvider {
    fn entries(&self) -> Vec<(String, String)> {
        let mut out = vec![];
        if self.aliases {
            for (alias, key) in ALIASES {
                if let Some((_, v)) = self.pairs.iter().rev().find(|(k, _)| k == alias) {
                    out.push((key.to_string(), v.clone()));
                }
            }
        } else {
            for (k, v) in &self.pairs {
                let Some(rest) = k.strip_prefix("IM_") else {
                    continue;
                };
                if NOT_SETTINGS.contains(&k.as_str()) || !rest.contains("__") {
                    continue;
                }
                out.push((rest.to_ascii_lowercase().replace("__", "."), v.clone()));
            }
        }
        out
    }
}

impl Provider for KvProvider {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name)
    }

    fn data(&self) -> figment::Result<Map<FigmentProfile, Dict>> {
        let mut dict = Dict::new();
        for (key, raw) in self.entries() {
            let value = if key == "server.profile" {
                // NODE_ENV=production must stay a string, never parse as something else.
                Value::from(raw.trim().to_ascii_lowercase())
            } else {
                raw.parse::<Value>()
                    .expect("figment's Value parser is infallible")
            };
            if let Value::Dict(_, nested) = figment::util::nest(&key, value) {
                dict = merge_dicts(dict, nested);
            }
        }
        Ok(FigmentProfile::Default.collect(dict))
    }
}

fn merge_dicts(mut base: Dict, add: Dict) -> Dict {
    for (k, v) in add {
        let merged = match (base.remove(&k), v) {
            (Some(Value::Dict(_, a)), Value::Dict(tag, b)) => Value::Dict(tag, merge_dicts(a, b)),
            (_, v) => v,
        };
        base.insert(k, merged);
    }
    base
}

/// The loaded settings plus the figment they came from (for provenance).
pub struct Loaded {
    pub settings: Settings,
    pub figment: Figment,
    /// Keys present in the TOML file that no setting reads: reported as warnings.
    pub unknown_keys: Vec<String>,
    pub config_file: Option<PathBuf>,
}

impl Settings {
    /// Read all layers; does not validate (see [`Settings::validate`]).
    pub fn load(sources: &ConfigSources) -> Result<Loaded, ConfigError> {
        let env_config = sources
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "IM_CONFIG")
            .map(|(_, v)| PathBuf::from(v));
        let explicit = sources.config_path.clone().or(env_config);
        let config_file = match explicit {
            Some(p) => {
                let p = if p.is_relative() {
                    sources.dir.join(p)
                } else {
                    p
                };
                if !p.exists() {
                    return Err(ConfigError::new(
                        "config",
                        format!("config file {} does not exist", p.display()),
                    ));
                }
                Some(p)
            }
            None => Some(sources.dir.join("im-server.toml")).filter(|p| p.exists()),
        };

        let dotenv_pairs = read_dotenv(&sources.dir.join(".env"))?;
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        let mut unknown_keys = vec![];
        if let Some(path) = &config_file {
            unknown_keys = unknown_toml_keys(path)?;
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment
            .merge(KvProvider {
                name: ".env file",
                pairs: dotenv_pairs.clone(),
                aliases: false,
            })
            .merge(KvProvider {
                name: ".env file (alias)",
                pairs: dotenv_pairs,
                aliases: true,
            })
            .merge(KvProvider {
                name: "environment (IM_*)",
                pairs: sources.env.clone(),
                aliases: false,
            })
            .merge(KvProvider {
                name: "environment (alias)",
                pairs: sources.env.clone(),
                aliases: true,
            });

        let settings: Settings = figment.extract().map_err(figment_error)?;
        Ok(Loaded {
            settings,
            figment,
            unknown_keys,
            config_file,
        })
    }

    pub fn profile(&self) -> Profile {
        match self.server.profile.as_str() {
            "production" => Profile::Production,
            _ => Profile::Development,
        }
    }

    pub fn is_production(&self) -> bool {
        self.profile() == Profile::Production
    }

    /// Fail fast on anything that would make the server misbehave later. Checks that need the
    /// network (database, Redis) happen in `startup`, with the same one-line format.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.server.profile.as_str() {
            "development" | "production" => {}
            other => {
                return Err(ConfigError::new(
                    "server.profile",
                    format!(
                        "unknown profile {other:?}; use \"development\" or \"production\" \
                         (set by server.profile, NODE_ENV or IM_PROFILE)"
                    ),
                ));
            }
        }
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
        if self.auth.algorithms.is_empty() {
            return Err(ConfigError::new(
                "auth.algorithms",
                "at least one algorithm is needed, e.g. [\"HS256\"]",
            ));
        }
        for alg in &self.auth.algorithms {
            if !SUPPORTED_ALGORITHMS.contains(&alg.as_str()) {
                return Err(ConfigError::new(
                    "auth.algorithms",
                    format!(
                        "unknown or unsupported algorithm {alg:?}; with a shared secret use \
                         one of {}",
                        SUPPORTED_ALGORITHMS.join(", ")
                    ),
                ));
            }
        }
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
        if sio.max_queue_bytes < 65_536 || sio.slow_consumer_timeout_ms == 0 {
            let (key, why) = if sio.slow_consumer_timeout_ms == 0 {
                ("socketio.slow_consumer_timeout_ms", "must be above 0")
            } else {
                (
                    "socketio.max_queue_bytes",
                    "must be at least 65536 (one large message)",
                )
            };
            return Err(ConfigError::new(key, why));
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

    /// Allowed origins for HTTP CORS and the Socket.IO `Origin` check. `None` = any origin.
    pub fn allowed_origins(&self) -> Option<Vec<String>> {
        match &self.cors.origins {
            Some(list) if list.iter().any(|o| o == "*") => None,
            Some(list) => Some(
                list.iter()
                    .map(|o| o.trim_end_matches('/').to_string())
                    .collect(),
            ),
            None if self.is_production() => Some(vec![]),
            None => None,
        }
    }

    /// Every leaf key with its effective value (secrets redacted) and the layer it came from.
    pub fn provenance(loaded: &Loaded) -> Vec<(String, serde_json::Value, String)> {
        let json = serde_json::to_value(&loaded.settings).unwrap_or_default();
        let mut leaves = BTreeMap::new();
        flatten("", &json, &mut leaves);
        // The first provider is `Serialized::defaults`, named after the type: call it "default".
        let defaults = loaded.figment.metadata().next().map(|m| m.name.clone());
        leaves
            .into_iter()
            .map(|(key, value)| {
                let source = match loaded.figment.find_metadata(&key) {
                    Some(m) if Some(&m.name) == defaults.as_ref() => "default".to_string(),
                    Some(m) => match &m.source {
                        Some(src) => format!("{} ({src})", m.name),
                        None => m.name.to_string(),
                    },
                    None => "default".to_string(),
                };
                (key, value, source)
            })
            .collect()
    }
}

pub const SUPPORTED_ALGORITHMS: &[&str] = &["HS256", "HS384", "HS512"];

fn decode_secret(key: &str, s: &Secret, enc: SecretEncoding) -> Result<Vec<u8>, ConfigError> {
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

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, serde_json::Value>) {
    match v {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

fn read_dotenv(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    if !path.exists() {
        return Ok(vec![]);
    }
    let iter = dotenvy::from_path_iter(path)
        .map_err(|e| ConfigError::new(".env", format!("cannot read {}: {e}", path.display())))?;
    iter.map(|item| item.map_err(|e| ConfigError::new(".env", format!("{}: {e}", path.display()))))
        .collect()
}

/// Keys of the TOML file that [`Settings`] does not know (typos like `[auth] jwt_secert`).
fn unknown_toml_keys(path: &Path) -> Result<Vec<String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new("config", format!("cannot read {}: {e}", path.display())))?;
    let file: toml::Value = toml::from_str(&text)
        .map_err(|e| ConfigError::new("config", format!("{}: {e}", path.display())))?;
    let known = serde_json::to_value(Settings::default()).unwrap_or_default();
    let mut unknown = vec![];
    if let toml::Value::Table(sections) = file {
        for (section, v) in sections {
            let Some(known_section) = known.get(&section) else {
                unknown.push(section);
                continue;
            };
            if let toml::Value::Table(keys) = v {
                for key in keys.keys() {
                    if known_section.get(key).is_none() {
                        unknown.push(format!("{section}.{key}"));
                    }
                }
            }
        }
    }
    Ok(unknown)
}

fn figment_error(e: figment::Error) -> ConfigError {
    let key = if e.path.is_empty() {
        "config".to_string()
    } else {
        e.path.join(".")
    };
    let from = e
        .metadata
        .as_ref()
        .map(|m| format!(" (from {})", m.name))
        .unwrap_or_default();
    ConfigError::new(key, format!("{}{from}", e.kind))
}
