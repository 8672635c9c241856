//! Observability: `GET /debug/transport` (what the server saw, and a hint per misconfiguration)
//! and `/metrics` (valid Prometheus text, handshake counts that add up exactly).

use std::collections::BTreeMap;

use im_server::config::{Secret, TrustProxy};
use serde_json::{Value, json};

use crate::helpers::*;

/// A raw HTTP/1.x GET, so hop-by-hop headers (`Upgrade`, `Connection`) and the HTTP version
/// arrive exactly as a proxy would send them. Returns the status and the JSON body.
pub async fn raw_get(
    app: &TestApp,
    version: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = format!("GET {path} {version}\r\nHost: {}\r\n", app.addr);
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("connection"))
    {
        req.push_str("Connection: close\r\n");
    }
    req.push_str("\r\n");
    let text = raw_http(app.addr, &req).await;
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn transport(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Value {
    let (status, body) = raw_get(app, "HTTP/1.1", path, headers).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    body["data"].clone()
}

fn hints(d: &Value) -> Vec<String> {
    d["hints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect()
}

fn has_hint(d: &Value, needle: &str) -> bool {
    hints(d).iter().any(|h| h.contains(needle))
}

#[tokio::test]
async fn debug_transport_reports_the_request_and_never_echoes_credentials() {
    let app = spawn_app().await;
    let d = transport(
        &app,
        "/debug/transport",
        &[
            ("Authorization", "Bearer eyJ.secret-bearer-value.sig"),
            ("Cookie", "token=secret-cookie-value"),
            ("X-Api-Key", "secret-api-key-value"),
            ("User-Agent", "probe/1.0"),
        ],
    )
    .await;
    let text = d.to_string();
    for secret in [
        "secret-bearer-value",
        "secret-cookie-value",
        "secret-api-key-value",
    ] {
        assert!(!text.contains(secret), "{text}");
    }
    assert_eq!(
        d["credentials"],
        json!({"authorization": "present", "cookie": "present", "x_api_key": "present"})
    );
    assert_eq!(d["scheme"], "http");
    assert_eq!(d["host"], app.addr.to_string());
    assert_eq!(d["client_address"], "127.0.0.1");
    assert_eq!(d["peer_address"], "127.0.0.1");
    assert_eq!(d["trust_proxy"], false);
    assert_eq!(d["origin"]["allowed"], true);
    assert_eq!(d["socketio"]["ping_interval_ms"], 25_000);
    assert_eq!(d["socketio"]["ping_timeout_ms"], 20_000);
    assert_eq!(d["websocket"]["upgrade_arrived"], false);
    assert_eq!(d["user_agent"], "probe/1.0");
    assert_eq!(
        hints(&d),
        Vec::<String>::new(),
        "a plain direct request is fine"
    );

    let plain = transport(&app, "/debug/transport", &[]).await;
    assert_eq!(plain["credentials"]["authorization"], "absent");
    assert_eq!(plain["credentials"]["cookie"], "absent");
}

#[tokio::test]
async fn websocket_attempt_without_upgrade_gets_the_nginx_hint_and_a_real_upgrade_does_not() {
    let app = spawn_app().await;
    // What nginx forwards without `proxy_set_header Upgrade/Connection`: no Upgrade.
    let d = transport(&app, "/debug/transport?expect=websocket", &[]).await;
    assert_eq!(d["websocket"]["upgrade_arrived"], false);
    assert!(
        has_hint(&d, "proxy_set_header Upgrade $http_upgrade"),
        "{d}"
    );
    assert!(has_hint(&d, "Connection \"upgrade\""), "{d}");
    // The Sec-WebSocket-* headers got through but the hop-by-hop ones did not.
    let d = transport(
        &app,
        "/debug/transport",
        &[
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
    )
    .await;
    assert_eq!(d["websocket"]["looks_like_websocket_attempt"], true);
    assert!(
        has_hint(&d, "no `Upgrade: websocket` header arrived"),
        "{d}"
    );

    // A correctly configured proxy: both headers arrive, no hint.
    let d = transport(
        &app,
        "/debug/transport?expect=websocket",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "keep-alive, Upgrade"),
        ],
    )
    .await;
    assert_eq!(d["websocket"]["upgrade"], "websocket");
    assert_eq!(d["websocket"]["upgrade_arrived"], true);
    assert_eq!(hints(&d), Vec::<String>::new(), "{d}");

    // Upgrade without `Connection: upgrade`.
    let d = transport(
        &app,
        "/debug/transport?expect=websocket",
        &[("Upgrade", "websocket"), ("Connection", "close")],
    )
    .await;
    assert!(has_hint(&d, "without `Connection: upgrade`"), "{d}");

    // nginx's default proxy_http_version is 1.0.
    let (status, body) = raw_get(&app, "HTTP/1.0", "/debug/transport?expect=websocket", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["http_version"], "HTTP/1.0");
    assert!(has_hint(&body["data"], "proxy_http_version 1.1"), "{body}");
}

#[tokio::test]
async fn forwarded_headers_and_trust_proxy_disagreements_get_hints() {
    // Forwarded headers, trust_proxy off: ignored, and said so.
    let app = spawn_app().await;
    let d = transport(
        &app,
        "/debug/transport",
        &[
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-Proto", "https"),
        ],
    )
    .await;
    assert_eq!(d["client_address"], "127.0.0.1");
    assert_eq!(d["scheme"], "http");
    assert_eq!(d["forwarded"]["x-forwarded-for"], "203.0.113.7");
    assert!(d["forwarded"]["x-real-ip"].is_null());
    assert!(has_hint(&d, "server.trust_proxy = false"), "{d}");
    assert!(has_hint(&d, "[\"127.0.0.1/32\"]"), "{d}");

    // The proxy is trusted: its headers give the client address, scheme and host; no hint.
    let proxied =
        spawn_with(|s| s.server.trust_proxy = TrustProxy::Cidrs(vec!["127.0.0.1/32".into()])).await;
    let d = transport(
        &proxied,
        "/debug/transport",
        &[
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "chat.example.com"),
        ],
    )
    .await;
    assert_eq!(d["client_address"], "203.0.113.7");
    assert_eq!(d["scheme"], "https");
    assert_eq!(d["host"], "chat.example.com");
    assert_eq!(d["peer_trusted_as_proxy"], true);
    assert_eq!(hints(&d), Vec::<String>::new(), "{d}");
    // Trusted proxy that sets nothing.
    let d = transport(&proxied, "/debug/transport", &[]).await;
    assert!(has_hint(&d, "proxy_set_header X-Forwarded-For"), "{d}");

    // trust_proxy = true and a direct request: the spoofing warning.
    let all = spawn_with(|s| s.server.trust_proxy = TrustProxy::All(true)).await;
    let d = transport(&all, "/debug/transport", &[]).await;
    assert!(has_hint(&d, "list your proxies' CIDRs"), "{d}");

    // A list that does not contain this peer: direct request, and forwarded headers ignored.
    let elsewhere =
        spawn_with(|s| s.server.trust_proxy = TrustProxy::Cidrs(vec!["10.0.0.0/8".into()])).await;
    let d = transport(&elsewhere, "/debug/transport", &[]).await;
    assert!(has_hint(&d, "came straight from 127.0.0.1"), "{d}");
    let d = transport(
        &elsewhere,
        "/debug/transport",
        &[("X-Real-IP", "203.0.113.9")],
    )
    .await;
    assert_eq!(d["client_address"], "127.0.0.1");
    assert!(has_hint(&d, "not in server.trust_proxy"), "{d}");
}

#[tokio::test]
async fn foreign_origin_gets_a_hint_naming_cors_origins() {
    let app = spawn_with(|s| s.cors.origins = Some(vec!["http://app.example".into()])).await;
    let d = transport(
        &app,
        "/debug/transport",
        &[("Origin", "http://evil.example")],
    )
    .await;
    assert_eq!(d["origin"]["value"], "http://evil.example");
    assert_eq!(d["origin"]["allowed"], false);
    assert_eq!(
        d["origin"]["allowed_origins"],
        json!(["http://app.example"])
    );
    assert!(
        has_hint(&d, "cors.origins = [\"http://evil.example\"]"),
        "{d}"
    );
    assert!(has_hint(&d, "ORIGIN_DENIED"), "{d}");
    // The handshake agrees.
    let token = app.login("admin", "admin123").await;
    let opts = loadgen::sio::ConnectOptions {
        auth: Some(json!({"token": token})),
        headers: vec![("Origin".into(), "http://evil.example".into())],
        ..app.sio_options()
    };
    assert_eq!(handshake_code(&app, opts).await, "ORIGIN_DENIED");

    let d = transport(
        &app,
        "/debug/transport",
        &[("Origin", "http://app.example/")],
    )
    .await;
    assert_eq!(d["origin"]["allowed"], true);
    assert_eq!(hints(&d), Vec::<String>::new(), "{d}");

    // Production without cors.origins allows no browser origin at all.
    let prod = spawn_with(|s| s.server.profile = "production".into()).await;
    let d = transport(
        &prod,
        "/debug/transport",
        &[("Origin", "https://chat.example.com")],
    )
    .await;
    assert!(has_hint(&d, "production default"), "{d}");
}

#[tokio::test]
async fn proxy_read_timeout_shorter_than_the_ping_cycle_gets_a_hint() {
    let app = spawn_app().await;
    let d = transport(&app, "/debug/transport?proxy_read_timeout=30s", &[]).await;
    assert_eq!(d["proxy_read_timeout_secs"], 30);
    assert!(
        has_hint(&d, "shorter than ping_interval + ping_timeout (45s)"),
        "{d}"
    );
    let d = transport(&app, "/debug/transport", &[("X-Proxy-Read-Timeout", "60")]).await;
    assert_eq!(d["proxy_read_timeout_secs"], 60);
    assert_eq!(hints(&d), Vec::<String>::new(), "{d}");
    let (status, body) = raw_get(
        &app,
        "HTTP/1.1",
        "/debug/transport?proxy_read_timeout=soon",
        &[],
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("BAD_REQUEST")),
        "{body}"
    );
}

// ---------------------------------------------------------------------------------------------
// /metrics

#[derive(Debug, Default)]
pub(crate) struct Family {
    kind: String,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

/// A small parser for the Prometheus text format (0.0.4) that rejects what a scraper would:
/// samples without a TYPE, bad names, bad label syntax, unparsable values, inconsistent histograms.
fn parse_prometheus(text: &str) -> BTreeMap<String, Family> {
    fn valid_name(n: &str) -> bool {
        let mut chars = n.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for (no, line) in text.lines().enumerate() {
        let at = format!("line {}: {line:?}", no + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(valid_name(name), "{at}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "{at}"
                    );
                    let f = families.entry(name.to_string()).or_default();
                    assert!(f.kind.is_empty(), "TYPE twice, {at}");
                    f.kind = kind.to_string();
                }
                (Some("HELP"), Some(name), _) => assert!(valid_name(name), "{at}"),
                _ => {}
            }
            continue;
        }
        let (name_labels, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{at}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value, {at}")),
        };
        let (name, labels) = match name_labels.split_once('{') {
            None => (name_labels, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("labels, {at}"));
                let mut labels = BTreeMap::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert!(valid_name(&key), "label name, {at}");
                    assert_eq!(chars.next(), Some('"'), "label quote, {at}");
                    let mut v = String::new();
                    loop {
                        match chars.next() {
                            Some('\\') => match chars.next() {
                                Some('n') => v.push('\n'),
                                Some(c @ ('\\' | '"')) => v.push(c),
                                other => panic!("escape {other:?}, {at}"),
                            },
                            Some('"') => break,
                            Some(c) => v.push(c),
                            None => panic!("unterminated label, {at}"),
                        }
                    }
                    labels.insert(key, v);
                    match chars.next() {
                        Some(',') | None => {}
                        other => panic!("after label {other:?}, {at}"),
                    }
                }
                (name, labels)
            }
        };
        assert!(valid_name(name), "{at}");
        let family = [
            ("_bucket", "histogram"),
            ("_sum", "histogram"),
            ("_count", "histogram"),
        ]
        .iter()
        .find_map(|(suffix, kind)| {
            let base = name.strip_suffix(suffix)?;
            (families.get(base).map(|f| f.kind.as_str()) == Some(*kind)).then(|| base.to_string())
        })
        .unwrap_or_else(|| name.to_string());
        let f = families
            .get_mut(&family)
            .unwrap_or_else(|| panic!("sample without TYPE, {at}"));
        f.samples.push((name.to_string(), labels, value));
    }
    // Histograms: cumulative buckets ending in +Inf == _count.
    for (name, f) in &families {
        if f.kind != "histogram" {
            continue;
        }
        type Series = Vec<(String, String)>;
        let mut series: BTreeMap<Series, Vec<(f64, f64)>> = BTreeMap::new();
        let mut counts: BTreeMap<Series, f64> = BTreeMap::new();
        for (sample, labels, v) in &f.samples {
            let mut key: Vec<(String, String)> = labels
                .iter()
                .filter(|(k, _)| *k != "le")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            key.sort();
            if sample.ends_with("_bucket") {
                let le = labels
                    .get("le")
                    .unwrap_or_else(|| panic!("{name}: bucket without le"));
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                series.entry(key).or_default().push((le, *v));
            } else if sample.ends_with("_count") {
                counts.insert(key, *v);
            }
        }
        for (key, buckets) in series {
            assert!(
                buckets
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "{name}: buckets not cumulative"
            );
            let last = buckets.last().unwrap();
            assert_eq!(last.0, f64::INFINITY, "{name}: no +Inf bucket");
            assert_eq!(
                Some(&last.1),
                counts.get(&key),
                "{name}: +Inf bucket != _count"
            );
        }
    }
    families
}

pub(crate) fn total(
    f: &BTreeMap<String, Family>,
    family: &str,
    sample: &str,
    want: &[(&str, &str)],
) -> f64 {
    f.get(family)
        .map(|fam| {
            fam.samples
                .iter()
                .filter(|(n, labels, _)| {
                    n == sample
                        && want
                            .iter()
                            .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
                })
                .map(|(_, _, v)| v)
                .sum()
        })
        .unwrap_or(0.0)
}

pub(crate) async fn scrape(app: &TestApp) -> BTreeMap<String, Family> {
    let resp = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain"), "{ct}");
    parse_prometheus(&resp.text().await.unwrap())
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_count_handshakes_exactly() {
    let app =
        spawn_with(|s| s.server.api_key = Some(Secret::new("metrics-test-api-key-0123456789")))
            .await;
    let before = scrape(&app).await;
    let hs = |f: &BTreeMap<String, Family>, labels: &[(&str, &str)]| {
        total(f, "im_handshakes_total", "im_handshakes_total", labels)
    };

    let token = app.login("admin", "admin123").await;
    let (c1, _) = app.connect_ok(&token).await;
    let (c2, _) = app.connect_ok(&token).await;
    assert_eq!(
        handshake_code(&app, app.sio_options()).await,
        "TOKEN_MISSING"
    );
    let garbage = loadgen::sio::ConnectOptions {
        auth: Some(json!({"token": "garbage"})),
        ..app.sio_options()
    };
    assert_eq!(handshake_code(&app, garbage).await, "TOKEN_MALFORMED");
    let via_query = loadgen::sio::ConnectOptions {
        query: vec![("token".into(), token.clone())],
        ..app.sio_options()
    };
    assert_eq!(handshake_code(&app, via_query).await, "OK");
    // Not handshakes: HTTP authentication and diagnoses.
    let (status, _) = app.get("/auth/validate", Some(&token)).await;
    assert_eq!(status, 200);
    let (status, _) = app
        .post(
            "/auth/tokens/inspect",
            json!({"token": token}),
            Some(&token),
        )
        .await;
    assert_eq!(status, 200);
    im_server::auth::diagnose::diagnose(app.state.auth(), &token, None, None).await;

    let after = scrape(&app).await;
    assert_eq!(
        hs(&after, &[]) - hs(&before, &[]),
        5.0,
        "exactly the 5 handshakes made"
    );
    assert_eq!(
        hs(&after, &[("result", "OK"), ("source", "auth")])
            - hs(&before, &[("result", "OK"), ("source", "auth")]),
        2.0
    );
    assert_eq!(
        hs(&after, &[("result", "OK"), ("source", "query")])
            - hs(&before, &[("result", "OK"), ("source", "query")]),
        1.0
    );
    assert_eq!(
        hs(&after, &[("result", "TOKEN_MISSING"), ("source", "none")]),
        1.0
    );
    assert_eq!(
        hs(&after, &[("result", "TOKEN_MALFORMED"), ("source", "auth")]),
        1.0
    );
    let hist = |f: &BTreeMap<String, Family>| {
        total(
            f,
            "im_handshake_duration_seconds",
            "im_handshake_duration_seconds_count",
            &[],
        )
    };
    assert_eq!(hist(&after) - hist(&before), 5.0);

    assert_eq!(total(&after, "im_connections", "im_connections", &[]), 2.0);
    // A kick, so every family of the issue has a sample.
    let (status, _) = app.post("/auth/logout", json!({}), Some(&token)).await;
    assert_eq!(status, 200);
    drop((c1, c2));
    let end = scrape(&app).await;
    let kinds: Vec<(&str, &str)> = vec![
        ("im_connections", "gauge"),
        ("im_handshakes_total", "counter"),
        ("im_handshake_duration_seconds", "histogram"),
        ("im_auth_db_duration_seconds", "histogram"),
        ("im_logins_total", "counter"),
        ("im_events_total", "counter"),
        ("im_kicks_total", "counter"),
        ("im_http_requests_total", "counter"),
        ("im_http_request_duration_seconds", "histogram"),
        ("im_build_info", "gauge"),
    ];
    for (name, kind) in kinds {
        let f = end.get(name).unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(f.kind, kind, "{name}");
        assert!(!f.samples.is_empty(), "{name} has no sample");
    }
    assert_eq!(
        total(
            &end,
            "im_logins_total",
            "im_logins_total",
            &[("result", "OK")]
        ),
        1.0
    );
    assert_eq!(
        total(
            &end,
            "im_kicks_total",
            "im_kicks_total",
            &[("reason", "TOKEN_REVOKED")]
        ),
        2.0
    );
    assert!(
        total(
            &end,
            "im_events_total",
            "im_events_total",
            &[("direction", "out"), ("event", "connected")]
        ) >= 3.0
    );
    assert_eq!(
        total(
            &end,
            "im_http_requests_total",
            "im_http_requests_total",
            &[("route", "/auth/tokens/inspect"), ("status", "200")]
        ),
        1.0
    );
    assert!(
        total(
            &end,
            "im_build_info",
            "im_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ) == 1.0
    );
}
