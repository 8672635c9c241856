//! The scenarios. Each returns the JSON object printed as the one result line.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::{Codes, Common, Jitter, Session, epoch, login_many, now_ns, round3, rss_kib};
use super::conn::{Conn, OnItem, close_all, error_code, open, open_many};
use super::hist::Latencies;
use crate::progress;
use crate::sio::{ConnectOptions, Error, Incoming};

const CLOSE_LIMIT: Duration = Duration::from_secs(60);

/// Options of connection `i`: token of user `i % users`, source address `i % ips`, node
/// `i % urls` (so with two URLs the two users of a chat pair are on different nodes).
fn opts_for(
    c: &Common,
    sessions: Arc<Vec<Session>>,
    ips: Arc<Vec<IpAddr>>,
) -> impl Fn(usize) -> ConnectOptions + use<> {
    let base = c.base_options();
    let urls = c.urls();
    move |i| {
        let mut o = base.clone();
        o.base_url = urls[i % urls.len()].clone();
        o.auth = Some(json!({ "token": sessions[i % sessions.len()].token }));
        o.local_addr = if ips.is_empty() {
            None
        } else {
            Some(ips[i % ips.len()])
        };
        o
    }
}

/// Counts connections lost (server `Disconnected` / `Closed`) after they were authenticated,
/// until `closing` is set.
#[derive(Clone, Default)]
struct DropCounter {
    dropped: Arc<AtomicU64>,
    closing: Arc<AtomicBool>,
}

impl DropCounter {
    fn on_item(&self) -> OnItem {
        let d = self.clone();
        Arc::new(move |_, it| {
            if matches!(it, Incoming::Closed | Incoming::Disconnected)
                && !d.closing.load(Ordering::Relaxed)
            {
                d.dropped.fetch_add(1, Ordering::Relaxed);
            }
        })
    }
    fn get(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn users_for(c: &Common, n: usize) -> usize {
    c.users.unwrap_or(n.clamp(1, 100))
}

fn check_fd_budget(n: usize, nofile: u64) {
    if n as u64 + 64 > nofile {
        progress!(
            "warning: {n} connections need {n}+ file descriptors but RLIMIT_NOFILE is {nofile}; expect EMFILE failures"
        );
    }
}

fn rss_json(pid: Option<u32>, before: Option<u64>, after: Option<u64>) -> Value {
    json!({"pid": pid, "before_kib": before, "after_kib": after})
}

// ---------------------------------------------------------------------------------------------
// handshake

#[derive(Debug, Clone, clap::Args)]
pub struct HandshakeArgs {
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
}

pub async fn handshake(c: &Common, a: &HandshakeArgs, nofile: u64) -> Result<Value, String> {
    check_fd_budget(a.n, nofile);
    let sessions = Arc::new(login_many(c, users_for(c, a.n)).await?);
    let ips = Arc::new(c.source_addrs(a.n)?);
    let rss_before = rss_kib(c.server_pid);
    let drops = DropCounter::default();
    let lat = Latencies::new();
    progress!(
        "handshake: opening {} connections, {} in flight, {} source address(es)",
        a.n,
        a.concurrency,
        ips.len().max(1)
    );
    let opened = open_many(
        a.n,
        a.concurrency,
        c.connected_timeout(),
        opts_for(c, sessions.clone(), ips.clone()),
        drops.on_item(),
        |i, r| {
            if let Ok(conn) = r {
                lat.record(i, conn.latency);
            }
        },
    )
    .await;
    let rss_after = rss_kib(c.server_pid);
    let ok = opened.conns.len();
    let secs = opened.elapsed.as_secs_f64();
    progress!(
        "handshake: {ok} ok, {} failed in {secs:.2}s",
        opened.failures.total()
    );
    drops.closing.store(true, Ordering::Relaxed);
    let dropped = drops.get();
    close_all(
        opened.conns.into_iter().map(|c| c.client).collect(),
        CLOSE_LIMIT,
    )
    .await;
    Ok(json!({
        "scenario": "handshake",
        "url": c.url,
        "n": a.n,
        "concurrency": a.concurrency,
        "users": sessions.len(),
        "source_ips": ips.len(),
        "ok": ok,
        "failed": opened.failures.total(),
        "failures": opened.failures.to_json(),
        "dropped_before_close": dropped,
        "elapsed_s": round3(secs),
        "handshakes_per_sec": round3(ok as f64 / secs.max(1e-9)),
        "latency_ms": lat.summary(),
        "server_rss": rss_json(c.server_pid, rss_before, rss_after),
    }))
}

// ---------------------------------------------------------------------------------------------
// idle

#[derive(Debug, Clone, clap::Args)]
pub struct IdleArgs {
    /// Connections to open and hold.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Handshakes in flight at once while opening.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// How long to hold them (cover several ping rounds: the default ping interval is 25 s).
    #[arg(long, default_value_t = 60.0)]
    pub hold_secs: f64,
    /// Progress / RSS sampling period while holding.
    #[arg(long, default_value_t = 5.0)]
    pub sample_secs: f64,
}

pub async fn idle(c: &Common, a: &IdleArgs, nofile: u64) -> Result<Value, String> {
    check_fd_budget(a.n, nofile);
    let sessions = Arc::new(login_many(c, users_for(c, a.n)).await?);
    let ips = Arc::new(c.source_addrs(a.n)?);
    let server_before = rss_kib(c.server_pid);
    let self_before = rss_kib(None);
    let drops = DropCounter::default();
    progress!("idle: opening {} connections", a.n);
    let opened = open_many(
        a.n,
        a.concurrency,
        c.connected_timeout(),
        opts_for(c, sessions.clone(), ips.clone()),
        drops.on_item(),
        |_, _| {},
    )
    .await;
    let ok = opened.conns.len();
    let ping_interval_ms = opened
        .conns
        .first()
        .map(|c| c.client.engine_open().ping_interval_ms);
    let server_connected = rss_kib(c.server_pid);
    let mut server_peak = server_connected;
    progress!(
        "idle: {ok} connected ({} failed) in {:.1}s; holding {}s",
        opened.failures.total(),
        opened.elapsed.as_secs_f64(),
        a.hold_secs
    );
    let hold_start = Instant::now();
    let hold = Duration::from_secs_f64(a.hold_secs.max(0.0));
    let sample = Duration::from_secs_f64(a.sample_secs.max(0.1));
    while hold_start.elapsed() < hold {
        tokio::time::sleep(sample.min(hold.saturating_sub(hold_start.elapsed()))).await;
        let r = rss_kib(c.server_pid);
        if let (Some(r), Some(p)) = (r, server_peak) {
            server_peak = Some(p.max(r));
        }
        progress!(
            "idle: held {:.0}s, dropped {}, server rss {:?} KiB",
            hold_start.elapsed().as_secs_f64(),
            drops.get(),
            r
        );
    }
    let held = hold_start.elapsed();
    let server_after = rss_kib(c.server_pid);
    let self_after = rss_kib(None);
    drops.closing.store(true, Ordering::Relaxed);
    let dropped = drops.get();
    close_all(
        opened.conns.into_iter().map(|c| c.client).collect(),
        CLOSE_LIMIT,
    )
    .await;
    let per_conn = |before: Option<u64>, after: Option<u64>| match (before, after) {
        (Some(b), Some(a)) if ok > 0 => Some(round3((a as f64 - b as f64) / ok as f64)),
        _ => None,
    };
    Ok(json!({
        "scenario": "idle",
        "url": c.url,
        "n": a.n,
        "users": sessions.len(),
        "source_ips": ips.len(),
        "ok": ok,
        "failed": opened.failures.total(),
        "failures": opened.failures.to_json(),
        "connect_elapsed_s": round3(opened.elapsed.as_secs_f64()),
        "hold_s": round3(held.as_secs_f64()),
        "ping_interval_ms": ping_interval_ms,
        "ping_rounds": ping_interval_ms.filter(|&p| p > 0).map(|p| (a.hold_secs * 1000.0 / p as f64).floor()),
        "dropped": dropped,
        "server_rss": {
            "pid": c.server_pid,
            "before_kib": server_before,
            "connected_kib": server_connected,
            "peak_kib": server_peak,
            "after_kib": server_after,
            "per_conn_kib": per_conn(server_before, server_after),
        },
        "loadgen_rss": {
            "before_kib": self_before,
            "after_kib": self_after,
            "per_conn_kib": per_conn(self_before, self_after),
        },
    }))
}

// ---------------------------------------------------------------------------------------------
// fanout

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FanoutTarget {
    /// `{"rooms": ["<--room>"]}` (default room `type:<user-type>`)
    Room,
    /// `{"user_type": "<--user-type>"}`
    #[value(name = "user_type", alias = "user-type")]
    UserType,
    /// `{"to_users": [every logged-in user id]}`
    Users,
    /// `{"broadcast": true}`
    Broadcast,
}

#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    /// Sockets that receive.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Events to publish.
    #[arg(long, default_value_t = 100)]
    pub events: usize,
    #[arg(long, value_enum, default_value_t = FanoutTarget::UserType)]
    pub target: FanoutTarget,
    #[arg(long, default_value = "user")]
    pub user_type: String,
    /// Room for `--target room` (default `type:<user-type>`).
    #[arg(long)]
    pub room: Option<String>,
    /// Publish rate, events/s (open loop); 0 = back to back.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Publish requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub publish_concurrency: usize,
    /// Handshakes in flight at once while opening.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// After the last publish, wait at most this long for the deliveries.
    #[arg(long, default_value_t = 15.0)]
    pub drain_secs: f64,
    /// Pad every event's data with this many bytes (`pad`).
    #[arg(long, default_value_t = 0)]
    pub pad_bytes: usize,
}

pub async fn fanout(c: &Common, a: &FanoutArgs, nofile: u64) -> Result<Value, String> {
    check_fd_budget(a.n, nofile);
    let api_key = c
        .api_key
        .clone()
        .ok_or("fanout needs --api-key (X-Api-Key of POST /api/publish)")?;
    let sessions = Arc::new(login_many(c, users_for(c, a.n)).await?);
    let ips = Arc::new(c.source_addrs(a.n)?);
    let rss_before = rss_kib(c.server_pid);
    let lat = Arc::new(Latencies::new());
    let delivered = Arc::new(AtomicU64::new(0));
    let last_delivery_ns = Arc::new(AtomicU64::new(0));
    let drops = DropCounter::default();
    let on_item: OnItem = {
        let (lat, delivered, last, drops) = (
            lat.clone(),
            delivered.clone(),
            last_delivery_ns.clone(),
            drops.clone(),
        );
        Arc::new(move |idx, it| match it {
            Incoming::Event { name, args } if name == "bench" => {
                let now = now_ns();
                if let Some(t) = args
                    .first()
                    .and_then(|d| d.get("t"))
                    .and_then(Value::as_u64)
                {
                    lat.record_ns(idx, now.saturating_sub(t));
                }
                delivered.fetch_add(1, Ordering::Relaxed);
                last.fetch_max(now, Ordering::Relaxed);
            }
            Incoming::Closed | Incoming::Disconnected if !drops.closing.load(Ordering::Relaxed) => {
                drops.dropped.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        })
    };
    progress!("fanout: opening {} connections", a.n);
    let opened = open_many(
        a.n,
        a.concurrency,
        c.connected_timeout(),
        opts_for(c, sessions.clone(), ips.clone()),
        on_item,
        |_, _| {},
    )
    .await;
    let ok = opened.conns.len();
    progress!(
        "fanout: {ok} connected ({} failed); publishing {} events",
        opened.failures.total(),
        a.events
    );

    let mut target: Value = match a.target {
        FanoutTarget::Room => {
            json!({"rooms": [a.room.clone().unwrap_or_else(|| format!("type:{}", a.user_type))]})
        }
        FanoutTarget::UserType => json!({"user_type": a.user_type}),
        FanoutTarget::Users => {
            json!({"to_users": sessions.iter().map(|s| s.user_id).collect::<Vec<_>>()})
        }
        FanoutTarget::Broadcast => json!({"broadcast": true}),
    };
    let http = super::common::http_client();
    let expected = Arc::new(AtomicU64::new(0));
    let pub_lat = Arc::new(Latencies::new());
    let pub_errors = Arc::new(std::sync::Mutex::new(Codes::default()));
    let sem = Arc::new(tokio::sync::Semaphore::new(a.publish_concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let t_first = now_ns();
    let start = Instant::now();
    let pad = "x".repeat(a.pad_bytes);
    for i in 0..a.events {
        if a.rate > 0.0 {
            tokio::time::sleep_until((start + Duration::from_secs_f64(i as f64 / a.rate)).into())
                .await;
        }
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let (http, url, key) = (http.clone(), c.primary_url(), api_key.clone());
        let (expected, pub_lat, pub_errors) =
            (expected.clone(), pub_lat.clone(), pub_errors.clone());
        let obj = target.as_object_mut().expect("object");
        obj.insert("event".into(), json!("bench"));
        let mut data = json!({"seq": i, "t": now_ns()});
        if !pad.is_empty() {
            data["pad"] = json!(pad);
        }
        obj.insert("data".into(), data);
        let body = target.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let t0 = Instant::now();
            match super::common::publish(&http, &url, &key, &body).await {
                Ok(n) => {
                    expected.fetch_add(n, Ordering::Relaxed);
                    pub_lat.record(i, t0.elapsed());
                }
                Err(code) => pub_errors.lock().unwrap().add(code),
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let publish_s = start.elapsed().as_secs_f64();
    let expected_n = expected.load(Ordering::Relaxed);
    progress!(
        "fanout: published in {publish_s:.2}s; server reported {expected_n} target sockets in total; draining"
    );
    let drain_deadline = Instant::now() + Duration::from_secs_f64(a.drain_secs.max(0.0));
    while delivered.load(Ordering::Relaxed) < expected_n && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drops.closing.store(true, Ordering::Relaxed);
    let got = delivered.load(Ordering::Relaxed);
    let last = last_delivery_ns.load(Ordering::Relaxed);
    let window_s = if last > t_first {
        (last - t_first) as f64 / 1e9
    } else {
        0.0
    };
    let rss_after = rss_kib(c.server_pid);
    let dropped = drops.get();
    close_all(
        opened.conns.into_iter().map(|c| c.client).collect(),
        CLOSE_LIMIT,
    )
    .await;
    let pub_errors = pub_errors.lock().unwrap().clone();
    Ok(json!({
        "scenario": "fanout",
        "url": c.url,
        "n": a.n,
        "events": a.events,
        "target": clap::ValueEnum::to_possible_value(&a.target).map(|v| v.get_name().to_owned()),
        "rate": a.rate,
        "users": sessions.len(),
        "ok": ok,
        "failed": opened.failures.total(),
        "failures": opened.failures.to_json(),
        "published": a.events as u64 - pub_errors.total(),
        "publish_errors": pub_errors.to_json(),
        "publish_s": round3(publish_s),
        "publish_latency_ms": pub_lat.summary(),
        "expected_deliveries": expected_n,
        "deliveries": got,
        "missing": expected_n.saturating_sub(got),
        "delivery_window_s": round3(window_s),
        "deliveries_per_sec": if window_s > 0.0 { round3(got as f64 / window_s) } else { 0.0 },
        "latency_ms": lat.summary(),
        "dropped": dropped,
        "server_rss": rss_json(c.server_pid, rss_before, rss_after),
    }))
}

// ---------------------------------------------------------------------------------------------
// slow

#[derive(Debug, Clone, clap::Args)]
pub struct SlowArgs {
    /// Sockets that authenticate, then stop reading: each must be cut off, its memory freed.
    #[arg(long, default_value_t = 20)]
    pub stalled: usize,
    /// The server's `socketio.max_queue_bytes`, for the bound reported.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_queue_bytes: u64,
    /// RSS sampling period while the fan-out runs.
    #[arg(long, default_value_t = 100)]
    pub sample_ms: u64,
    /// The fan-out the stalled sockets are part of (they have the same user type as the readers).
    #[command(flatten)]
    pub fanout: FanoutArgs,
}

/// Fan-out to readers and to sockets that stopped reading: the readers must get every event,
/// the stalled sockets must be disconnected by the server, and the server's RSS must stay
/// within the per-socket bound (not grow with what the stalled sockets were sent).
pub async fn slow(c: &Common, a: &SlowArgs, nofile: u64) -> Result<Value, String> {
    check_fd_budget(a.fanout.n + a.stalled, nofile);
    let sessions = login_many(c, users_for(c, a.fanout.n)).await?;
    let opts = opts_for(c, Arc::new(sessions), Arc::new(vec![]));
    progress!("slow: opening {} stalled connections", a.stalled);
    let mut stalled = vec![];
    for i in 0..a.stalled {
        let (client, _) =
            crate::sio::stalled::StalledClient::connect(&opts(i), c.connected_timeout())
                .await
                .map_err(|e| format!("stalled connection {i}: {e}"))?;
        stalled.push(client);
    }
    let rss_before = rss_kib(c.server_pid);
    let peak = Arc::new(AtomicU64::new(rss_before.unwrap_or(0)));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid, every) = (
            peak.clone(),
            sampling.clone(),
            c.server_pid,
            Duration::from_millis(a.sample_ms.max(10)),
        );
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(kib) = rss_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(every).await;
            }
        })
    };
    let fan = fanout(c, &a.fanout, nofile).await?;
    progress!(
        "slow: fan-out done; reading what the stalled sockets were sent until the server closes them"
    );
    // All at once: one after the other, the last ones could outlive their heartbeat.
    let drained =
        futures_util::future::join_all(stalled.iter_mut().map(|s| s.drain(Duration::from_secs(5))))
            .await;
    let closed = drained.iter().filter(|(_, ended)| *ended).count();
    let received: Vec<usize> = drained
        .iter()
        .map(|(events, _)| events.iter().filter(|e| e.0 == "bench").count())
        .collect();
    let kicks = slow_consumer_kicks(&c.primary_url()).await;
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let rss_after = rss_kib(c.server_pid);
    let peak_kib = peak.load(Ordering::Relaxed);
    let readers_expected = fan["ok"].as_u64().unwrap_or(0) * a.fanout.events as u64;
    // Generous: every stalled socket at its byte bound twice over (allocator slack), plus
    // 128 MiB for the readers' transient queues and the run itself.
    let bound_kib = a.stalled as u64 * a.max_queue_bytes * 2 / 1024 + 128 * 1024;
    let growth_kib = rss_before.map(|b| peak_kib.saturating_sub(b));
    Ok(json!({
        "scenario": "slow",
        "url": c.url,
        "stalled": a.stalled,
        "stalled_closed_by_server": closed,
        "slow_consumer_kicks": kicks,
        "stalled_received_min": received.iter().min(),
        "stalled_received_max": received.iter().max(),
        "readers": fan["ok"],
        "readers_expected_deliveries": readers_expected,
        "readers_deliveries": fan["deliveries"],
        "readers_missing": readers_expected.saturating_sub(fan["deliveries"].as_u64().unwrap_or(0)),
        "event_bytes": a.fanout.pad_bytes,
        "unbounded_would_hold_kib": (a.stalled * a.fanout.events * a.fanout.pad_bytes) as u64 / 1024,
        "rss_growth_bound_kib": bound_kib,
        "rss_peak_growth_kib": growth_kib,
        "within_bound": growth_kib.map(|g| g <= bound_kib),
        "server_rss": {"pid": c.server_pid, "before_kib": rss_before, "peak_kib": peak_kib, "after_kib": rss_after},
        "fanout": fan,
    }))
}

/// `im_kicks_total{reason="SLOW_CONSUMER"}` from the server's /metrics; `None` without one
/// (the Node baseline).
async fn slow_consumer_kicks(url: &str) -> Option<u64> {
    let resp = super::common::http_client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .ok()?;
    let text = resp.error_for_status().ok()?.text().await.ok()?;
    let line = text
        .lines()
        .find(|l| l.starts_with("im_kicks_total{reason=\"SLOW_CONSUMER\"}"));
    Some(
        line.and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0),
    )
}

// ---------------------------------------------------------------------------------------------
// chat

#[derive(Debug, Clone, clap::Args)]
pub struct ChatArgs {
    /// Pairs of users (2 x pairs sockets, one per user; needs 2 x pairs seeded users).
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,
    /// Aggregate send rate, messages/s, open loop (scheduled, not paced by acks).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Sending duration.
    #[arg(long, default_value_t = 30.0)]
    pub secs: f64,
    /// Pad every message content to at least this many bytes.
    #[arg(long, default_value_t = 0)]
    pub content_bytes: usize,
    #[arg(long, default_value_t = 10_000)]
    pub ack_timeout_ms: u64,
    /// After the last ack, wait at most this long for outstanding `message` deliveries.
    #[arg(long, default_value_t = 10.0)]
    pub drain_secs: f64,
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
}

/// `"<scheduled ns> <seq> <padding>"`: the receiver computes end-to-end latency from the
/// scheduled send time.
pub fn chat_content(sched_ns: u64, seq: u64, pad_to: usize) -> String {
    let mut s = format!("{sched_ns} {seq}");
    if s.len() < pad_to {
        s.push(' ');
        while s.len() < pad_to {
            s.push('x');
        }
    }
    s
}

/// A per-run tag (wall clock in ns ^ pid, hex), different for every loadgen run.
pub fn run_id() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("{:x}", ns ^ ((std::process::id() as u64) << 40))
}

pub fn parse_chat_content(s: &str) -> Option<(u64, u64)> {
    let mut it = s.split(' ');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Open `n` connections, or none: on any failure the opened ones are closed and the failures
/// (by code) are the error.
async fn open_every(
    name: &str,
    n: usize,
    concurrency: usize,
    c: &Common,
    opts: impl Fn(usize) -> ConnectOptions,
    on_item: OnItem,
) -> Result<super::conn::Opened, String> {
    let opened = open_many(
        n,
        concurrency,
        c.connected_timeout(),
        opts,
        on_item,
        |_, _| {},
    )
    .await;
    if opened.failures.0.is_empty() {
        return Ok(opened);
    }
    let f = opened.failures.to_json();
    let failed = opened.failures.total();
    close_all(
        opened.conns.into_iter().map(|c| c.client).collect(),
        CLOSE_LIMIT,
    )
    .await;
    Err(format!("{name}: {failed} of {n} connections failed: {f}"))
}

/// Count one ack: `{ok:true}` records its latency from `sched`; anything else (a code, no ack
/// in time, a closed connection) counts under its code.
fn tally_ack(
    r: Result<Vec<Value>, Error>,
    k: u64,
    sched: Instant,
    lat: &Latencies,
    acked: &AtomicU64,
    errors: &std::sync::Mutex<Codes>,
) {
    let code = match r {
        Ok(args) => match args.first() {
            Some(v) if v.get("ok").and_then(Value::as_bool) == Some(true) => None,
            Some(v) => Some(
                v.get("code")
                    .and_then(Value::as_str)
                    .unwrap_or("ACK_NOT_OK")
                    .to_owned(),
            ),
            None => Some("ACK_EMPTY".to_owned()),
        },
        Err(Error::Timeout(_)) => Some("ACK_TIMEOUT".to_owned()),
        Err(e) => Some(error_code(&e)),
    };
    match code {
        None => {
            lat.record(k as usize, Instant::now().saturating_duration_since(sched));
            acked.fetch_add(1, Ordering::Relaxed);
        }
        Some(code) => errors.lock().unwrap().add(code),
    }
}

pub async fn chat(c: &Common, a: &ChatArgs, nofile: u64) -> Result<Value, String> {
    if a.pairs == 0 || a.rate <= 0.0 {
        return Err("chat needs --pairs > 0 and --rate > 0".into());
    }
    let n = 2 * a.pairs;
    check_fd_budget(n, nofile);
    let users = c.users.unwrap_or(n);
    if users < n {
        return Err(format!(
            "chat needs one user per socket: --users {users} < 2 x --pairs = {n}"
        ));
    }
    let sessions = Arc::new(login_many(c, n).await?);
    if sessions.iter().any(|s| s.user_id == 0) {
        return Err("login answers carry no data.user.id: cannot address messages".into());
    }
    let ids: Arc<Vec<i64>> = Arc::new(sessions.iter().map(|s| s.user_id).collect());
    let ips = Arc::new(c.source_addrs(n)?);
    let rss_before = rss_kib(c.server_pid);
    let e2e = Arc::new(Latencies::new());
    let delivered = Arc::new(AtomicU64::new(0));
    let drops = DropCounter::default();
    let on_item: OnItem = {
        let (e2e, delivered, ids, drops) =
            (e2e.clone(), delivered.clone(), ids.clone(), drops.clone());
        Arc::new(move |idx, it| match it {
            Incoming::Event { name, args } if name == "message" => {
                let now = now_ns();
                let Some(m) = args.first() else { return };
                if m.get("from").and_then(Value::as_i64) == Some(ids[idx]) {
                    return; // our own message echoed to the sender's sockets
                }
                if let Some((sched, _)) = m
                    .get("content")
                    .and_then(Value::as_str)
                    .and_then(parse_chat_content)
                {
                    e2e.record_ns(idx, now.saturating_sub(sched));
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
            Incoming::Closed | Incoming::Disconnected if !drops.closing.load(Ordering::Relaxed) => {
                drops.dropped.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        })
    };
    progress!("chat: opening {n} connections ({} pairs)", a.pairs);
    let opened = open_every(
        "chat",
        n,
        a.concurrency,
        c,
        opts_for(c, sessions.clone(), ips.clone()),
        on_item,
    )
    .await?;
    let emitters: Vec<_> = opened.conns.iter().map(|c| c.client.emitter()).collect();
    let total = (a.rate * a.secs).floor() as u64;
    progress!(
        "chat: sending {total} messages at {} msg/s for {}s",
        a.rate,
        a.secs
    );

    let ack_lat = Arc::new(Latencies::new());
    let errors = Arc::new(std::sync::Mutex::new(Codes::default()));
    let acked = Arc::new(AtomicU64::new(0));
    let outstanding = Arc::new(AtomicUsize::new(0));
    let ack_timeout = Duration::from_millis(a.ack_timeout_ms);
    let start = Instant::now() + Duration::from_millis(50);
    let mut max_behind = Duration::ZERO;
    // client_msg_id must be unique across runs: the server treats a repeated (sender,
    // client_msg_id) as a client retry (acked as a duplicate, never delivered again).
    let run_id = run_id();
    for k in 0..total {
        let sched = start + Duration::from_secs_f64(k as f64 / a.rate);
        let now = Instant::now();
        if sched > now {
            tokio::time::sleep_until(sched.into()).await;
        } else {
            max_behind = max_behind.max(now - sched);
        }
        let pair = (k as usize) % a.pairs;
        let dir = ((k as usize) / a.pairs) % 2;
        let from = 2 * pair + dir;
        let to = 2 * pair + 1 - dir;
        let sched_ns = sched.saturating_duration_since(epoch()).as_nanos() as u64;
        let body = json!({
            "to": ids[to],
            "content": chat_content(sched_ns, k, a.content_bytes),
            "client_msg_id": format!("lg-{run_id}-{k}"),
        });
        let em = emitters[from].clone();
        let (ack_lat2, errors2, acked2, outstanding2) = (
            ack_lat.clone(),
            errors.clone(),
            acked.clone(),
            outstanding.clone(),
        );
        outstanding.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let (ack_lat, errors, acked, outstanding) = (ack_lat2, errors2, acked2, outstanding2);
            let r = em.emit_with_ack("send_message", body, ack_timeout).await;
            tally_ack(r, k, sched, &ack_lat, &acked, &errors);
            outstanding.fetch_sub(1, Ordering::Relaxed);
        });
        if k > 0 && k % (a.rate.max(1.0) as u64 * 5) == 0 {
            progress!(
                "chat: {k} scheduled, {} acked, {} delivered, {} in flight",
                acked.load(Ordering::Relaxed),
                delivered.load(Ordering::Relaxed),
                outstanding.load(Ordering::Relaxed)
            );
        }
    }
    let send_s = start.elapsed().as_secs_f64();
    let deadline = Instant::now() + ack_timeout + Duration::from_secs(1);
    while outstanding.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_acked_s = start.elapsed().as_secs_f64();
    let acked_n = acked.load(Ordering::Relaxed);
    let drain_deadline = Instant::now() + Duration::from_secs_f64(a.drain_secs.max(0.0));
    while delivered.load(Ordering::Relaxed) < acked_n && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drops.closing.store(true, Ordering::Relaxed);
    let got = delivered.load(Ordering::Relaxed);
    let rss_after = rss_kib(c.server_pid);
    let dropped = drops.get();
    drop(emitters);
    close_all(
        opened.conns.into_iter().map(|c| c.client).collect(),
        CLOSE_LIMIT,
    )
    .await;
    let errors = errors.lock().unwrap().clone();
    Ok(json!({
        "scenario": "chat",
        "url": c.url,
        "pairs": a.pairs,
        "rate_target": a.rate,
        "secs": a.secs,
        "content_bytes": a.content_bytes,
        "sent": total,
        "acked_ok": acked_n,
        "errors": errors.to_json(),
        "error_count": errors.total(),
        "unfinished": outstanding.load(Ordering::Relaxed),
        "send_s": round3(send_s),
        "all_acked_s": round3(all_acked_s),
        "achieved_rate": round3(acked_n as f64 / send_s.max(1e-9)),
        "scheduler_max_behind_ms": round3(max_behind.as_secs_f64() * 1000.0),
        "ack_latency_ms": ack_lat.summary(),
        "delivered": got,
        "lost": acked_n.saturating_sub(got),
        "e2e_latency_ms": e2e.summary(),
        "dropped": dropped,
        "server_rss": rss_json(c.server_pid, rss_before, rss_after),
    }))
}

// ---------------------------------------------------------------------------------------------
// storm

#[derive(Debug, Clone, clap::Args)]
pub struct StormArgs {
    /// Connections to open, then reconnect after the server restarts.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Handshakes in flight at once for the initial connect (the reconnect is all at once).
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// How long to wait for every client to see its connection close (restart the server then).
    #[arg(long, default_value_t = 120.0)]
    pub wait_restart_secs: f64,
    /// Bound on the reconnect phase.
    #[arg(long, default_value_t = 120.0)]
    pub reconnect_timeout_secs: f64,
    /// socket.io-client `reconnectionDelay` (first delay, and backoff base).
    #[arg(long, default_value_t = 1000)]
    pub delay_ms: u64,
    /// socket.io-client `reconnectionDelayMax`.
    #[arg(long, default_value_t = 5000)]
    pub delay_max_ms: u64,
    /// socket.io-client `randomizationFactor`.
    #[arg(long, default_value_t = 0.5)]
    pub jitter: f64,
}

/// socket.io-client's backoff: `delay * 2^attempt`, ± `jitter` of it, capped at `max`.
pub fn backoff(attempt: u32, delay: Duration, max: Duration, jitter: f64, rnd: f64) -> Duration {
    let base = delay.as_secs_f64() * 2f64.powi(attempt.min(30) as i32);
    let dev = jitter.clamp(0.0, 1.0) * base;
    let ms = if (rnd * 10.0).floor() as u64 & 1 == 0 {
        base - rnd * dev
    } else {
        base + rnd * dev
    };
    Duration::from_secs_f64(ms.clamp(0.0, max.as_secs_f64().max(delay.as_secs_f64())))
}

pub async fn storm(c: &Common, a: &StormArgs, nofile: u64) -> Result<Value, String> {
    check_fd_budget(a.n, nofile);
    let sessions = Arc::new(login_many(c, users_for(c, a.n)).await?);
    let ips = Arc::new(c.source_addrs(a.n)?);
    let closed_at: Arc<Vec<AtomicU64>> = Arc::new((0..a.n).map(|_| AtomicU64::new(0)).collect());
    let closed_count = Arc::new(AtomicUsize::new(0));
    let on_close: OnItem = {
        let (closed_at, closed_count) = (closed_at.clone(), closed_count.clone());
        Arc::new(move |idx, it| {
            if matches!(it, Incoming::Closed)
                && closed_at[idx]
                    .compare_exchange(0, now_ns().max(1), Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                closed_count.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let opts = Arc::new(opts_for(c, sessions.clone(), ips.clone()));
    let opts2 = opts.clone();
    let opened = open_many(
        a.n,
        a.concurrency,
        c.connected_timeout(),
        move |i| opts2(i),
        on_close,
        |_, _| {},
    )
    .await;
    let ok = opened.conns.len();
    if ok == 0 {
        return Err(format!(
            "storm: no connection succeeded: {}",
            opened.failures.to_json()
        ));
    }
    progress!(
        "storm: {ok} connected ({} failed). RESTART THE SERVER NOW (waiting up to {}s for all to close)",
        opened.failures.total(),
        a.wait_restart_secs
    );
    let wait_deadline = Instant::now() + Duration::from_secs_f64(a.wait_restart_secs.max(0.0));
    let mut last_report = Instant::now();
    while closed_count.load(Ordering::Relaxed) < ok && Instant::now() < wait_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if last_report.elapsed() > Duration::from_secs(5) {
            last_report = Instant::now();
            progress!(
                "storm: {}/{ok} closed",
                closed_count.load(Ordering::Relaxed)
            );
        }
    }
    let closed_n = closed_count.load(Ordering::Relaxed);
    if closed_n == 0 {
        close_all(
            opened.conns.into_iter().map(|c| c.client).collect(),
            CLOSE_LIMIT,
        )
        .await;
        return Err(format!(
            "storm: the server was not restarted within {}s (no connection closed)",
            a.wait_restart_secs
        ));
    }
    let all_closed_ns = now_ns();
    let times: Vec<u64> = closed_at
        .iter()
        .map(|t| t.load(Ordering::Relaxed))
        .filter(|&t| t > 0)
        .collect();
    let first_closed_ns = times.iter().copied().min().unwrap_or(all_closed_ns);
    let last_closed_ns = times.iter().copied().max().unwrap_or(all_closed_ns);
    progress!("storm: {closed_n}/{ok} closed; reconnecting them all at once");

    // Reconnect every closed one, socket.io-client style.
    let (to_retry, still_open): (Vec<Conn>, Vec<Conn>) = opened
        .conns
        .into_iter()
        .partition(|conn| closed_at[conn.idx].load(Ordering::Relaxed) > 0);
    drop(to_retry);
    let reconnect_deadline =
        Instant::now() + Duration::from_secs_f64(a.reconnect_timeout_secs.max(0.0));
    let lat = Arc::new(Latencies::new());
    let codes = Arc::new(std::sync::Mutex::new(Codes::default()));
    let attempts_total = Arc::new(AtomicU64::new(0));
    let attempts_max = Arc::new(AtomicU64::new(0));
    let first_ok_ns = Arc::new(AtomicU64::new(u64::MAX));
    let last_ok_ns = Arc::new(AtomicU64::new(0));
    let back = Arc::new(AtomicUsize::new(0));
    let drops = DropCounter::default();
    let mut set = tokio::task::JoinSet::new();
    for idx in (0..a.n).filter(|&i| closed_at[i].load(Ordering::Relaxed) > 0) {
        let opts = opts.clone();
        let (lat, codes, closed_at) = (lat.clone(), codes.clone(), closed_at.clone());
        let (attempts_total, attempts_max, first_ok_ns, last_ok_ns, back) = (
            attempts_total.clone(),
            attempts_max.clone(),
            first_ok_ns.clone(),
            last_ok_ns.clone(),
            back.clone(),
        );
        let on_item = drops.on_item();
        let wait = c.connected_timeout();
        let (delay, max, jitter) = (
            Duration::from_millis(a.delay_ms),
            Duration::from_millis(a.delay_max_ms),
            a.jitter,
        );
        set.spawn(async move {
            let mut rng = Jitter::new(idx as u64 ^ now_ns());
            let mut attempt = 0u32;
            loop {
                let d = backoff(attempt, delay, max, jitter, rng.next_f64());
                if Instant::now() + d >= reconnect_deadline {
                    codes.lock().unwrap().add("GAVE_UP");
                    return None;
                }
                tokio::time::sleep(d).await;
                attempt += 1;
                attempts_total.fetch_add(1, Ordering::Relaxed);
                match open(opts(idx), idx, wait, on_item.clone()).await {
                    Ok(conn) => {
                        let now = now_ns();
                        lat.record_ns(
                            idx,
                            now.saturating_sub(closed_at[idx].load(Ordering::Relaxed)),
                        );
                        first_ok_ns.fetch_min(now, Ordering::Relaxed);
                        last_ok_ns.fetch_max(now, Ordering::Relaxed);
                        attempts_max.fetch_max(attempt as u64, Ordering::Relaxed);
                        back.fetch_add(1, Ordering::Relaxed);
                        return Some(conn.client);
                    }
                    Err(code) => codes.lock().unwrap().add(code),
                }
            }
        });
    }
    let mut clients = Vec::with_capacity(closed_n);
    let mut last_report = Instant::now();
    while let Some(r) = set.join_next().await {
        if let Ok(Some(cl)) = r {
            clients.push(cl);
        }
        if last_report.elapsed() > Duration::from_secs(2) {
            last_report = Instant::now();
            progress!("storm: {}/{closed_n} back", back.load(Ordering::Relaxed));
        }
    }
    drops.closing.store(true, Ordering::Relaxed);
    let back_n = back.load(Ordering::Relaxed);
    let s = |from: u64, to: u64| {
        if to >= from && to > 0 && to != u64::MAX {
            Some(round3((to - from) as f64 / 1e9))
        } else {
            None
        }
    };
    let first_ok = first_ok_ns.load(Ordering::Relaxed);
    let last_ok = last_ok_ns.load(Ordering::Relaxed);
    let dropped = drops.get();
    clients.extend(still_open.into_iter().map(|c| c.client));
    close_all(clients, CLOSE_LIMIT).await;
    let codes = codes.lock().unwrap().clone();
    Ok(json!({
        "scenario": "storm",
        "url": c.url,
        "n": a.n,
        "users": sessions.len(),
        "connected_initially": ok,
        "initial_failures": opened.failures.to_json(),
        "closed_seen": closed_n,
        "not_closed": ok - closed_n,
        "close_spread_s": s(first_closed_ns, last_closed_ns),
        "reconnected": back_n,
        "not_reconnected": closed_n - back_n,
        "all_back": back_n == closed_n && closed_n == ok,
        "recovery_from_first_close_s": s(first_closed_ns, last_ok),
        "recovery_from_all_closed_s": s(all_closed_ns.min(last_closed_ns), last_ok),
        "first_to_last_reconnect_s": s(first_ok, last_ok),
        "attempts_total": attempts_total.load(Ordering::Relaxed),
        "attempts_max": attempts_max.load(Ordering::Relaxed),
        "reconnect_failures": codes.to_json(),
        "reconnect_latency_ms": lat.summary(),
        "dropped_after_reconnect": dropped,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_content_round_trip() {
        let s = chat_content(123_456_789, 42, 0);
        assert_eq!(s, "123456789 42");
        assert_eq!(parse_chat_content(&s), Some((123_456_789, 42)));
        let s = chat_content(1, 2, 100);
        assert_eq!(s.len(), 100);
        assert_eq!(parse_chat_content(&s), Some((1, 2)));
        assert_eq!(parse_chat_content("hello"), None);
        assert_eq!(parse_chat_content(""), None);
    }

    #[test]
    fn backoff_like_socket_io_client() {
        let d = Duration::from_millis(1000);
        let max = Duration::from_millis(5000);
        for i in 0..100 {
            let r = i as f64 / 100.0;
            let b0 = backoff(0, d, max, 0.5, r);
            assert!(
                b0 >= Duration::from_millis(500) && b0 <= Duration::from_millis(1500),
                "{b0:?}"
            );
            let b5 = backoff(5, d, max, 0.5, r);
            assert!(b5 <= max, "{b5:?}");
        }
        assert_eq!(backoff(1, d, max, 0.0, 0.3), Duration::from_millis(2000));
        assert_eq!(backoff(40, d, max, 0.0, 0.3), max);
    }
}

// ---------------------------------------------------------------------------------------------
// bridge

#[derive(Debug, Clone, clap::Args)]
pub struct BridgeArgs {
    /// Sockets (one user each) emitting the bridged event.
    #[arg(long, default_value_t = 100)]
    pub sockets: usize,
    /// Aggregate emit rate, events/s, open loop.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 30.0)]
    pub secs: f64,
    /// The event name (the server's `[bridge] events` must take it).
    #[arg(long, default_value = "bench:echo")]
    pub event: String,
    /// The backend the server's `[bridge] url` points at: first called directly, at the same
    /// rate and with the same body size, for the backend's own time (its HTTP round trip).
    #[arg(long)]
    pub backend_url: String,
    /// The server's `bridge.secret`, to sign the direct calls as the server signs its own.
    #[arg(long, env = "LOADGEN_BACKEND_SECRET", default_value = "")]
    pub backend_secret: String,
    /// Seconds of direct backend calls before the bridged phase (0 = skip).
    #[arg(long, default_value_t = 10.0)]
    pub direct_secs: f64,
    /// Seconds of a built-in event answered in-process (`presence:unsubscribe {userIds:[]}`)
    /// over the same sockets at the same rate before the bridged phase: the Socket.IO path
    /// without the bridge, so `added_ms` = bridged − this (0 = skip).
    #[arg(long, default_value_t = 10.0)]
    pub baseline_secs: f64,
    #[arg(long, default_value_t = 10_000)]
    pub ack_timeout_ms: u64,
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
}

/// Open-loop schedule of `total` jobs at `rate`: runs `job(k, scheduled)` at each slot, returns
/// how late the scheduler itself ran at worst.
async fn open_loop<F>(total: u64, rate: f64, mut job: F) -> (Instant, Duration)
where
    F: FnMut(u64, Instant),
{
    let start = Instant::now() + Duration::from_millis(50);
    let mut max_behind = Duration::ZERO;
    for k in 0..total {
        let sched = start + Duration::from_secs_f64(k as f64 / rate);
        let now = Instant::now();
        if sched > now {
            tokio::time::sleep_until(sched.into()).await;
        } else {
            max_behind = max_behind.max(now - sched);
        }
        job(k, sched);
    }
    (start, max_behind)
}

async fn wait_outstanding(outstanding: &AtomicUsize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while outstanding.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What one open-loop phase of acked emits measured.
struct Phase {
    sent: u64,
    acked: u64,
    errors: Codes,
    achieved_rate: f64,
    max_behind_ms: f64,
    ack_ms: Value,
    /// Server RSS once a second (when a pid was given), and at the end.
    rss_samples: Vec<u64>,
    rss_end: Option<u64>,
}

/// `(event, data)` emitted with an ack round-robin over `emitters` at `rate` for `secs`, open
/// loop; waits for the outstanding acks.
async fn emit_phase(
    emitters: &[crate::sio::Emitter],
    (event, data): (&str, Value),
    (rate, secs): (f64, f64),
    ack_timeout: Duration,
    server_pid: Option<u32>,
) -> Phase {
    let n = emitters.len();
    let total = (rate * secs).floor() as u64;
    progress!("bridge: {total} `{event}` events at {rate}/s for {secs}s");
    let ack_lat = Arc::new(Latencies::new());
    let errors = Arc::new(std::sync::Mutex::new(Codes::default()));
    let acked = Arc::new(AtomicU64::new(0));
    let outstanding = Arc::new(AtomicUsize::new(0));
    let mut rss_samples: Vec<u64> = vec![];
    let mut last_sample = Instant::now();
    let (start, max_behind) = open_loop(total, rate, |k, sched| {
        if last_sample.elapsed() >= Duration::from_secs(1) {
            last_sample = Instant::now();
            rss_samples.extend(rss_kib(server_pid));
        }
        let em = emitters[(k as usize) % n].clone();
        let (lat, errs, ok, out, event, data) = (
            ack_lat.clone(),
            errors.clone(),
            acked.clone(),
            outstanding.clone(),
            event.to_string(),
            data.clone(),
        );
        out.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let r = em.emit_with_ack(&event, data, ack_timeout).await;
            tally_ack(r, k, sched, &lat, &ok, &errs);
            out.fetch_sub(1, Ordering::Relaxed);
        });
    })
    .await;
    let send_s = start.elapsed().as_secs_f64();
    wait_outstanding(&outstanding, ack_timeout + Duration::from_secs(1)).await;
    let acked = acked.load(Ordering::Relaxed);
    let errors = errors.lock().unwrap().clone();
    Phase {
        sent: total,
        acked,
        errors,
        achieved_rate: round3(acked as f64 / send_s.max(1e-9)),
        max_behind_ms: round3(max_behind.as_secs_f64() * 1000.0),
        ack_ms: ack_lat.summary(),
        rss_end: rss_kib(server_pid),
        rss_samples,
    }
}

/// P sockets emit a bridged event with an ack at rate R; the same rate of direct POSTs to the
/// backend first gives its own time, so `added_ms` is what the bridge (Socket.IO hop, queue,
/// signing, HTTP client) adds. Server RSS is sampled each second of the bridged phase.
pub async fn bridge(c: &Common, a: &BridgeArgs, nofile: u64) -> Result<Value, String> {
    if a.sockets == 0 || a.rate <= 0.0 {
        return Err("bridge needs --sockets > 0 and --rate > 0".into());
    }
    let n = a.sockets;
    check_fd_budget(n, nofile);
    let payload = json!({"text": "hello from loadgen", "room": "bench"});

    // 1. The backend alone, same rate, same body shape.
    let direct = Arc::new(Latencies::new());
    let direct_errors = Arc::new(AtomicU64::new(0));
    if a.direct_secs > 0.0 {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(a.ack_timeout_ms))
            .build()
            .map_err(|e| e.to_string())?;
        let body = serde_json::to_vec(&json!({
            "type": "event", "event": a.event, "args": [payload], "rooms": ["user:1", "type:user"],
            "user": {"id": 1, "username": "bench", "user_type": "user", "display_name": "bench"},
            "socket_id": "loadgen-direct", "node_id": "loadgen",
        }))
        .unwrap();
        let total = (a.rate * a.direct_secs).floor() as u64;
        progress!(
            "bridge: {total} direct calls to {} at {}/s",
            a.backend_url,
            a.rate
        );
        let outstanding = Arc::new(AtomicUsize::new(0));
        let secret = &a.backend_secret;
        open_loop(total, a.rate, |k, sched| {
            let (http, url, body, lat, errs, out) = (
                http.clone(),
                a.backend_url.clone(),
                body.clone(),
                direct.clone(),
                direct_errors.clone(),
                outstanding.clone(),
            );
            out.fetch_add(1, Ordering::Relaxed);
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .to_string();
            let sig = super::backend::signature(secret.as_bytes(), &ts, &body);
            tokio::spawn(async move {
                let r = http
                    .post(url)
                    .header("content-type", "application/json")
                    .header("x-im-timestamp", ts)
                    .header("x-im-signature", sig)
                    .body(body)
                    .send()
                    .await;
                let ok = match r {
                    Ok(resp) => resp.status().is_success() && resp.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    lat.record(k as usize, Instant::now().saturating_duration_since(sched));
                } else {
                    errs.fetch_add(1, Ordering::Relaxed);
                }
                out.fetch_sub(1, Ordering::Relaxed);
            });
        })
        .await;
        wait_outstanding(&outstanding, Duration::from_millis(a.ack_timeout_ms + 1000)).await;
    }

    // 2. Through the bridge.
    let sessions = Arc::new(login_many(c, n).await?);
    let ips = Arc::new(c.source_addrs(n)?);
    let drops = DropCounter::default();
    progress!("bridge: opening {n} connections");
    let opened = open_every(
        "bridge",
        n,
        a.concurrency,
        c,
        opts_for(c, sessions.clone(), ips.clone()),
        drops.on_item(),
    )
    .await?;
    let emitters: Vec<_> = opened.conns.iter().map(|c| c.client.emitter()).collect();
    let ack_timeout = Duration::from_millis(a.ack_timeout_ms);
    let baseline = match a.baseline_secs > 0.0 {
        true => Some(
            emit_phase(
                &emitters,
                ("presence:unsubscribe", json!({"userIds": []})),
                (a.rate, a.baseline_secs),
                ack_timeout,
                None,
            )
            .await,
        ),
        false => None,
    };
    let rss_start = rss_kib(c.server_pid);
    let bridged = emit_phase(
        &emitters,
        (&a.event, payload),
        (a.rate, a.secs),
        ack_timeout,
        c.server_pid,
    )
    .await;
    drops.closing.store(true, Ordering::Relaxed);
    let dropped = drops.get();
    drop(emitters);
    close_all(
        opened.conns.into_iter().map(|c| c.client).collect(),
        CLOSE_LIMIT,
    )
    .await;
    let direct_s = direct.summary();
    let ack_s = &bridged.ack_ms;
    let minus = |of: &Value, q: &str| match (ack_s[q].as_f64(), of[q].as_f64()) {
        (Some(x), Some(y)) => json!(round3(x - y)),
        _ => Value::Null,
    };
    let baseline_s = baseline
        .as_ref()
        .map(|b| b.ack_ms.clone())
        .unwrap_or(Value::Null);
    // Growth over the second half of the run: a leak grows steadily, warm-up does not.
    let rss_samples = &bridged.rss_samples;
    let half = rss_samples.len() / 2;
    let growth = match (rss_samples.get(half), rss_samples.last()) {
        (Some(mid), Some(last)) => json!(*last as i64 - *mid as i64),
        _ => Value::Null,
    };
    Ok(json!({
        "scenario": "bridge",
        "url": c.url,
        "sockets": n,
        "rate_target": a.rate,
        "secs": a.secs,
        "sent": bridged.sent,
        "acked_ok": bridged.acked,
        "errors": bridged.errors.to_json(),
        "error_count": bridged.errors.total(),
        "achieved_rate": bridged.achieved_rate,
        "scheduler_max_behind_ms": bridged.max_behind_ms,
        "ack_latency_ms": ack_s,
        "baseline_ack_latency_ms": baseline_s,
        "baseline_errors": baseline.as_ref().map(|b| b.errors.total()),
        "backend_direct_ms": direct_s,
        "backend_direct_errors": direct_errors.load(Ordering::Relaxed),
        "added_ms": {"p50": minus(&baseline_s, "p50"), "p99": minus(&baseline_s, "p99")},
        "added_over_direct_ms": {"p50": minus(&direct_s, "p50"), "p99": minus(&direct_s, "p99")},
        "dropped": dropped,
        "server_rss_kib": {"start": rss_start, "end": bridged.rss_end, "samples": rss_samples.len(),
                           "growth_second_half": growth},
    }))
}
