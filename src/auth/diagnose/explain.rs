//! The sentence under a diagnosis's verdict: why, and what to do next.

use super::{DbStatus, Diagnosis, FindingKind};
use crate::config::AuthSettings;
use crate::error::ErrorCode;

/// The sentence under the verdict: why, and what to do next.
pub(super) fn explain(
    auth: &AuthSettings,
    d: &Diagnosis,
    parsed: bool,
    verdict: Result<(), ErrorCode>,
    jwt_refused: bool,
) -> String {
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
    use ErrorCode::*;
    let code = match verdict {
        Ok(()) => {
            let key = match &d.signature.key {
                Some(k) if k != "current" => format!(" It is signed with the {k}."),
                _ => String::new(),
            };
            return format!(
                "Accepted: a handshake carrying this token connects as {}.{key}",
                user_label(d)
            );
        }
        Err(code) => code,
    };
    match code {
        TokenMalformed => {
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
        TokenInvalidSignature | TokenAlgorithmNotAllowed => {
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
        TokenExpired => match jwt_refused {
            true => format!(
                "The token {} ({}), beyond the {}s leeway. Log in again, or refresh it with \
                 auth:refresh before it expires.",
                d.claims.exp_relative.as_deref().unwrap_or("expired"),
                d.claims.exp_utc.as_deref().unwrap_or("?"),
                auth.leeway_secs
            ),
            false => format!(
                "The JWT is still valid but its user_tokens row expired at {}. Log in again.",
                d.db.expires_at.as_deref().unwrap_or("?")
            ),
        },
        TokenNotYetValid => {
            // `nbf` when the token has one, else the `iat` in the future that refused it.
            let (claim, utc, relative) = match &d.claims.nbf_utc {
                Some(utc) => ("nbf", Some(utc), &d.claims.nbf_relative),
                None => ("iat", d.claims.iat_utc.as_ref(), &d.claims.iat_relative),
            };
            format!(
                "The token's {claim} is {} ({}). If the issuer just created it, its clock is ahead \
                 of this server's: sync both with NTP, or raise auth.leeway_secs \
                 (now {}s) to cover the skew.",
                utc.map_or("?", String::as_str),
                relative.as_deref().unwrap_or("?"),
                auth.leeway_secs
            )
        }
        TokenClaimsInvalid => format!(
            "The claims do not fit this server: {}.",
            if d.claims.problems.is_empty() {
                "a required claim is missing or has the wrong type".to_string()
            } else {
                d.claims.problems.join("; ")
            }
        ),
        TokenNotFound => match &d.db.note {
            Some(n) if d.db.status == DbStatus::Found => {
                format!("{n}: the row was not issued for it.")
            }
            _ => "The JWT is valid but no user_tokens row has its hash: it was issued by another \
                  service or before the database was reset. Log in again (or set \
                  auth.require_db_record = false to accept JWT-only tokens)."
                .into(),
        },
        TokenRevoked => "The user_tokens row is revoked (logout, a newer login under \
                            kick_previous, or an administrator). Log in again."
            .into(),
        UserNotFound => format!(
            "The token's sub names user {} but no such user exists (deleted, or another \
             service's user ids).",
            d.claims.sub
        ),
        UserDisabled => format!("{} is disabled (users.is_active = false).", user_label(d)),
        AuthUnavailable => "The database could not be asked, so authentication fails closed. \
                               Check database.url and the database's health."
            .into(),
        TokenMissing => "The server sees no token.".into(),
        other => format!("Rejected with {other}."),
    }
}

fn finding_words(kind: FindingKind) -> &'static str {
    match kind {
        FindingKind::Quotes => "quotes around it",
        FindingKind::UrlEncoded => "URL-encoding",
        FindingKind::BearerTwice => "'Bearer ' twice",
        FindingKind::Whitespace => "whitespace inside",
        FindingKind::Truncated => "cut short",
        FindingKind::Oversized => "far too long",
    }
}

/// Capitalised, ending with a full stop, whatever the parts it was built from.
pub(super) fn sentence(s: &str) -> String {
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
