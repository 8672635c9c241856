//! Contract §11 and issue 13: one verdict for every mangled token on both transports, limits,
//! wrong paths, half-upgrades, the login limiter under a parallel burst, disabled users.

use im_server::auth::diagnose;
use im_server::config::TokenSource;
use loadgen::sio::ConnectOptions;
use serde_json::json;

use crate::helpers::*;

/// `GET /auth/validate` with a raw `Authorization` value (any bytes): status and code.
async fn validate_with(app: &TestApp, authorization: &[u8]) -> (u16, String) {
    let resp = app
        .http
        .get(app.url("/auth/validate"))
        .header(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(authorization).unwrap(),
        )
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap();
    (status, body["code"].as_str().unwrap_or("-").to_string())
}

#[tokio::test]
async fn bearer_twice_and_non_ascii_are_malformed_on_every_source_and_in_the_diagnosis() {
    let app = spawn_app().await;
    let token = app.login("admin", "admin123").await;
    assert_eq!(
        validate_with(&app, format!("Bearer {token}").as_bytes())
            .await
            .0,
        200
    );
    let twice = format!("Bearer Bearer {token}");
    assert_eq!(
        validate_with(&app, twice.as_bytes()).await,
        (401, "TOKEN_MALFORMED".into())
    );
    let mut non_ascii = format!("Bearer {token}").into_bytes();
    non_ascii.extend_from_slice("é".as_bytes());
    assert_eq!(
        validate_with(&app, &non_ascii).await,
        (401, "TOKEN_MALFORMED".into()),
        "a token with a non-ASCII byte was sent: malformed, not missing"
    );
    let header = ConnectOptions {
        headers: vec![("Authorization".into(), twice.clone())],
        ..app.sio_options()
    };
    assert_eq!(handshake_code(&app, header).await, "TOKEN_MALFORMED");
    assert_eq!(
        handshake_code(&app, app.with_token(&twice)).await,
        "TOKEN_MALFORMED"
    );
    // The diagnosis of the same value from the same source gives the handshake's code, and
    // names the damage.
    for source in [TokenSource::Header, TokenSource::Auth] {
        let d = diagnose::diagnose(app.state.auth(), &twice, Some(source), None).await;
        let d = serde_json::to_value(&d).unwrap();
        assert_eq!(d["verdict"], "TOKEN_MALFORMED", "{source:?}: {d}");
        assert!(
            d.to_string().contains("Bearer"),
            "names the second Bearer: {d}"
        );
    }
}

#[tokio::test]
async fn crit_future_iat_and_structured_sub_get_their_codes_in_handshake_and_diagnosis() {
    use crate::tokens::b64;
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp();
    let sign = |header: serde_json::Value, claims: serde_json::Value| {
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
        let sig =
            jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
                .unwrap();
        format!("{input}.{sig}")
    };
    let hs = json!({"alg": "HS256", "typ": "JWT"});
    let cases = [
        (
            sign(
                json!({"alg": "HS256", "crit": ["urn:x"], "urn:x": true}),
                json!({"sub": "1", "exp": now + 600}),
            ),
            "TOKEN_MALFORMED",
            "crit",
        ),
        (
            sign(
                hs.clone(),
                json!({"sub": "1", "iat": now + 7200, "exp": now + 9000}),
            ),
            "TOKEN_NOT_YET_VALID",
            "clock",
        ),
        (
            sign(hs.clone(), json!({"sub": {"id": 1}, "exp": now + 600})),
            "TOKEN_CLAIMS_INVALID",
            "sub",
        ),
        (
            sign(hs.clone(), json!({"sub": [1], "exp": now + 600})),
            "TOKEN_CLAIMS_INVALID",
            "sub",
        ),
    ];
    for (token, code, named) in cases {
        assert_eq!(handshake_code(&app, app.with_token(&token)).await, code);
        let (status, body) = app.get("/auth/validate", Some(&token)).await;
        assert_eq!((status, body["code"].as_str().unwrap()), (401, code));
        let d = diagnose::diagnose(app.state.auth(), &token, None, None).await;
        let d = serde_json::to_value(&d).unwrap();
        assert_eq!(d["verdict"], code, "{d}");
        assert!(
            d.to_string().contains(named),
            "the diagnosis names {named}: {d}"
        );
    }
}

#[test]
fn url_passwords_never_appear_in_config_output_or_startup_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let env: Vec<_> = env
            .iter()
            .copied()
            .chain([("JWT_SECRET", SECRET)])
            .collect();
        run_cli(dir.path(), args, &env)
    };
    let urls = [
        ("DATABASE_URL", "mysql://im:db-pw-0f1e@127.0.0.1:1/im"),
        (
            "REDIS_URL",
            "redis://:redis-pw-9a8b@127.0.0.1:1/?protocol=resp3",
        ),
    ];
    for args in [&["config"][..], &["config", "--json"]] {
        let (ok, out) = run(args, &urls);
        assert!(ok, "{out}");
        assert!(
            !out.contains("db-pw-0f1e") && !out.contains("redis-pw-9a8b"),
            "{out}"
        );
        assert!(
            out.contains("mysql://im:***@127.0.0.1:1/im"),
            "user and host kept: {out}"
        );
        assert!(out.contains("redis://:***@127.0.0.1:1/"), "{out}");
    }
    // Unreachable database, then unreachable Redis: the one-line error names the key, not the
    // password.
    let (ok, out) = run(&["serve"], &urls[..1]);
    assert!(!ok && out.contains("database.url"), "{out}");
    assert!(
        !out.contains("db-pw-0f1e") && out.contains("im:***@"),
        "{out}"
    );
    let (ok, out) = run(&["serve"], &urls[1..]);
    assert!(!ok && out.contains("redis.url"), "{out}");
    assert!(!out.contains("redis-pw-9a8b"), "{out}");
}

#[tokio::test]
async fn a_parallel_burst_of_guesses_gets_no_more_tries_than_a_sequential_one() {
    let app = spawn_with(|s| {
        s.auth.login_max_failures = 5;
        s.auth.login_failure_window_secs = 300;
    })
    .await;
    let login = |password: &'static str| {
        let (http, url) = (app.http.clone(), app.url("/auth/login"));
        async move {
            let r = http
                .post(url)
                .json(&json!({"username": "admin", "password": password}))
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    // Hold admin's turn so the whole burst queues behind it, then add the right password
    // last and let them go: the server judges them one after another, in arrival order.
    let held = app.state.limiter().attempt("admin", None).await;
    let wrong: Vec<_> = (0..59).map(|_| tokio::spawn(login("wrong"))).collect();
    eventually("59 guesses queued", 20, || async {
        app.state.limiter().attempts_in_flight("admin") == 60
    })
    .await;
    let right = tokio::spawn(login("admin123"));
    eventually("the right password queued last", 20, || async {
        app.state.limiter().attempts_in_flight("admin") == 61
    })
    .await;
    drop(held);
    let mut statuses = vec![];
    for w in wrong {
        statuses.push(w.await.unwrap());
    }
    let n = |code| statuses.iter().filter(|s| **s == code).count();
    assert_eq!((n(401), n(429)), (5, 54), "as many guesses as sequentially");
    assert_eq!(
        right.await.unwrap(),
        429,
        "the lockout holds for the right password"
    );
}

#[tokio::test]
async fn max_connections_refuses_the_next_handshake_and_a_closed_socket_frees_its_place() {
    let app = spawn_with(|s| s.limits.max_connections = 2).await;
    let admin = app.login("admin", "admin123").await;
    let kefu = app.login("kefu1", "kefu123").await;
    let (a, _) = app.connect_ok(&admin).await;
    let (_b, _) = app.connect_ok(&kefu).await;
    let before = handshakes(&app, "CONNECTION_LIMIT", "auth").await;
    // Legacy mode: connect, error {code}, server disconnect.
    let mut c = app.connect(&admin).await;
    let err = expect_rejected(&mut c).await;
    assert_eq!(err["code"], "CONNECTION_LIMIT", "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("connections"),
        "{err}"
    );
    assert_eq!(
        handshakes(&app, "CONNECTION_LIMIT", "auth").await,
        before + 1
    );
    // A bad token is still judged by its token, not by the limit.
    assert_eq!(
        handshake_code(&app, app.with_token("x.y.z")).await,
        "TOKEN_MALFORMED"
    );
    a.close().await;
    eventually("the closed socket's place is free", 10, || async {
        app.state.auth().limits().node_connections() == 1
    })
    .await;
    let (_c, _) = app.connect_ok(&admin).await;
    assert_eq!(app.state.auth().limits().node_connections(), 2);
}

#[tokio::test]
async fn strict_mode_refuses_over_the_limit_with_connect_error() {
    let app = spawn_with(|s| {
        s.limits.max_connections_per_user = 1;
        s.auth.failure_mode = im_server::config::FailureMode::Strict;
    })
    .await;
    let admin = app.login("admin", "admin123").await;
    let (_a, _) = app.connect_ok(&admin).await;
    assert_eq!(
        handshake_code(&app, app.with_token(&admin)).await,
        "CONNECTION_LIMIT"
    );
    let kefu = app.login("kefu1", "kefu123").await;
    let (_k, _) = app.connect_ok(&kefu).await; // another user has places of their own
}

#[tokio::test]
async fn handshakes_per_address_count_refused_ones_and_spare_other_addresses() {
    let app = spawn_with(|s| s.limits.handshakes_per_ip_per_minute = 3).await;
    let admin = app.login("admin", "admin123").await;
    let from = |ip: [u8; 4], token: &str| ConnectOptions {
        local_addr: Some(std::net::IpAddr::from(ip)),
        ..app.with_token(token)
    };
    assert_eq!(
        handshake_code(&app, from([127, 0, 0, 1], "bad")).await,
        "TOKEN_MALFORMED"
    );
    assert_eq!(
        handshake_code(&app, from([127, 0, 0, 1], &admin)).await,
        "OK"
    );
    assert_eq!(
        handshake_code(&app, from([127, 0, 0, 1], &admin)).await,
        "OK"
    );
    assert_eq!(
        handshake_code(&app, from([127, 0, 0, 1], &admin)).await,
        "RATE_LIMITED",
        "the fourth handshake within a minute, the refused one counted"
    );
    assert_eq!(
        handshake_code(&app, from([127, 0, 0, 9], &admin)).await,
        "OK"
    );
    assert_eq!(handshakes(&app, "RATE_LIMITED", "auth").await, 1);
}

#[tokio::test]
async fn events_over_the_socket_rate_are_refused_without_effect_and_the_socket_stays() {
    let app = spawn_with(|s| s.limits.events_per_socket_per_second = 5).await;
    let admin = app.login("admin", "admin123").await;
    let (c, _) = app.connect_ok(&admin).await;
    let em = c.emitter();
    let sends = (0..30).map(|i| {
        let em = em.clone();
        async move {
            em.emit_with_ack(
                "send_message",
                json!({"to": 2, "content": format!("burst {i}")}),
                WAIT,
            )
            .await
            .unwrap()
        }
    });
    let acks = futures_util::future::join_all(sends).await;
    let ok = acks.iter().filter(|a| a[0]["ok"] == true).count();
    let limited = acks
        .iter()
        .filter(|a| a[0]["code"] == "RATE_LIMITED")
        .count();
    assert_eq!(ok + limited, 30, "{acks:?}");
    assert!(
        (5..30).contains(&ok) && limited > 0,
        "ok {ok}, limited {limited}"
    );
    let (_, history) = app
        .get("/api/messages?with=2&limit=100", Some(&admin))
        .await;
    let stored = history["data"]["messages"].as_array().unwrap().len();
    assert_eq!(stored, ok, "a refused event is not carried out: {history}");
    // The socket stays, and gets events through again once its budget refills.
    eventually("an event accepted again", 10, || async {
        let ack = c
            .emit_with_ack("presence:subscribe", json!({"userIds": [2]}), WAIT)
            .await
            .unwrap();
        ack[0]["ok"] == true
    })
    .await;
    assert!(!c.is_closed());
}

#[tokio::test]
async fn max_connections_per_user_counts_across_nodes_and_forgets_a_dead_node() {
    use crate::multi_node::Cluster;
    let mut c = Cluster::start(0).await;
    for id in ["node-a", "node-b"] {
        let extra = [("IM_LIMITS__MAX_CONNECTIONS_PER_USER", "2")];
        let node = Cluster::node(&c.redis, &c.db_url, id, &extra).await;
        c.nodes.push(node);
    }
    let admin = c.login(0, "admin", "admin123").await;
    let _on_a = c.connect(0, &admin).await;
    let _on_b = c.connect(1, &admin).await;
    for node in 0..2 {
        let mut third = loadgen::sio::Client::connect(c.nodes[node].sio(&admin))
            .await
            .unwrap();
        assert_eq!(verdict(&mut third).await, "CONNECTION_LIMIT", "node {node}");
    }
    let kefu = c.login(1, "kefu1", "kefu123").await;
    let _k = c.connect(0, &kefu).await;
    // node-b dies without a goodbye: its place goes with its lease (3 s in these tests).
    c.nodes[1].kill();
    eventually("the dead node's place is given back", 20, || {
        let opts = c.nodes[0].sio(&admin);
        async move {
            let mut s = loadgen::sio::Client::connect(opts).await.unwrap();
            verdict(&mut s).await == "OK"
        }
    })
    .await;
}

#[tokio::test]
async fn wrong_paths_name_the_right_one_and_a_half_upgrade_gets_400_at_once() {
    let app = spawn_app().await;
    let secret = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2Vu.c2ln";
    for path in ["/im", "/ws", "/", "/api/socket.io/"] {
        let url = app.url(&format!("{path}?EIO=4&transport=polling&token={secret}"));
        let resp = app.http.get(url).send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert!(status >= 400, "{path}: {status}");
        assert!(
            body.contains("/socket.io/") && body.contains("io(\\\"http://HOST:PORT/im\\\")"),
            "{path}: {body}"
        );
        assert!(
            !body.contains(secret) && !body.contains("c2VjcmV0"),
            "{path} echoes the token: {body}"
        );
        // The same path as a WebSocket upgrade, over raw TCP.
        let answer = raw_http(
            app.addr,
            &format!(
                "GET {path}?token={secret} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                 Sec-WebSocket-Version: 13\r\n\r\n"
            ),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
        assert!(
            answer.contains("/socket.io/") && !answer.contains(secret),
            "{answer}"
        );
    }
    let resp = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.text().await.unwrap().contains("<html"),
        "plain GET / is the demo page"
    );
    // What nginx forwards without `proxy_set_header Upgrade`: the key, no Upgrade/Connection.
    let answer = raw_http(
        app.addr,
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("Upgrade") && answer.contains("proxy"),
        "{answer}"
    );
    // The real upgrade still works.
    let (_c, _) = app.connect_ok(&app.login("admin", "admin123").await).await;
}

#[tokio::test]
async fn user_disable_kicks_the_users_sockets_on_every_node_and_enable_lets_them_back() {
    use crate::multi_node::Cluster;
    let c = Cluster::start(2).await;
    let admin = c.login(0, "admin", "admin123").await;
    let kefu = c.login(0, "kefu1", "kefu123").await;
    let mut on_a = c.connect(0, &admin).await;
    let mut on_b = c.connect(1, &admin).await;
    let bystander = c.connect(1, &kefu).await;
    let dir = tempfile::tempdir().unwrap();
    let cli = |command: &str| {
        let redis = c.redis.url();
        let env = [
            ("DATABASE_URL", c.db_url.as_str()),
            ("REDIS_URL", &redis),
            ("JWT_SECRET", SECRET),
        ];
        let (ok, text) = run_cli(dir.path(), &["user", command, "--username", "admin"], &env);
        assert!(ok, "{text}");
        text
    };
    let said = cli("disable");
    assert!(
        said.contains("disabled") && said.contains("2 running node"),
        "{said}"
    );
    for s in [&mut on_a, &mut on_b] {
        let err = expect_rejected(s).await;
        assert_eq!(err["code"], "USER_DISABLED", "{err}");
    }
    // The cache was dropped at once: the very next handshake (well within cache_ttl_secs)
    // and HTTP call see the row.
    for node in 0..2 {
        let mut s = loadgen::sio::Client::connect(c.nodes[node].sio(&admin))
            .await
            .unwrap();
        assert_eq!(verdict(&mut s).await, "USER_DISABLED", "node {node}");
    }
    let v = c.get(1, "/auth/validate", &admin).await;
    assert_eq!(v["code"], "USER_DISABLED", "{v}");
    // Nobody else was touched.
    let ack = bystander
        .emit_with_ack("presence:subscribe", json!({"userIds": [1]}), WAIT)
        .await
        .unwrap();
    assert_eq!(ack[0]["ok"], true, "{ack:?}");
    assert!(cli("enable").contains("enabled"));
    for node in 0..2 {
        let _back = c.connect(node, &admin).await;
    }
}

#[tokio::test]
async fn a_client_sending_its_headers_slowly_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_with(|s| s.server.header_read_timeout_secs = 1).await;
    let slow = (0..20).map(|_| async {
        let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // One header byte every 200 ms, for at most 15 s: the server must hang up first.
        for _ in 0..75 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            if tcp.write_all(b"x").await.is_err() {
                return true;
            }
            let mut buf = [0u8; 512];
            match tokio::time::timeout(std::time::Duration::from_millis(1), tcp.read(&mut buf))
                .await
            {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => return true, // an error response, then the close
                Err(_) => {}
            }
        }
        false
    });
    let cut = futures_util::future::join_all(slow).await;
    assert!(cut.iter().all(|c| *c), "still open after 15 s: {cut:?}");
    // A normal client is served as before.
    let (status, body) = app.get("/health", None).await;
    assert_eq!(status, 200, "{body}");
}

/// Read until the connection ends (`true`) or nothing more comes for `quiet` (`false`);
/// also returns how many `error` events arrived.
async fn until_closed(c: &mut loadgen::sio::Client, quiet: std::time::Duration) -> (bool, usize) {
    use loadgen::sio::Incoming;
    let mut errors = 0;
    for _ in 0..1000 {
        match c.next(quiet).await {
            Some(Incoming::Closed) => return (true, errors),
            Some(Incoming::Event { name, .. }) if name == "error" => errors += 1,
            Some(_) => {}
            None => return (c.is_closed(), errors),
        }
    }
    (c.is_closed(), errors)
}

#[tokio::test]
async fn a_refused_connection_is_closed_after_connect_timeout_unless_another_namespace_holds_it() {
    let app = spawn_with(|s| s.socketio.connect_timeout_ms = 1000).await;
    // Legacy refusal: connect, error, namespace disconnect... then the Engine.IO session too.
    let mut refused = app.connect("not-a-token").await;
    assert_eq!(
        expect_rejected(&mut refused).await["code"],
        "TOKEN_MALFORMED"
    );
    let (closed, _) = until_closed(&mut refused, std::time::Duration::from_secs(10)).await;
    assert!(closed, "the refused session is closed by the server");
    // Strict refusal (CONNECT_ERROR) likewise.
    let strict = spawn_with(|s| {
        s.socketio.connect_timeout_ms = 1000;
        s.auth.failure_mode = im_server::config::FailureMode::Strict;
    })
    .await;
    let mut c = strict.connect("not-a-token").await;
    assert_eq!(verdict(&mut c).await, "TOKEN_MALFORMED");
    assert!(
        until_closed(&mut c, std::time::Duration::from_secs(10))
            .await
            .0
    );
    // The root namespace connected on the same session keeps it open.
    let mut kept = app.connect("not-a-token").await;
    kept.send_raw("40").await.unwrap();
    expect_rejected(&mut kept).await;
    let (closed, _) = until_closed(&mut kept, std::time::Duration::from_secs(3)).await;
    assert!(!closed, "a session holding '/' stays open");
}

#[tokio::test]
async fn connect_attempts_per_connection_are_bounded() {
    let app = spawn_with(|s| s.auth.failure_mode = im_server::config::FailureMode::Strict).await;
    let c = app.connect("bad").await;
    for _ in 0..50 {
        if c.send_raw("40/im,{\"token\":\"bad\"}").await.is_err() {
            break;
        }
    }
    let mut c = c;
    let (closed, _) = until_closed(&mut c, std::time::Duration::from_secs(10)).await;
    assert!(
        closed,
        "the server closes a connection that keeps sending CONNECT"
    );
    let code = handshake_code(&app, app.with_token(&app.login("admin", "admin123").await)).await;
    assert_eq!(code, "OK", "others are not affected");
}

#[tokio::test]
async fn user_disable_without_redis_reaches_the_running_node_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("im.db").display());
    let env = [
        ("DATABASE_URL", db.as_str()),
        ("PORT", port.as_str()),
        ("HOST", "127.0.0.1"),
        ("JWT_SECRET", SECRET),
    ];
    let node = NodeProcess::start("single", &env).await;
    let (status, login) = http_json(
        reqwest::Method::POST,
        &format!("{}/auth/login", node.base),
        Some(json!({"username": "admin", "password": "admin123"})),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let token = login["data"]["token"].as_str().unwrap().to_string();
    let mut open = loadgen::sio::Client::connect(node.sio(&token))
        .await
        .unwrap();
    assert_eq!(verdict(&mut open).await, "OK");
    let cli = |command: &str, secret: &str| {
        let mut env = env;
        env[3].1 = secret;
        let (ok, text) = run_cli(dir.path(), &["user", command, "--username", "admin"], &env);
        assert!(ok, "{text}");
        text
    };

    let said = cli("disable", SECRET);
    assert!(
        said.contains("told the running server") && said.contains("1 socket(s) kicked"),
        "{said}"
    );
    let err = expect_rejected(&mut open).await;
    assert_eq!(err["code"], "USER_DISABLED", "{err}");
    // The cached verdict went with it: the next handshake (well within cache_ttl_secs) sees
    // the row.
    let mut again = loadgen::sio::Client::connect(node.sio(&token))
        .await
        .unwrap();
    assert_eq!(verdict(&mut again).await, "USER_DISABLED");

    // A CLI reading another secret is refused, and says so without printing either secret.
    let other = "a-different-secret-0123456789abcdef-0000";
    let said = cli("enable", other);
    assert!(
        said.contains("refused") && said.contains("sha256:"),
        "{said}"
    );
    assert!(!said.contains(other) && !said.contains(SECRET), "{said}");
    let said = cli("enable", SECRET);
    assert!(said.contains("told the running server"), "{said}");
    let mut back = loadgen::sio::Client::connect(node.sio(&token))
        .await
        .unwrap();
    assert_eq!(verdict(&mut back).await, "OK");
}
