//! Token diagnosis (contract §6) for `im-server token inspect` and `POST /auth/tokens/inspect`.
//!
//! Runs the handshake's own steps — [`RawToken::parse`], [`Keys::verify`](super::jwt::Keys::verify),
//! [`store::find_token`], [`store::check_row`], [`store::find_user`], [`store::check_user`] — in
//! the order [`super::verify_token`] runs them, so `verdict` is exactly the code a handshake
//! carrying the token in its `auth` payload gets (a test holds this for every code a token can
//! produce). Unlike the handshake it does not stop at the first failure: it reports every part,
//! and for a bad signature it tries the usual suspects for real (previous secrets, the base64
//! forms of this secret, other HMAC algorithms, transit damage) before blaming "another secret".
//!
//! Never in the output: the secret, a hash, or the whole token (its fingerprint and length only).
//! It never writes to the database and never counts as a handshake in `/metrics`.

pub mod cli;
mod signature;
mod text;

use chrono::{DateTime, Utc};
use entity::{user_tokens, users};
use serde::Serialize;
use serde_json::Value;

pub use signature::SignatureInfo;
pub use text::render_text;

use super::jwt::{self, Verified};
use super::source::RawToken;
use super::store;
use crate::clock::iso;
use crate::config::TokenSource;
use crate::error::ErrorCode;
use crate::realtime::SocketInfo;
use crate::state::AppState;

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
    /// `quotes` | `url_encoded` | `bearer_twice` | `whitespace` | `truncated` | `oversized`
    pub kind: &'static str,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Repaired {
    pub signature: &'static str,
    pub verdict: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct DbInfo {
    /// `found` | `not_found` | `revoked` | `expired` | `not_checked` | `unavailable`
    pub status: &'static str,
    /// `auth.require_db_record`: whether a row is needed at all.
    pub required: bool,
    pub id: Option<i64>,
    pub user_id: Option<i64>,
    pub expires_at: Option<String>,
    pub created_at: Option<String>,
    pub last_used_at: Option<String>,
    pub note: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct UserInfo {
    /// `found` | `not_found` | `disabled` | `not_checked` | `unavailable`
    pub status: &'static str,
    pub id: Option<i64>,
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
    /// Every user id the report is about (claimed `sub`, also of the repaired token; the row's
    /// owner; the user shown): an HTTP caller may only see reports about itself.
    pub fn user_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = [sub_id_ref(&self.claims.sub), self.db.user_id, self.user.id]
            .into_iter()
            .flatten()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// The user ids a token claims (its own `sub`, and that of its repaired form), read without
/// trusting anything: used to refuse inspecting another user's token before touching the DB.
pub fn claimed_user_ids(raw: &str) -> Vec<i64> {
    let mut ids = vec![];
    let parsed = RawToken::parse(raw);
    let candidates = [
        parsed.as_ref().map(|t| t.as_str().to_string()),
        parsed.as_ref().and_then(|t| repair(t.as_str()).1),
    ];
    for t in candidates.into_iter().flatten() {
        if let Some(id) = t
            .split('.')
            .nth(1)
            .and_then(|p| decode_segment(p).ok())
            .and_then(|c| c.get("sub").and_then(sub_id_ref))
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Diagnose with the live sockets of this server.
pub async fn diagnose(state: &AppState, raw: &str, source_hint: Option<TokenSource>) -> Diagnosis {
    run(state, raw, source_hint, true).await
}

/// Diagnose without a running server (the CLI): `sockets` is "not available offline".
pub async fn diagnose_offline(
    state: &AppState,
    raw: &str,
    source_hint: Option<TokenSource>,
) -> Diagnosis {
    run(state, raw, source_hint, false).await
}

/// A database lookup, as the report sees it.
enum Lookup<T> {
    NotChecked,
    Unavailable,
    Missing,
    Found(T),
}

impl<T> Lookup<T> {
    fn from(r: Result<Option<T>, sea_orm::DbErr>, what: &str) -> Self {
        match r {
            Ok(Some(v)) => Lookup::Found(v),
            Ok(None) => Lookup::Missing,
            Err(e) => {
                tracing::warn!(error = %e, "diagnose: {what} lookup failed");
                Lookup::Unavailable
            }
        }
    }
}

/// One token run through the handshake's steps: what each step said, and the verdict.
struct Evaluation {
    jwt: Result<Verified, ErrorCode>,
    row: Lookup<user_tokens::Model>,
    user: Lookup<users::Model>,
    verdict: Result<(), ErrorCode>,
}

/// The steps of [`super::verify_token`], with every lookup done even after a failure.
async fn evaluate(state: &AppState, token: &str, now: DateTime<Utc>) -> Evaluation {
    let settings = state.settings();
    let jwt = state.keys().verify(token, now.timestamp());
    let row = if settings.auth.require_db_record {
        Lookup::from(
            store::find_token(state.db(), &store::token_hash(token)).await,
            "user_tokens",
        )
    } else {
        Lookup::NotChecked
    };
    // The handshake looks the user up by the verified `sub`; when verification failed, the
    // claimed `sub` still names the user worth showing.
    let user_id = match &jwt {
        Ok(v) => Some(v.user_id),
        Err(_) => token
            .split('.')
            .nth(1)
            .and_then(|p| decode_segment(p).ok())
            .and_then(|c| c.get("sub").and_then(sub_id_ref)),
    };
    let user = match user_id {
        Some(id) => Lookup::from(store::find_user(state.db(), id).await, "users"),
        None => Lookup::NotChecked,
    };
    let verdict = verdict_of(state, &jwt, &row, &user, now);
    Evaluation {
        jwt,
        row,
        user,
        verdict,
    }
}

/// `verify_token`'s decision order: JWT, then the row (revoked, expired, owner), then the user.
fn verdict_of(
    state: &AppState,
    jwt: &Result<Verified, ErrorCode>,
    row: &Lookup<user_tokens::Model>,
    user: &Lookup<users::Model>,
    now: DateTime<Utc>,
) -> Result<(), ErrorCode> {
    let settings = state.settings();
    let verified = jwt.as_ref().map_err(|c| *c)?;
    if settings.auth.require_db_record {
        match row {
            Lookup::Unavailable | Lookup::NotChecked => return Err(ErrorCode::AuthUnavailable),
            Lookup::Missing => return Err(ErrorCode::TokenNotFound),
            Lookup::Found(r) => {
                store::check_row(r, now, settings.auth.leeway_secs)?;
                if r.user_id != verified.user_id {
                    return Err(ErrorCode::TokenNotFound);
                }
            }
        }
    }
    match user {
        Lookup::Unavailable | Lookup::NotChecked => Err(ErrorCode::AuthUnavailable),
        Lookup::Missing => Err(ErrorCode::UserNotFound),
        Lookup::Found(u) => store::check_user(u),
    }
}

async fn run(
    state: &AppState,
    raw: &str,
    source_hint: Option<TokenSource>,
    live: bool,
) -> Diagnosis {
    let settings = state.settings();
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
    let header = header_info(state, token_str);
    let claims = claims_info(state, token_str, now);

    // Transit damage: undo it and see what the token would get then.
    // URL-encoding can triple a token's length; anything longer is not a mangled session token.
    let (findings, repaired_token) = match &parsed {
        Some(t) if t.as_str().len() <= 3 * jwt::MAX_TOKEN_BYTES => repair(t.as_str()),
        _ => (vec![], None),
    };
    let mut transit = Transit {
        findings,
        repaired: None,
    };
    let repaired_eval = match &repaired_token {
        Some(t) => Some((t.clone(), evaluate(state, t, now).await)),
        None => None,
    };
    if let Some((t, eval)) = &repaired_eval {
        transit.repaired = Some(Repaired {
            signature: signature::status_only(state.keys(), t, now),
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
            kind: "oversized",
            detail: format!(
                "{} bytes; tokens above {} bytes are refused before parsing",
                token_str.len(),
                jwt::MAX_TOKEN_BYTES
            ),
        });
    }

    let eval = match &parsed {
        Some(t) => Some(evaluate(state, t.as_str(), now).await),
        None => None,
    };
    let signature = signature::analyse(state, token_str, &transit, now);

    let verdict: Result<(), ErrorCode> = if !source_enabled || parsed.is_none() {
        Err(ErrorCode::TokenMissing)
    } else {
        eval.as_ref().map(|e| e.verdict).unwrap_or(Ok(()))
    };

    let db = db_info(state, eval.as_ref(), now);
    let user = user_info(eval.as_ref());

    let (sockets, sockets_note) = match (&parsed, live) {
        (_, false) => (None, Some("not available offline".to_string())),
        (Some(t), true) => (
            Some(
                state
                    .hub()
                    .token_sockets(store::token_hash(t.as_str()))
                    .await,
            ),
            None,
        ),
        (None, true) => (Some(vec![]), None),
    };

    let server = ServerInfo {
        time: iso(now),
        secret_fingerprint: state.keys().current.fingerprint.clone(),
        config_fingerprint: state.config_fingerprint().to_string(),
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
    d.explanation = sentence(&explain(state, &d, parsed.is_some(), eval.as_ref()));
    d
}

fn code_str(r: &Result<(), ErrorCode>) -> &'static str {
    match r {
        Ok(()) => "OK",
        Err(c) => c.as_str(),
    }
}

fn header_info(state: &AppState, token: &str) -> HeaderInfo {
    let mut h = HeaderInfo {
        alg: None,
        kid: None,
        typ: None,
        alg_allowed: false,
        error: None,
    };
    if token.is_empty() {
        h.error = Some("no token".into());
        return h;
    }
    match decode_segment(token.split('.').next().unwrap_or("")) {
        Ok(json) => {
            let s = |k: &str| json.get(k).and_then(Value::as_str).map(str::to_string);
            h.alg = s("alg");
            h.kid = s("kid");
            h.typ = s("typ");
            h.alg_allowed = h
                .alg
                .as_deref()
                .and_then(|a| a.parse::<jsonwebtoken::Algorithm>().ok())
                .is_some_and(|a| state.keys().algorithms.contains(&a));
            if h.alg.is_none() {
                h.error = Some("the header has no \"alg\"".into());
            }
        }
        Err(e) => h.error = Some(format!("the header segment {e}")),
    }
    h
}

fn claims_info(state: &AppState, token: &str, now: DateTime<Utc>) -> ClaimsInfo {
    let mut c = ClaimsInfo::default();
    if token.is_empty() {
        c.error = Some("no token".into());
        return c;
    }
    let Some(payload) = token.split('.').nth(1) else {
        c.error = Some("there is no payload segment (a JWT has three parts)".into());
        return c;
    };
    let json = match decode_segment(payload) {
        Ok(j) => j,
        Err(e) => {
            c.error = Some(format!("the payload segment {e}"));
            return c;
        }
    };
    let get = |k: &str| json.get(k).cloned().unwrap_or(Value::Null);
    c.sub = get("sub");
    c.iat = get("iat");
    c.exp = get("exp");
    c.nbf = get("nbf");
    c.iss = get("iss");
    c.aud = get("aud");
    c.jti = get("jti");
    c.username = get("username");
    c.user_type = get("user_type");
    let time = |v: &Value| v.as_i64().map(jwt::ts);
    let (iat, exp, nbf) = (time(&c.iat), time(&c.exp), time(&c.nbf));
    c.iat_utc = iat.map(iso);
    c.exp_utc = exp.map(iso);
    c.nbf_utc = nbf.map(iso);
    c.iat_relative = iat.map(|t| relative(t, now, "issued", "issued"));
    c.exp_relative = exp.map(|t| relative(t, now, "expired", "expires"));
    c.nbf_relative = nbf.map(|t| relative(t, now, "became valid", "becomes valid"));

    let auth = &state.settings().auth;
    let leeway = chrono::Duration::seconds(auth.leeway_secs as i64);
    let p = &mut c.problems;
    match (&c.exp, exp) {
        (Value::Null, _) => p.push("exp is missing; this server requires it".into()),
        (_, None) => p.push("exp is not a number of seconds".into()),
        (_, Some(t)) if t + leeway < now => p.push(format!(
            "exp has passed: {} (leeway {}s)",
            relative(t, now, "expired", "expires"),
            auth.leeway_secs
        )),
        (_, Some(t)) if t < now => p.push(format!(
            "exp has passed but is within the {}s leeway: {}",
            auth.leeway_secs,
            relative(t, now, "expired", "expires")
        )),
        _ => {}
    }
    if let Some(t) = nbf
        && t - leeway > now
    {
        p.push(format!(
            "nbf is {} in the future: not valid yet; if the issuer just created it, its clock \
             is ahead of this server's (clock skew)",
            human_duration((t - now).num_seconds())
        ));
    }
    if let Some(t) = iat
        && t - leeway > now
    {
        p.push(format!(
            "iat is {} in the future: the issuer's clock is ahead of this server's (clock skew)",
            human_duration((t - now).num_seconds())
        ));
    }
    match &c.sub {
        Value::Null => p.push("sub is missing; it must be the user id".into()),
        v if sub_id_ref(v).is_none() => p.push(format!("sub {v} is not a numeric user id")),
        _ => {}
    }
    if let Some(want) = &auth.issuer {
        match c.iss.as_str() {
            Some(got) if got == want => {}
            Some(got) => p.push(format!(
                "iss is {got:?}; this server expects {want:?} (auth.issuer)"
            )),
            None => p.push(format!(
                "iss is missing; this server expects {want:?} (auth.issuer)"
            )),
        }
    }
    if let Some(want) = &auth.audience {
        let ok = match &c.aud {
            Value::String(s) => s == want,
            Value::Array(list) => list.iter().any(|a| a.as_str() == Some(want)),
            _ => false,
        };
        if !ok {
            p.push(match &c.aud {
                Value::Null => {
                    format!("aud is missing; this server expects {want:?} (auth.audience)")
                }
                other => format!("aud is {other}; this server expects {want:?} (auth.audience)"),
            });
        }
    }
    c
}

fn db_info(state: &AppState, eval: Option<&Evaluation>, now: DateTime<Utc>) -> DbInfo {
    let required = state.settings().auth.require_db_record;
    let mut d = DbInfo {
        status: "not_checked",
        required,
        id: None,
        user_id: None,
        expires_at: None,
        created_at: None,
        last_used_at: None,
        note: None,
    };
    if !required {
        d.note =
            Some("auth.require_db_record = false: a valid JWT needs no user_tokens row".into());
        return d;
    }
    let Some(eval) = eval else {
        d.note = Some("no token".into());
        return d;
    };
    match &eval.row {
        Lookup::NotChecked => {}
        Lookup::Unavailable => {
            d.status = "unavailable";
            d.note = Some("the database could not be asked (see the server log)".into());
        }
        Lookup::Missing => {
            d.status = "not_found";
            d.note = Some("no user_tokens row has this token's hash".into());
        }
        Lookup::Found(r) => {
            d.id = Some(r.id);
            d.user_id = Some(r.user_id);
            d.expires_at = Some(iso(r.expires_at));
            d.created_at = Some(iso(r.created_at));
            d.last_used_at = r.last_used_at.map(iso);
            d.status = match store::check_row(r, now, state.settings().auth.leeway_secs) {
                Err(ErrorCode::TokenRevoked) => "revoked",
                Err(_) => "expired",
                Ok(()) => "found",
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
        status: "not_checked",
        id: None,
        username: None,
        user_type: None,
        display_name: None,
        email: None,
        is_active: None,
    };
    match eval.map(|e| &e.user) {
        None | Some(Lookup::NotChecked) => {}
        Some(Lookup::Unavailable) => u.status = "unavailable",
        Some(Lookup::Missing) => u.status = "not_found",
        Some(Lookup::Found(m)) => {
            u.status = if m.is_active { "found" } else { "disabled" };
            u.id = Some(m.id);
            u.username = Some(m.username.clone());
            u.user_type = Some(m.user_type.clone());
            u.display_name = Some(m.display_name.clone());
            u.email = m.email.clone();
            u.is_active = Some(m.is_active);
        }
    }
    u
}

/// The sentence under the verdict: why, and what to do next.
fn explain(state: &AppState, d: &Diagnosis, parsed: bool, eval: Option<&Evaluation>) -> String {
    let settings = state.settings();
    if !d.source_enabled {
        return format!(
            "auth.token_sources ({}) does not include {:?}: a token sent there is ignored and the \
             handshake gets TOKEN_MISSING. Send it in an enabled source or enable this one.",
            d.server.token_sources.join(", "),
            d.source
        );
    }
    if !parsed {
        return "Nothing is left after trimming whitespace and one 'Bearer ' prefix: the server \
                sees no token. Check that the client really puts it in auth.token (browsers \
                cannot set headers on a WebSocket)."
            .into();
    }
    let repaired_tail = || match &d.transit.repaired {
        Some(r) if r.verdict == "OK" => {
            " With that damage undone the token would be accepted: fix the client or proxy that \
             alters it."
                .to_string()
        }
        Some(r) => format!(
            " Even with that damage undone it would get {} (signature {}).",
            r.verdict, r.signature
        ),
        None => String::new(),
    };
    let user_label = |d: &Diagnosis| match (&d.user.id, &d.user.username) {
        (Some(id), Some(name)) => format!("user #{id} ({name})"),
        _ => "its user".into(),
    };
    match d.verdict.as_str() {
        "OK" => {
            let key = match &d.signature.key {
                Some(k) if k != "current" => format!(" It is signed with the {k}."),
                _ => String::new(),
            };
            format!(
                "Accepted: a handshake carrying this token connects as {}.{key}",
                user_label(d)
            )
        }
        "TOKEN_MALFORMED" => {
            let what = if d.transit.findings.is_empty() {
                d.signature
                    .detail
                    .clone()
                    .or_else(|| d.header.error.clone())
                    .or_else(|| d.claims.error.clone())
                    .unwrap_or_else(|| "it is not a JWT (three base64url parts)".into())
            } else {
                format!(
                    "it was altered on the way ({})",
                    d.transit
                        .findings
                        .iter()
                        .map(|f| finding_words(f.kind))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            format!("Not a well-formed JWT: {what}.{}", repaired_tail())
        }
        "TOKEN_INVALID_SIGNATURE" | "TOKEN_ALGORITHM_NOT_ALLOWED" => {
            let mut s = sentence(
                d.signature
                    .detail
                    .as_deref()
                    .unwrap_or("the signature does not verify"),
            );
            if let Some(h) = &d.signature.hint {
                s = format!("{s} {h}");
            }
            s
        }
        "TOKEN_EXPIRED" => match eval.map(|e| &e.jwt) {
            Some(Err(_)) => format!(
                "The token {} ({}), beyond the {}s leeway. Log in again, or refresh it with \
                 auth:refresh before it expires.",
                d.claims.exp_relative.as_deref().unwrap_or("expired"),
                d.claims.exp_utc.as_deref().unwrap_or("?"),
                settings.auth.leeway_secs
            ),
            _ => format!(
                "The JWT is still valid but its user_tokens row expired at {}. Log in again.",
                d.db.expires_at.as_deref().unwrap_or("?")
            ),
        },
        "TOKEN_NOT_YET_VALID" => format!(
            "The token's nbf is {} ({}). If the issuer just created it, its clock is ahead of this \
             server's: sync both with NTP, or raise auth.leeway_secs (now {}s) to cover the skew.",
            d.claims.nbf_utc.as_deref().unwrap_or("?"),
            d.claims.nbf_relative.as_deref().unwrap_or("?"),
            settings.auth.leeway_secs
        ),
        "TOKEN_CLAIMS_INVALID" => format!(
            "The claims do not fit this server: {}.",
            if d.claims.problems.is_empty() {
                "a required claim is missing or has the wrong type".to_string()
            } else {
                d.claims.problems.join("; ")
            }
        ),
        "TOKEN_NOT_FOUND" => match &d.db.note {
            Some(n) if d.db.status == "found" => format!("{n}: the row was not issued for it."),
            _ => "The JWT is valid but no user_tokens row has its hash: it was issued by another \
                  service or before the database was reset. Log in again (or set \
                  auth.require_db_record = false to accept JWT-only tokens)."
                .into(),
        },
        "TOKEN_REVOKED" => "The user_tokens row is revoked (logout, a newer login under \
                            kick_previous, or an administrator). Log in again."
            .into(),
        "USER_NOT_FOUND" => format!(
            "The token's sub names user {} but no such user exists (deleted, or another \
             service's user ids).",
            d.claims.sub
        ),
        "USER_DISABLED" => format!("{} is disabled (users.is_active = false).", user_label(d)),
        "AUTH_UNAVAILABLE" => "The database could not be asked, so authentication fails closed. \
                               Check database.url and the database's health."
            .into(),
        "TOKEN_MISSING" => "The server sees no token.".into(),
        other => format!("Rejected with {other}."),
    }
}

fn finding_words(kind: &str) -> &'static str {
    match kind {
        "quotes" => "quotes around it",
        "url_encoded" => "URL-encoding",
        "bearer_twice" => "'Bearer ' twice",
        "whitespace" => "whitespace inside",
        "truncated" => "cut short",
        "oversized" => "far too long",
        _ => "altered",
    }
}

/// Capitalised, ending with a full stop, whatever the parts it was built from.
fn sentence(s: &str) -> String {
    let s = s.trim();
    let mut out: String = s
        .chars()
        .take(1)
        .flat_map(char::to_uppercase)
        .chain(s.chars().skip(1))
        .collect();
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// Undo transit damage: quotes, URL-encoding, a second `Bearer `, whitespace inside. Returns
/// what was found and the repaired token (when anything was).
pub(crate) fn repair(token: &str) -> (Vec<Finding>, Option<String>) {
    let mut findings: Vec<Finding> = vec![];
    let mut s = token.to_string();
    let mut add = |kind: &'static str, detail: String| {
        if !findings.iter().any(|f| f.kind == kind) {
            findings.push(Finding { kind, detail });
        }
    };
    for _ in 0..6 {
        let before = s.clone();
        // Quotes: a JSON string pasted with its quotes, or shell quoting that stayed.
        for (open, close) in [("\\\"", "\\\""), ("\"", "\""), ("'", "'"), ("`", "`")] {
            if s.len() >= open.len() + close.len() && s.starts_with(open) && s.ends_with(close) {
                s = s[open.len()..s.len() - close.len()].to_string();
                add(
                    "quotes",
                    format!(
                        "the token is wrapped in {open}…{close} (a JSON string or shell quoting kept its quotes)"
                    ),
                );
            }
        }
        // URL-encoding: base64url JWTs never contain '%' or '+'.
        if has_percent_escape(&s) || s.contains('+') {
            let seen: Vec<String> = percent_escapes(&s)
                .into_iter()
                .chain(s.contains('+').then(|| "+".to_string()))
                .collect();
            let decoded: String = form_urlencoded::parse(format!("v={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            if decoded != s {
                s = decoded;
                add(
                    "url_encoded",
                    format!(
                        "the token is URL-encoded ({}); it was encoded once more than it was decoded",
                        seen.join(", ")
                    ),
                );
            }
        }
        let trimmed = s.trim();
        if let Some(rest) = super::source::strip_bearer(trimmed) {
            s = rest.trim().to_string();
            add(
                "bearer_twice",
                "'Bearer ' appears twice (the client adds it to a value that already has it)"
                    .into(),
            );
        } else if trimmed.len() != s.len() {
            s = trimmed.to_string();
        }
        if s.chars().any(char::is_whitespace) {
            let n = s.chars().filter(|c| c.is_whitespace()).count();
            s.retain(|c| !c.is_whitespace());
            add(
                "whitespace",
                format!(
                    "{n} whitespace character(s) inside the token (line-wrapped or pasted with breaks)"
                ),
            );
        }
        if s == before {
            break;
        }
    }
    let repaired = (!findings.is_empty()).then_some(s);
    (findings, repaired)
}

fn has_percent_escape(s: &str) -> bool {
    !percent_escapes(s).is_empty()
}

fn percent_escapes(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut out: Vec<String> = vec![];
    for i in 0..b.len().saturating_sub(2) {
        if b[i] == b'%' && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
            let e = s[i..i + 3].to_ascii_uppercase();
            if !out.contains(&e) {
                out.push(e);
            }
        }
    }
    out
}

/// A base64url JSON segment, read without trusting it.
pub(crate) fn decode_segment(seg: &str) -> Result<Value, String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(seg.trim_end_matches('='))
        .map_err(|_| "is not base64url".to_string())?;
    serde_json::from_slice(&bytes).map_err(|_| "is not JSON".to_string())
}

fn sub_id_ref(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// "expired 3h ago" / "expires in 20m": `then` relative to `now`.
pub fn relative(then: DateTime<Utc>, now: DateTime<Utc>, past: &str, future: &str) -> String {
    let secs = (then - now).num_seconds();
    if secs.abs() < 5 {
        return format!("{past} just now");
    }
    if secs < 0 {
        format!("{past} {} ago", human_duration(-secs))
    } else if past == "issued" {
        format!("{future} {} in the future", human_duration(secs))
    } else {
        format!("{future} in {}", human_duration(secs))
    }
}

/// Compact and stable under a second of jitter: seconds below 90 s, then minutes (rounded),
/// hours and minutes, days and hours.
pub fn human_duration(secs: i64) -> String {
    let secs = secs.abs();
    if secs < 90 {
        return format!("{secs}s");
    }
    let mins = (secs + 30) / 60;
    if mins < 60 {
        return format!("{mins}m");
    }
    let (h, m) = (mins / 60, mins % 60);
    if h < 36 {
        return if m == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{m}m")
        };
    }
    let (d, h) = (h / 24, h % 24);
    if h == 0 {
        format!("{d}d")
    } else {
        format!("{d}d{h}h")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_rounded_and_stable() {
        assert_eq!(human_duration(10_799), "3h");
        assert_eq!(human_duration(10_800), "3h");
        assert_eq!(human_duration(1_199), "20m");
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(86_399), "24h");
        assert_eq!(human_duration(3 * 86_400 + 7_200), "3d2h");
    }

    #[test]
    fn repair_undoes_each_kind_of_damage() {
        let t = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln";
        let cases = [
            (format!("\"{t}\""), "quotes"),
            (t.replace('.', "%2E"), "url_encoded"),
            (format!("Bearer%20{t}"), "url_encoded"),
            (format!("Bearer+{t}"), "url_encoded"),
            (format!("Bearer {t}"), "bearer_twice"),
            (format!("{}\n{}", &t[..10], &t[10..]), "whitespace"),
        ];
        for (input, kind) in cases {
            let (findings, repaired) = repair(&input);
            assert!(
                findings.iter().any(|f| f.kind == kind),
                "{input}: {findings:?}"
            );
            assert_eq!(repaired.as_deref(), Some(t), "{input}");
        }
        assert!(repair(t).1.is_none());
    }
}
