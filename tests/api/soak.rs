//! The fault soak (issue 13 §5): chat with acks between sockets on two nodes while the
//! database and then Redis are stopped and started. Afterwards every acked message is in
//! history on both nodes, no acked message is dropped silently (each one reached its recipient
//! live, or the recipient's socket was closed and its reconnect synced it), no socket of a user
//! is silently dead (each one still delivers a fresh
//! message across nodes, or saw its disconnect and works again after reconnecting), and each
//! node's memory is back within 10 % of its level before the faults.
//!
//! Real parts only: two im-server processes, a redis-server and a MariaDB server of the test's
//! own (killed and restarted by it; the shared services are never touched), `loadgen::sio`
//! sockets. Every wait is bounded; the whole run takes about two minutes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loadgen::sio::{Client, ConnectOptions, Error as SioError, Incoming};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::{Instant, MissedTickBehavior, sleep};

use crate::helpers::*;
use crate::multi_node::Cluster;

/// Users per node; each chats with its partner on the other node.
const PAIRS: usize = 3;
/// Per sender: 2 × 3 senders at 5/s = 30 msg/s in all.
const SEND_EVERY: Duration = Duration::from_millis(200);
/// An ack later than this counts as a hang (a fault must be answered, not waited out).
const ACK_WAIT: Duration = Duration::from_secs(15);
const OUTAGE: Duration = Duration::from_secs(10);
const WARM_UP: Duration = Duration::from_secs(20);
const SETTLE: Duration = Duration::from_secs(8);
/// Traffic off before reading RSS, so both readings see an idle node.
const QUIET: Duration = Duration::from_secs(4);

const PHASES: [&str; 6] = [
    "warm-up",
    "db down",
    "db back",
    "redis down",
    "redis back",
    "quiet",
];
const WARM: usize = 0;
const DB_DOWN: usize = 1;
const DB_BACK: usize = 2;
const REDIS_DOWN: usize = 3;
const REDIS_BACK: usize = 4;
const END: usize = 5;

/// Milliseconds since the soak began (for the failure report's timeline).
fn since_start_ms() -> u128 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis()
}

/// What the orchestrator tells the chatting tasks.
struct Run {
    phase: AtomicUsize,
    sending: AtomicBool,
    stop: AtomicBool,
}

impl Run {
    fn phase(&self) -> usize {
        self.phase.load(Ordering::SeqCst)
    }
    fn enter(&self, phase: usize) {
        eprintln!("soak: phase {} at {} ms", PHASES[phase], since_start_ms());
        self.phase.store(phase, Ordering::SeqCst);
    }
}

/// One user's view of the run, as its client saw it.
#[derive(Default)]
struct Log {
    /// Message ids acked `{ok:true}`, with the phase of the send.
    acked: Vec<(i64, usize)>,
    /// When each of them was acked (ms into the soak).
    acked_at: std::collections::HashMap<i64, u128>,
    /// `{ok:false}` acks: phase, code, message.
    refused: Vec<(usize, String, String)>,
    /// Sends without an ack within ACK_WAIT on an open socket.
    hung: Vec<(usize, String)>,
    /// Disconnects, closes and `error` events the socket saw.
    drops: Vec<(usize, String)>,
    /// Failed reconnect attempts.
    connect_failures: Vec<(usize, String)>,
    reconnects: usize,
    /// `message` events received, per phase.
    received: [usize; 6],
    /// Ids of the `message` events received.
    received_ids: BTreeSet<i64>,
    /// Ids a reconnected socket got from `messages:sync` (what the contract's client does).
    synced_ids: BTreeSet<i64>,
    /// `lastMessageId` of the first connection: what came before it is not the socket's to get.
    before_first: i64,
    /// Each reconnect's sync: when (ms into the test) and the after_id, lastMessageId, ids got.
    syncs: Vec<(u128, i64, i64, usize)>,
    /// The slowest answer to a send, per phase, in ms.
    slowest_ack_ms: [u128; 6],
}

struct Member {
    name: String,
    id: i64,
    node: usize,
    token: String,
    /// The partner on the other node.
    to: i64,
    opts: ConnectOptions,
    log: Arc<Mutex<Log>>,
}

/// A connected socket and its `connected.lastMessageId` (0 for none).
async fn connect(opts: &ConnectOptions) -> Result<(Client, i64), String> {
    let mut c = Client::connect(opts.clone())
        .await
        .map_err(|e| e.to_string())?;
    match c.expect_event("connected", WAIT).await {
        Ok(args) => Ok((c, args[0]["lastMessageId"].as_i64().unwrap_or(0))),
        Err(e) => Err(e.to_string()),
    }
}

/// What a client that lost its connection does (contract §4): every message after the last
/// one it is sure to have, page by page; their ids.
async fn sync_after(c: &Client, mut after_id: i64) -> Result<Vec<i64>, String> {
    let mut ids = vec![];
    for _ in 0..100 {
        let page = c
            .emit_with_ack(
                "messages:sync",
                json!({"after_id": after_id, "limit": 500}),
                WAIT,
            )
            .await
            .map_err(|e| e.to_string())?;
        let got: Vec<i64> = page[0]["messages"]
            .as_array()
            .ok_or_else(|| format!("messages:sync answered {page:?}"))?
            .iter()
            .filter_map(|m| m["id"].as_i64())
            .collect();
        ids.extend(&got);
        after_id = got.last().copied().unwrap_or(after_id);
        if page[0]["more"] != true {
            return Ok(ids);
        }
    }
    Err("messages:sync did not end within 100 pages".into())
}

/// One user's socket: a message with ack to the partner every SEND_EVERY while sending is on,
/// everything received noted, a new socket when the old one is dropped.
async fn chat(
    name: String,
    to: i64,
    opts: ConnectOptions,
    (first, mut complete_upto): (Client, i64),
    run: Arc<Run>,
    log: Arc<Mutex<Log>>,
) -> Option<Client> {
    let mut client = Some(first);
    log.lock().unwrap().before_first = complete_upto;
    let mut seq = 0u64;
    let mut tick = tokio::time::interval(SEND_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while !run.stop.load(Ordering::SeqCst) {
        tick.tick().await;
        let phase = run.phase();
        let Some(c) = client.as_mut() else {
            match connect(&opts).await {
                Ok((c, last)) => {
                    // Everything up to the old connection's start was had; what came after it
                    // either arrived live or is in this page.
                    match sync_after(&c, complete_upto).await {
                        Ok(ids) => {
                            let mut log = log.lock().unwrap();
                            let at = since_start_ms();
                            log.syncs.push((at, complete_upto, last, ids.len()));
                            log.synced_ids.extend(ids);
                            log.reconnects += 1;
                            complete_upto = last;
                            client = Some(c);
                        }
                        Err(why) => log.lock().unwrap().connect_failures.push((phase, why)),
                    }
                }
                Err(why) => log.lock().unwrap().connect_failures.push((phase, why)),
            }
            continue;
        };
        if run.sending.load(Ordering::SeqCst) {
            seq += 1;
            let msg = json!({
                "to": to,
                "content": format!("soak {name} #{seq}"),
                "client_msg_id": format!("{name}-{seq}"),
            });
            let sent = Instant::now();
            let res = c.emit_with_ack("send_message", msg, ACK_WAIT).await;
            let mut log = log.lock().unwrap();
            let ms = sent.elapsed().as_millis();
            log.slowest_ack_ms[phase] = log.slowest_ack_ms[phase].max(ms);
            match res {
                Ok(args) if args[0]["ok"] == true => {
                    let id = args[0]["id"].as_i64().expect("an acked message has an id");
                    log.acked.push((id, phase));
                    log.acked_at.insert(id, since_start_ms());
                }
                Ok(args) => log.refused.push((
                    phase,
                    args[0]["code"].as_str().unwrap_or("<none>").into(),
                    args[0]["message"].as_str().unwrap_or("").into(),
                )),
                Err(SioError::Timeout(why)) => log.hung.push((phase, why)),
                Err(e) => log.drops.push((phase, format!("send: {e}"))),
            }
        }
        let mut dropped = c.is_closed();
        while let Some(item) = c.next(Duration::ZERO).await {
            let mut log = log.lock().unwrap();
            match item {
                Incoming::Event { name, args } if name == "message" => {
                    log.received[phase] += 1;
                    log.received_ids.extend(args[0]["id"].as_i64());
                }
                Incoming::Event { name, args } if name == "error" => {
                    log.drops.push((phase, format!("error {}", args[0])));
                }
                Incoming::Disconnected | Incoming::Closed => {
                    log.drops.push((phase, format!("{item}")));
                    dropped = true;
                    break;
                }
                _ => {}
            }
        }
        if dropped {
            client = None;
        }
    }
    client
}

/// Skips to the `message` with `content`; an error if the socket ends or it does not come.
async fn await_message(c: &mut Client, content: &str) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.next(left).await {
            Some(Incoming::Event { name, args })
                if name == "message" && args[0]["content"] == content =>
            {
                return Ok(());
            }
            Some(Incoming::Disconnected | Incoming::Closed) => {
                return Err(format!("the socket ended before {content:?} came"));
            }
            Some(_) => {}
            None => return Err(format!("{content:?} did not come within {WAIT:?}")),
        }
    }
}

/// Everything queued on an idle socket; whether it saw its end.
async fn drain(c: &mut Client) -> Vec<String> {
    let mut ends = vec![];
    while let Some(item) = c.next(Duration::ZERO).await {
        match &item {
            Incoming::Event { name, args } if name == "error" => {
                ends.push(format!("error {}", args[0]));
            }
            Incoming::Disconnected | Incoming::Closed => {
                ends.push(item.to_string());
                break;
            }
            _ => {}
        }
    }
    ends
}

async fn health(node: &NodeProcess) -> (u16, Value) {
    http_json(
        Method::GET,
        &format!("{}/health", node.base),
        None,
        None,
        None,
    )
    .await
}

/// Each node's /health is `status` with `part` reading `value` (bounded wait).
async fn health_reaches(nodes: &[NodeProcess], status: u16, part: &str, value: &str) {
    for node in nodes {
        let what = format!("{} /health {status} with {part}: {value}", node.node_id);
        eventually(&what, 20, || async {
            let (s, h) = health(node).await;
            s == status && h[part] == value
        })
        .await;
    }
}

/// Every message id in the conversation of `token`'s user with `with`, paged, from `node`.
async fn history_ids(node: &NodeProcess, token: &str, with: i64) -> BTreeSet<i64> {
    let mut ids = BTreeSet::new();
    let mut before: Option<i64> = None;
    for _ in 0..1000 {
        let page = match before {
            Some(b) => format!("/api/messages?with={with}&limit=200&before={b}"),
            None => format!("/api/messages?with={with}&limit=200"),
        };
        let (s, b) = http_json(
            Method::GET,
            &format!("{}{page}", node.base),
            None,
            Some(token),
            None,
        )
        .await;
        assert_eq!(s, 200, "{} {page}: {b}", node.node_id);
        for m in b["data"]["messages"].as_array().unwrap() {
            ids.insert(m["id"].as_i64().unwrap());
        }
        match b["data"]["next_before"].as_i64() {
            Some(next) => before = Some(next),
            None => return ids,
        }
    }
    panic!("history of {with} on {} does not end", node.node_id);
}

/// Waits (bounded) until `check` holds for every user's log.
async fn for_everyone(people: &[Member], what: &str, check: impl Fn(&Log) -> bool) {
    for m in people {
        eventually(&format!("{}: {what}", m.name), 30, || async {
            check(&m.log.lock().unwrap())
        })
        .await;
    }
}

/// (VmRSS, RssAnon) in KiB.
fn memory(node: &NodeProcess) -> (u64, u64) {
    (node.rss_kib(), node.status_kib("RssAnon"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_across_two_nodes_survives_database_and_redis_outages() {
    since_start_ms();
    tokio::time::timeout(Duration::from_secs(240), soak())
        .await
        .expect("the soak finishes within 4 minutes");
}

async fn soak() {
    let mut db = MariaDbServer::start().await;
    let db_url = fresh_database(&db.url()).await;
    let mut redis = RedisServer::start().await;
    let mut nodes = vec![Cluster::node(&redis, &db_url, "node-a", &[]).await];
    // Node A migrated the database; the users exist before B starts.
    let conn = sea_orm::Database::connect(&db_url).await.unwrap();
    let mut members = vec![];
    for i in 0..2 * PAIRS {
        let (node, name) = if i < PAIRS {
            (0, format!("soak_a{i}"))
        } else {
            (1, format!("soak_b{}", i - PAIRS))
        };
        let user = im_server::users::create(
            &conn,
            im_server::users::NewUser {
                username: name.clone(),
                password: "soak-password".into(),
                user_type: "user".into(),
                display_name: None,
                email: None,
            },
        )
        .await
        .expect("create user");
        members.push((name, user.id, node));
    }
    conn.close().await.ok();
    nodes.push(Cluster::node(&redis, &db_url, "node-b", &[]).await);

    let run = Arc::new(Run {
        phase: AtomicUsize::new(WARM),
        sending: AtomicBool::new(true),
        stop: AtomicBool::new(false),
    });
    let ids: Vec<i64> = members.iter().map(|m| m.1).collect();
    let mut people = vec![];
    for (i, (name, id, node)) in members.into_iter().enumerate() {
        let (s, b) = http_json(
            Method::POST,
            &format!("{}/auth/login", nodes[node].base),
            Some(json!({"username": name, "password": "soak-password"})),
            None,
            None,
        )
        .await;
        assert_eq!(s, 200, "login {name}: {b}");
        let token = b["data"]["token"].as_str().unwrap().to_string();
        people.push(Member {
            opts: nodes[node].sio(&token),
            to: ids[(i + PAIRS) % (2 * PAIRS)],
            name,
            id,
            node,
            token,
            log: Arc::default(),
        });
    }
    // Two idle sockets of a0 and a1 on node A: the Redis outage's local-delivery probe, and
    // sockets that only listen through the faults.
    let _report = ReportOnPanic(&people);
    let probe_from = connect(&people[0].opts).await.unwrap().0;
    let mut probe_to = connect(&people[1].opts).await.unwrap().0;
    let mut tasks = vec![];
    for m in &people {
        let first = connect(&m.opts).await.unwrap();
        tasks.push(tokio::spawn(chat(
            m.name.clone(),
            m.to,
            m.opts.clone(),
            first,
            run.clone(),
            m.log.clone(),
        )));
    }

    sleep(WARM_UP).await;
    run.sending.store(false, Ordering::SeqCst);
    sleep(QUIET).await;
    let before: Vec<(u64, u64)> = nodes.iter().map(memory).collect();
    run.sending.store(true, Ordering::SeqCst);

    // The database goes away: sends are refused with a contract code, /health names it.
    run.enter(DB_DOWN);
    let down = Instant::now();
    db.stop();
    health_reaches(&nodes, 503, "database", "down").await;
    for_everyone(
        &people,
        "a send refused while the database is down",
        |log| log.refused.iter().any(|r| r.0 == DB_DOWN),
    )
    .await;
    sleep(OUTAGE.saturating_sub(down.elapsed())).await;
    db.restart().await;
    run.enter(DB_BACK);
    health_reaches(&nodes, 200, "database", "ok").await;
    for_everyone(&people, "sends acked again", |log| {
        log.acked.iter().any(|a| a.1 == DB_BACK)
    })
    .await;
    sleep(SETTLE).await;

    // Redis goes away: local delivery goes on, /health names Redis.
    run.enter(REDIS_DOWN);
    let down = Instant::now();
    redis.stop();
    health_reaches(&nodes, 503, "redis", "down").await;
    for node in &nodes {
        assert_eq!(health(node).await.1["database"], "ok");
    }
    let local = "local while redis is down";
    let ack = probe_from
        .emit_with_ack(
            "send_message",
            json!({"to": people[1].id, "content": local}),
            ACK_WAIT,
        )
        .await
        .expect("an ack while Redis is down");
    assert_eq!(ack[0]["ok"], true, "{ack:?}");
    people[0]
        .log
        .lock()
        .unwrap()
        .acked
        .push((ack[0]["id"].as_i64().unwrap(), REDIS_DOWN));
    await_message(&mut probe_to, local)
        .await
        .expect("a message between two sockets of node A while Redis is down");
    for_everyone(&people, "a send stored while Redis is down", |log| {
        log.acked.iter().any(|a| a.1 == REDIS_DOWN)
    })
    .await;
    sleep(OUTAGE.saturating_sub(down.elapsed())).await;
    redis.restart().await;
    run.enter(REDIS_BACK);
    health_reaches(&nodes, 200, "redis", "ok").await;
    for_everyone(&people, "messages across nodes again", |log| {
        log.received[REDIS_BACK] > 0
    })
    .await;
    sleep(SETTLE).await;

    // Quiet: traffic stops, the sockets come back to the test.
    run.enter(END);
    run.stop.store(true, Ordering::SeqCst);
    let mut clients: Vec<Vec<Client>> = vec![];
    for (m, task) in people.iter().zip(tasks) {
        let c = match task.await.unwrap() {
            Some(mut c) => {
                // What was still on its way when the task stopped reading.
                while let Some(item) = c.next(Duration::from_millis(300)).await {
                    if let Incoming::Event { name, args } = item
                        && name == "message"
                    {
                        m.log
                            .lock()
                            .unwrap()
                            .received_ids
                            .extend(args[0]["id"].as_i64());
                    }
                }
                c
            }
            None => {
                // Dropped at the very end: its drop is in the log; it must work again.
                connect(&m.opts)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", m.name))
                    .0
            }
        };
        clients.push(vec![c]);
    }
    // The idle sockets: alive, or they saw their end and a new socket works.
    for (i, mut probe) in [(0, probe_from), (1, probe_to)] {
        let ends = drain(&mut probe).await;
        if !ends.is_empty() {
            eprintln!("soak: idle socket of {} saw {ends:?}", people[i].name);
            people[i]
                .log
                .lock()
                .unwrap()
                .drops
                .push((END, format!("idle socket: {ends:?}")));
            probe = connect(&people[i].opts).await.unwrap().0;
        }
        clients[i].push(probe);
    }
    sleep(QUIET).await;
    let after: Vec<(u64, u64)> = nodes.iter().map(memory).collect();

    // No socket silently dead: each gets a fresh message from the partner on the other node.
    for (i, m) in people.iter().enumerate() {
        let from = (i + PAIRS) % (2 * PAIRS);
        let content = format!("alive? {}", m.name);
        let ack = clients[from][0]
            .emit_with_ack(
                "send_message",
                json!({"to": m.id, "content": content}),
                ACK_WAIT,
            )
            .await
            .unwrap_or_else(|e| panic!("{} sending the final check: {e}", people[from].name));
        assert_eq!(ack[0]["ok"], true, "{ack:?}");
        people[from]
            .log
            .lock()
            .unwrap()
            .acked
            .push((ack[0]["id"].as_i64().unwrap(), END));
        for (k, c) in clients[i].iter_mut().enumerate() {
            if let Err(e) = await_message(c, &content).await {
                panic!(
                    "socket {k} of {} (node {}) is silently dead after the faults: {e}",
                    m.name, nodes[m.node].node_id
                );
            }
        }
    }

    // Every acked message is in history, from either node.
    let mut total = 0;
    for m in &people {
        let acked: BTreeSet<i64> = m.log.lock().unwrap().acked.iter().map(|a| a.0).collect();
        total += acked.len();
        for node in &nodes {
            let mut stored = history_ids(node, &m.token, m.to).await;
            if m.name == people[0].name {
                stored.extend(history_ids(node, &m.token, people[1].id).await);
            }
            let lost: Vec<&i64> = acked.difference(&stored).collect();
            assert!(
                lost.is_empty(),
                "{}: {} acked message(s) missing from history on {}: {lost:?}",
                m.name,
                lost.len(),
                node.node_id
            );
        }
    }

    // Never dropped silently (contract §4): every message the partner had acked reached this
    // user's socket live, or the socket was closed and the reconnected one synced it.
    for m in &people {
        let log = m.log.lock().unwrap();
        let partner = people.iter().find(|p| p.id == m.to).unwrap();
        let partner_log = partner.log.lock().unwrap();
        let missing: Vec<(i64, &str, u128)> = partner_log
            .acked
            .iter()
            // What the chat task sent to this user (not the probes' and final checks' sends).
            .filter(|(id, _)| {
                partner_log.acked_at.contains_key(id)
                    && *id > log.before_first
                    && !log.received_ids.contains(id)
                    && !log.synced_ids.contains(id)
            })
            .map(|(id, phase)| (*id, PHASES[*phase], partner_log.acked_at[id]))
            .collect();
        assert!(
            missing.is_empty(),
            "{}: {} acked message(s) of its partner neither arrived nor were synced after a \
             reconnect, and the socket stayed open: {missing:?} (id, phase, acked at ms); its \
             syncs (ms, after_id, \
             lastMessageId, got): {:?}; received ids near: {:?}",
            m.name,
            missing.len(),
            log.syncs,
            missing
                .first()
                .map(|(id, ..)| log.received_ids.range(id - 10..id + 10).collect::<Vec<_>>())
        );
    }

    report(&people);
    for (node, (b, a)) in nodes.iter().zip(before.iter().zip(&after)) {
        eprintln!(
            "soak: {} VmRSS {} -> {} KiB ({:+.1} %), RssAnon {} -> {} KiB ({:+.1} %)",
            node.node_id,
            b.0,
            a.0,
            pct(b.0, a.0),
            b.1,
            a.1,
            pct(b.1, a.1)
        );
    }
    eprintln!("soak: {total} acked messages, all in history on both nodes");

    // Every fault was answered: no send waited out ACK_WAIT, every refusal is a contract code
    // with a sentence, and nothing was refused while the database was up.
    for m in &people {
        let log = m.log.lock().unwrap();
        assert!(
            log.hung.is_empty(),
            "{}: sends without an ack: {:?}",
            m.name,
            log.hung
        );
        for (phase, code, message) in &log.refused {
            assert!(
                serde_json::from_value::<im_server::error::ErrorCode>(json!(code)).is_ok()
                    && !message.is_empty(),
                "{}: refusal {code:?} {message:?} is not a contract code with a message",
                m.name
            );
            assert!(
                matches!(*phase, DB_DOWN | DB_BACK),
                "{}: refused with {code} while the database was up ({})",
                m.name,
                PHASES[*phase]
            );
        }
    }
    for (node, (b, a)) in nodes.iter().zip(before.iter().zip(&after)) {
        assert!(
            a.0 * 10 <= b.0 * 11,
            "{}: VmRSS {} KiB after the faults, {} KiB before: more than 10 % above",
            node.node_id,
            a.0,
            b.0
        );
    }
}

/// What each user's socket saw (shown with --no-capture, and on a failure).
fn report(people: &[Member]) {
    for m in people {
        let log = m.log.lock().unwrap_or_else(|e| e.into_inner());
        let per_phase = |v: &[(usize, String)]| -> Vec<String> {
            v.iter()
                .map(|(p, s)| format!("{}: {s}", PHASES[*p]))
                .collect()
        };
        let codes: BTreeSet<String> = log
            .refused
            .iter()
            .map(|r| format!("{} {} {:?}", PHASES[r.0], r.1, r.2))
            .collect();
        eprintln!(
            "soak: {} acked {} refused {} {codes:?} hung {:?} reconnects {} received {:?} \
             slowest ack ms {:?} drops {:?} connect failures {} (first: {:?})",
            m.name,
            log.acked.len(),
            log.refused.len(),
            per_phase(&log.hung),
            log.reconnects,
            log.received,
            log.slowest_ack_ms,
            per_phase(&log.drops),
            log.connect_failures.len(),
            per_phase(&log.connect_failures).first(),
        );
        // Acked messages of the partner that never arrived live on this user's task socket,
        // and how many of them the reconnected socket got from messages:sync.
        let Some(partner) = people.iter().find(|p| p.id == m.to) else {
            continue;
        };
        let partner = partner.log.lock().unwrap_or_else(|e| e.into_inner());
        let mut missed = [0usize; 6];
        let mut synced = [0usize; 6];
        for (id, phase) in &partner.acked {
            if partner.acked_at.contains_key(id) && !log.received_ids.contains(id) {
                missed[*phase] += 1;
                synced[*phase] += usize::from(log.synced_ids.contains(id));
            }
        }
        eprintln!(
            "soak: {} not delivered live, per phase of the send: {missed:?}; of them synced \
             after a reconnect: {synced:?}",
            m.name
        );
    }
}

/// The report, when the soak fails.
struct ReportOnPanic<'a>(&'a [Member]);

impl Drop for ReportOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            report(self.0);
        }
    }
}

fn pct(before: u64, after: u64) -> f64 {
    (after as f64 - before as f64) * 100.0 / before as f64
}
