//! Proves `loadgen::sio` against the real protocol: an in-process socketioxide 0.18.9 server.

use std::net::SocketAddr;
use std::time::Duration;

use loadgen::sio::{Client, ConnectOptions, Error, Incoming};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;

const T: Duration = Duration::from_secs(5);

async fn auth_mw(TryData(auth): TryData<Value>) -> Result<(), String> {
    match auth
        .ok()
        .as_ref()
        .and_then(|a| a.get("token"))
        .and_then(Value::as_str)
    {
        None => Err("TOKEN_MISSING".into()),
        Some("bad") => Err("TOKEN_INVALID_SIGNATURE".into()),
        Some(_) => Ok(()),
    }
}

async fn on_connect(s: SocketRef, TryData(auth): TryData<Value>) {
    let h = &s.req_parts().headers;
    let hdr = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let info = json!({
        "socketId": s.id.to_string(),
        "token": auth.ok().and_then(|a| a.get("token").cloned()),
        "authorization": hdr("authorization"),
        "origin": hdr("origin"),
        "query": s.req_parts().uri.query(),
    });
    if info["token"] == "legacy-bad" {
        // NestJS-style failure: connect, then `error`, then a server disconnect
        s.emit(
            "error",
            &json!({"code":"TOKEN_EXPIRED","message":"log in again"}),
        )
        .ok();
        s.disconnect().ok();
        return;
    }
    s.emit("connected", &info).ok();
    s.on("echo", async |Data(d): Data<Value>, ack: AckSender| {
        ack.send(&d).ok();
    });
    s.on("echo_event", async |s: SocketRef, Data(d): Data<Value>| {
        s.emit("echoed", &d).ok();
    });
    s.on(
        "two_args",
        async |s: SocketRef, Data((a, b)): Data<(Value, Value)>, ack: AckSender| {
            s.emit("got_two", &(a.clone(), b.clone())).ok();
            ack.send(&(a, b)).ok();
        },
    );
    s.on("kick", async |s: SocketRef| {
        s.emit("bye", &json!({})).ok();
        s.disconnect().ok();
    });
}

async fn server(ping_ms: u64) -> SocketAddr {
    let (layer, io) = SocketIo::builder()
        .ping_interval(Duration::from_millis(ping_ms))
        .ping_timeout(Duration::from_millis(ping_ms))
        .build_layer();
    io.ns("/", async |_s: SocketRef| {});
    io.ns("/im", on_connect.with(auth_mw));
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn opts(addr: SocketAddr, token: Option<&str>) -> ConnectOptions {
    ConnectOptions {
        base_url: format!("http://{addr}"),
        auth: token.map(|t| json!({ "token": t })),
        ..Default::default()
    }
}

#[tokio::test]
async fn connect_event_ack_and_close() {
    let addr = server(25_000).await;
    let mut o = opts(addr, Some("good"));
    o.headers
        .push(("Authorization".into(), "Bearer hdr-token".into()));
    o.headers
        .push(("Origin".into(), "http://example.test".into()));
    o.query.push(("jwt_token".into(), "a b&c".into()));
    let mut c = Client::connect(o).await.unwrap();
    assert!(!c.engine_sid().is_empty());
    assert_eq!(c.engine_open().ping_interval_ms, 25_000);

    let sid = c.expect_connected(T).await.unwrap();
    assert_eq!(c.sid(), Some(sid.as_str()));
    let info = c.expect_event("connected", T).await.unwrap();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0]["socketId"], sid.as_str());
    assert_eq!(info[0]["token"], "good");
    assert_eq!(info[0]["authorization"], "Bearer hdr-token");
    assert_eq!(info[0]["origin"], "http://example.test");
    let q = info[0]["query"].as_str().unwrap();
    assert!(q.starts_with("EIO=4&transport=websocket&"), "{q}");
    assert!(q.ends_with("jwt_token=a%20b%26c"), "{q}");

    // acks, including concurrent ones resolved by id
    let ack = c.emit_with_ack("echo", json!({"x": 1}), T).await.unwrap();
    assert_eq!(ack, vec![json!({"x": 1})]);
    let (a, b, d) = tokio::join!(
        c.emit_with_ack("echo", json!("a"), T),
        c.emit_with_ack("echo", json!("b"), T),
        c.emit_with_ack_args("two_args", vec![json!(1), json!([2])], T),
    );
    assert_eq!(a.unwrap(), vec![json!("a")]);
    assert_eq!(b.unwrap(), vec![json!("b")]);
    assert_eq!(d.unwrap(), vec![json!(1), json!([2])]);
    assert_eq!(
        c.expect_event("got_two", T).await.unwrap(),
        vec![json!(1), json!([2])]
    );

    // plain emit from another task through an Emitter
    let em = c.emitter();
    tokio::spawn(async move {
        em.emit("echo_event", json!({"hello": "wörld \"q\""}))
            .await
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        c.expect_event("echoed", T).await.unwrap(),
        vec![json!({"hello": "wörld \"q\""})]
    );

    // nothing else queued
    assert_eq!(c.next(Duration::from_millis(100)).await, None);
    c.close().await;
}

#[tokio::test]
async fn connect_error_from_middleware() {
    let addr = server(25_000).await;
    let mut c = Client::connect(opts(addr, None)).await.unwrap();
    match c.next(T).await {
        Some(Incoming::ConnectError(v)) => assert_eq!(v, json!({"message": "TOKEN_MISSING"})),
        other => panic!("{other:?}"),
    }
    let mut c = Client::connect(opts(addr, Some("bad"))).await.unwrap();
    let e = c.expect_event("connected", T).await.unwrap_err();
    let s = e.to_string();
    assert!(s.contains("TOKEN_INVALID_SIGNATURE"), "{s}");
    assert!(matches!(e, Error::Unexpected { .. }));
    // the failed item is still there for next()
    assert!(matches!(c.next(T).await, Some(Incoming::ConnectError(_))));
}

#[tokio::test]
async fn legacy_error_then_disconnect_and_expect_event_keeps_order() {
    let addr = server(25_000).await;
    let mut c = Client::connect(opts(addr, Some("legacy-bad")))
        .await
        .unwrap();
    let err = c.expect_event("error", T).await.unwrap();
    assert_eq!(err[0]["code"], "TOKEN_EXPIRED");
    // the Connected before `error` is consumed by expect_event (sid kept); Disconnected is not lost
    assert!(c.sid().is_some());
    assert_eq!(c.next(T).await, Some(Incoming::Disconnected));
    // expect on a disconnected namespace fails fast, listing what it saw
    let mut c = Client::connect(opts(addr, Some("legacy-bad")))
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    let e = c
        .expect_event("connected", T)
        .await
        .unwrap_err()
        .to_string();
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert!(
        e.contains("TOKEN_EXPIRED") && e.contains("Disconnected"),
        "{e}"
    );
}

#[tokio::test]
async fn server_disconnect_and_ack_on_closed() {
    let addr = server(25_000).await;
    let mut c = Client::connect(opts(addr, Some("good"))).await.unwrap();
    c.expect_event("connected", T).await.unwrap();
    c.emit("kick", json!(null)).await.unwrap();
    c.expect_event("bye", T).await.unwrap();
    assert_eq!(c.next(T).await, Some(Incoming::Disconnected));
    // socketioxide keeps the Engine.IO session open after a namespace disconnect (like
    // socket.io's `disconnect(false)`); closing it at Engine.IO level ends the connection.
    assert!(!c.is_closed());
    c.send_raw("1").await.unwrap();
    assert_eq!(c.next(T).await, Some(Incoming::Closed));
    assert!(c.is_closed());
    assert!(matches!(
        c.emit_with_ack("echo", json!(1), T).await,
        Err(Error::Closed)
    ));
    assert!(matches!(c.emit("echo", json!(1)).await, Err(Error::Closed)));
    // repeated next after close is immediate
    assert_eq!(c.next(T).await, Some(Incoming::Closed));
}

#[tokio::test]
async fn pongs_keep_the_session_alive_through_ping_rounds() {
    let addr = server(200).await; // ping every 200 ms, 200 ms timeout
    let mut c = Client::connect(opts(addr, Some("good"))).await.unwrap();
    c.expect_event("connected", T).await.unwrap();
    // ~7 ping rounds: without PONGs the server would close after ~400 ms
    assert_eq!(c.next(Duration::from_millis(1500)).await, None);
    assert_eq!(
        c.emit_with_ack("echo", json!(7), T).await.unwrap(),
        vec![json!(7)]
    );
}

#[tokio::test]
async fn ack_timeout_and_raw_frames() {
    let addr = server(25_000).await;
    let mut c = Client::connect(opts(addr, Some("good"))).await.unwrap();
    c.expect_event("connected", T).await.unwrap();
    // no handler for this event: no ack -> bounded wait
    let e = c
        .emit_with_ack("nobody_listens", json!(1), Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
    // a raw, well-formed frame works
    c.send_raw(r#"42/im,5["echo","raw"]"#).await.unwrap();
    // (ack id 5 is not registered by us: it is dropped silently; nothing surfaces)
    assert_eq!(c.next(Duration::from_millis(200)).await, None);
    // malformed input: the server may drop this client, but must not take down others
    let _ = c.send_raw("42/im,not json").await;
    let _ = c.next(Duration::from_millis(300)).await;
    let mut c2 = Client::connect(opts(addr, Some("good"))).await.unwrap();
    c2.expect_event("connected", T).await.unwrap();
}

#[tokio::test]
async fn local_addr_binding_and_handler_mode() {
    let addr = server(25_000).await;
    let mut o = opts(addr, Some("good"));
    o.local_addr = Some("127.0.0.2".parse().unwrap());
    let mut c = Client::connect(o.clone()).await.unwrap();
    c.expect_event("connected", T).await.unwrap();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let h = Client::connect_with_handler(o, move |it| {
        let _ = tx.send(it);
    })
    .await
    .unwrap();
    let first = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
    assert!(matches!(first, Incoming::Connected { .. }), "{first:?}");
    let second = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
    assert_eq!(second.event_name(), Some("connected"));
    assert_eq!(
        h.emit_with_ack("echo", json!(3), T).await.unwrap(),
        vec![json!(3)]
    );
    h.close().await;
    let last = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
    assert_eq!(last, Incoming::Closed);
}

#[tokio::test]
async fn connect_failures_are_bounded_errors() {
    // nothing listening
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let e = Client::connect(ConnectOptions {
        base_url: format!("http://127.0.0.1:{port}"),
        ..Default::default()
    })
    .await
    .err()
    .unwrap();
    assert!(matches!(e, Error::Io(_)), "{e}");
    // plain HTTP server that is not socket.io: upgrade refused with a status
    let addr = server(25_000).await;
    let e = Client::connect(ConnectOptions {
        base_url: format!("http://{addr}"),
        path: "/not-socket-io/".into(),
        ..Default::default()
    })
    .await
    .err()
    .unwrap();
    assert!(matches!(e, Error::Http { status: 404, .. }), "{e}");
    // a TCP server that never answers: timeout
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = Client::connect(ConnectOptions {
        base_url: format!("http://{}", silent.local_addr().unwrap()),
        connect_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await
    .err()
    .unwrap();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
}

/// A bare WebSocket server that speaks just enough Engine.IO: OPEN, then whatever `script` does.
async fn raw_server(open: &'static str, pings: bool) -> SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                ws.send(Message::text(open)).await.unwrap();
                // garbage and other namespaces are ignored by the client
                ws.send(Message::text("4garbage")).await.unwrap();
                ws.send(Message::text("9")).await.unwrap();
                ws.send(Message::text(r#"42/other,["x"]"#)).await.unwrap();
                ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
                ws.send(Message::text(r#"40/im,{"sid":"S1"}"#))
                    .await
                    .unwrap();
                let mut pongs = 0;
                loop {
                    if pings {
                        ws.send(Message::text("2")).await.unwrap();
                    }
                    match tokio::time::timeout(Duration::from_millis(150), ws.next()).await {
                        Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "3" => {
                            pongs += 1;
                            if pongs == 3 {
                                ws.send(Message::text(format!(r#"42/im,["pongs",{pongs}]"#)))
                                    .await
                                    .unwrap();
                            }
                        }
                        Ok(Some(Ok(_))) | Err(_) => {}
                        Ok(Some(Err(_)) | None) => break,
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn answers_pings_and_ignores_garbage() {
    let addr = raw_server(
        r#"0{"sid":"E1","upgrades":[],"pingInterval":100,"pingTimeout":100,"maxPayload":1000}"#,
        true,
    )
    .await;
    let mut c = Client::connect(ConnectOptions {
        base_url: format!("http://{addr}"),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(c.engine_sid(), "E1");
    assert_eq!(
        c.next(T).await,
        Some(Incoming::Connected { sid: "S1".into() })
    );
    assert_eq!(c.expect_event("pongs", T).await.unwrap(), vec![json!(3)]);
}

#[tokio::test]
async fn silent_server_is_detected_by_the_ping_watchdog() {
    // pingInterval 100 + pingTimeout 100 (floored at 1 s by the client) and no ping ever
    let addr = raw_server(
        r#"0{"sid":"E2","upgrades":[],"pingInterval":100,"pingTimeout":100,"maxPayload":1000}"#,
        false,
    )
    .await;
    let mut c = Client::connect(ConnectOptions {
        base_url: format!("http://{addr}"),
        ..Default::default()
    })
    .await
    .unwrap();
    c.expect_connected(T).await.unwrap();
    let t0 = std::time::Instant::now();
    assert_eq!(c.next(T).await, Some(Incoming::Closed));
    assert!(t0.elapsed() < Duration::from_secs(3));
}
