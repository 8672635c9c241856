//! The signature part of a diagnosis: whether it verifies, with which key, and — when it does
//! not — the likely cause, found by actually trying each suspect: a previous secret past its
//! `valid_until`, the base64-encoded or base64-decoded form of this server's secret, another
//! HMAC algorithm, transit damage, truncation. Only fingerprints ever leave this module.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Serialize;

use super::{Finding, FindingKind, Transit, relative};
use crate::auth::jwt::{Key, Keys, MAX_TOKEN_BYTES, unverified_header};
use crate::clock::iso;
use crate::config::{AuthSettings, SecretEncoding, decode_base64};

super::words! {
    /// Whether the signature verifies with a key this server accepts.
    SignatureStatus {
        Valid => "valid",
        Invalid => "invalid",
        NotChecked => "not_checked",
    }
}

super::words! {
    /// The likely cause of a signature that does not verify (or was not checked).
    Cause {
        OtherSecret => "other_secret",
        PreviousSecretExpired => "previous_secret_expired",
        Base64EncodedSecret => "base64_encoded_secret",
        Base64DecodedSecret => "base64_decoded_secret",
        AlgorithmMismatch => "algorithm_mismatch",
        AlgorithmNotAllowed => "algorithm_not_allowed",
        MangledInTransit => "mangled_in_transit",
        Truncated => "truncated",
        Oversized => "oversized",
        Malformed => "malformed",
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SignatureInfo {
    pub status: SignatureStatus,
    /// The algorithm it was checked with (the header's, when allowed).
    pub algorithm: Option<String>,
    /// Which accepted key verified it: `current` or `auth.previous_secrets[i] (…)`.
    pub key: Option<String>,
    pub cause: Option<Cause>,
    /// What was found, in a sentence.
    pub detail: Option<String>,
    /// What to do about it.
    pub hint: Option<String>,
}

impl SignatureInfo {
    fn new(status: SignatureStatus) -> Self {
        SignatureInfo {
            status,
            algorithm: None,
            key: None,
            cause: None,
            detail: None,
            hint: None,
        }
    }
    fn because(mut self, cause: Cause, detail: String, hint: Option<String>) -> Self {
        self.cause = Some(cause);
        self.detail = Some(detail);
        self.hint = hint;
        self
    }
}

const HMAC: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];

/// base64url characters of an HMAC signature of each algorithm (32/48/64 bytes, unpadded).
fn signature_chars(alg: Algorithm) -> Option<usize> {
    match alg {
        Algorithm::HS256 => Some(43),
        Algorithm::HS384 => Some(64),
        Algorithm::HS512 => Some(86),
        _ => None,
    }
}

fn hmac_matches(token: &str, alg: Algorithm, key: &[u8]) -> bool {
    let Some((message, sig)) = token.rsplit_once('.') else {
        return false;
    };
    jsonwebtoken::crypto::verify(sig, message.as_bytes(), &DecodingKey::from_secret(key), alg)
        .unwrap_or(false)
}

fn is_base64url(s: &str) -> bool {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .is_ok()
}

fn header_alg(token: &str) -> Option<String> {
    unverified_header(token)
        .ok()?
        .get("alg")?
        .as_str()
        .map(str::to_string)
}

/// An accepted key (current, or a previous one still within `valid_until`) that verifies it.
fn accepted_key(keys: &Keys, token: &str, alg: Algorithm, now: DateTime<Utc>) -> Option<String> {
    if hmac_matches(token, alg, &keys.current.bytes) {
        return Some("current".into());
    }
    keys.previous
        .iter()
        .enumerate()
        .filter(|(_, k)| k.valid_until.is_none_or(|until| until >= now))
        .find(|(_, k)| hmac_matches(token, alg, &k.bytes))
        .map(|(i, k)| previous_label(i, k))
}

fn previous_label(i: usize, k: &Key) -> String {
    format!(
        "auth.previous_secrets[{i}] ({}, valid until {})",
        k.fingerprint,
        k.valid_until.map(iso).unwrap_or_default()
    )
}

/// Signature status alone (for a repaired token).
pub(super) fn status_only(keys: &Keys, token: &str, now: DateTime<Utc>) -> SignatureStatus {
    let alg = header_alg(token).and_then(|a| a.parse::<Algorithm>().ok());
    match alg {
        Some(a) if keys.algorithms.contains(&a) && token.split('.').count() == 3 => {
            let sig = token.rsplit('.').next().unwrap_or("");
            if !is_base64url(sig) || jsonwebtoken::decode_header(token).is_err() {
                SignatureStatus::NotChecked
            } else if accepted_key(keys, token, a, now).is_some() {
                SignatureStatus::Valid
            } else {
                SignatureStatus::Invalid
            }
        }
        _ => SignatureStatus::NotChecked,
    }
}

/// A token cut short: two parts only, or a signature shorter than its algorithm produces.
pub(super) fn truncation(token: &str) -> Option<Finding> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() == 2 && !parts[0].is_empty() && !parts[1].is_empty() {
        return Some(Finding {
            kind: FindingKind::Truncated,
            detail: "only 2 of the 3 parts (header.payload.signature): the signature is cut off"
                .into(),
        });
    }
    if parts.len() != 3 {
        return None;
    }
    let alg = header_alg(token)?.parse::<Algorithm>().ok()?;
    let want = signature_chars(alg)?;
    let got = parts[2].len();
    (got < want).then(|| Finding {
        kind: FindingKind::Truncated,
        detail: format!(
            "the signature has {got} of the {want} characters {alg:?} produces: the token was cut \
             off (a column or cookie size limit, or an incomplete copy)"
        ),
    })
}

/// Key material a confused issuer may have used instead of this server's key bytes.
struct Suspect {
    cause: Cause,
    bytes: Vec<u8>,
}

fn suspects(keys: &Keys) -> Vec<Suspect> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let k = &keys.current.bytes;
    let mut out: Vec<Suspect> = vec![];
    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        let bytes = engine.encode(k).into_bytes();
        if !out.iter().any(|s| s.bytes == bytes) {
            out.push(Suspect {
                cause: Cause::Base64EncodedSecret,
                bytes,
            });
        }
    }
    if let Some(decoded) = std::str::from_utf8(k).ok().and_then(decode_base64)
        && &decoded != k
    {
        out.push(Suspect {
            cause: Cause::Base64DecodedSecret,
            bytes: decoded,
        });
    }
    out
}

/// The signature section: checked, with the likely cause when it does not verify.
pub(super) fn analyse(
    keys: &Keys,
    auth: &AuthSettings,
    token: &str,
    transit: &Transit,
    now: DateTime<Utc>,
) -> SignatureInfo {
    use SignatureStatus::*;
    if token.is_empty() {
        return SignatureInfo::new(NotChecked);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return SignatureInfo::new(NotChecked).because(
            Cause::Oversized,
            format!(
                "the token is {} bytes; anything above {MAX_TOKEN_BYTES} is refused before parsing",
                token.len()
            ),
            Some("A session token is a few hundred bytes: check what the client sends.".into()),
        );
    }
    let damage = Damage::of(transit);
    let parts: Vec<&str> = token.split('.').collect();
    let alg_name = header_alg(token);
    let Some(alg_name) =
        alg_name.filter(|_| parts.len() == 3 && jsonwebtoken::decode_header(token).is_ok())
    else {
        return damage
            .explain(NotChecked)
            .or_else(|| damage.truncated(SignatureInfo::new(NotChecked), TRUNCATED_HINT))
            .unwrap_or_else(|| not_a_jwt(token, parts.len()));
    };
    let mut info = SignatureInfo::new(NotChecked);
    info.algorithm = Some(alg_name.clone());
    let Some(alg) = alg_name
        .parse::<Algorithm>()
        .ok()
        .filter(|a| keys.algorithms.contains(a))
    else {
        return algorithm_refused(keys, auth, token, &alg_name, info);
    };
    if !is_base64url(parts[2]) {
        return damage
            .explain(NotChecked)
            .map(|s| SignatureInfo {
                algorithm: info.algorithm.clone(),
                ..s
            })
            .or_else(|| damage.truncated(info.clone(), TRUNCATED_HINT))
            .unwrap_or_else(|| {
                info.because(
                    Cause::Malformed,
                    "the signature part is not base64url".into(),
                    Some("Check what alters the token on the way.".into()),
                )
            });
    }
    if let Some(key) = accepted_key(keys, token, alg, now) {
        info.status = Valid;
        info.key = Some(key);
        return info;
    }
    info.status = Invalid;
    if transit
        .repaired
        .as_ref()
        .is_some_and(|r| r.signature == Valid)
        && let Some(s) = damage.explain(Invalid)
    {
        return SignatureInfo {
            algorithm: info.algorithm,
            ..s
        };
    }
    if let Some(s) = damage.truncated(
        info.clone(),
        "Send the whole token: check column sizes, cookie limits and copy-paste.",
    ) {
        return s;
    }
    why_invalid(keys, auth, token, alg, &alg_name, now, info)
}

const TRUNCATED_HINT: &str = "Send the whole token; check length limits on the way.";

/// Transit findings, split into damage that can be undone and a cut-off token.
struct Damage<'a> {
    transit: &'a Transit,
    undoable: Vec<&'a Finding>,
    truncated: Option<&'a Finding>,
}

impl<'a> Damage<'a> {
    fn of(transit: &'a Transit) -> Self {
        let is_cut =
            |f: &&Finding| matches!(f.kind, FindingKind::Truncated | FindingKind::Oversized);
        Damage {
            transit,
            undoable: transit.findings.iter().filter(|f| !is_cut(f)).collect(),
            truncated: transit
                .findings
                .iter()
                .find(|f| f.kind == FindingKind::Truncated),
        }
    }

    /// "Mangled in transit", with what the token gets once the damage is undone.
    fn explain(&self, status: SignatureStatus) -> Option<SignatureInfo> {
        let repaired = self.transit.repaired.as_ref()?;
        if self.undoable.is_empty() {
            return None;
        }
        let what = self
            .undoable
            .iter()
            .map(|f| f.detail.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let outcome = if repaired.signature == SignatureStatus::Valid {
            format!(
                "with that undone the signature is valid and the token would get {}",
                repaired.verdict
            )
        } else {
            format!(
                "even with that undone the signature is {} (verdict {}){}",
                repaired.signature,
                repaired.verdict,
                self.truncated
                    .map(|t| format!("; besides, {}", t.detail))
                    .unwrap_or_default()
            )
        };
        Some(SignatureInfo::new(status).because(
            Cause::MangledInTransit,
            format!("the token was altered on the way: {what}; {outcome}."),
            Some(
                "Send the token exactly as login returned it: no quotes, no extra URL-encoding, \
                 one 'Bearer ' at most (only in the Authorization header), no line breaks."
                    .into(),
            ),
        ))
    }

    fn truncated(&self, info: SignatureInfo, hint: &str) -> Option<SignatureInfo> {
        self.truncated
            .map(|t| info.because(Cause::Truncated, t.detail.clone(), Some(hint.into())))
    }
}

fn not_a_jwt(token: &str, parts: usize) -> SignatureInfo {
    let detail = if parts != 3 {
        format!("a JWT has 3 dot-separated parts, this has {parts}")
    } else if header_alg(token).is_none() {
        "the header part is not base64url JSON with an \"alg\"".to_string()
    } else {
        "the header is not a valid JWT header".to_string()
    };
    SignatureInfo::new(SignatureStatus::NotChecked).because(
        Cause::Malformed,
        detail,
        Some("This is not a JWT issued by a login: check what the client sends.".into()),
    )
}

/// Refused before any signature check; still find out what it is signed with.
fn algorithm_refused(
    keys: &Keys,
    auth: &AuthSettings,
    token: &str,
    alg_name: &str,
    info: SignatureInfo,
) -> SignatureInfo {
    let allowed = auth.algorithms.join(", ");
    let (detail, hint) = match alg_name.parse::<Algorithm>().ok() {
        _ if alg_name.eq_ignore_ascii_case("none") => (
            "alg is \"none\": the token is unsigned, which is never accepted".to_string(),
            "Sign tokens with the shared secret (HS256).".to_string(),
        ),
        None => (
            format!("alg {alg_name:?} is not an algorithm this server knows"),
            format!("Sign with one of auth.algorithms ({allowed})."),
        ),
        Some(a) if !HMAC.contains(&a) => (
            format!(
                "alg {alg_name} is a public-key algorithm; this server verifies shared-secret \
                 HMAC only and accepts {allowed}"
            ),
            "Have the issuer sign with the shared secret (HS256), or put a gateway that \
             verifies public-key tokens in front."
                .to_string(),
        ),
        Some(a) => {
            let with = if hmac_matches(token, a, &keys.current.bytes) {
                "with this server's secret".to_string()
            } else if let Some(s) = suspects(keys)
                .into_iter()
                .find(|s| hmac_matches(token, a, &s.bytes))
            {
                format!(
                    "with the {} of this server's secret",
                    suspect_words(s.cause)
                )
            } else {
                "and not with this server's secret either".to_string()
            };
            (
                format!("signed with {alg_name} {with}, but auth.algorithms allows only {allowed}"),
                format!(
                    "Add \"{alg_name}\" to auth.algorithms (IM_AUTH__ALGORITHMS), or have the \
                     issuer sign with {}.",
                    auth.algorithms[0]
                ),
            )
        }
    };
    info.because(Cause::AlgorithmNotAllowed, detail, Some(hint))
}

/// A well-formed token whose signature fails: try each suspect key and algorithm in turn.
fn why_invalid(
    keys: &Keys,
    auth: &AuthSettings,
    token: &str,
    alg: Algorithm,
    alg_name: &str,
    now: DateTime<Utc>,
    info: SignatureInfo,
) -> SignatureInfo {
    let allowed = auth.algorithms.join(", ");
    for (i, k) in keys.previous.iter().enumerate() {
        if let Some(until) = k.valid_until
            && until < now
            && hmac_matches(token, alg, &k.bytes)
        {
            return info.because(
                Cause::PreviousSecretExpired,
                format!(
                    "signed with {}, which stopped being accepted {} ({})",
                    previous_label(i, k),
                    relative(until, now, "", "").trim(),
                    iso(until)
                ),
                Some(
                    "The issuer still signs with the old secret after the rotation: give it the \
                     current one (or log in again for a fresh token); extend valid_until only \
                     while clients migrate."
                        .into(),
                ),
            );
        }
    }
    for s in suspects(keys) {
        if hmac_matches(token, alg, &s.bytes) {
            return info.because(
                s.cause,
                suspect_detail(s.cause),
                Some(suspect_hint(auth.jwt_secret_encoding, s.cause)),
            );
        }
    }
    let mut candidates: Vec<Vec<u8>> = vec![keys.current.bytes.clone()];
    candidates.extend(suspects(keys).into_iter().map(|s| s.bytes));
    for other in HMAC.into_iter().filter(|a| *a != alg) {
        if candidates.iter().any(|k| hmac_matches(token, other, k)) {
            return info.because(
                Cause::AlgorithmMismatch,
                format!(
                    "the signature is {other:?} over this server's secret, but the header says \
                     {alg_name}: the issuer labels its tokens with the wrong alg, or the header \
                     was rewritten"
                ),
                Some(format!(
                    "Make the issuer sign with the algorithm it declares ({allowed} accepted here)."
                )),
            );
        }
    }
    let previous = match keys.previous.len() {
        0 => String::new(),
        n => format!(" nor the {n} previous secret(s)"),
    };
    info.because(
        Cause::OtherSecret,
        format!(
            "signed with another secret: it verifies with neither this server's secret nor its \
             base64 forms{previous}. This server's secret has fingerprint {}",
            keys.current.fingerprint
        ),
        Some(
            "Give the issuer and this server the same secret. Compare fingerprints, never \
             secrets: `printf %s \"$SECRET\" | sha256sum | cut -c1-12` on the issuer's side \
             against the one above (`im-server config` prints it too)."
                .into(),
        ),
    )
}

fn suspect_words(cause: Cause) -> &'static str {
    match cause {
        Cause::Base64EncodedSecret => "base64-encoded form",
        _ => "base64-decoded bytes",
    }
}

fn suspect_detail(cause: Cause) -> String {
    match cause {
        Cause::Base64EncodedSecret => {
            "signed with the base64-encoded form of this server's secret: \
             the issuer uses the base64 text itself as the key"
                .into()
        }
        _ => "signed with the base64-decoded bytes of this server's secret: the issuer decodes \
              the shared secret from base64, this server uses its text"
            .into(),
    }
}

fn suspect_hint(enc: SecretEncoding, cause: Cause) -> String {
    match (cause, enc) {
        (Cause::Base64EncodedSecret, SecretEncoding::Base64) => {
            "This server decodes auth.jwt_secret from base64 (jwt_secret_encoding = \"base64\") \
             but the issuer signs with the text: set auth.jwt_secret_encoding = \"utf8\" here \
             (IM_AUTH__JWT_SECRET_ENCODING=utf8), or make the issuer decode it."
                .into()
        }
        (Cause::Base64EncodedSecret, _) => "The issuer holds the base64 form of this server's \
             secret and signs with that text: give it the raw secret, or make it decode its \
             value before signing."
            .into(),
        (_, SecretEncoding::Utf8) => "Set auth.jwt_secret_encoding = \"base64\" here \
             (IM_AUTH__JWT_SECRET_ENCODING=base64) so both sides use the decoded bytes."
            .into(),
        _ => "Both sides must use the same key bytes: make the issuer stop decoding the \
              secret a second time, and compare `im-server config --fingerprint` on both sides."
            .into(),
    }
}
