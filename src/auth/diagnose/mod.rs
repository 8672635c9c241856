//! Token diagnosis (contract §6) for `im-server token inspect` and `POST /auth/tokens/inspect`.
//!
//! Gathers the handshake's own evidence — [`RawToken::parse`], [`Keys::verify`](super::jwt::Keys::verify),
//! the row and the user from the [`Authenticator`]'s store — and asks the same
//! [`decide`](super::decide::decide), so `verdict` is exactly the code a handshake carrying the
//! token in its `auth` payload gets (a test holds this for every code a token can produce).
//! Unlike the handshake it does not stop at the first failure: it reports every part,
//! and for a bad signature it tries the usual suspects for real (previous secrets, the base64
//! forms of this secret, other HMAC algorithms, transit damage) before blaming "another secret".
//!
//! Never in the output: the secret, a hash, or the whole token (its fingerprint and length only).
//! It never writes to the database and never counts as a handshake in `/metrics`.

mod claims;
mod explain;
mod signature;
mod text;
mod transit;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

pub use claims::{human_duration, relative};
pub use signature::{Cause, SignatureInfo, SignatureStatus};
pub use text::render_text;
pub use transit::repair;

use super::Authenticator;
use super::decide::{self, Evidence};
use super::jwt::{self, Keys, Verified};
use super::session::User;
use super::source::RawToken;
use super::store::{Lookup, TokenRecord};
use crate::clock::iso;
use crate::config::TokenSource;
use crate::error::ErrorCode;
use crate::ids::UserId;
use crate::presence::SocketInfo;

/// A closed set of words that a report shows as strings: one name per variant, used by the
/// JSON (serialised as that string) and the text rendering alike.
macro_rules! words {
    ($(#[$m:meta])* $name:ident { $($v:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name { $($v),+ }
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}
pub(crate) use words;

words! {
    /// What was done to a token on the way.
    FindingKind {
        Quotes => "quotes",
        UrlEncoded => "url_encoded",
        BearerTwice => "bearer_twice",
        Whitespace => "whitespace",
        Truncated => "truncated",
        Oversized => "oversized",
    }
}

words! {
    /// The token's row.
    DbStatus {
        Found => "found",
        NotFound => "not_found",
        Revoked => "revoked",
        Expired => "expired",
        NotChecked => "not_checked",
        Unavailable => "unavailable",
    }
}

words! {
    /// The token's user.
    UserStatus {
        Found => "found",
        NotFound => "not_found",
        Disabled => "disabled",
        NotChecked => "not_checked",
        Unavailable => "unavailable",
    }
}

/// The whole report. Field names are the contract's (§6); the rest is additive.
#[derive(Clone, Debug, Serialize)]
pub struct Diagnosis {
    /// Where the token is assumed to arrive (`auth` unless told otherwise).
    pub source: &'static str,
    /// Whether `auth.token_sources` reads that source at all.
    pub source_enabled: bool,
    pub token: TokenInfo,
    pub header: HeaderInfo,
    pub claims: ClaimsInfo,
    pub signature: SignatureInfo,
    /// Damage done on the way (quotes, URL-encoding, `Bearer` twice, whitespace, truncation).
    pub transit: Transit,
    pub db: DbInfo,
    pub user: UserInfo,
    /// Live sockets using this token; `None` offline (`token inspect` has no live server).
    pub sockets: Option<Vec<SocketInfo>>,
    pub sockets_note: Option<String>,
    pub server: ServerInfo,
    pub accepted: bool,
    /// `"OK"` or the code a handshake with this token gets.
    pub verdict: String,
    /// One or two sentences: why, and what to do.
    pub explanation: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct TokenInfo {
    /// `sha256:` + 12 hex of the token as the server would use it (after trimming one `Bearer `).
    pub fingerprint: Option<String>,
    pub length: usize,
    /// Length of the input as given, when it differs (whitespace, a `Bearer ` prefix).
    pub raw_length: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct HeaderInfo {
    pub alg: Option<String>,
    pub kid: Option<String>,
    pub typ: Option<String>,
    /// Whether `alg` is in `auth.algorithms`.
    pub alg_allowed: bool,
    pub error: Option<String>,
}

/// The claims as the token states them (decoded without trusting them), each time claim
/// with its UTC date and a relative phrase.
#[derive(Clone, Debug, Serialize, Default)]
pub struct ClaimsInfo {
    pub sub: Value,
    pub iat: Value,
    pub iat_utc: Option<String>,
    pub iat_relative: Option<String>,
    pub exp: Value,
    pub exp_utc: Option<String>,
    pub exp_relative: Option<String>,
    pub nbf: Value,
    pub nbf_utc: Option<String>,
    pub nbf_relative: Option<String>,
    pub iss: Value,
    pub aud: Value,
    pub jti: Value,
    pub username: Value,
    pub user_type: Value,
    /// What this server objects to in them (issuer, audience, subject, times, clock skew).
    pub problems: Vec<String>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Default)]
pub struct Transit {
    pub findings: Vec<Finding>,
    /// What the token would get with the damage undone (absent when nothing was found).
    pub repaired: Option<Repaired>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Repaired {
    pub signature: SignatureStatus,
    pub verdict: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct DbInfo {
    pub status: DbStatus,
    /// `auth.require_db_record`: whether a row is needed at all.
    pub required: bool,
    pub id: Option<i64>,
    pub user_id: Option<UserId>,
    pub expires_at: Option<String>,
    pub created_at: Option<String>,
    pub last_used_at: Option<String>,
    pub note: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct UserInfo {
    pub status: UserStatus,
    pub id: Option<UserId>,
    pub username: Option<String>,
    pub user_type: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub is_active: Option<bool>,
}

/// What the token was judged against (fingerprints only).
#[derive(Clone, Debug, Serialize)]
pub struct ServerInfo {
    pub time: String,
    pub secret_fingerprint: String,
    pub config_fingerprint: String,
    pub algorithms: Vec<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway_secs: u64,
    pub require_db_record: bool,
    pub token_sources: Vec<&'static str>,
}

impl Diagnosis {
    /// Every user id the report is about besides the claimed one ([`claimed_user_ids`]): the
    /// row's owner and the user shown. An HTTP caller may only see reports about itself.
    pub fn user_ids(&self) -> Vec<UserId> {
        let mut ids: Vec<UserId> = [self.db.user_id.clone(), self.user.id.clone()]
            .into_iter()
            .flatten()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// The user ids a token claims (its own `auth.user_id_claim`, and that of its repaired form),
/// read without trusting anything: used to refuse inspecting another user's token before
/// touching the DB.
pub fn claimed_user_ids(raw: &str, keys: &Keys) -> Vec<UserId> {
    let mut ids = vec![];
    let parsed = RawToken::parse(raw);
    let candidates = [
        parsed.as_ref().map(|t| t.as_str().to_string()),
        parsed.as_ref().and_then(|t| repair(t.as_str()).1),
    ];
    ids.extend(
        candidates
            .into_iter()
            .flatten()
            .filter_map(|t| jwt::claimed_user_id(&t, &keys.user_id_claim, keys.id_kind)),
    );
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Diagnose one token as given (`source_hint`: where it arrives, `auth` by default).
/// `sockets`: the live sockets using it, from the caller that has a running server (`None`
/// offline: `token inspect`).
pub async fn diagnose(
    auth: &Authenticator,
    raw: &str,
    source_hint: Option<TokenSource>,
    sockets: Option<Vec<SocketInfo>>,
) -> Diagnosis {
    run(auth, raw, source_hint, sockets).await
}

/// One token run through the handshake's steps, every lookup done even after a failure.
struct Evaluation {
    jwt: Result<Verified, ErrorCode>,
    row: Lookup<TokenRecord>,
    user: Lookup<User>,
    verdict: Result<(), ErrorCode>,
}

async fn evaluate(auth: &Authenticator, token: &str, now: DateTime<Utc>) -> Evaluation {
    let jwt = auth.keys().verify(token, now.timestamp());
    let store = auth.store();
    let row = if auth.rules().require_row {
        Lookup::from_result(store.token(token).await)
    } else {
        Lookup::NotChecked
    };
    // The handshake looks the user up by the verified `sub`; when verification failed, the
    // claimed `sub` still names the user worth showing.
    let user_id = match &jwt {
        Ok(v) => Some(v.user_id.clone()),
        Err(_) => {
            let keys = auth.keys();
            jwt::claimed_user_id(token, &keys.user_id_claim, keys.id_kind)
        }
    };
    let user = match user_id {
        Some(id) => Lookup::from_result(store.user(&id).await),
        None => Lookup::NotChecked,
    };
    for cause in [row.unavailable(), user.unavailable()]
        .into_iter()
        .flatten()
    {
        tracing::warn!(error = %cause, "diagnose: the token store did not answer");
    }
    let verdict = decide::decide(
        &Evidence {
            jwt: jwt.as_ref().map_err(|c| *c),
            row: &row,
            user: &user,
        },
        auth.rules(),
        now,
    );
    Evaluation {
        jwt,
        row,
        user,
        verdict,
    }
}

async fn run(
    auth: &Authenticator,
    raw: &str,
    source_hint: Option<TokenSource>,
    live_sockets: Option<Vec<SocketInfo>>,
) -> Diagnosis {
    let settings = auth.settings();
    let now = Utc::now();
    let source = source_hint.unwrap_or(TokenSource::Auth);
    let source_enabled = settings.auth.token_sources.contains(&source);
    let parsed = RawToken::parse(raw);
    let token_str = parsed.as_ref().map(|t| t.as_str()).unwrap_or("");

    let token = TokenInfo {
        fingerprint: parsed.as_ref().map(RawToken::fingerprint),
        length: token_str.len(),
        raw_length: raw.len(),
    };
    let header = claims::header_info(auth.keys(), token_str);
    let claims = claims::claims_info(&settings.auth, token_str, now);

    // Transit damage: undo it and see what the token would get then.
    // URL-encoding can triple a token's length; anything longer is not a mangled session token.
    let (findings, repaired_token) = match &parsed {
        Some(t) if t.as_str().len() <= 3 * jwt::MAX_TOKEN_BYTES => transit::repair(t.as_str()),
        _ => (vec![], None),
    };
    let mut transit = Transit {
        findings,
        repaired: None,
    };
    let repaired_eval = match &repaired_token {
        Some(t) => Some((t.clone(), evaluate(auth, t, now).await)),
        None => None,
    };
    if let Some((t, eval)) = &repaired_eval {
        transit.repaired = Some(Repaired {
            signature: signature::status_only(auth.keys(), t, now),
            verdict: code_str(&eval.verdict).to_string(),
        });
    }
    if let Some(t) = repaired_token
        .as_deref()
        .or(parsed.as_ref().map(|t| t.as_str()))
        && let Some(f) = signature::truncation(t)
    {
        transit.findings.push(f);
    }
    if token_str.len() > jwt::MAX_TOKEN_BYTES {
        transit.findings.push(Finding {
            kind: FindingKind::Oversized,
            detail: format!(
                "{} bytes; tokens above {} bytes are refused before parsing",
                token_str.len(),
                jwt::MAX_TOKEN_BYTES
            ),
        });
    }

    let eval = match &parsed {
        Some(t) => Some(evaluate(auth, t.as_str(), now).await),
        None => None,
    };
    let signature = signature::analyse(auth.keys(), &settings.auth, token_str, &transit, now);

    let verdict: Result<(), ErrorCode> = if !source_enabled || parsed.is_none() {
        Err(ErrorCode::TokenMissing)
    } else {
        eval.as_ref().map(|e| e.verdict).unwrap_or(Ok(()))
    };

    let db = db_info(auth, eval.as_ref(), now);
    let user = user_info(eval.as_ref());

    let (sockets, sockets_note) = match (&parsed, live_sockets) {
        (_, None) => (None, Some("not available offline".to_string())),
        (Some(_), Some(list)) => (Some(list), None),
        (None, Some(_)) => (Some(vec![]), None),
    };

    let server = ServerInfo {
        time: iso(now),
        secret_fingerprint: auth.keys().current.fingerprint.clone(),
        config_fingerprint: auth.config_fingerprint().to_string(),
        algorithms: settings.auth.algorithms.clone(),
        issuer: settings.auth.issuer.clone(),
        audience: settings.auth.audience.clone(),
        leeway_secs: settings.auth.leeway_secs,
        require_db_record: settings.auth.require_db_record,
        token_sources: settings
            .auth
            .token_sources
            .iter()
            .map(|s| s.as_str())
            .collect(),
    };

    let mut d = Diagnosis {
        source: source.as_str(),
        source_enabled,
        token,
        header,
        claims,
        signature,
        transit,
        db,
        user,
        sockets,
        sockets_note,
        server,
        accepted: verdict.is_ok(),
        verdict: code_str(&verdict).to_string(),
        explanation: String::new(),
    };
    let jwt_refused = eval.as_ref().is_some_and(|e| e.jwt.is_err());
    d.explanation = explain::sentence(&explain::explain(
        &settings.auth,
        &d,
        parsed.is_some(),
        verdict,
        jwt_refused,
    ));
    d
}

fn code_str(r: &Result<(), ErrorCode>) -> &'static str {
    match r {
        Ok(()) => "OK",
        Err(c) => c.as_str(),
    }
}

fn db_info(auth: &Authenticator, eval: Option<&Evaluation>, now: DateTime<Utc>) -> DbInfo {
    let rules = auth.rules();
    let table = auth.store().token_table();
    let mut d = DbInfo {
        status: DbStatus::NotChecked,
        required: rules.require_row,
        id: None,
        user_id: None,
        expires_at: None,
        created_at: None,
        last_used_at: None,
        note: None,
    };
    if !rules.require_row {
        d.note = Some(format!(
            "auth.require_db_record = false: a valid JWT needs no {table} row"
        ));
        return d;
    }
    let Some(eval) = eval else {
        d.note = Some("no token".into());
        return d;
    };
    match &eval.row {
        Lookup::NotChecked => {}
        Lookup::Unavailable(_) => {
            d.status = DbStatus::Unavailable;
            d.note = Some("the database could not be asked (see the server log)".into());
        }
        Lookup::Missing => {
            d.status = DbStatus::NotFound;
            d.note = Some(format!("no {table} row has this token's hash"));
        }
        Lookup::Found(r) => {
            d.id = r.id;
            d.user_id = Some(r.user_id.clone());
            d.expires_at = r.expires_at.map(iso);
            d.created_at = r.created_at.map(iso);
            d.last_used_at = r.last_used_at.map(iso);
            d.status = match decide::row_state(r, now, rules.leeway_secs) {
                Err(ErrorCode::TokenRevoked) => DbStatus::Revoked,
                Err(_) => DbStatus::Expired,
                Ok(()) => DbStatus::Found,
            };
            if let Ok(v) = &eval.jwt
                && v.user_id != r.user_id
            {
                d.note = Some(format!(
                    "the row belongs to user {}, not to the token's sub {}",
                    r.user_id, v.user_id
                ));
            }
        }
    }
    d
}

fn user_info(eval: Option<&Evaluation>) -> UserInfo {
    let mut u = UserInfo {
        status: UserStatus::NotChecked,
        id: None,
        username: None,
        user_type: None,
        display_name: None,
        email: None,
        is_active: None,
    };
    match eval.map(|e| &e.user) {
        None | Some(Lookup::NotChecked) => {}
        Some(Lookup::Unavailable(_)) => u.status = UserStatus::Unavailable,
        Some(Lookup::Missing) => u.status = UserStatus::NotFound,
        Some(Lookup::Found(m)) => {
            u.status = if m.is_active {
                UserStatus::Found
            } else {
                UserStatus::Disabled
            };
            u.id = Some(m.id.clone());
            u.username = Some(m.username.clone());
            u.user_type = Some(m.user_type.clone());
            u.display_name = Some(m.display_name.clone());
            u.email = m.email.clone();
            u.is_active = Some(m.is_active);
        }
    }
    u
}
