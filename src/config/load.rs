//! Reading the layers: built-in defaults → TOML file → `.env` in the working dir →
//! `IM_<SECTION>__<KEY>` environment → the common aliases. `.env` is its own provider (never
//! copied into the process environment), so every value's source can be named
//! ([`Settings::provenance`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile as FigmentProfile, Provider};

use super::{ConfigError, Settings};

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
        // A URL's password is a secret too (`mysql://im:secret@db/im`).
        serde_json::Value::String(s) => {
            out.insert(prefix.to_string(), super::redact_url(s).into());
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
