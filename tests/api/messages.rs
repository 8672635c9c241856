//! Direct messages, history, presence, online users and server publish on one node.

use std::time::Duration;

use loadgen::sio::Incoming;
use serde_json::{Value, json};

use crate::helpers::*;

pub async fn two_users(app: &TestApp) -> (i64, String, i64, String) {
    let a = app.create_user("alice", "alice-pass", "user").await;
    let b = app.create_user("bob", "bob-pass", "user").await;
    (
        a.id,
        app.login("alice", "alice-pass").await,
        b.id,
        app.login("bob", "bob-pass").await,
    )
}

#[tokio::test]
async fn a_message_is_stored_acked_and_delivered_to_every_socket_of_both_users() {
    let app = spawn_app().await;
    let (alice, ta, bob, tb) = two_users(&app).await;
    let (sender, _) = app.connect_ok(&ta).await;
    let (mut sender_tab2, _) = app.connect_ok(&ta).await;
    let (mut bob1, _) = app.connect_ok(&tb).await;
    let (mut bob2, _) = app.connect_ok(&tb).await;
    let ack = sender
        .emit_with_ack(
            "send_message",
            json!({"to": bob, "content": "hello bob", "client_msg_id": "c-1"}),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(ack[0]["ok"], true, "{ack:?}");
    let id = ack[0]["id"].as_i64().unwrap();
    assert!(ack[0]["created_at"].as_str().unwrap().ends_with('Z'));
    for c in [&mut bob1, &mut bob2, &mut sender_tab2] {
        let m = c.expect_event("message", WAIT).await.unwrap();
        assert_eq!(m[0]["id"], id);
        assert_eq!(m[0]["from"], alice);
        assert_eq!(m[0]["to"], bob);
        assert_eq!(m[0]["content"], "hello bob");
        assert_eq!(m[0]["client_msg_id"], "c-1");
        assert_eq!(m[0]["created_at"], ack[0]["created_at"]);
    }
    // A retry with the same client_msg_id is not stored or delivered twice.
    let again = sender
        .emit_with_ack(
            "send_message",
            json!({"to": bob, "content": "hello bob", "client_msg_id": "c-1"}),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(
        (again[0]["ok"].as_bool(), again[0]["id"].as_i64()),
        (Some(true), Some(id))
    );
    assert!(
        bob1.next(Duration::from_millis(300)).await.is_none(),
        "no second delivery"
    );
    let (_, page) = app
        .get(&format!("/api/messages?with={bob}"), Some(&ta))
        .await;
    assert_eq!(page["data"]["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_messages_get_bad_request_or_user_not_found_and_the_socket_stays() {
    let app = spawn_app().await;
    let (_, ta, bob, _) = two_users(&app).await;
    let (c, _) = app.connect_ok(&ta).await;
    let huge = "x".repeat(70_000);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"to": bob, "content": ""}), "BAD_REQUEST"),
        (json!({"to": bob, "content": "   "}), "BAD_REQUEST"),
        (json!({"to": bob, "content": huge}), "BAD_REQUEST"),
        (json!({"to": bob, "content": 42}), "BAD_REQUEST"),
        (json!({"to": "nobody", "content": "hi"}), "BAD_REQUEST"),
        (json!({"content": "hi"}), "BAD_REQUEST"),
        (json!({"to": 99_999, "content": "hi"}), "USER_NOT_FOUND"),
        (json!([1, 2, 3]), "BAD_REQUEST"),
        (json!(null), "BAD_REQUEST"),
        (json!("a string"), "BAD_REQUEST"),
    ];
    for (payload, code) in cases {
        let ack = c
            .emit_with_ack("send_message", payload.clone(), WAIT)
            .await
            .unwrap();
        assert_eq!(ack[0]["ok"], false, "{payload}");
        assert_eq!(ack[0]["code"], code, "{payload} → {ack:?}");
        assert!(ack[0]["message"].is_string());
    }
    // Unparsable frames and events without an ack do not take the socket down either.
    c.emit("send_message", json!({"to": "x"})).await.unwrap();
    let ack = c
        .emit_with_ack(
            "send_message",
            json!({"to": bob, "content": "still here"}),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(ack[0]["ok"], true);
}

#[tokio::test]
async fn history_pages_newest_first_and_only_shows_the_callers_conversation() {
    let app = spawn_app().await;
    let (alice, ta, bob, tb) = two_users(&app).await;
    app.create_user("carol", "carol-pass", "user").await;
    let tc = app.login("carol", "carol-pass").await;
    let (ca, _) = app.connect_ok(&ta).await;
    let (cb, _) = app.connect_ok(&tb).await;
    let (cc, _) = app.connect_ok(&tc).await;
    for i in 0..5 {
        let (from, to) = if i % 2 == 0 { (&ca, bob) } else { (&cb, alice) };
        let ack = from
            .emit_with_ack(
                "send_message",
                json!({"to": to, "content": format!("m{i}")}),
                WAIT,
            )
            .await
            .unwrap();
        assert_eq!(ack[0]["ok"], true);
    }
    cc.emit_with_ack(
        "send_message",
        json!({"to": alice, "content": "from carol"}),
        WAIT,
    )
    .await
    .unwrap();
    let (status, page) = app
        .get(&format!("/api/messages?with={bob}&limit=3"), Some(&ta))
        .await;
    assert_eq!(status, 200, "{page}");
    let contents: Vec<&str> = page["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, vec!["m4", "m3", "m2"]);
    let before = page["data"]["next_before"].as_i64().unwrap();
    let (_, page2) = app
        .get(
            &format!("/api/messages?with={bob}&limit=3&before={before}"),
            Some(&ta),
        )
        .await;
    let contents: Vec<&str> = page2["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, vec!["m1", "m0"]);
    assert!(page2["data"]["next_before"].is_null());
    let (status, body) = app.get("/api/messages?with=abc", Some(&ta)).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("BAD_REQUEST")));
    assert_eq!(
        app.get(&format!("/api/messages?with={bob}"), None).await.0,
        401
    );
}

#[tokio::test]
async fn presence_subscribers_see_first_connect_and_last_disconnect() {
    let app = spawn_app().await;
    let (_, ta, bob, tb) = two_users(&app).await;
    let (mut watcher, _) = app.connect_ok(&ta).await;
    let ack = watcher
        .emit_with_ack("presence:subscribe", json!({"userIds": [bob, 1]}), WAIT)
        .await
        .unwrap();
    assert_eq!(ack[0], json!({"ok": true, "online": []}));
    let (b1, _) = app.connect_ok(&tb).await;
    let ev = watcher.expect_event("presence", WAIT).await.unwrap();
    assert_eq!(
        (ev[0]["userId"].as_i64(), ev[0]["online"].as_bool()),
        (Some(bob), Some(true))
    );
    assert!(ev[0]["at"].as_str().unwrap().ends_with('Z'));
    // A second socket is not a transition.
    let (b2, _) = app.connect_ok(&tb).await;
    assert!(watcher.next(Duration::from_millis(300)).await.is_none());
    let ack = watcher
        .emit_with_ack("presence:subscribe", json!({"userIds": [bob]}), WAIT)
        .await
        .unwrap();
    assert_eq!(ack[0]["online"], json!([bob]));
    b1.close().await;
    assert!(
        watcher.next(Duration::from_millis(300)).await.is_none(),
        "bob still has a socket"
    );
    b2.close().await;
    let ev = watcher.expect_event("presence", WAIT).await.unwrap();
    assert_eq!(
        (ev[0]["userId"].as_i64(), ev[0]["online"].as_bool()),
        (Some(bob), Some(false))
    );
    // Unsubscribed: no more events.
    watcher
        .emit_with_ack("presence:unsubscribe", json!({"userIds": [bob]}), WAIT)
        .await
        .unwrap();
    let (_b3, _) = app.connect_ok(&tb).await;
    assert!(watcher.next(Duration::from_millis(300)).await.is_none());
    let bad = watcher
        .emit_with_ack("presence:subscribe", json!({"userIds": "bob"}), WAIT)
        .await
        .unwrap();
    assert_eq!(bad[0]["code"], "BAD_REQUEST");
}

#[tokio::test]
async fn online_lists_users_with_socket_counts_filtered_by_type() {
    let app = spawn_app().await;
    let admin = app.login("admin", "admin123").await;
    let kefu = app.login("kefu1", "kefu123").await;
    let (_a1, _) = app.connect_ok(&admin).await;
    let (_a2, _) = app.connect_ok(&admin).await;
    let (_k1, _) = app.connect_ok(&kefu).await;
    let (status, body) = app.get("/auth/online", Some(&admin)).await;
    assert_eq!(status, 200, "{body}");
    let users = body["data"]["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(
        (users[0]["username"].as_str(), users[0]["sockets"].as_u64()),
        (Some("admin"), Some(2))
    );
    assert_eq!(
        (users[1]["username"].as_str(), users[1]["sockets"].as_u64()),
        (Some("kefu1"), Some(1))
    );
    assert!(users[0]["since"].as_str().unwrap().ends_with('Z'));
    let (_, body) = app.get("/auth/online?user_type=kefu", Some(&admin)).await;
    let users = body["data"]["users"].as_array().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["display_name"], "Support agent 1");
}

#[tokio::test]
async fn publish_reaches_the_union_of_targets_and_counts_sockets() {
    let app =
        spawn_with(|s| s.server.api_key = Some(im_server::config::Secret::new("publish-key-123")))
            .await;
    let admin = app.login("admin", "admin123").await;
    let kefu = app.login("kefu1", "kefu123").await;
    let (mut a, _) = app.connect_ok(&admin).await;
    let (mut k1, _) = app.connect_ok(&kefu).await;
    let (mut k2, _) = app.connect_ok(&kefu).await;
    let publish = |body: Value, key: Option<&'static str>| {
        let mut req = app.http.post(app.url("/api/publish")).json(&body);
        if let Some(k) = key {
            req = req.header("X-Api-Key", k);
        }
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, b) = publish(
        json!({"event": "purchase_completed", "data": {"sku": 7}, "to_users": [1]}),
        Some("publish-key-123"),
    )
    .await;
    assert_eq!(
        (s, b["data"]["delivered_to_sockets"].as_u64()),
        (200, Some(1)),
        "{b}"
    );
    assert_eq!(
        a.expect_event("purchase_completed", WAIT).await.unwrap()[0],
        json!({"sku": 7})
    );
    let (_, b) = publish(
        json!({"event": "shift", "data": 1, "user_type": "kefu", "to_users": [1]}),
        Some("publish-key-123"),
    )
    .await;
    assert_eq!(
        b["data"]["delivered_to_sockets"], 3,
        "union, each socket once"
    );
    for c in [&mut a, &mut k1, &mut k2] {
        c.expect_event("shift", WAIT).await.unwrap();
    }
    let (_, b) = publish(
        json!({"event": "everyone", "broadcast": true}),
        Some("publish-key-123"),
    )
    .await;
    assert_eq!(b["data"]["delivered_to_sockets"], 3);
    let (_, b) = publish(
        json!({"event": "room", "rooms": ["type:admin"]}),
        Some("publish-key-123"),
    )
    .await;
    assert_eq!(b["data"]["delivered_to_sockets"], 1);

    let (s, b) = publish(
        json!({"event": "error", "to_users": [1]}),
        Some("publish-key-123"),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("BAD_REQUEST")));
    let (s, b) = publish(json!({"event": "x"}), Some("publish-key-123")).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("BAD_REQUEST")));
    let (s, b) = publish(json!({"event": "x", "broadcast": true}), None).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("TOKEN_MISSING")));
    let (s, b) = publish(json!({"event": "x", "broadcast": true}), Some("wrong")).await;
    assert_eq!((s, b["code"].as_str()), (403, Some("FORBIDDEN")));
    assert!(!b.to_string().contains("publish-key-123"));
    // Nothing arrived for the refused ones.
    let next = a.next(Duration::from_millis(300)).await;
    assert!(
        !matches!(&next, Some(Incoming::Event { name, .. }) if name == "x"),
        "{next:?}"
    );
}

#[tokio::test]
async fn concurrent_sends_are_batched_and_each_ack_names_its_own_row() {
    let app = spawn_app().await;
    let (_, ta, bob, tb) = two_users(&app).await;
    let (c, _) = app.connect_ok(&ta).await;
    let (_b, _) = app.connect_ok(&tb).await;
    let em = c.emitter();
    // 60 sends in flight at once (they share the writer's batches), with an unknown recipient
    // and a client retry mixed in.
    let mut sends = vec![];
    for i in 0..60 {
        let em = em.clone();
        let (to, cmid) = match i {
            7 => (99_999, format!("c{i}")),
            20 => (bob, "c3".to_string()), // retry of message 3
            _ => (bob, format!("c{i}")),
        };
        sends.push(tokio::spawn(async move {
            let ack = em
                .emit_with_ack(
                    "send_message",
                    json!({"to": to, "content": format!("m{i}"), "client_msg_id": cmid}),
                    WAIT,
                )
                .await
                .unwrap();
            (i, ack[0].clone())
        }));
    }
    let mut acks = std::collections::HashMap::new();
    for s in sends {
        let (i, ack) = s.await.unwrap();
        acks.insert(i, ack);
    }
    assert_eq!(acks[&7]["code"], "USER_NOT_FOUND");
    assert_eq!(
        acks[&20]["id"], acks[&3]["id"],
        "a retry returns the first message's id"
    );
    let (_, page) = app
        .get(&format!("/api/messages?with={bob}&limit=200"), Some(&ta))
        .await;
    let rows = page["data"]["messages"].as_array().unwrap();
    assert_eq!(rows.len(), 58, "60 sends - 1 unknown recipient - 1 retry");
    for (i, ack) in &acks {
        if *i == 7 || *i == 20 {
            continue;
        }
        assert_eq!(ack["ok"], true, "{i}: {ack}");
        let row = rows
            .iter()
            .find(|r| r["id"] == ack["id"])
            .unwrap_or_else(|| panic!("no row for ack {i}"));
        assert_eq!(
            row["content"],
            format!("m{i}"),
            "ack {i} names the row with its own content"
        );
    }
}

/// Messages queued together reach the writer as one batch, which SQLite stores with one INSERT
/// and whose ids are derived from `last_insert_rowid`: every caller must get back its own row.
#[tokio::test]
async fn a_batch_of_queued_messages_gets_the_ids_of_its_own_rows() {
    use entity::messages;
    use sea_orm::EntityTrait;
    let app = spawn_app().await;
    let (alice, _, bob, _) = two_users(&app).await;
    // A row that is not part of the batch, so ids do not start at 1.
    let writer = app.state.messages();
    let parse =
        |v: Value| im_server::chat::Outgoing::parse(Some(&v), im_server::ids::IdKind::Int).unwrap();
    writer
        .store(bob.into(), parse(json!({"to": alice, "content": "before"})))
        .await
        .unwrap();
    // All 200 are queued before the writer task runs (one test thread), so it takes them at once.
    let stored = futures_util::future::join_all((0..200).map(|i| {
        writer.store(
            alice.into(),
            parse(json!({"to": bob, "content": format!("m{i}")})),
        )
    }))
    .await;
    let mut ids = std::collections::HashSet::new();
    for (i, s) in stored.into_iter().enumerate() {
        let s = s.unwrap_or_else(|e| panic!("message {i}: {e:?}"));
        assert!(s.created);
        assert_eq!(s.message.content, format!("m{i}"));
        let row = messages::Entity::find_by_id(s.message.id)
            .one(app.state.db())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no row with the id message {i} was given"));
        assert_eq!(row, s.message, "message {i}: the id names its own row");
        ids.insert(s.message.id);
    }
    assert_eq!(ids.len(), 200);
}
