//! Nothing acknowledged is dropped silently (contract §4): a burst to one socket arrives whole,
//! a socket that stops reading is cut off as SLOW_CONSUMER (a fast one in the same room keeps
//! receiving), and `messages:sync` / `connected.lastMessageId` give back what a socket missed.

use std::collections::BTreeSet;
use std::time::Duration;

use loadgen::sio::stalled::StalledClient;
use loadgen::sio::{Client, Incoming};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::messages::two_users;

/// `n` `send_message` emitted at once; returns the acked ids (every ack must be ok).
pub async fn burst(sender: &Client, to: i64, n: usize, content: &str) -> BTreeSet<i64> {
    let sends = (0..n).map(|i| {
        sender.emit_with_ack(
            "send_message",
            json!({"to": to, "content": format!("{i}:{content}")}),
            Duration::from_secs(60),
        )
    });
    let acks = futures_util::future::join_all(sends).await;
    acks.into_iter()
        .map(|ack| {
            let ack = ack.expect("every send is acked");
            assert_eq!(ack[0]["ok"], true, "{ack:?}");
            ack[0]["id"].as_i64().unwrap()
        })
        .collect()
}

/// Ids of `message` events until `want` of them came, or `limit` passed without one.
pub async fn receive_ids(c: &mut Client, want: usize, limit: Duration) -> BTreeSet<i64> {
    let mut ids = BTreeSet::new();
    while ids.len() < want {
        match c.next(limit).await {
            Some(Incoming::Event { name, args }) if name == "message" => {
                ids.insert(args[0]["id"].as_i64().unwrap());
            }
            Some(Incoming::Closed) | Some(Incoming::Disconnected) | None => break,
            Some(_) => {}
        }
    }
    ids
}

/// Every page of `messages:sync` from `after_id`: the ids, oldest first, checked in order.
pub async fn sync_all(c: &Client, mut after_id: i64, limit: u64) -> Vec<Value> {
    let mut all = vec![];
    for _ in 0..1000 {
        let ack = c
            .emit_with_ack(
                "messages:sync",
                json!({"after_id": after_id, "limit": limit}),
                WAIT,
            )
            .await
            .unwrap();
        assert_eq!(ack[0]["ok"], true, "{ack:?}");
        let page = ack[0]["messages"].as_array().unwrap().clone();
        assert!(page.len() as u64 <= limit);
        for m in &page {
            let id = m["id"].as_i64().unwrap();
            assert!(id > after_id, "oldest first, after the cursor");
            after_id = id;
        }
        all.extend(page);
        if ack[0]["more"] == false {
            return all;
        }
    }
    panic!("messages:sync never said more: false");
}

#[tokio::test]
async fn a_burst_of_300_to_one_websocket_recipient_arrives_whole() {
    let app = spawn_app().await;
    let (_, ta, bob, tb) = two_users(&app).await;
    let (sender, _) = app.connect_ok(&ta).await;
    let (mut recipient, _) = app.connect_ok(&tb).await;
    let acked = burst(&sender, bob, 300, "burst").await;
    assert_eq!(acked.len(), 300);
    let got = receive_ids(&mut recipient, 300, WAIT).await;
    assert_eq!(got, acked, "every acked message reaches the recipient");
    assert!(!recipient.is_closed());
}

#[tokio::test]
async fn messages_sync_pages_oldest_first_and_connected_says_where_to_resume() {
    let app = spawn_app().await;
    let (alice, ta, bob, tb) = two_users(&app).await;
    app.create_user("carol", "carol-pass", "user").await;
    let tc = app.login("carol", "carol-pass").await;
    let (ca, hello) = app.connect_ok(&ta).await;
    assert_eq!(hello["lastMessageId"], Value::Null, "no message yet");
    let (cb, _) = app.connect_ok(&tb).await;
    let (cc, _) = app.connect_ok(&tc).await;
    let send = |c: &Client, to: i64, text: &str| {
        let c = c.emitter();
        let text = text.to_string();
        async move {
            let ack = c
                .emit_with_ack("send_message", json!({"to": to, "content": text}), WAIT)
                .await
                .unwrap();
            assert_eq!(ack[0]["ok"], true, "{ack:?}");
            ack[0]["id"].as_i64().unwrap()
        }
    };
    let mut alices = vec![];
    for i in 0..4 {
        alices.push(send(&ca, bob, &format!("a{i}")).await);
        alices.push(send(&cb, alice, &format!("b{i}")).await);
        send(&cc, bob, "not alice's").await;
    }
    // To herself: in both halves of the query, once in the answer.
    alices.push(send(&ca, alice, "note to self").await);
    let newest_elsewhere = send(&cc, bob, "newest, not alice's").await;

    let (again, hello) = app.connect_ok(&ta).await;
    assert_eq!(hello["lastMessageId"], *alices.last().unwrap());
    let (_, hello_carol) = app.connect_ok(&tc).await;
    assert_eq!(hello_carol["lastMessageId"], newest_elsewhere);

    let pages = sync_all(&again, 0, 3).await;
    let ids: Vec<i64> = pages.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert_eq!(
        ids, alices,
        "alice's 9 messages, sent and received, in id order"
    );
    let first = &pages[0];
    assert_eq!(
        (
            first["from"].as_i64(),
            first["to"].as_i64(),
            first["content"].as_str()
        ),
        (Some(alice), Some(bob), Some("a0"))
    );
    assert!(first["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(first.as_object().unwrap().contains_key("client_msg_id"));

    // From the middle, without a limit (default 100), and with one above 500 (lowered).
    let tail = sync_all(&again, alices[5], 100).await;
    assert_eq!(tail.len(), 3);
    for args in [
        json!({"after_id": alices[5]}),
        json!({"after_id": 0, "limit": 100_000}),
    ] {
        let ack = again
            .emit_with_ack("messages:sync", args.clone(), WAIT)
            .await
            .unwrap();
        assert_eq!(ack[0]["ok"], true, "{args}: {ack:?}");
        assert_eq!(ack[0]["more"], false);
    }
    let ack = again
        .emit_with_ack(
            "messages:sync",
            json!({"after_id": *alices.last().unwrap()}),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(
        (ack[0]["messages"].clone(), ack[0]["more"].clone()),
        (json!([]), json!(false))
    );

    for bad in [
        json!({}),
        json!({"after_id": -1}),
        json!({"after_id": "latest"}),
        json!({"after_id": 1, "limit": 0}),
        json!({"after_id": 1, "limit": "many"}),
        json!([0]),
        Value::Null,
    ] {
        let ack = again
            .emit_with_ack("messages:sync", bad.clone(), WAIT)
            .await
            .unwrap();
        assert_eq!(
            (ack[0]["ok"].as_bool(), ack[0]["code"].as_str()),
            (Some(false), Some("BAD_REQUEST")),
            "{bad}: {ack:?}"
        );
        assert!(ack[0]["message"].is_string());
    }
    // Bad arguments never cost the socket.
    assert_eq!(sync_all(&again, 0, 500).await.len(), alices.len());
}

/// `im_kicks_total{reason="SLOW_CONSUMER"}` as /metrics shows it.
async fn slow_consumer_kicks(app: &TestApp) -> u64 {
    let families = crate::debug_transport::scrape(app).await;
    let reason = [("reason", "SLOW_CONSUMER")];
    crate::debug_transport::total(&families, "im_kicks_total", "im_kicks_total", &reason) as u64
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_cut_off_as_slow_consumer_and_sync_gives_back_the_rest() {
    let app = spawn_with(|s| {
        s.socketio.slow_consumer_timeout_ms = 1000;
        // Only the timeout cuts it off here (the byte bound has unit tests in the engine).
        s.socketio.max_queue_bytes = 256 << 20;
    })
    .await;
    let (_, ta, bob, tb) = two_users(&app).await;
    let (sender, _) = app.connect_ok(&ta).await;
    let (mut fast, _) = app.connect_ok(&tb).await;
    let (mut slow, _) = StalledClient::connect(&app.with_token(&tb), WAIT)
        .await
        .unwrap();

    // 400 messages of 48 KiB: 19 MB, well past what the kernel buffers of the stalled
    // connection absorb (its server side autotunes up to 4 MiB here) plus its 128 packets.
    let acked = burst(&sender, bob, 400, &"x".repeat(48 << 10)).await;
    let got = receive_ids(&mut fast, 400, WAIT).await;
    assert_eq!(
        got, acked,
        "the fast socket in the same room gets everything"
    );

    let mut kicked = 0;
    for _ in 0..300 {
        kicked = slow_consumer_kicks(&app).await;
        if kicked > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(kicked, 1, "the stalled socket is counted as SLOW_CONSUMER");

    // It reads again: what was already on the wire, then the end of the connection.
    let (seen, ended) = slow.drain(WAIT * 3).await;
    assert!(ended, "the server closed the stalled connection");
    let seen_ids: BTreeSet<i64> = seen
        .iter()
        .filter(|e| e.0 == "message")
        .map(|e| e.1["id"].as_i64().unwrap())
        .collect();
    assert!(
        seen_ids.len() < 400,
        "it really was behind ({} of 400)",
        seen_ids.len()
    );

    // Reconnected, it asks for what came after the last message it saw: nothing is missing.
    let (back, hello) = app.connect_ok(&tb).await;
    assert_eq!(hello["lastMessageId"], *acked.last().unwrap());
    let resume = seen_ids.last().copied().unwrap_or(0);
    let synced: BTreeSet<i64> = sync_all(&back, resume, 500)
        .await
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    let recovered: BTreeSet<i64> = seen_ids.union(&synced).copied().collect();
    assert_eq!(recovered, acked);

    // The fast socket was never touched.
    let one_more = burst(&sender, bob, 1, "after the kick").await;
    assert_eq!(receive_ids(&mut fast, 1, WAIT).await, one_more);
    assert_eq!(slow_consumer_kicks(&app).await, 1);
}
