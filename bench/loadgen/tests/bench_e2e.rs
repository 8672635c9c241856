//! Runs every loadgen scenario against a mini IM server (socketioxide + axum, in process) that
//! speaks the parts of the contract the scenarios use: /auth/login, /api/publish, namespace /im
//! with `connected`, rooms user:<id> / type:user, send_message with ack + `message`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use loadgen::bench::common::Common;
use loadgen::bench::scenarios::*;
use loadgen::bench::{Cli, Scenario, run};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef, TryData};

const API_KEY: &str = "test-key";

fn user_of(token: &str) -> Option<i64> {
    token.strip_prefix("tok-")?.parse().ok()
}

async fn login(Json(b): Json<Value>) -> (StatusCode, Json<Value>) {
    let name = b["username"].as_str().unwrap_or("");
    let id = name
        .strip_prefix("bench")
        .and_then(|n| n.parse::<i64>().ok());
    match id {
        Some(id) if b["password"] == "bench-pass" => (
            StatusCode::OK,
            Json(json!({"success": true, "message": "ok", "data": {
                "token": format!("tok-{id}"), "token_type": "Bearer",
                "user": {"id": id, "username": name, "user_type": "user"}}})),
        ),
        _ => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"success": false, "code": "INVALID_CREDENTIALS", "message": "no"})),
        ),
    }
}

async fn publish(
    State(io): State<SocketIo>,
    h: HeaderMap,
    Json(b): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if h.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"success": false, "code": "FORBIDDEN", "message": "key"})),
        );
    }
    let ns = io.of("/im").unwrap();
    let mut rooms: Vec<String> = Vec::new();
    if let Some(r) = b["rooms"].as_array() {
        rooms.extend(r.iter().filter_map(|x| x.as_str().map(str::to_owned)));
    }
    if let Some(t) = b["user_type"].as_str() {
        rooms.push(format!("type:{t}"));
    }
    if let Some(u) = b["to_users"].as_array() {
        rooms.extend(
            u.iter()
                .filter_map(Value::as_i64)
                .map(|id| format!("user:{id}")),
        );
    }
    let op = if b["broadcast"] == true {
        ns
    } else {
        ns.to(rooms)
    };
    let delivered = op.clone().sockets().len();
    op.emit(b["event"].as_str().unwrap_or("x"), &b["data"])
        .await
        .unwrap();
    (
        StatusCode::OK,
        Json(
            json!({"success": true, "message": "ok", "data": {"delivered_to_sockets": delivered}}),
        ),
    )
}

async fn on_connect(s: SocketRef, TryData(auth): TryData<Value>) {
    let Some(uid) = auth
        .ok()
        .and_then(|a| a["token"].as_str().and_then(user_of))
    else {
        s.emit(
            "error",
            &json!({"code": "TOKEN_MISSING", "message": "log in"}),
        )
        .ok();
        s.disconnect().ok();
        return;
    };
    s.join(format!("user:{uid}"));
    s.join("type:user");
    s.emit(
        "connected",
        &json!({"userId": uid, "socketId": s.id.to_string()}),
    )
    .ok();
    s.on("send_message", async move |s: SocketRef, Data(m): Data<Value>, ack: AckSender| {
        let Some(to) = m["to"].as_i64() else {
            ack.send(&json!({"ok": false, "code": "BAD_REQUEST"})).ok();
            return;
        };
        let msg = json!({"id": 1, "from": uid, "to": to, "content": m["content"], "client_msg_id": m["client_msg_id"]});
        s.within(format!("user:{to}")).emit("message", &msg).await.ok();
        ack.send(&json!({"ok": true, "id": 1})).ok();
    });
}

/// Serves on `listener` until the returned sender fires (then closes every socket).
async fn serve(listener: tokio::net::TcpListener) -> tokio::sync::oneshot::Sender<()> {
    let (layer, io) = SocketIo::builder().build_layer();
    io.ns("/", async |_s: SocketRef| {});
    io.ns("/im", on_connect);
    let app = axum::Router::new()
        .route("/auth/login", post(login))
        .route("/api/publish", post(publish))
        .with_state(io.clone())
        .layer(layer);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
                io.close().await;
            })
            .await
            .unwrap();
    });
    tx
}

fn bind(addr: SocketAddr) -> tokio::net::TcpListener {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.set_reuseaddr(true).unwrap();
    s.bind(addr).unwrap();
    s.listen(1024).unwrap()
}

async fn start() -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let l = bind("127.0.0.1:0".parse().unwrap());
    let addr = l.local_addr().unwrap();
    (addr, serve(l).await)
}

fn common(addr: SocketAddr, users: usize) -> Common {
    Common {
        url: format!("http://{addr}"),
        api_key: Some(API_KEY.into()),
        users: Some(users),
        connect_timeout_ms: 5000,
        connected_timeout_ms: 5000,
        server_pid: Some(std::process::id()),
        ..Default::default()
    }
}

async fn go(common: Common, scenario: Scenario) -> Value {
    let v = tokio::time::timeout(Duration::from_secs(60), run(&Cli { common, scenario }))
        .await
        .expect("scenario finished in time")
        .expect("scenario ran");
    eprintln!("{v}");
    // it is one JSON line
    assert!(!v.to_string().contains('\n'));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_scenario() {
    let (addr, _stop) = start().await;
    let v = go(
        common(addr, 5),
        Scenario::Handshake(HandshakeArgs {
            n: 60,
            concurrency: 16,
        }),
    )
    .await;
    assert_eq!(v["scenario"], "handshake");
    assert_eq!(v["ok"], 60, "{v}");
    assert_eq!(v["failed"], 0);
    assert_eq!(v["latency_ms"]["count"], 60);
    assert!(v["handshakes_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["server_rss"]["before_kib"].as_u64().unwrap() > 0);

    // a wrong source address range is reported per connection, not a crash
    let mut c = common(addr, 2);
    c.source_ips = "127.0.0.2-127.0.0.3".into();
    let v = go(
        c,
        Scenario::Handshake(HandshakeArgs {
            n: 10,
            concurrency: 4,
        }),
    )
    .await;
    assert_eq!(v["ok"], 10, "{v}");
    assert_eq!(v["source_ips"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_failures_by_code_and_login_failure() {
    let (addr, _stop) = start().await;
    // wrong password: login fails -> fatal error
    let mut c = common(addr, 2);
    c.password = "nope".into();
    let r = run(&Cli {
        common: c,
        scenario: Scenario::Handshake(HandshakeArgs {
            n: 1,
            concurrency: 1,
        }),
    })
    .await;
    assert!(r.unwrap_err().contains("INVALID_CREDENTIALS"));
    // wrong namespace: connect_error from socketioxide, counted by its message
    let mut c = common(addr, 2);
    c.namespace = "/nope".into();
    let v = go(
        c,
        Scenario::Handshake(HandshakeArgs {
            n: 4,
            concurrency: 2,
        }),
    )
    .await;
    assert_eq!(v["ok"], 0);
    assert_eq!(v["failures"], json!({"Invalid namespace": 4}), "{v}");
    // nobody listening
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (addr2, _stop2) = start().await;
    let mut c = common(addr2, 1);
    c.url = format!("http://{dead}"); // logins go to the dead port too -> fatal
    assert!(
        run(&Cli {
            common: c,
            scenario: Scenario::Handshake(HandshakeArgs {
                n: 1,
                concurrency: 1
            })
        })
        .await
        .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_scenario() {
    let (addr, _stop) = start().await;
    let v = go(
        common(addr, 3),
        Scenario::Idle(IdleArgs {
            n: 30,
            concurrency: 10,
            hold_secs: 1.0,
            sample_secs: 0.5,
        }),
    )
    .await;
    assert_eq!(v["ok"], 30, "{v}");
    assert_eq!(v["dropped"], 0);
    assert_eq!(v["ping_interval_ms"], 25000);
    assert!(v["server_rss"]["per_conn_kib"].is_number(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_scenario() {
    let (addr, _stop) = start().await;
    for target in [
        FanoutTarget::UserType,
        FanoutTarget::Room,
        FanoutTarget::Users,
        FanoutTarget::Broadcast,
    ] {
        let v = go(
            common(addr, 4),
            Scenario::Fanout(FanoutArgs {
                n: 20,
                events: 10,
                target,
                user_type: "user".into(),
                room: None,
                rate: 100.0,
                publish_concurrency: 2,
                concurrency: 10,
                drain_secs: 5.0,
                pad_bytes: 0,
            }),
        )
        .await;
        assert_eq!(v["expected_deliveries"], 200, "{target:?} {v}");
        assert_eq!(v["deliveries"], 200, "{v}");
        assert_eq!(v["missing"], 0);
        assert_eq!(v["latency_ms"]["count"], 200);
        assert!(v["deliveries_per_sec"].as_f64().unwrap() > 0.0);
    }
    // no api key -> fatal error
    let mut c = common(addr, 1);
    c.api_key = None;
    let args = FanoutArgs {
        n: 1,
        events: 1,
        target: FanoutTarget::UserType,
        user_type: "user".into(),
        room: None,
        rate: 0.0,
        publish_concurrency: 1,
        concurrency: 1,
        drain_secs: 1.0,
        pad_bytes: 0,
    };
    assert!(
        run(&Cli {
            common: c,
            scenario: Scenario::Fanout(args.clone())
        })
        .await
        .is_err()
    );
    // wrong api key -> publish errors by code
    let mut c = common(addr, 1);
    c.api_key = Some("wrong".into());
    let v = go(c, Scenario::Fanout(args)).await;
    assert_eq!(v["publish_errors"], json!({"FORBIDDEN": 1}), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_scenario() {
    let (addr, _stop) = start().await;
    let mut c = common(addr, 0);
    c.users = None;
    let v = go(
        c,
        Scenario::Chat(ChatArgs {
            pairs: 5,
            rate: 100.0,
            secs: 1.5,
            content_bytes: 64,
            ack_timeout_ms: 5000,
            drain_secs: 5.0,
            concurrency: 10,
        }),
    )
    .await;
    assert_eq!(v["sent"], 150, "{v}");
    assert_eq!(v["acked_ok"], 150, "{v}");
    assert_eq!(v["delivered"], 150, "{v}");
    assert_eq!(v["lost"], 0);
    assert_eq!(v["error_count"], 0);
    assert_eq!(v["ack_latency_ms"]["count"], 150);
    assert_eq!(v["e2e_latency_ms"]["count"], 150);
    let rate = v["achieved_rate"].as_f64().unwrap();
    assert!(rate > 80.0 && rate < 120.0, "{v}");
    // too few users for the pairs
    let mut c = common(addr, 3);
    c.users = Some(3);
    let r = run(&Cli {
        common: c,
        scenario: Scenario::Chat(ChatArgs {
            pairs: 2,
            rate: 1.0,
            secs: 1.0,
            content_bytes: 0,
            ack_timeout_ms: 1000,
            drain_secs: 1.0,
            concurrency: 1,
        }),
    })
    .await;
    assert!(r.unwrap_err().contains("--users"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_scenario_survives_a_restart() {
    let (addr, stop) = start().await;
    let n = 40;
    let c = common(addr, 4);
    let storm = tokio::spawn(async move {
        run(&Cli {
            common: c,
            scenario: Scenario::Storm(StormArgs {
                n,
                concurrency: 10,
                wait_restart_secs: 20.0,
                reconnect_timeout_secs: 30.0,
                delay_ms: 300,
                delay_max_ms: 1000,
                jitter: 0.5,
            }),
        })
        .await
    });
    // wait for the clients, then "restart": close everything, stay down 1.5 s, serve again
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _stop2 = serve(bind(addr)).await;
    let v = tokio::time::timeout(Duration::from_secs(60), storm)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    eprintln!("{v}");
    assert_eq!(v["connected_initially"], n, "{v}");
    assert_eq!(v["closed_seen"], n, "{v}");
    assert_eq!(v["reconnected"], n, "{v}");
    assert_eq!(v["all_back"], true);
    assert!(v["attempts_total"].as_u64().unwrap() >= n as u64);
    assert!(
        v["recovery_from_all_closed_s"].as_f64().unwrap() > 1.0,
        "{v}"
    );
}
