//! Settings: the only reader of configuration (contract §2).
//!
//! This module holds the shape ([`Settings`] and its sections, with defaults); `load` reads
//! the layers (defaults → TOML → `.env` → `IM_*` environment → aliases) and names each value's
//! source; `validate` turns every inconsistency into one line naming the key; `secret`
//! keeps secrets out of every output.

pub mod admin;
mod limits;
mod load;
mod secret;
mod validate;

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

pub use limits::LimitsSettings;
pub use load::{ConfigSources, Loaded};
pub use secret::{Secret, decode_base64, decode_secret, fingerprint, redact_url};
pub use validate::SUPPORTED_ALGORITHMS;

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
    pub limits: LimitsSettings,
    pub log: LogSettings,
    /// `[admin]`: the Socket.IO Admin UI (contract §13); off unless credentials are set.
    pub admin: admin::AdminSettings,
    /// `[external]` (contract §9): the backend's own token and user tables.
    #[serde(default)]
    pub external: ExternalSettings,
    pub bridge: BridgeSettings,
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
    /// A request's headers must arrive within this (a slow-header client is cut off).
    pub header_read_timeout_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    /// The longest a request waits for the database — a pool connection, a connect, a SQLite
    /// file locked by another process — before it fails (`AUTH_UNAVAILABLE` for a handshake).
    pub timeout_secs: u64,
}

impl DatabaseSettings {
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout_secs)
    }
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
    /// The claim holding the user id (`sub`, `userId`, `id`, `uid`…): a string or an integer.
    pub user_id_claim: String,
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

/// `[bridge]` (contract §10): client events forwarded to the app's backend over signed HTTP.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BridgeSettings {
    /// Where every call is POSTed; unset = bridge off (unknown events get BAD_REQUEST).
    pub url: Option<String>,
    /// `"*"` (every event not built in), names, or prefixes like `"chat:*"`.
    #[serde(deserialize_with = "string_list")]
    pub events: Vec<String>,
    pub timeout_ms: u64,
    /// The HMAC-SHA256 key of `X-Im-Signature`; required with a url in production.
    pub secret: Option<Secret>,
    pub on_connect: bool,
    pub on_disconnect: bool,
    /// Events of one socket waiting for the backend at most; beyond, the ack is RATE_LIMITED.
    pub queue_per_socket: u32,
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
                header_read_timeout_secs: 10,
            },
            database: DatabaseSettings {
                url: "sqlite://im.db?mode=rwc".into(),
                max_connections: 16,
                timeout_secs: 5,
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
                user_id_claim: "sub".into(),
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
            limits: LimitsSettings::default(),
            log: LogSettings {
                // PostgreSQL NOTICEs ("relation … already exists, skipping") are not news.
                level: "info,sqlx::postgres::notice=warn".into(),
                format: LogFormat::Text,
            },
            admin: admin::AdminSettings::default(),
            external: ExternalSettings::default(),
            bridge: BridgeSettings {
                url: None,
                events: vec!["*".into()],
                timeout_ms: 5000,
                secret: None,
                on_connect: false,
                on_disconnect: false,
                queue_per_socket: 64,
            },
        }
    }
}

/// `[external]`: where a backend's tables live and how they map (contract §9). Unset `url` =
/// off: im-server's own tables issue and check tokens.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ExternalSettings {
    /// Holds a password: shown redacted by `im-server config`.
    pub url: Option<Secret>,
    /// How often each node re-reads its live sockets' rows and users.
    pub recheck_secs: u64,
    pub max_connections: u32,
    pub tokens: Option<ExternalTokens>,
    pub users: ExternalUsers,
}

impl Default for ExternalSettings {
    fn default() -> Self {
        ExternalSettings {
            url: None,
            recheck_secs: 30,
            max_connections: 8,
            tokens: None,
            users: ExternalUsers::default(),
        }
    }
}

impl ExternalSettings {
    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenFormat {
    /// The column holds the token as issued.
    Raw,
    /// The column holds the SHA-256 hex of the token.
    Sha256Hex,
}

/// `[external.tokens]`: the table where the backend records issued tokens.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ExternalTokens {
    pub table: String,
    pub token: String,
    pub token_format: TokenFormat,
    pub user_id: String,
    pub revoked: Option<String>,
    pub expires_at: Option<String>,
}

impl Default for ExternalTokens {
    fn default() -> Self {
        ExternalTokens {
            table: "user_tokens".into(),
            token: "token".into(),
            token_format: TokenFormat::Raw,
            user_id: "user_id".into(),
            revoked: None,
            expires_at: None,
        }
    }
}

/// `[external.users]`: the backend's users table.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ExternalUsers {
    pub table: String,
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub user_type: Option<String>,
    pub active: Option<String>,
}

impl Default for ExternalUsers {
    fn default() -> Self {
        ExternalUsers {
            table: "users".into(),
            id: "id".into(),
            username: "username".into(),
            display_name: None,
            user_type: None,
            active: None,
        }
    }
}

/// Secret used in development when none is configured: stable across restarts so tokens
/// survive `cargo run`, and loudly reported as such. Production refuses to start without one.
pub const DEVELOPMENT_SECRET: &str = "im-server-development-secret-do-not-use-in-production";

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

impl Settings {
    /// The profile; an unknown name (refused by `validate`) counts as development.
    pub fn profile(&self) -> Profile {
        Profile::parse(&self.server.profile).unwrap_or(Profile::Development)
    }

    pub fn is_production(&self) -> bool {
        self.profile() == Profile::Production
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
}
