//! A socketioxide-redis [`Driver`] that survives Redis restarts.
//!
//! The stock `socketioxide_redis::drivers::redis::RedisDriver` holds one plain
//! `MultiplexedConnection` that never reconnects: after a Redis restart every broadcast fails,
//! and even same-node room emits fail, because the adapter publishes to Redis first and returns
//! the error before delivering locally. [`CmDriver`] instead sits on a
//! [`redis::aio::ConnectionManager`] (reconnects on its own, re-subscribes automatically) and
//! never lets a Redis outage fail an emit:
//!
//! - `publish` swallows errors: while Redis is down, cross-node copies are dropped and local
//!   delivery goes on. One warning is logged per outage, one info line when Redis is back, and
//!   [`CmDriver::is_healthy`] reports the driver's own view of that state (im-server's `/health`
//!   does not read it: it PINGs Redis itself, through the presence store).
//! - `num_serv` answers 1 (only this node is known) while Redis is down, so `fetch_sockets` and
//!   friends degrade to this node instead of failing.
//! - Every Redis call is bounded by a timeout: the manager makes commands wait for its reconnect
//!   (seconds of backoff), which must not stall an emit.
//! - A heartbeat task PINGs Redis every second. This flips the health flag back even when no
//!   message is published, and it restarts reconnecting after the manager has used up its retries
//!   (the manager reconnects again only when a command is sent). Without it, a node that only
//!   listens would stay deaf after a long outage.
//!
//! Messages arrive as RESP3 push messages, so the Redis URL must carry `?protocol=resp3`.
//!
//! # Wiring
//! ```ignore
//! use socketioxide::SocketIo;
//! use socketioxide_redis::{RedisAdapterConfig, RedisAdapterCtr};
//! use im_redis_driver::{ClusterAdapter, CmDriver};
//!
//! let client = redis::Client::open("redis://127.0.0.1:6379/?protocol=resp3")?;
//! let driver = CmDriver::new(client).await?;      // fails if Redis is unreachable right now
//! let health = driver.clone();                    // keep a clone for `health.is_healthy()`
//! let ctr = RedisAdapterCtr::new_with_driver(driver, RedisAdapterConfig::default());
//! let (layer, io) = SocketIo::builder()
//!     .with_adapter::<ClusterAdapter<_>>(ctr)
//!     .build_layer();
//! // With a remote adapter `ns` returns a future: the namespace exists once it has subscribed.
//! io.ns("/im", on_connect).await?;
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, PushInfo, PushKind, Value};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::timeout;

/// The socketioxide adapter running on [`CmDriver`]: use it as
/// `SocketIo::builder().with_adapter::<ClusterAdapter<_>>(ctr)`, with
/// `ctr = RedisAdapterCtr::new_with_driver(driver, RedisAdapterConfig::default())`, then
/// `io.ns(..).await` (see the module documentation).
pub type ClusterAdapter<E> = socketioxide_redis::CustomRedisAdapter<E, CmDriver>;

/// How long an emit may wait for Redis to take a PUBLISH while it is believed to be up.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);
/// The same while Redis is known to be down: just enough to notice that it is back.
const PUBLISH_TIMEOUT_WHILE_DOWN: Duration = Duration::from_millis(50);
/// SUBSCRIBE is rare (namespace init) and its failure fails the init: give a slow server time.
/// Longer than the connection's own response timeout (500 ms), so an answer is not cut off
/// halfway. (UNSUBSCRIBE uses the publish timeouts: a failed one is retried later.)
const SUBSCRIPTION_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the heartbeat PINGs Redis, and how long it waits for the answer.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(1);
/// At most one "subscriber buffer full" warning per this period.
const FULL_WARN_PERIOD: Duration = Duration::from_secs(5);
/// Reconnect backoff of the ConnectionManager: 100 ms doubling, capped at 1 s (the default has
/// no cap, so after a few failures a restarted Redis would be noticed only seconds later).
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(1);

/// Errors of [`CmDriver`] (only `subscribe` and `new` can really fail; see [`Driver`] impl).
#[derive(Debug, thiserror::Error)]
pub enum CmDriverError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer {0} within {1:?}")]
    Timeout(&'static str, Duration),
}

type HandlerMap = HashMap<String, mpsc::Sender<ChanItem>>;

/// State shared by the driver clones, the push callback and the heartbeat task.
struct Shared {
    handlers: RwLock<HandlerMap>,
    /// `false` while Redis is believed to be unreachable (on the first failure, until a
    /// success); a watch, so [`CmDriver::reachability`] can act when an outage starts or ends.
    reachable: tokio::sync::watch::Sender<bool>,
    /// Set when the last driver clone is dropped: the disconnection that follows is expected.
    closing: AtomicBool,
    /// Publishes dropped during the current outage (reported when Redis is back).
    dropped_publishes: AtomicU64,
    /// Channels whose UNSUBSCRIBE failed: the manager would re-subscribe them on reconnect,
    /// so the heartbeat retries the UNSUBSCRIBE once Redis answers again.
    pending_unsubscribe: Mutex<HashSet<String>>,
    /// Incoming messages dropped because a subscriber's buffer was full, since the last warning.
    dropped_incoming: AtomicU64,
    /// Milliseconds since `epoch` of the last "buffer full" warning (0 = never).
    last_full_warn_ms: AtomicU64,
    epoch: Instant,
}

impl Shared {
    fn new() -> Self {
        Self {
            handlers: RwLock::new(HashMap::new()),
            reachable: tokio::sync::watch::Sender::new(true),
            closing: AtomicBool::new(false),
            dropped_publishes: AtomicU64::new(0),
            pending_unsubscribe: Mutex::new(HashSet::new()),
            dropped_incoming: AtomicU64::new(0),
            last_full_warn_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Whether this changed the state (watchers hear only changes).
    fn set_reachable(&self, up: bool) -> bool {
        self.reachable
            .send_if_modified(|v| std::mem::replace(v, up) != up)
    }

    /// Record a failure; logs once per outage.
    fn mark_down(&self, what: &str, error: &dyn std::fmt::Display) {
        if self.closing.load(Ordering::Relaxed) {
            return;
        }
        if self.set_reachable(false) {
            tracing::warn!(
                operation = what,
                error = %error,
                "redis unreachable: cross-node messages are dropped until it is back \
                 (local delivery continues)"
            );
        }
    }

    /// Record a success; logs once when an outage ends.
    fn mark_up(&self) {
        if self.set_reachable(true) {
            let dropped = self.dropped_publishes.swap(0, Ordering::AcqRel);
            tracing::info!(dropped_publishes = dropped, "redis reachable again");
        }
    }

    fn handle_push(&self, push: PushInfo) {
        match push.kind {
            PushKind::Message | PushKind::SMessage => {
                if let Some((chan, payload)) = read_message(push.data) {
                    self.route(chan, payload);
                }
            }
            // Sent by the library itself when the connection is lost; the manager reconnects.
            PushKind::Disconnection => self.mark_down("connection", &"connection lost"),
            // Subscribe confirmations and the like.
            _ => {}
        }
    }

    /// Hand a message to its channel's subscriber without ever blocking the connection.
    fn route(&self, chan: String, payload: Vec<u8>) {
        let handlers = self.handlers.read().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = handlers.get(&chan) else {
            // Possible right after an unsubscribe; nothing is listening any more.
            tracing::debug!(chan, "redis message for a channel without subscriber");
            return;
        };
        match tx.try_send((chan, payload)) {
            Ok(()) => {}
            Err(TrySendError::Full((chan, _))) => self.warn_full(&chan),
            Err(TrySendError::Closed((chan, _))) => {
                tracing::debug!(chan, "redis message for a closed subscriber")
            }
        }
    }

    fn warn_full(&self, chan: &str) {
        self.dropped_incoming.fetch_add(1, Ordering::AcqRel);
        // +1 so that 0 keeps meaning "never warned".
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        let last = self.last_full_warn_ms.load(Ordering::Acquire);
        let due = last == 0 || now.saturating_sub(last) >= FULL_WARN_PERIOD.as_millis() as u64;
        if due
            && self
                .last_full_warn_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            let dropped = self.dropped_incoming.swap(0, Ordering::AcqRel).max(1);
            tracing::warn!(
                chan,
                dropped,
                "redis subscriber buffer full: dropping cross-node messages \
                 (raise RedisAdapterConfig::stream_buffer?)"
            );
        }
    }
}

/// `[channel, payload]` of a `message` / `smessage` push.
fn read_message(data: Vec<Value>) -> Option<(String, Vec<u8>)> {
    let mut it = data.into_iter();
    let (Some(chan), Some(payload)) = (it.next(), it.next()) else {
        return None;
    };
    match (
        redis::from_redis_value::<String>(chan),
        redis::from_redis_value::<Vec<u8>>(payload),
    ) {
        (Ok(chan), Ok(payload)) => Some((chan, payload)),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "unreadable redis pub/sub message");
            None
        }
    }
}

/// Owns the heartbeat: stops it when the last clone of the driver goes away.
struct Inner {
    conn: ConnectionManager,
    shared: Arc<Shared>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Relaxed);
        self.heartbeat.abort();
    }
}

/// socketioxide-redis driver on a [`ConnectionManager`]: reconnects and re-subscribes after a
/// Redis restart, and never fails an emit because Redis is down. Cheap to clone; clones share
/// the connection, the subscriptions and the health flag.
#[derive(Clone)]
pub struct CmDriver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CmDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmDriver")
            .field("healthy", &self.is_healthy())
            .finish_non_exhaustive()
    }
}

impl CmDriver {
    /// Connect (Redis must be reachable now) and start the heartbeat. The client's URL must
    /// carry `?protocol=resp3`: subscriptions are delivered as RESP3 push messages.
    /// Must be called inside a Tokio runtime.
    pub async fn new(client: redis::Client) -> Result<Self, redis::RedisError> {
        if !client
            .get_connection_info()
            .redis_settings()
            .protocol()
            .supports_resp3()
        {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "the redis URL must end in `?protocol=resp3` (lowercase): \
                 the socket.io adapter receives its messages as RESP3 push messages",
            )));
        }
        let shared = Arc::new(Shared::new());
        let push_shared = shared.clone();
        let config = ConnectionManagerConfig::new()
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY)
            .set_push_sender(move |push: PushInfo| {
                push_shared.handle_push(push);
                Ok::<(), std::convert::Infallible>(())
            })
            .set_automatic_resubscription();
        let conn = ConnectionManager::new_with_config(client, config).await?;
        let heartbeat = tokio::spawn(heartbeat(conn.clone(), shared.clone()));
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                shared,
                heartbeat,
            }),
        })
    }

    /// `false` while Redis is unreachable (the last command, heartbeat or connection failed).
    /// Cross-node delivery is off meanwhile; same-node delivery still works.
    pub fn is_healthy(&self) -> bool {
        *self.inner.shared.reachable.borrow()
    }

    /// `true` while Redis is reachable; changes when an outage starts and when it ends. While
    /// it is down this node hears nothing the others publish (their broadcasts to its sockets
    /// are lost), which only the listener of this can make up for.
    pub fn reachability(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.shared.reachable.subscribe()
    }

    fn conn(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// A short timeout while Redis is known to be down, so emits do not wait for reconnects.
    fn op_timeout(&self) -> Duration {
        if self.is_healthy() {
            PUBLISH_TIMEOUT
        } else {
            PUBLISH_TIMEOUT_WHILE_DOWN
        }
    }
}

/// PING every second: updates the health flag, retries failed UNSUBSCRIBEs, and — by sending a
/// command — makes the manager start reconnecting again after it gave up.
async fn heartbeat(mut conn: ConnectionManager, shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; we have just connected
    loop {
        tick.tick().await;
        let ping = redis::cmd("PING");
        match timeout(HEARTBEAT_TIMEOUT, ping.query_async::<Value>(&mut conn)).await {
            Ok(Ok(_)) => {
                shared.mark_up();
                retry_unsubscribes(&mut conn, &shared).await;
            }
            Ok(Err(e)) => shared.mark_down("heartbeat", &e),
            Err(_) => shared.mark_down("heartbeat", &"PING timed out"),
        }
    }
}

async fn retry_unsubscribes(conn: &mut ConnectionManager, shared: &Shared) {
    let pending: Vec<String> = {
        let mut set = shared
            .pending_unsubscribe
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if set.is_empty() {
            return;
        }
        set.drain().collect()
    };
    for chan in pending {
        // Subscribed again meanwhile: keep it.
        if shared
            .handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&chan)
        {
            continue;
        }
        match timeout(SUBSCRIPTION_TIMEOUT, conn.unsubscribe(&chan)).await {
            Ok(Ok(())) => tracing::debug!(chan, "deferred redis UNSUBSCRIBE done"),
            _ => {
                shared
                    .pending_unsubscribe
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(chan);
            }
        }
    }
}

impl Driver for CmDriver {
    type Error = CmDriverError;

    /// Never fails: a message that cannot be published is dropped (cross-node only) so that the
    /// adapter still delivers it locally.
    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Self::Error> {
        let mut conn = self.conn();
        let limit = self.op_timeout();
        match timeout(limit, conn.publish::<_, _, Value>(chan, val)).await {
            Ok(Ok(_)) => self.shared().mark_up(),
            Ok(Err(e)) => {
                self.shared()
                    .dropped_publishes
                    .fetch_add(1, Ordering::Relaxed);
                self.shared().mark_down("publish", &e);
            }
            Err(_) => {
                self.shared()
                    .dropped_publishes
                    .fetch_add(1, Ordering::Relaxed);
                self.shared()
                    .mark_down("publish", &format!("no answer within {limit:?}"));
            }
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, Self::Error> {
        let (tx, rx) = mpsc::channel(size.max(1));
        // Register first, so that a message arriving right after the confirmation is not lost.
        let previous = self
            .shared()
            .handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(chan.clone(), tx.clone());
        self.shared()
            .pending_unsubscribe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&chan);
        let mut conn = self.conn();
        let err = match timeout(SUBSCRIPTION_TIMEOUT, conn.subscribe(&chan)).await {
            Ok(Ok(())) => {
                self.shared().mark_up();
                return Ok(MessageStream::new(rx));
            }
            Ok(Err(e)) => {
                self.shared().mark_down("subscribe", &e);
                CmDriverError::Redis(e)
            }
            Err(_) => {
                self.shared().mark_down("subscribe", &"timed out");
                CmDriverError::Timeout("SUBSCRIBE", SUBSCRIPTION_TIMEOUT)
            }
        };
        // Undo our registration (unless someone replaced it meanwhile).
        let mut handlers = self
            .shared()
            .handlers
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if handlers.get(&chan).is_some_and(|h| h.same_channel(&tx)) {
            match previous {
                Some(prev) => handlers.insert(chan, prev),
                None => handlers.remove(&chan),
            };
        }
        Err(err)
    }

    /// Never fails: if Redis is down, the UNSUBSCRIBE is retried by the heartbeat once it is
    /// back (the manager would otherwise re-subscribe the channel on reconnect).
    async fn unsubscribe(&self, chan: String) -> Result<(), Self::Error> {
        self.shared()
            .handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&chan);
        let mut conn = self.conn();
        // Short while Redis is down: closing a namespace must not wait for reconnects.
        match timeout(self.op_timeout(), conn.unsubscribe(&chan)).await {
            Ok(Ok(())) => {
                self.shared().mark_up();
                return Ok(());
            }
            Ok(Err(e)) => self.shared().mark_down("unsubscribe", &e),
            Err(_) => self.shared().mark_down("unsubscribe", &"timed out"),
        }
        self.shared()
            .pending_unsubscribe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(chan);
        Ok(())
    }

    /// `PUBSUB NUMSUB chan`: how many connections (= nodes) listen on the request channel.
    /// While Redis is down: 1 (only this node is known), so remote queries degrade to local.
    async fn num_serv(&self, chan: &str) -> Result<u16, Self::Error> {
        let mut conn = self.conn();
        let limit = self.op_timeout();
        let mut cmd = redis::cmd("PUBSUB");
        cmd.arg("NUMSUB").arg(chan);
        match timeout(limit, cmd.query_async::<Value>(&mut conn)).await {
            Ok(Ok(reply)) => match numsub_count(reply) {
                Some(n) => {
                    self.shared().mark_up();
                    Ok(n.min(u16::MAX as u64) as u16)
                }
                None => {
                    tracing::warn!(chan, "unexpected PUBSUB NUMSUB reply; assuming 1 node");
                    Ok(1)
                }
            },
            Ok(Err(e)) => {
                self.shared().mark_down("num_serv", &e);
                Ok(1)
            }
            Err(_) => {
                self.shared()
                    .mark_down("num_serv", &format!("no answer within {limit:?}"));
                Ok(1)
            }
        }
    }
}

/// The count of a one-channel `PUBSUB NUMSUB` reply: `[chan, n]` (array in RESP2 and, as of
/// Redis 7, in RESP3 too) or `{chan: n}` should a server answer with a map.
fn numsub_count(reply: Value) -> Option<u64> {
    let count = match reply {
        Value::Array(items) => items.into_iter().nth(1)?,
        Value::Map(pairs) => pairs.into_iter().next()?.1,
        _ => return None,
    };
    redis::from_redis_value::<u64>(count).ok()
}

#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

#[cfg(test)]
mod tests;
