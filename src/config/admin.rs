//! `[admin]`: who may log in to the Socket.IO Admin UI (contract §13), and whether it may act.

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

/// Both `username` and `password_hash` set = the `/admin` namespace and the `/admin/` page
/// exist; neither = they do not; one without the other is refused at startup.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdminSettings {
    pub username: Option<String>,
    /// argon2id (`$argon2id$…`, made by `im-server admin hash-password`) or bcrypt (`$2b$…`,
    /// as the Node `@socket.io/admin-ui` setups already have).
    pub password_hash: Option<Secret>,
    /// `true` (default): the UI only looks; `false`: it may disconnect `/im` sockets.
    #[serde(default = "default_readonly")]
    pub readonly: bool,
}

fn default_readonly() -> bool {
    true
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            username: None,
            password_hash: None,
            readonly: true,
        }
    }
}

impl AdminSettings {
    /// The credentials, when the Admin UI is switched on.
    pub fn credentials(&self) -> Option<(&str, &Secret)> {
        match (&self.username, &self.password_hash) {
            (Some(u), Some(h)) => Some((u.as_str(), h)),
            _ => None,
        }
    }

    pub fn enabled(&self) -> bool {
        self.credentials().is_some()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        match (&self.username, &self.password_hash) {
            (None, None) => Ok(()),
            (Some(u), _) if u.trim().is_empty() => Err(ConfigError::new(
                "admin.username",
                "must not be empty (leave [admin] out to switch the Admin UI off)",
            )),
            (Some(_), None) => Err(ConfigError::new(
                "admin.password_hash",
                "admin.username is set but admin.password_hash is not; make one with \
                 `im-server admin hash-password`",
            )),
            (None, Some(_)) => Err(ConfigError::new(
                "admin.username",
                "admin.password_hash is set but admin.username is not",
            )),
            (Some(_), Some(hash)) => HashKind::parse(hash.expose()).map(|_| ()).map_err(|why| {
                ConfigError::new(
                    "admin.password_hash",
                    format!(
                        "{why} (value {}); make one with `im-server admin hash-password`",
                        hash.fingerprint()
                    ),
                )
            }),
        }
    }
}

/// The password hash formats `[admin] password_hash` may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashKind {
    Argon2id,
    Bcrypt,
}

impl HashKind {
    /// Which format `hash` is in, or why it is neither.
    pub fn parse(hash: &str) -> Result<HashKind, &'static str> {
        if hash.starts_with("$2") {
            return hash
                .parse::<bcrypt::HashParts>()
                .map(|_| HashKind::Bcrypt)
                .map_err(|_| "not a valid bcrypt hash");
        }
        match argon2::password_hash::phc::PasswordHash::new(hash) {
            Ok(h) if h.algorithm.as_str() == "argon2id" => Ok(HashKind::Argon2id),
            Ok(_) => Err("an argon2 hash must be argon2id"),
            Err(_) => Err("neither an argon2id PHC string ($argon2id$…) nor a bcrypt hash ($2b$…)"),
        }
    }
}
