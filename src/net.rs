//! What a request says about where it came from: the client address (honouring
//! `server.trust_proxy`) and whether its `Origin` is allowed. Shared by HTTP and Socket.IO.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use http::request::Parts;

use crate::config::{Settings, TrustProxy};

/// The TCP peer, as axum's `ConnectInfo` recorded it.
pub fn peer_addr(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ci| ci.0.ip())
}

/// The client address: the peer, or — when the peer is a trusted proxy — the right-most
/// `X-Forwarded-For` hop that is not itself a trusted proxy (the left-most is client-controlled
/// and spoofable), falling back to `X-Real-IP`.
pub fn client_ip(parts: &Parts, trust: &TrustProxy) -> Option<IpAddr> {
    let peer = peer_addr(parts)?;
    if !trust.trusts(peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    if let Some(ip) = forwarded.iter().rev().find(|ip| !trust.trusts(**ip)) {
        return Some(*ip);
    }
    if let Some(first) = forwarded.first() {
        return Some(*first);
    }
    parts
        .headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse().ok())
        .or(Some(peer))
}

pub fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether `origin` may open a socket / make credentialed requests. No `Origin` header at all
/// (a server-side client, curl) is allowed: cross-site hijacking needs a browser, which always
/// sends one.
pub fn origin_allowed(settings: &Settings, origin: Option<&str>) -> bool {
    match (settings.allowed_origins(), origin) {
        (None, _) | (_, None) => true,
        (Some(list), Some(o)) => list.iter().any(|a| a == o.trim_end_matches('/')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(peer: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().uri("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (mut p, _) = b.body(()).unwrap().into_parts();
        p.extensions
            .insert(ConnectInfo::<SocketAddr>(peer.parse().unwrap()));
        p
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let xff = [("x-forwarded-for", "198.51.100.9, 203.0.113.7")];
        let off = TrustProxy::All(false);
        assert_eq!(
            client_ip(&parts("10.0.0.2:5000", &xff), &off)
                .unwrap()
                .to_string(),
            "10.0.0.2"
        );
        let all = TrustProxy::All(true);
        // Trusting every hop (Express's `trust proxy = true`) takes the left-most entry.
        assert_eq!(
            client_ip(&parts("10.0.0.2:5000", &xff), &all)
                .unwrap()
                .to_string(),
            "198.51.100.9"
        );
        let cidrs = TrustProxy::Cidrs(vec!["10.0.0.0/8".into(), "203.0.113.7".into()]);
        assert_eq!(
            client_ip(&parts("10.0.0.2:5000", &xff), &cidrs)
                .unwrap()
                .to_string(),
            "198.51.100.9"
        );
        // A peer outside the trusted list cannot spoof its address.
        assert_eq!(
            client_ip(&parts("192.0.2.1:5000", &xff), &cidrs)
                .unwrap()
                .to_string(),
            "192.0.2.1"
        );
        let real = [("x-real-ip", "198.51.100.20")];
        assert_eq!(
            client_ip(&parts("10.0.0.2:5000", &real), &all)
                .unwrap()
                .to_string(),
            "198.51.100.20"
        );
    }

    #[test]
    fn origins_are_compared_without_trailing_slash() {
        let mut s = crate::config::Settings::default();
        assert!(
            origin_allowed(&s, Some("http://anything.example")),
            "development: any"
        );
        s.cors.origins = Some(vec!["https://app.example/".into()]);
        assert!(origin_allowed(&s, Some("https://app.example")));
        assert!(!origin_allowed(&s, Some("https://evil.example")));
        assert!(origin_allowed(&s, None), "no Origin: not a browser");
        s.cors.origins = None;
        s.server.profile = "production".into();
        assert!(
            !origin_allowed(&s, Some("https://app.example")),
            "production: none by default"
        );
    }
}

/// This machine's name: the default node id and what the Admin UI shows per server.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}
