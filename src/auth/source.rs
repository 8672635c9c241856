//! Where a token comes from (contract §4): handshake `auth.token` → `Authorization: Bearer`
//! → query `?token=`/`?jwt_token=` → cookie. First found wins; each source can be disabled.
//! Both transports reduce to `http::request::Parts`, so this is written once.

use http::request::Parts;
use serde_json::Value;

use crate::config::{AuthSettings, TokenSource};

/// A token as received, trimmed and with one leading `Bearer ` removed: THE rule for every
/// source (the header's own scheme is that one `Bearer`). Nothing else is repaired: quotes,
/// URL-encoding or a second `Bearer` stay in the token, fail as `TOKEN_MALFORMED` and are
/// named by `diagnose`, on every source alike.
#[derive(Clone, PartialEq, Eq)]
pub struct RawToken(String);

impl RawToken {
    pub fn parse(s: &str) -> Option<RawToken> {
        let s = s.trim();
        let s = strip_bearer(s).unwrap_or(s).trim();
        (!s.is_empty() && !s.eq_ignore_ascii_case("bearer")).then(|| RawToken(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Safe to log: a fingerprint, never the token.
    pub fn fingerprint(&self) -> String {
        crate::config::fingerprint(self.0.as_bytes())
    }
}

impl std::fmt::Debug for RawToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawToken({})", self.fingerprint())
    }
}

pub fn strip_bearer(s: &str) -> Option<&str> {
    let (scheme, rest) = s.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case("bearer ").then_some(rest)
}

#[derive(Clone, Debug)]
pub struct Found {
    pub source: TokenSource,
    pub token: RawToken,
}

const ORDER: [TokenSource; 4] = [
    TokenSource::Auth,
    TokenSource::Header,
    TokenSource::Query,
    TokenSource::Cookie,
];

/// The first token found in `allowed` sources, in the contract's order.
pub fn find(
    parts: &Parts,
    auth_payload: Option<&Value>,
    cfg: &AuthSettings,
    allowed: &[TokenSource],
) -> Option<Found> {
    ORDER
        .into_iter()
        .filter(|s| allowed.contains(s))
        .find_map(|source| {
            let raw = raw_from(source, parts, auth_payload, cfg)?;
            Some(Found {
                source,
                token: RawToken::parse(&raw)?,
            })
        })
}

/// The raw value `source` carries, read with the configured query names and cookie name.
fn raw_from(
    source: TokenSource,
    parts: &Parts,
    auth_payload: Option<&Value>,
    cfg: &AuthSettings,
) -> Option<String> {
    match source {
        TokenSource::Auth => from_auth(auth_payload),
        TokenSource::Header => from_header(parts),
        TokenSource::Query => from_query(parts, &cfg.query_params),
        TokenSource::Cookie => from_cookie(parts, &cfg.cookie_name),
    }
}

/// Query names clients commonly use by mistake (or other frameworks' defaults).
const OTHER_QUERY_NAMES: &[&str] = &[
    "access_token",
    "auth",
    "authorization",
    "jwt",
    "accessToken",
];

/// When no token was found: where a token *was* sent but not read — a disabled source, another
/// query parameter name, an `Authorization` header without `Bearer`. For the log line, so
/// "the token never arrives" names its cause.
pub fn ignored(
    parts: &Parts,
    auth_payload: Option<&Value>,
    cfg: &AuthSettings,
    allowed: &[TokenSource],
) -> Option<String> {
    let mut seen: Vec<String> = ORDER
        .into_iter()
        .filter(|s| !allowed.contains(s))
        .filter(|&s| raw_from(s, parts, auth_payload, cfg).is_some())
        .map(|s| format!("{}(disabled)", s.as_str()))
        .collect();
    if let Some(name) = OTHER_QUERY_NAMES
        .iter()
        .find(|n| from_query(parts, &[n.to_string()]).is_some())
    {
        seen.push(format!("query:{name}(not in auth.query_params)"));
    }
    if let Some(v) = parts.headers.get(http::header::AUTHORIZATION)
        && strip_bearer(v.to_str().unwrap_or_default().trim()).is_none()
    {
        seen.push("header(not Bearer)".into());
    }
    (!seen.is_empty()).then(|| seen.join(","))
}

fn from_auth(payload: Option<&Value>) -> Option<String> {
    payload?.get("token")?.as_str().map(str::to_string)
}

/// The whole `Authorization: Bearer …` value, scheme included: [`RawToken::parse`] strips the
/// one `Bearer`, as for every other source, so `Bearer Bearer x` is not silently repaired here.
/// Bytes that are not ASCII are kept (lossily): the token was sent, so it is malformed, not
/// missing.
fn from_header(parts: &Parts) -> Option<String> {
    let bytes = parts.headers.get(http::header::AUTHORIZATION)?.as_bytes();
    let value = String::from_utf8_lossy(bytes);
    let value = value.trim();
    // Only the Bearer scheme carries a JWT; `Basic …` is someone else's business.
    strip_bearer(value)?;
    Some(value.to_string())
}

fn from_query(parts: &Parts, names: &[String]) -> Option<String> {
    let query = parts.uri.query()?;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    names.iter().find_map(|name| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
}

fn from_cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Handshake request parts with these headers (also used by `admin::snapshot`'s tests).
    pub(crate) fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn order_is_auth_header_query_cookie() {
        let cfg = crate::config::Settings::default().auth;
        let p = parts(
            "/socket.io/?EIO=4&token=q",
            &[("authorization", "Bearer h"), ("cookie", "a=1; token=c")],
        );
        let auth = serde_json::json!({"token": "Bearer a"});
        let all = &cfg.token_sources;
        assert_eq!(
            find(&p, Some(&auth), &cfg, all).unwrap().token.as_str(),
            "a"
        );
        let f = find(&p, None, &cfg, all).unwrap();
        assert_eq!((f.source, f.token.as_str()), (TokenSource::Header, "h"));
        let p = parts("/x?jwt_token=j%2Bk", &[("cookie", "token=c")]);
        let f = find(&p, None, &cfg, all).unwrap();
        assert_eq!((f.source, f.token.as_str()), (TokenSource::Query, "j+k"));
        let p = parts("/x", &[("cookie", "a=1; token=c")]);
        assert_eq!(
            find(&p, None, &cfg, all).unwrap().source,
            TokenSource::Cookie
        );
    }

    #[test]
    fn disabled_sources_and_empty_values_are_skipped() {
        let mut cfg = crate::config::Settings::default().auth;
        let p = parts("/x?token=q", &[("authorization", "Bearer h")]);
        assert!(find(&p, None, &cfg, &[TokenSource::Cookie]).is_none());
        assert_eq!(
            ignored(&p, None, &cfg, &[TokenSource::Cookie]).as_deref(),
            Some("header(disabled),query(disabled)")
        );
        cfg.token_sources = vec![TokenSource::Auth, TokenSource::Query];
        let auth = serde_json::json!({"token": "  "});
        let p = parts("/x?token=q", &[]);
        let f = find(&p, Some(&auth), &cfg, &cfg.token_sources).unwrap();
        assert_eq!(f.source, TokenSource::Query);
        let p = parts("/x?access_token=q", &[("authorization", "Basic eDp5")]);
        assert_eq!(
            ignored(&p, None, &cfg, &cfg.token_sources).as_deref(),
            Some("query:access_token(not in auth.query_params),header(not Bearer)")
        );
    }

    #[test]
    fn only_one_bearer_is_stripped() {
        assert_eq!(RawToken::parse(" bearer abc ").unwrap().as_str(), "abc");
        assert_eq!(
            RawToken::parse("Bearer Bearer abc").unwrap().as_str(),
            "Bearer abc"
        );
        assert!(RawToken::parse("Bearer ").is_none());
    }

    #[test]
    fn the_header_gets_the_same_one_bearer_rule_as_the_payload() {
        let cfg = crate::config::Settings::default().auth;
        let all = &cfg.token_sources;
        let p = parts("/x", &[("authorization", "Bearer Bearer abc")]);
        let from_header = find(&p, None, &cfg, all).unwrap().token;
        let auth = serde_json::json!({"token": "Bearer Bearer abc"});
        let from_auth = find(&p, Some(&auth), &cfg, all).unwrap().token;
        assert_eq!(from_header.as_str(), "Bearer abc");
        assert_eq!(from_header, from_auth);
        let mut b = http::Request::builder().uri("/x");
        b = b.header(
            "authorization",
            http::HeaderValue::from_bytes(b"Bearer ab\xc3\xa9c").unwrap(),
        );
        let p = b.body(()).unwrap().into_parts().0;
        let f = find(&p, None, &cfg, all).expect("a non-ASCII token is still a token");
        assert_eq!(
            (f.source, f.token.as_str()),
            (TokenSource::Header, "ab\u{e9}c")
        );
    }
}
