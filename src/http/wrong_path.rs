//! Contract §11: a client on the wrong path, or a WebSocket upgrade a proxy half-forwarded,
//! gets an immediate answer that says what to fix, instead of the demo page, a bare 404 or a
//! `101` that the proxy turns into a hang. Runs in front of the Socket.IO layer.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, header};

use crate::error::AppError;

/// Where Engine.IO is served (socketioxide's `req_path`).
const ENGINE_PATH: &str = "/socket.io";
/// The route that reports what arrived: it must see wrong and half upgrades to explain them.
const DIAGNOSTIC_PATH: &str = "/debug/transport";

pub async fn guard(req: Request, next: Next) -> Response {
    match misdirected(req.uri(), req.headers()) {
        Some(refusal) => refusal.into_response(),
        None => next.run(req).await,
    }
}

/// The answer for a request Socket.IO would get wrong, if this is one.
fn misdirected(uri: &http::Uri, headers: &HeaderMap) -> Option<AppError> {
    if uri.path() == DIAGNOSTIC_PATH {
        return None;
    }
    let on_engine_path = uri.path() == ENGINE_PATH || uri.path().starts_with("/socket.io/");
    if on_engine_path {
        return half_upgrade(headers).then(|| {
            AppError::bad_request(
                "This WebSocket handshake arrived with Sec-WebSocket-Key but without its \
                 'Upgrade: websocket' / 'Connection: upgrade' headers: a proxy on the way \
                 dropped them. nginx needs `proxy_http_version 1.1; proxy_set_header Upgrade \
                 $http_upgrade; proxy_set_header Connection \"upgrade\";` in this location.",
            )
        });
    }
    (is_upgrade(headers) || is_engine_query(uri)).then(|| {
        // The path is not echoed (nor the query: it may carry `?token=`).
        AppError::bad_request(
            "Socket.IO is served on path /socket.io/, not on this path. Connect with \
             io(\"http://HOST:PORT/im\"): the namespace /im goes in the URL and the path stays \
             /socket.io/. Behind a proxy that adds a prefix (/api/socket.io/), strip it in the \
             proxy or set the client's `path` option to what the proxy forwards to /socket.io/.",
        )
        .with_status_not_found()
    })
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    has_token(headers, header::UPGRADE, "websocket")
}

/// A WebSocket key without the headers that make it an upgrade.
fn half_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::SEC_WEBSOCKET_KEY)
        && !(is_upgrade(headers) && has_token(headers, header::CONNECTION, "upgrade"))
}

/// An Engine.IO request by its query (`EIO=` or `transport=`).
fn is_engine_query(uri: &http::Uri) -> bool {
    uri.query().is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "EIO" || k == "transport")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(uri: &str, headers: &[(&str, &str)]) -> Option<u16> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        misdirected(&uri.parse().unwrap(), &map).map(|e| e.into_response().status().as_u16())
    }

    #[test]
    fn wrong_paths_and_half_upgrades_are_answered_and_the_rest_passes() {
        let ws = [
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-key", "x"),
        ];
        assert_eq!(check("/", &[]), None, "the demo page");
        assert_eq!(check("/health", &[]), None);
        assert_eq!(
            check("/debug/transport?transport=websocket", &ws),
            None,
            "it explains them"
        );
        assert_eq!(check("/socket.io/?EIO=4&transport=polling", &[]), None);
        assert_eq!(check("/socket.io/?EIO=4&transport=websocket", &ws), None);
        assert_eq!(check("/im?EIO=4&transport=polling", &[]), Some(404));
        assert_eq!(check("/?EIO=4&transport=websocket", &ws), Some(404));
        assert_eq!(check("/ws", &ws), Some(404));
        assert_eq!(
            check("/api/socket.io/?EIO=4&transport=polling", &[]),
            Some(404)
        );
        assert_eq!(
            check(
                "/socket.io/?EIO=4&transport=websocket",
                &[("sec-websocket-key", "x")]
            ),
            Some(400)
        );
        assert_eq!(
            check(
                "/socket.io/?EIO=4&transport=websocket",
                &[("sec-websocket-key", "x"), ("upgrade", "websocket")]
            ),
            Some(400),
            "Connection: upgrade lost"
        );
    }
}
