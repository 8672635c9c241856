//! The driver against real redis-server processes (test_support::RedisServer).

use super::*;
use crate::test_support::RedisServer;

use futures_util::StreamExt;

/// Whole-test bound: every test finishes on its own even if Redis misbehaves.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

/// Next message of a subscription, within `within`; panics if the stream ended.
async fn next_msg(stream: &mut MessageStream<ChanItem>, within: Duration) -> Option<ChanItem> {
    match timeout(within, stream.next()).await {
        Ok(Some(item)) => Some(item),
        Ok(None) => panic!("subscription stream ended: the driver dropped the subscriber"),
        Err(_) => None,
    }
}

async fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn rejects_a_url_without_resp3() {
    let client = redis::Client::open("redis://127.0.0.1:1/").unwrap();
    let err = CmDriver::new(client).await.unwrap_err();
    assert!(err.to_string().contains("protocol=resp3"), "{err}");
}

#[test]
fn full_subscriber_buffer_drops_without_blocking() {
    let shared = Shared::new();
    let (tx, mut rx) = mpsc::channel(1);
    shared.handlers.write().unwrap().insert("c".into(), tx);
    let push = |payload: &str| PushInfo {
        kind: PushKind::Message,
        data: vec![
            Value::BulkString(b"c".to_vec()),
            Value::BulkString(payload.as_bytes().to_vec()),
        ],
    };
    for p in ["a", "b", "c"] {
        shared.handle_push(push(p)); // would deadlock here if it blocked
    }
    assert_eq!(rx.try_recv().unwrap(), ("c".to_string(), b"a".to_vec()));
    assert!(rx.try_recv().is_err(), "b and c were dropped");
    // Unknown channel and malformed pushes are ignored.
    shared.handle_push(PushInfo {
        kind: PushKind::Message,
        data: vec![Value::BulkString(b"other".to_vec())],
    });
    shared.handle_push(PushInfo {
        kind: PushKind::Message,
        data: vec![
            Value::BulkString(b"other".to_vec()),
            Value::BulkString(b"x".to_vec()),
        ],
    });
}

#[test]
fn numsub_reply_shapes() {
    let arr = Value::Array(vec![Value::BulkString(b"c".to_vec()), Value::Int(3)]);
    assert_eq!(numsub_count(arr), Some(3));
    let map = Value::Map(vec![(Value::BulkString(b"c".to_vec()), Value::Int(2))]);
    assert_eq!(numsub_count(map), Some(2));
    assert_eq!(numsub_count(Value::Nil), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_reaches_a_subscriber_of_another_driver() {
    timeout(TEST_TIMEOUT, async {
        let redis = RedisServer::start().await;
        let sub = CmDriver::new(redis.client()).await.unwrap();
        let publ = CmDriver::new(redis.client()).await.unwrap();
        let mut stream = sub.subscribe("room-a".into(), 16).await.unwrap();
        publ.publish("room-a".into(), b"hello".to_vec())
            .await
            .unwrap();
        let got = next_msg(&mut stream, Duration::from_secs(5)).await;
        assert_eq!(got, Some(("room-a".to_string(), b"hello".to_vec())));
        // After unsubscribing, nothing more arrives.
        sub.unsubscribe("room-a".into()).await.unwrap();
        publ.publish("room-a".into(), b"late".to_vec())
            .await
            .unwrap();
        // The driver dropped our sender: the stream ends, and "late" never shows up.
        assert_eq!(
            timeout(Duration::from_secs(2), stream.next()).await,
            Ok(None)
        );
        assert!(sub.is_healthy() && publ.is_healthy());
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_redis_restart() {
    timeout(TEST_TIMEOUT, async {
        let mut redis = RedisServer::start().await;
        let sub = CmDriver::new(redis.client()).await.unwrap();
        let publ = CmDriver::new(redis.client()).await.unwrap();
        let mut stream = sub.subscribe("dm".into(), 64).await.unwrap();
        let _gone = sub.subscribe("gone".into(), 4).await.unwrap();
        publ.publish("dm".into(), b"before".to_vec()).await.unwrap();
        assert_eq!(
            next_msg(&mut stream, Duration::from_secs(5)).await,
            Some(("dm".to_string(), b"before".to_vec()))
        );

        redis.stop();
        // While down: publish is Ok (local delivery must go on), quick, and the flag drops.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut slowest = Duration::ZERO;
        while publ.is_healthy() {
            assert!(
                Instant::now() < deadline,
                "publisher never noticed the outage"
            );
            let t = Instant::now();
            publ.publish("dm".into(), b"lost".to_vec())
                .await
                .expect("publish must not fail while redis is down");
            slowest = slowest.max(t.elapsed());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for _ in 0..10 {
            let t = Instant::now();
            publ.publish("dm".into(), b"lost".to_vec()).await.unwrap();
            slowest = slowest.max(t.elapsed());
        }
        assert!(
            slowest <= PUBLISH_TIMEOUT + Duration::from_millis(200),
            "{slowest:?}"
        );
        wait_for(
            "subscriber notices the outage",
            Duration::from_secs(5),
            || !sub.is_healthy(),
        )
        .await;
        assert_eq!(
            publ.num_serv("dm").await.unwrap(),
            1,
            "down: only this node"
        );
        // Unsubscribing while down succeeds at once; the UNSUBSCRIBE is replayed once Redis
        // is back (the manager would otherwise re-subscribe the channel on reconnect).
        let t = Instant::now();
        sub.unsubscribe("gone".into()).await.unwrap();
        slowest = slowest.max(t.elapsed());
        assert!(t.elapsed() <= PUBLISH_TIMEOUT + Duration::from_millis(200));

        // Stay down longer than the manager's reconnect budget (6 tries, ≤ 1 s apart), so
        // only the heartbeat can bring the (otherwise idle) subscriber back.
        tokio::time::sleep(Duration::from_secs(8)).await;
        redis.restart().await;
        let back = Instant::now();

        // The existing subscription works again, without re-subscribing by hand.
        let mut n = 0u32;
        let got = loop {
            assert!(
                back.elapsed() < Duration::from_secs(10),
                "no message through the old subscription within 10 s of the restart"
            );
            n += 1;
            publ.publish("dm".into(), format!("after-{n}").into_bytes())
                .await
                .unwrap();
            if let Some((chan, payload)) = next_msg(&mut stream, Duration::from_millis(200)).await {
                assert_eq!(chan, "dm");
                let payload = String::from_utf8(payload).unwrap();
                assert!(payload.starts_with("after-"), "stale message {payload}");
                break back.elapsed();
            }
        };
        let remaining = Duration::from_secs(10).saturating_sub(back.elapsed());
        wait_for("both drivers healthy within 10 s", remaining, || {
            sub.is_healthy() && publ.is_healthy()
        })
        .await;
        eprintln!(
            "redis restart: message through the old subscription {got:?} after restart, \
             healthy after {:?}; slowest call while down {slowest:?}",
            back.elapsed()
        );
        assert_eq!(publ.num_serv("dm").await.unwrap(), 1, "resubscribed once");
        let mut gone = u16::MAX;
        let deadline = Instant::now() + Duration::from_secs(5);
        while gone != 0 && Instant::now() < deadline {
            gone = publ.num_serv("gone").await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(gone, 0, "the UNSUBSCRIBE made while down was not replayed");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn num_serv_counts_subscribers() {
    timeout(TEST_TIMEOUT, async {
        let redis = RedisServer::start().await;
        let a = CmDriver::new(redis.client()).await.unwrap();
        let b = CmDriver::new(redis.client()).await.unwrap();
        let c = CmDriver::new(redis.client()).await.unwrap();
        assert_eq!(c.num_serv("req").await.unwrap(), 0);
        let _sa = a.subscribe("req".into(), 4).await.unwrap();
        let _sb = b.subscribe("req".into(), 4).await.unwrap();
        assert_eq!(c.num_serv("req").await.unwrap(), 2);
        assert_eq!(a.num_serv("req").await.unwrap(), 2);
        a.unsubscribe("req".into()).await.unwrap();
        assert_eq!(c.num_serv("req").await.unwrap(), 1);
    })
    .await
    .expect("test timed out");
}

/// The point of the driver: with Redis gone, an emit through the socket.io adapter still
/// succeeds (the stock driver returns the publish error before delivering locally).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapter_emits_succeed_while_redis_is_down() {
    use socketioxide::SocketIo;
    use socketioxide_redis::{RedisAdapterConfig, RedisAdapterCtr};
    timeout(TEST_TIMEOUT, async {
        let mut redis = RedisServer::start().await;
        let driver = CmDriver::new(redis.client()).await.unwrap();
        let health = driver.clone();
        let ctr = RedisAdapterCtr::new_with_driver(driver, RedisAdapterConfig::default());
        let (_layer, io) = SocketIo::builder()
            .with_adapter::<ClusterAdapter<_>>(ctr)
            .build_layer();
        io.ns("/", async || {}).await.expect("namespace init");
        io.emit("ping", &1).await.expect("emit with redis up");
        assert_eq!(io.fetch_sockets().await.unwrap().len(), 0);
        redis.stop();
        wait_for("outage noticed", Duration::from_secs(5), || {
            !health.is_healthy()
        })
        .await;
        io.emit("ping", &2)
            .await
            .expect("emit must not fail while redis is down");
        io.to("some-room")
            .emit("ping", &3)
            .await
            .expect("room emit while down");
        assert_eq!(
            io.fetch_sockets().await.unwrap().len(),
            0,
            "degrades to local"
        );
    })
    .await
    .expect("test timed out");
}
