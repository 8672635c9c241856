//! Several im-server processes joined by one redis-server behave as one server: messages,
//! presence, online users, logout kicks and publish cross nodes; a node that dies drops out
//! after its lease; a Redis restart is survived without restarting the nodes.

use std::time::Duration;

use loadgen::sio::{Client, Incoming};
use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

/// Also used by other modules' cluster tests (protect.rs).
pub(crate) struct Cluster {
    pub(crate) redis: RedisServer,
    pub(crate) nodes: Vec<NodeProcess>,
    _dir: tempfile::TempDir,
    pub(crate) db_url: String,
}

impl Cluster {
    pub(crate) async fn start(n: usize) -> Cluster {
        let redis = RedisServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let db_url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("cluster.db").display()
        );
        let mut nodes = vec![];
        for i in 0..n {
            nodes.push(
                Self::node(
                    &redis,
                    &db_url,
                    &format!("node-{}", (b'a' + i as u8) as char),
                    &[],
                )
                .await,
            );
        }
        Cluster {
            redis,
            nodes,
            _dir: dir,
            db_url,
        }
    }

    pub(crate) async fn node(
        redis: &RedisServer,
        db_url: &str,
        id: &str,
        extra: &[(&str, &str)],
    ) -> NodeProcess {
        let url = redis.url();
        let mut env = vec![("REDIS_URL", url.as_str()), ("DATABASE_URL", db_url)];
        env.extend_from_slice(extra);
        NodeProcess::start(id, &env).await
    }

    pub(crate) async fn login(&self, node: usize, user: &str, pass: &str) -> String {
        let (s, b) = http_json(
            Method::POST,
            &format!("{}/auth/login", self.nodes[node].base),
            Some(json!({"username": user, "password": pass})),
            None,
            None,
        )
        .await;
        assert_eq!(s, 200, "{b}");
        b["data"]["token"].as_str().unwrap().to_string()
    }

    /// `POST /auth/logout` with `token` on `node`; asserts it succeeded.
    async fn logout(&self, node: usize, token: &str) {
        let (s, b) = http_json(
            Method::POST,
            &format!("{}/auth/logout", self.nodes[node].base),
            Some(json!({})),
            Some(token),
            None,
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }

    pub(crate) async fn connect(&self, node: usize, token: &str) -> Client {
        let mut c = Client::connect(self.nodes[node].sio(token)).await.unwrap();
        c.expect_event("connected", WAIT).await.unwrap();
        c
    }

    pub(crate) async fn get(&self, node: usize, path: &str, bearer: &str) -> serde_json::Value {
        http_json(
            Method::GET,
            &format!("{}{path}", self.nodes[node].base),
            None,
            Some(bearer),
            None,
        )
        .await
        .1
    }
}

#[tokio::test]
async fn a_message_sent_on_one_node_reaches_sockets_on_another() {
    let c = Cluster::start(2).await;
    let admin = c.login(0, "admin", "admin123").await;
    let kefu = c.login(1, "kefu1", "kefu123").await;
    let sender = c.connect(0, &admin).await;
    let mut sender_elsewhere = c.connect(1, &admin).await;
    let mut recipient = c.connect(1, &kefu).await;
    let ack = sender
        .emit_with_ack(
            "send_message",
            json!({"to": 2, "content": "across nodes"}),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(ack[0]["ok"], true, "{ack:?}");
    for sock in [&mut recipient, &mut sender_elsewhere] {
        let m = sock.expect_event("message", WAIT).await.unwrap();
        assert_eq!(
            (m[0]["content"].as_str(), m[0]["id"].as_i64()),
            (Some("across nodes"), ack[0]["id"].as_i64())
        );
    }
    // History is the same from either node (one shared database).
    let h = c.get(0, "/api/messages?with=1", &kefu).await;
    assert_eq!(h["data"]["messages"][0]["content"], "across nodes");
}

#[tokio::test]
async fn presence_online_and_session_agree_across_nodes() {
    let c = Cluster::start(2).await;
    let admin = c.login(0, "admin", "admin123").await;
    let kefu = c.login(0, "kefu1", "kefu123").await;
    let mut watcher = c.connect(0, &admin).await;
    let ack = watcher
        .emit_with_ack("presence:subscribe", json!({"userIds": [2]}), WAIT)
        .await
        .unwrap();
    assert_eq!(ack[0]["online"], json!([]));
    let on_b = c.connect(1, &kefu).await;
    let ev = watcher.expect_event("presence", WAIT).await.unwrap();
    assert_eq!(
        (ev[0]["userId"].as_i64(), ev[0]["online"].as_bool()),
        (Some(2), Some(true))
    );
    let on_a = c.connect(0, &kefu).await;
    for node in 0..2 {
        let online = c.get(node, "/auth/online?user_type=kefu", &admin).await;
        assert_eq!(
            online["data"]["users"][0]["sockets"], 2,
            "node {node}: {online}"
        );
        let session = c.get(node, "/auth/session", &kefu).await;
        assert_eq!(
            session["data"]["sockets"].as_array().unwrap().len(),
            2,
            "node {node}: {session}"
        );
    }
    let ack = watcher
        .emit_with_ack("presence:subscribe", json!({"userIds": [2]}), WAIT)
        .await
        .unwrap();
    assert_eq!(ack[0]["online"], json!([2]));
    on_b.close().await;
    assert!(
        watcher.next(Duration::from_millis(500)).await.is_none(),
        "still online on node A"
    );
    on_a.close().await;
    let ev = watcher.expect_event("presence", WAIT).await.unwrap();
    assert_eq!(ev[0]["online"], false);
}

#[tokio::test]
async fn logout_on_one_node_kicks_the_socket_on_another() {
    let c = Cluster::start(2).await;
    let token = c.login(0, "admin", "admin123").await;
    let mut on_b = c.connect(1, &token).await;
    c.logout(0, &token).await;
    assert_eq!(expect_rejected(&mut on_b).await["code"], "TOKEN_REVOKED");
}

#[tokio::test]
async fn publish_via_one_node_reaches_every_node_with_the_right_count() {
    let c = Cluster::start(3).await;
    let kefu = c.login(0, "kefu1", "kefu123").await;
    let mut socks = vec![
        c.connect(1, &kefu).await,
        c.connect(2, &kefu).await,
        c.connect(2, &kefu).await,
    ];
    let (s, b) = http_json(
        Method::POST,
        &format!("{}/api/publish", c.nodes[0].base),
        Some(json!({"event": "refresh_access", "data": {"plan": "pro"}, "to_users": [2]})),
        None,
        Some("cluster-key"),
    )
    .await;
    assert_eq!(
        (s, b["data"]["delivered_to_sockets"].as_u64()),
        (200, Some(3)),
        "{b}"
    );
    for sock in &mut socks {
        assert_eq!(
            sock.expect_event("refresh_access", WAIT).await.unwrap()[0]["plan"],
            "pro"
        );
    }
}

#[tokio::test]
async fn health_lists_nodes_and_flags_config_drift() {
    let mut c = Cluster::start(2).await;
    eventually("both nodes in /health", 10, || async {
        let (_, h) = http_json(
            Method::GET,
            &format!("{}/health", c.nodes[0].base),
            None,
            None,
            None,
        )
        .await;
        h["nodes"].as_array().map(|n| n.len()) == Some(2)
    })
    .await;
    let (s, h) = http_json(
        Method::GET,
        &format!("{}/health", c.nodes[1].base),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(
        (s, h["redis"].as_str(), h["config_drift"].as_bool()),
        (200, Some("ok"), Some(false)),
        "{h}"
    );
    let ids: Vec<&str> = h["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["node-a", "node-b"]);
    // A third process started with another secret verifies tokens differently: drift.
    let odd = Cluster::node(
        &c.redis,
        &c.db_url,
        "node-odd",
        &[("JWT_SECRET", "a-different-secret-for-the-odd-node-123")],
    )
    .await;
    c.nodes.push(odd);
    eventually("config_drift reported", 10, || async {
        let (_, h) = http_json(
            Method::GET,
            &format!("{}/health", c.nodes[0].base),
            None,
            None,
            None,
        )
        .await;
        h["config_drift"] == json!(true) && h["nodes"].as_array().map(|n| n.len()) == Some(3)
    })
    .await;
}

#[tokio::test]
async fn a_killed_node_drops_out_of_presence_and_nodes_after_its_lease() {
    let mut c = Cluster::start(2).await;
    let admin = c.login(0, "admin", "admin123").await;
    let kefu = c.login(0, "kefu1", "kefu123").await;
    let mut watcher = c.connect(0, &admin).await;
    watcher
        .emit_with_ack("presence:subscribe", json!({"userIds": [2]}), WAIT)
        .await
        .unwrap();
    let _doomed = c.connect(1, &kefu).await;
    watcher.expect_event("presence", WAIT).await.unwrap();
    c.nodes[1].kill(); // SIGKILL: no goodbye
    let ev = watcher
        .expect_event("presence", Duration::from_secs(12))
        .await
        .unwrap();
    assert_eq!(
        (ev[0]["userId"].as_i64(), ev[0]["online"].as_bool()),
        (Some(2), Some(false))
    );
    let online = c.get(0, "/auth/online", &admin).await;
    let ids: Vec<i64> = online["data"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![1]);
    let (_, h) = http_json(
        Method::GET,
        &format!("{}/health", c.nodes[0].base),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(h["nodes"].as_array().unwrap().len(), 1, "{h}");
}

#[tokio::test]
async fn nodes_survive_a_redis_restart_without_restarting() {
    let mut c = Cluster::start(2).await;
    let admin = c.login(0, "admin", "admin123").await;
    let kefu = c.login(0, "kefu1", "kefu123").await;
    let sender = c.connect(0, &admin).await;
    let mut same_node = c.connect(0, &kefu).await;
    let mut other_node = c.connect(1, &kefu).await;

    c.redis.stop();
    let (s, h) = http_json(
        Method::GET,
        &format!("{}/health", c.nodes[0].base),
        None,
        None,
        None,
    )
    .await;
    assert_eq!((s, h["redis"].as_str()), (503, Some("down")), "{h}");
    // Local delivery keeps working while Redis is away.
    let ack = sender
        .emit_with_ack(
            "send_message",
            json!({"to": 2, "content": "during outage"}),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(ack[0]["ok"], true, "{ack:?}");
    assert_eq!(
        same_node.expect_event("message", WAIT).await.unwrap()[0]["content"],
        "during outage"
    );

    c.redis.restart().await;
    eventually("health green again", 20, || async {
        http_json(
            Method::GET,
            &format!("{}/health", c.nodes[0].base),
            None,
            None,
            None,
        )
        .await
        .0 == 200
    })
    .await;
    // Cross-node delivery is back (the adapter resubscribed); retry until it is.
    let mut delivered = false;
    for i in 0..20 {
        let content = format!("after restart {i}");
        sender
            .emit_with_ack("send_message", json!({"to": 2, "content": content}), WAIT)
            .await
            .unwrap();
        while let Some(item) = other_node.next(Duration::from_millis(500)).await {
            if let Incoming::Event { name, args } = &item
                && name == "message"
                && args[0]["content"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("after restart"))
            {
                delivered = true;
            }
        }
        if delivered {
            break;
        }
    }
    assert!(
        delivered,
        "cross-node delivery recovered after the Redis restart"
    );
}

#[tokio::test]
async fn a_revocation_on_one_node_clears_cached_auth_on_the_others() {
    let c = Cluster::start(2).await;
    let token = c.login(0, "admin", "admin123").await;
    // Node B verifies (and caches) the token...
    let first = c.connect(1, &token).await;
    first.close().await;
    // ...node A revokes it: B must not accept it from its cache.
    c.logout(0, &token).await;
    let mut again = Client::connect(c.nodes[1].sio(&token)).await.unwrap();
    assert_eq!(expect_rejected(&mut again).await["code"], "TOKEN_REVOKED");
}

#[tokio::test]
async fn a_burst_across_nodes_arrives_whole_and_sync_agrees_on_either_node() {
    let c = Cluster::start(2).await;
    let admin = c.login(0, "admin", "admin123").await;
    let kefu = c.login(1, "kefu1", "kefu123").await;
    let sender = c.connect(0, &admin).await;
    let mut recipient = c.connect(1, &kefu).await;
    let acked = crate::delivery::burst(&sender, 2, 300, "burst").await;
    let got = crate::delivery::receive_ids(&mut recipient, 300, WAIT).await;
    assert_eq!(got, acked, "every acked message crossed to node B");
    // A socket of the recipient on the other node resumes from the same place.
    let mut other = Client::connect(c.nodes[0].sio(&kefu)).await.unwrap();
    let hello = other.expect_event("connected", WAIT).await.unwrap();
    assert_eq!(hello[0]["lastMessageId"], *acked.last().unwrap());
    let synced: std::collections::BTreeSet<i64> = crate::delivery::sync_all(&other, 0, 500)
        .await
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(synced, acked);
}

#[tokio::test]
async fn after_a_redis_outage_sockets_that_missed_messages_reconnect_and_catch_up() {
    let mut c = Cluster::start(2).await;
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = run_cli(
        dir.path(),
        &[
            "user",
            "add",
            "--username",
            "bystander",
            "--password",
            "bystander1",
        ],
        &[("DATABASE_URL", c.db_url.as_str()), ("JWT_SECRET", SECRET)],
    );
    assert!(ok, "{out}");
    let admin = c.login(0, "admin", "admin123").await;
    let kefu = c.login(1, "kefu1", "kefu123").await;
    let other = c.login(1, "bystander", "bystander1").await;
    let sender = c.connect(0, &admin).await;
    let mut recipient = c.connect(1, &kefu).await;
    let mut bystander = c.connect(1, &other).await;
    c.redis.stop();
    eventually("node b notices the outage", 20, || async {
        http_json(
            Method::GET,
            &format!("{}/health", c.nodes[1].base),
            None,
            None,
            None,
        )
        .await
        .0 == 503
    })
    .await;
    // Stored and acked on node a; node b hears nothing of it while Redis is away.
    let ack = sender
        .emit_with_ack(
            "send_message",
            json!({"to": 2, "content": "during the outage"}),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(ack[0]["ok"], true, "{ack:?}");
    let id = ack[0]["id"].as_i64().unwrap();
    assert!(
        recipient.next(Duration::from_millis(500)).await.is_none(),
        "nothing can reach node b now"
    );

    c.redis.restart().await;
    // The recipient's connection is closed at the transport (not a Socket.IO disconnect,
    // after which socket.io-client would stay away), so its client reconnects by itself.
    let mut seen = vec![];
    loop {
        match recipient.next(Duration::from_secs(15)).await {
            Some(Incoming::Closed) => break,
            Some(Incoming::Disconnected) => {
                panic!("a namespace disconnect: clients would not reconnect")
            }
            Some(other) => seen.push(other.to_string()),
            None => panic!("the recipient was left connected with a hole; saw {seen:?}"),
        }
    }
    // Reconnected: `connected` says where it stands and messages:sync gives what it missed.
    let mut back = Client::connect(c.nodes[1].sio(&kefu)).await.unwrap();
    let connected = back.expect_event("connected", WAIT).await.unwrap();
    assert!(
        connected[0]["lastMessageId"].as_i64() >= Some(id),
        "{connected:?}"
    );
    let page = back
        .emit_with_ack("messages:sync", json!({"after_id": id - 1}), WAIT)
        .await
        .unwrap();
    assert_eq!(
        page[0]["messages"][0]["content"], "during the outage",
        "{page:?}"
    );
    // A user with nothing in the outage keeps the connection.
    let ack = bystander
        .emit_with_ack("presence:subscribe", json!({"userIds": [2]}), WAIT)
        .await
        .unwrap();
    assert_eq!(
        ack[0]["ok"], true,
        "the uninvolved socket is still connected: {ack:?}"
    );
    let metrics = reqwest::get(format!("{}/metrics", c.nodes[1].base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(
            |l| l.starts_with("im_kicks_total{reason=\"CLUSTER_RESYNC\"} ") && !l.ends_with(" 0")
        ),
        "counted: {}",
        metrics
            .lines()
            .filter(|l| l.contains("kicks"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
