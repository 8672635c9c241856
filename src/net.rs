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
