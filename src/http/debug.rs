//! `GET /debug/transport` (contract §3): what the server saw of this very request, and a hint
//! for each misconfiguration it can spot from here — a proxy that drops the WebSocket upgrade,
//! forwarded headers nobody trusts (or trust nobody uses), an Origin outside `cors.origins`,
//! a proxy read timeout shorter than the ping cycle. Point a browser, `curl` or the proxy's
//! health check at it through the same path the clients take.
//!
//! Never echoes `Authorization`, `Cookie` or `X-Api-Key`: only whether they arrived.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use http::request::Parts;
use serde_json::{Value, json};

use super::HttpState;
use super::reply::Reply;
use crate::config::{Settings, TrustProxy};
use crate::error::AppError;
use crate::net;
use crate::state::AppState;

pub fn router() -> Router<HttpState> {
    Router::new().route("/debug/transport", get(transport))
}

/// Headers a reverse proxy sets to say who the client is.
const FORWARDED: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-real-ip",
    "forwarded",
];

async fn transport(State(state): State<AppState>, parts: Parts) -> Result<Reply<Value>, AppError> {
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let q = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let proxy_read_timeout = match q("proxy_read_timeout")
        .or(net::header(&parts, "x-proxy-read-timeout"))
    {
        None => None,
        Some(v) => Some(parse_secs(v).ok_or_else(|| {
            AppError::bad_request(format!(
                "proxy_read_timeout: {v:?} is not a duration (seconds, or nginx style: 60s, 5m, 1h)"
            ))
        })?),
    };
    Ok(Reply::ok(
        "What the server saw of this request",
        report(
            state.settings(),
            &parts,
            q("expect"),
            q("transport"),
            proxy_read_timeout,
        ),
    ))
}

/// `60`, `60s`, `5m`, `1h` → seconds.
fn parse_secs(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, mult) = match v.char_indices().last()? {
        (i, 's') => (&v[..i], 1),
        (i, 'm') => (&v[..i], 60),
        (i, 'h') => (&v[..i], 3600),
        _ => (v, 1),
    };
    num.trim().parse::<u64>().ok().map(|n| n * mult)
}

fn present(parts: &Parts, name: &str) -> &'static str {
    if parts.headers.contains_key(name) {
        "present"
    } else {
        "absent"
    }
}

fn first_value(parts: &Parts, name: &str) -> Option<String> {
    net::header(parts, name)
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn trust_json(t: &TrustProxy) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

fn report(
    settings: &Settings,
    parts: &Parts,
    expect: Option<&str>,
    transport_param: Option<&str>,
    proxy_read_timeout: Option<u64>,
) -> Value {
    let trust = &settings.server.trust_proxy;
    let peer = net::peer_addr(parts);
    let client = net::client_ip(parts, trust);
    let peer_trusted = peer.is_some_and(|p| trust.trusts(p));
    let mut hints: Vec<String> = vec![];

    // Scheme and host: from the proxy's headers only when the peer is a trusted proxy.
    let fwd_proto = first_value(parts, "x-forwarded-proto");
    let fwd_host = first_value(parts, "x-forwarded-host");
    let (scheme, scheme_source) = match (&fwd_proto, peer_trusted) {
        (Some(p), true) => (p.clone(), "x-forwarded-proto (trusted proxy)"),
        _ => (
            "http".to_string(),
            "connection (this server speaks plain HTTP)",
        ),
    };
    let host_header = net::header(parts, "host")
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()));
    let (host, host_source) = match (&fwd_host, peer_trusted) {
        (Some(h), true) => (Some(h.clone()), "x-forwarded-host (trusted proxy)"),
        _ => (host_header, "host header"),
    };

    let forwarded: serde_json::Map<String, Value> = FORWARDED
        .iter()
        .map(|h| {
            let values: Vec<&str> = parts
                .headers
                .get_all(*h)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let v = if values.is_empty() {
                Value::Null
            } else {
                Value::String(values.join(", "))
            };
            (h.to_string(), v)
        })
        .collect();
    let any_forwarded = forwarded.values().any(|v| !v.is_null());
    let peer_s = peer.map(|p| p.to_string()).unwrap_or_else(|| "?".into());

    if any_forwarded && !trust.enabled() {
        let names: Vec<&str> = forwarded
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| k.as_str())
            .collect();
        hints.push(format!(
            "{} arrived from {peer_s}, but server.trust_proxy = false, so they are ignored and the \
             client address is the proxy's ({peer_s}). If {peer_s} is your reverse proxy, set \
             server.trust_proxy = [\"{peer_s}/32\"] (IM_SERVER__TRUST_PROXY); never `true` if \
             clients can reach this port directly.",
            names.join(", ")
        ));
    } else if any_forwarded && !peer_trusted {
        hints.push(format!(
            "forwarded headers arrived from {peer_s}, which is not in server.trust_proxy, so they \
             are ignored: add the proxy's address to server.trust_proxy, or this request bypassed \
             the proxy."
        ));
    } else if trust.enabled() && !any_forwarded {
        if peer_trusted {
            hints.push(format!(
                "server.trust_proxy trusts {peer_s}, but no X-Forwarded-For / X-Real-IP arrived: \
                 either the proxy does not set them (nginx: proxy_set_header X-Forwarded-For \
                 $proxy_add_x_forwarded_for; proxy_set_header X-Real-IP $remote_addr; \
                 proxy_set_header X-Forwarded-Proto $scheme;) or this request bypassed the proxy{}.",
                if matches!(trust, TrustProxy::All(true)) {
                    " — and with trust_proxy = true any direct client can pick its own address with \
                     X-Forwarded-For: list your proxies' CIDRs instead"
                } else {
                    ""
                }
            ));
        } else {
            hints.push(format!(
                "server.trust_proxy is set, but this request came straight from {peer_s}, not through \
                 a listed proxy: clients can reach this port without the proxy."
            ));
        }
    }

    // WebSocket upgrade: hop-by-hop headers a proxy drops unless told to pass them.
    let upgrade = net::header(parts, "upgrade").map(str::to_string);
    let connection = net::header(parts, "connection").map(str::to_string);
    let upgrade_ws = upgrade
        .as_deref()
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let connection_upgrade = connection.as_deref().is_some_and(|c| {
        c.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    });
    let looks_like_ws = expect.is_some_and(|e| e.eq_ignore_ascii_case("websocket"))
        || transport_param.is_some_and(|t| t == "websocket")
        || parts.headers.contains_key("sec-websocket-key")
        || parts.headers.contains_key("sec-websocket-version");
    if looks_like_ws && !upgrade_ws {
        hints.push(
            "this looks like a WebSocket attempt but no `Upgrade: websocket` header arrived: the \
             proxy in front drops it (it is hop-by-hop). In nginx, in the location for /socket.io/: \
             proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header \
             Connection \"upgrade\";. Until then clients stay on HTTP long-polling or fail with \
             `websocket error`."
                .into(),
        );
    } else if upgrade_ws && !connection_upgrade {
        hints.push(
            "`Upgrade: websocket` arrived without `Connection: upgrade`: the proxy rewrites the \
             Connection header; in nginx: proxy_set_header Connection \"upgrade\";"
                .into(),
        );
    }
    if looks_like_ws && parts.version == http::Version::HTTP_10 {
        hints.push(
            "the request arrived as HTTP/1.0, which cannot upgrade to WebSocket: nginx proxies \
             with HTTP/1.0 unless told `proxy_http_version 1.1;`."
                .into(),
        );
    }

    // Origin: the same check the /im handshake makes.
    let origin = net::header(parts, "origin").map(str::to_string);
    let origin_allowed = net::origin_allowed(settings, origin.as_deref());
    let allowed_origins = match settings.allowed_origins() {
        None => json!("any"),
        Some(list) => json!(list),
    };
    if let Some(o) = &origin
        && !origin_allowed
    {
        let now = match settings.allowed_origins() {
            Some(list) if list.is_empty() => {
                "empty (the production default: no browser origin is allowed)".to_string()
            }
            Some(list) => format!("[{}]", list.join(", ")),
            None => "any".into(),
        };
        hints.push(format!(
            "Origin {o} is not in cors.origins (now {now}): browsers on that page get CORS errors \
             from the API and ORIGIN_DENIED from /im. Add it: cors.origins = [\"{o}\"] in \
             im-server.toml, or IM_CORS__ORIGINS / FRONTEND_URL (a comma list)."
        ));
    }

    // Proxy read timeout vs the Engine.IO ping cycle.
    let sio = &settings.socketio;
    let cycle_ms = sio.ping_interval_ms + sio.ping_timeout_ms;
    if let Some(secs) = proxy_read_timeout
        && secs.saturating_mul(1000) < cycle_ms
    {
        hints.push(format!(
            "the proxy read timeout ({secs}s) is shorter than ping_interval + ping_timeout \
             ({}s): the proxy will cut quiet connections before the server's ping arrives. Set \
             it above {}s (nginx: proxy_read_timeout {}s;) or lower socketio.ping_interval_ms.",
            cycle_ms / 1000,
            cycle_ms / 1000,
            (cycle_ms / 1000 + 15).max(60)
        ));
    }

    json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "http_version": format!("{:?}", parts.version),
        "scheme": scheme,
        "scheme_source": scheme_source,
        "host": host,
        "host_source": host_source,
        "client_address": client.map(|c| c.to_string()),
        "peer_address": peer.map(|p| p.to_string()),
        "peer_trusted_as_proxy": peer_trusted,
        "trust_proxy": trust_json(trust),
        "forwarded": forwarded,
        "websocket": {
            "upgrade": upgrade,
            "connection": connection,
            "upgrade_arrived": upgrade_ws && connection_upgrade,
            "sec_websocket_key": present(parts, "sec-websocket-key"),
            "looks_like_websocket_attempt": looks_like_ws,
        },
        "origin": {
            "value": origin,
            "allowed": origin_allowed,
            "allowed_origins": allowed_origins,
        },
        "credentials": {
            "authorization": present(parts, "authorization"),
            "cookie": present(parts, "cookie"),
            "x_api_key": present(parts, "x-api-key"),
        },
        "user_agent": net::header(parts, "user-agent"),
        "socketio": {
            "path": "/socket.io/",
            "namespace": crate::realtime::NAMESPACE,
            "ping_interval_ms": sio.ping_interval_ms,
            "ping_timeout_ms": sio.ping_timeout_ms,
            "connect_timeout_ms": sio.connect_timeout_ms,
            "max_payload_bytes": sio.max_payload_bytes,
        },
        "proxy_read_timeout_secs": proxy_read_timeout,
        "hints": hints,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_secs;

    #[test]
    fn nginx_durations_parse() {
        assert_eq!(parse_secs("60"), Some(60));
        assert_eq!(parse_secs("30s"), Some(30));
        assert_eq!(parse_secs("5m"), Some(300));
        assert_eq!(parse_secs("1h"), Some(3600));
        assert_eq!(parse_secs("soon"), None);
    }
}
