//! What the Admin UI is shown of this node: its `/im` sockets in the UI's `SerializedSocket`
//! shape, and its `server_stats`.
//!
//! Nothing here may carry a token: `Authorization`, `Cookie` (and the other credential
//! headers) and the token query parameters (`auth.query_params`) are replaced by
//! [`REDACTED`], the handshake `auth` payload is never included, and `token:<hash>` rooms are
//! shortened to a fingerprint.

use std::collections::BTreeMap;

use http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;
use socketioxide_core::adapter::Room;

use crate::net;
use crate::realtime::{NAMESPACE as IM, SocketSession, connect};
use crate::state::AppState;

pub const REDACTED: &str = "[redacted]";

/// Request headers whose values are credentials.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "proxy-authorization",
    "x-api-key",
];

/// One `/im` socket as `@socket.io/admin-ui` reads it (its `SerializedSocket`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdminSocket {
    pub id: String,
    /// The UI groups sockets by client; every `/im` socket is its own Engine.IO client here.
    pub client_id: String,
    pub transport: String,
    pub nsp: String,
    /// Who is on it: `{userId, username, userType, displayName, node}`.
    pub data: Value,
    pub handshake: Handshake,
    pub rooms: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Handshake {
    /// The client address as the server computed it (`server.trust_proxy` applies).
    pub address: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub query: BTreeMap<String, String>,
    /// Connection time, ms since the epoch (the UI shows it as the creation date).
    pub issued: i64,
    pub secure: bool,
    pub time: String,
    pub url: String,
    pub xdomain: bool,
}

/// What the feed compares between ticks to notice changes of a socket: cheap to build for
/// every socket on every tick (room names are shown only when something changed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    pub transport: &'static str,
    /// Sorted.
    pub rooms: Vec<Room>,
}

/// The `/im` sockets of this node that finished their handshake, with their current shape.
/// `known` sockets are not asked for their session again (it costs a clone each).
pub fn local_shapes<A: Adapter>(
    io: &SocketIo<A>,
    known: &dyn Fn(Sid) -> bool,
) -> Vec<(SocketRef<A>, Shape)> {
    let Some(ns) = io.of(IM) else { return vec![] };
    ns.sockets()
        .into_iter()
        .filter(|s| known(s.id) || s.extensions.get::<SocketSession>().is_some())
        .map(|s| {
            let mut rooms = s.rooms();
            rooms.sort_unstable();
            let shape = Shape {
                transport: connect::transport_of(&s).as_str(),
                rooms,
            };
            (s, shape)
        })
        .collect()
}

pub fn serialize<A: Adapter>(
    s: &SocketRef<A>,
    shape: Shape,
    state: &AppState,
) -> Option<AdminSocket> {
    let ss = s.extensions.get::<SocketSession>()?;
    let user = &ss.session.user;
    let parts = s.req_parts();
    let connected = ss.info.connected_at;
    Some(AdminSocket {
        id: s.id.to_string(),
        client_id: s.id.to_string(),
        transport: shape.transport.to_string(),
        nsp: IM.to_string(),
        data: json!({
            "userId": user.id,
            "username": user.username,
            "userType": user.user_type,
            "displayName": user.display_name,
            "node": state.node_id(),
        }),
        handshake: Handshake {
            address: ss.info.ip.clone(),
            headers: redacted_headers(parts),
            query: redacted_query(parts, &state.settings().auth.query_params),
            issued: connected.timestamp_millis(),
            secure: is_secure(parts, state),
            time: crate::clock::iso(connected),
            url: redacted_url(parts, &state.settings().auth.query_params),
            xdomain: net::header(parts, "origin").is_some_and(|o| !same_host(o, parts)),
        },
        rooms: shape.rooms.iter().map(|r| room_label(r)).collect(),
    })
}

/// Room names as the UI shows them: `token:<sha256 of the token>` keeps 12 hex digits, enough
/// to tell a token's sockets apart, not a credential lookup key.
pub fn room_label(room: &str) -> String {
    match room.strip_prefix("token:") {
        Some(hash) if hash.len() > 12 => format!("token:{}…", &hash[..12]),
        _ => room.to_string(),
    }
}

fn redacted_headers(parts: &Parts) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &parts.headers {
        let shown = if SECRET_HEADERS.contains(&name.as_str()) {
            REDACTED.to_string()
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        out.entry(name.as_str().to_string())
            .and_modify(|v| {
                if shown != REDACTED {
                    v.push_str(", ");
                    v.push_str(&shown);
                }
            })
            .or_insert(shown);
    }
    out
}

fn query_pairs(parts: &Parts, token_params: &[String]) -> Vec<(String, String)> {
    let query = parts.uri.query().unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| {
            let v = if token_params.iter().any(|p| p == k.as_ref()) {
                REDACTED.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect()
}

fn redacted_query(parts: &Parts, token_params: &[String]) -> BTreeMap<String, String> {
    query_pairs(parts, token_params).into_iter().collect()
}

fn redacted_url(parts: &Parts, token_params: &[String]) -> String {
    let pairs = query_pairs(parts, token_params);
    if pairs.is_empty() {
        return parts.uri.path().to_string();
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{}?{query}", parts.uri.path())
}

fn same_host(origin: &str, parts: &Parts) -> bool {
    let host = net::header(parts, "host").unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

fn is_secure(parts: &Parts, state: &AppState) -> bool {
    let peer_trusted =
        net::peer_addr(parts).is_some_and(|ip| state.settings().server.trust_proxy.trusts(ip));
    peer_trusted && net::header(parts, "x-forwarded-proto") == Some("https")
}

/// `server_stats` of this node, in the shape of the UI's `ServerStats`.
pub fn server_stats<A: Adapter>(
    io: &SocketIo<A>,
    state: &AppState,
    aggregated_events: Vec<Value>,
) -> Value {
    let count = |path: &str| io.of(path).map_or(0, |ns| ns.sockets().len());
    let polling = io.of(IM).map_or(0, |ns| {
        ns.sockets()
            .iter()
            .filter(|s| connect::transport_of(s) == crate::auth::Transport::Polling)
            .count()
    });
    let (im, admin) = (count(IM), count(super::NAMESPACE));
    json!({
        "serverId": state.node_id(),
        "hostname": crate::net::hostname(),
        "pid": std::process::id(),
        "uptime": state.uptime_secs(),
        "clientsCount": im + admin,
        "pollingClientsCount": polling,
        "aggregatedEvents": aggregated_events,
        "namespaces": [
            {"name": IM, "socketsCount": im},
            {"name": super::NAMESPACE, "socketsCount": admin},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::source::tests::parts;

    #[test]
    fn credentials_never_reach_the_ui() {
        let p = parts(
            "/socket.io/?EIO=4&transport=polling&token=eyJhbGciOi.x.y&jwt_token=abc&room=lobby",
            &[
                ("authorization", "Bearer eyJhbGciOi.x.y"),
                ("cookie", "token=eyJhbGciOi.x.y; theme=dark"),
                ("user-agent", "test-agent"),
            ],
        );
        let params = vec!["token".to_string(), "jwt_token".to_string()];
        let h = redacted_headers(&p);
        assert_eq!(h["authorization"], REDACTED);
        assert_eq!(h["cookie"], REDACTED);
        assert_eq!(h["user-agent"], "test-agent");
        let q = redacted_query(&p, &params);
        assert_eq!(q["token"], REDACTED);
        assert_eq!(q["jwt_token"], REDACTED);
        assert_eq!(q["room"], "lobby");
        let url = redacted_url(&p, &params);
        assert!(!url.contains("eyJ") && !url.contains("abc"), "{url}");
        assert!(url.contains("room=lobby"), "{url}");
    }

    #[test]
    fn token_rooms_show_a_fingerprint() {
        let hash = "a".repeat(64);
        assert_eq!(room_label(&format!("token:{hash}")), "token:aaaaaaaaaaaa…");
        assert_eq!(room_label("user:7"), "user:7");
    }
}
