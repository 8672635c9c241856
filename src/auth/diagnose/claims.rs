//! The header and claims sections of a diagnosis: what the token states, read without
//! trusting it, and what this server objects to in it.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{ClaimsInfo, HeaderInfo};
use crate::auth::jwt::{self, Keys, unverified_header};
use crate::clock::iso;
use crate::config::AuthSettings;

pub(super) fn header_info(keys: &Keys, token: &str) -> HeaderInfo {
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
    match unverified_header(token) {
        Ok(json) => {
            let s = |k: &str| json.get(k).and_then(Value::as_str).map(str::to_string);
            h.alg = s("alg");
            h.kid = s("kid");
            h.typ = s("typ");
            h.alg_allowed = h
                .alg
                .as_deref()
                .and_then(|a| a.parse::<jsonwebtoken::Algorithm>().ok())
                .is_some_and(|a| keys.algorithms.contains(&a));
            if h.alg.is_none() {
                h.error = Some("the header has no \"alg\"".into());
            } else if let Some(crit) = json.get("crit") {
                h.error = Some(format!(
                    "the header's \"crit\" ({crit}) names extensions this server does not \
                     implement, so it must refuse the token (RFC 7515 §4.1.11)"
                ));
            }
        }
        Err(e) => h.error = Some(format!("the header segment {e}")),
    }
    h
}

pub(super) fn claims_info(auth: &AuthSettings, token: &str, now: DateTime<Utc>) -> ClaimsInfo {
    let mut c = ClaimsInfo::default();
    if token.is_empty() {
        c.error = Some("no token".into());
        return c;
    }
    let Some(payload) = jwt::unverified_claims(token) else {
        c.error = Some("there is no payload segment (a JWT has three parts)".into());
        return c;
    };
    let json = match payload {
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
        v if crate::ids::user_id(v).is_none() => {
            p.push(format!("sub {v} is not a numeric user id"))
        }
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
}
