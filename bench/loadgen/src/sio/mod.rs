//! A small Socket.IO v5 / Engine.IO v4 client over WebSocket only (what socket.io-client 4.x
//! does with `transports: ["websocket"]`), for integration tests and the load generator.
//!
//! ```no_run
//! # async fn demo() -> Result<(), loadgen::sio::Error> {
//! use std::time::Duration;
//! use loadgen::sio::{Client, ConnectOptions, Incoming};
//! let mut c = Client::connect(ConnectOptions {
//!     base_url: "http://127.0.0.1:3000".into(),
//!     auth: Some(serde_json::json!({"token": "..."})),
//!     ..Default::default()
//! })
//! .await?;
//! let info = c.expect_event("connected", Duration::from_secs(5)).await?;
//! let ack = c
//!     .emit_with_ack("send_message", serde_json::json!({"to": 2, "content": "hi"}), Duration::from_secs(5))
//!     .await?;
//! c.close().await;
//! # Ok(()) }
//! ```
//!
//! One background task per connection reads frames, answers the server's Engine.IO PING with a
//! PONG, routes ACK packets to the waiting `emit_with_ack` by id and queues everything else for
//! [`Client::next`] (or hands it to a callback, see [`Client::connect_with_handler`]). Writes go
//! straight to the socket under a mutex, so `emit` can be called concurrently through `&Client`.

pub mod packet;
pub mod stalled;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

pub use packet::{DecodeError, EngineOpen, Packet};

/// How to reach the server. Build with `..Default::default()`.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `http://127.0.0.1:PORT` (`ws://` is accepted too; no TLS).
    pub base_url: String,
    /// Socket.IO namespace, `/im` by default.
    pub namespace: String,
    /// Payload of the namespace CONNECT packet: `40/im,{"token":"..."}`. `None` sends `40/im,`.
    pub auth: Option<Value>,
    /// Extra HTTP headers on the WebSocket upgrade request (Authorization, Cookie, Origin, ...).
    pub headers: Vec<(String, String)>,
    /// Extra query parameters after `EIO=4&transport=websocket` (values are percent-encoded here).
    pub query: Vec<(String, String)>,
    /// Bind the TCP socket to this source address (e.g. 127.0.0.7) to get past ~28k ephemeral ports.
    pub local_addr: Option<IpAddr>,
    /// Engine.IO path, `/socket.io/` by default.
    pub path: String,
    /// Bound on TCP connect + WebSocket upgrade + Engine.IO OPEN. Default 10 s.
    pub connect_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            base_url: "http://127.0.0.1:3000".into(),
            namespace: "/im".into(),
            auth: None,
            headers: Vec::new(),
            query: Vec::new(),
            local_addr: None,
            path: "/socket.io/".into(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// What the server sent on our namespace (or about the connection).
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// Namespace CONNECT accepted (`0/im,{"sid":..}`); `sid` is the Socket.IO socket id.
    Connected { sid: String },
    /// Namespace CONNECT refused (`4/im,{..}`), e.g. `{"message":"TOKEN_MISSING"}`.
    ConnectError(Value),
    /// `2/im,["name",args..]` (an ack id the server may ask for is ignored).
    Event { name: String, args: Vec<Value> },
    /// The server sent a namespace DISCONNECT (`1/im,`).
    Disconnected,
    /// The WebSocket / Engine.IO session ended (close frame, Engine.IO `1`, TCP error, ping timeout).
    Closed,
}

impl Incoming {
    /// The event name, for `Event`.
    pub fn event_name(&self) -> Option<&str> {
        match self {
            Incoming::Event { name, .. } => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Incoming::Connected { sid } => write!(f, "Connected(sid={sid})"),
            Incoming::ConnectError(v) => write!(f, "ConnectError({v})"),
            Incoming::Event { name, args } => {
                let args = serde_json::to_string(args).unwrap_or_default();
                write!(f, "Event({name:?}, {})", packet::preview(&args))
            }
            Incoming::Disconnected => f.write_str("Disconnected"),
            Incoming::Closed => f.write_str("Closed"),
        }
    }
}

#[derive(Debug)]
pub enum Error {
    /// `base_url` / namespace / header could not be used.
    InvalidInput(String),
    /// TCP level failure (connect refused, EADDRNOTAVAIL, ...).
    Io(std::io::Error),
    /// The server answered the upgrade with a non-101 HTTP status (e.g. 403 for a denied Origin).
    Http { status: u16, body: String },
    /// WebSocket protocol failure.
    WebSocket(String),
    /// The server sent something that is not Engine.IO / Socket.IO.
    Protocol(String),
    /// A bounded wait ran out.
    Timeout(String),
    /// The connection is closed (before or while waiting).
    Closed,
    /// `expect_event` did not see the event; lists everything that arrived instead.
    Unexpected {
        wanted: String,
        why: &'static str,
        seen: Vec<Incoming>,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Error::Io(e) => write!(f, "io: {e}"),
            Error::Http { status, body } => write!(f, "upgrade refused with HTTP {status}: {body}"),
            Error::WebSocket(m) => write!(f, "websocket: {m}"),
            Error::Protocol(m) => write!(f, "protocol: {m}"),
            Error::Timeout(m) => write!(f, "timeout: {m}"),
            Error::Closed => f.write_str("connection closed"),
            Error::Unexpected { wanted, why, seen } => {
                write!(
                    f,
                    "expected event {wanted:?} but {why}; seen {} item(s)",
                    seen.len()
                )?;
                for (i, s) in seen.iter().enumerate() {
                    write!(f, "\n  [{i}] {s}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<tungstenite::Error> for Error {
    fn from(e: tungstenite::Error) -> Self {
        match e {
            tungstenite::Error::Http(resp) => Error::Http {
                status: resp.status().as_u16(),
                body: resp
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default(),
            },
            tungstenite::Error::Io(e) => Error::Io(e),
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                Error::Closed
            }
            e => Error::WebSocket(e.to_string()),
        }
    }
}

type Ws = WebSocketStream<TcpStream>;

struct Shared {
    ns: String,
    sink: tokio::sync::Mutex<SplitSink<Ws, Message>>,
    acks: Mutex<HashMap<u64, oneshot::Sender<Vec<Value>>>>,
    next_ack: AtomicU64,
    closed: AtomicBool,
}

impl Shared {
    async fn send_text(&self, text: String) -> Result<(), Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.sink
            .lock()
            .await
            .send(Message::text(text))
            .await
            .map_err(Error::from)
    }
}

/// Where the reader task delivers non-ack items.
enum Deliver {
    Queue(mpsc::UnboundedSender<Incoming>),
    Callback(Box<dyn FnMut(Incoming) + Send + 'static>),
}

impl Deliver {
    fn push(&mut self, item: Incoming) {
        match self {
            Deliver::Queue(tx) => {
                let _ = tx.send(item);
            }
            Deliver::Callback(f) => f(item),
        }
    }
}

/// A cloneable handle that can emit on a [`Client`]'s connection from other tasks
/// (`Client::emitter`). It keeps the write half alive: the TCP connection is only closed once
/// the `Client` and every `Emitter` are gone.
#[derive(Clone)]
pub struct Emitter {
    shared: Arc<Shared>,
}

/// One Socket.IO connection on one namespace. `Send + Sync`; `emit*` take `&self`.
/// Dropping it aborts the reader task and closes the TCP connection (without a DISCONNECT packet).
pub struct Client {
    em: Emitter,
    rx: mpsc::UnboundedReceiver<Incoming>,
    /// Items `expect_event` looked at but did not want, returned first by `next`.
    pending: VecDeque<Incoming>,
    sid: Option<String>,
    reader: JoinHandle<()>,
    open: EngineOpen,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn pct_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            use std::fmt::Write;
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// `ws://host:port/socket.io/?EIO=4&transport=websocket&k=v` and the `host:port` to dial.
pub fn websocket_url(opts: &ConnectOptions) -> Result<(String, String), Error> {
    let url = opts.base_url.trim();
    let rest = if let Some(r) = url.strip_prefix("http://") {
        r
    } else if let Some(r) = url.strip_prefix("ws://") {
        r
    } else if url.starts_with("https://") || url.starts_with("wss://") {
        return Err(Error::InvalidInput(format!("TLS is not supported: {url}")));
    } else {
        return Err(Error::InvalidInput(format!(
            "base_url must start with http:// or ws://: {url:?}"
        )));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(Error::InvalidInput(format!("no host in {url:?}")));
    }
    let has_port = match authority.rfind(']') {
        Some(i) => authority[i..].contains(':'),
        None => authority.contains(':'),
    };
    let dial = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let mut path = opts.path.clone();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let mut s = format!("ws://{authority}{path}?EIO=4&transport=websocket");
    for (k, v) in &opts.query {
        s.push('&');
        pct_encode(k, &mut s);
        s.push('=');
        pct_encode(v, &mut s);
    }
    Ok((s, dial))
}

async fn dial(addr: &str, local: Option<IpAddr>) -> Result<TcpStream, Error> {
    let mut last = None;
    for sa in tokio::net::lookup_host(addr).await? {
        let res = match local {
            None => TcpStream::connect(sa).await,
            Some(ip) => {
                let sock = if sa.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                if let Err(e) = sock.bind(SocketAddr::new(ip, 0)) {
                    return Err(Error::Io(std::io::Error::new(
                        e.kind(),
                        format!("bind {ip}: {e}"),
                    )));
                }
                sock.connect(sa).await
            }
        };
        match res {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .map(Error::Io)
        .unwrap_or_else(|| Error::InvalidInput(format!("{addr} resolves to nothing"))))
}

fn ws_config() -> WebSocketConfig {
    // tungstenite allocates the read buffer eagerly (128 KiB by default): 4 KiB keeps ~20k
    // idle connections cheap. Writes are flushed per message anyway.
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

impl Client {
    /// WebSocket upgrade, Engine.IO OPEN, then sends the namespace CONNECT (with `auth`).
    /// Returns as soon as that is sent: the namespace answer (`Connected` / `ConnectError`)
    /// and the first events arrive through [`Client::next`].
    pub async fn connect(opts: ConnectOptions) -> Result<Client, Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        Self::connect_inner(opts, Deliver::Queue(tx), rx).await
    }

    /// Like [`Client::connect`], but every non-ack item is handed to `handler` on the reader
    /// task instead of being queued (no second task or channel per connection: what the load
    /// generator uses for tens of thousands of sockets). `next`/`expect_event` on such a client
    /// only ever report `Closed`. Keep `handler` short and non-blocking.
    pub async fn connect_with_handler(
        opts: ConnectOptions,
        handler: impl FnMut(Incoming) + Send + 'static,
    ) -> Result<Client, Error> {
        let (_tx, rx) = mpsc::unbounded_channel();
        Self::connect_inner(opts, Deliver::Callback(Box::new(handler)), rx).await
    }

    async fn connect_inner(
        opts: ConnectOptions,
        deliver: Deliver,
        rx: mpsc::UnboundedReceiver<Incoming>,
    ) -> Result<Client, Error> {
        let (url, addr) = websocket_url(&opts)?;
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|e| Error::InvalidInput(format!("{url}: {e}")))?;
        for (k, v) in &opts.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| Error::InvalidInput(format!("header name {k:?}: {e}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|e| Error::InvalidInput(format!("header {k} value: {e}")))?;
            req.headers_mut().append(name, value);
        }
        let ns = if opts.namespace.is_empty() {
            "/".to_owned()
        } else {
            opts.namespace.clone()
        };
        if !ns.starts_with('/') || ns.contains(',') {
            return Err(Error::InvalidInput(format!(
                "namespace must start with '/' and contain no ',': {ns:?}"
            )));
        }
        let limit = opts.connect_timeout;
        let handshake = async {
            let stream = dial(&addr, opts.local_addr).await?;
            let (mut ws, _resp) =
                tokio_tungstenite::client_async_with_config(req, stream, Some(ws_config())).await?;
            // The first frame must be the Engine.IO OPEN packet.
            let open = loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => match packet::decode_eio(t.as_str()) {
                        Ok(packet::EioPacket::Open(json)) => {
                            break packet::decode_open(json).map_err(|e| Error::Protocol(e.0))?;
                        }
                        Ok(packet::EioPacket::Noop) => continue,
                        _ => {
                            return Err(Error::Protocol(format!(
                                "expected Engine.IO OPEN, got {:?}",
                                packet::preview(t.as_str())
                            )));
                        }
                    },
                    Some(Ok(Message::Close(f))) => {
                        return Err(Error::Protocol(format!("closed before OPEN: {f:?}")));
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(Error::Closed),
                }
            };
            let connect = packet::encode_frame(&Packet::Connect {
                ns: &ns,
                data: opts.auth.clone(),
            });
            ws.send(Message::text(connect)).await?;
            Ok::<_, Error>((ws, open))
        };
        let (ws, open) = match tokio::time::timeout(limit, handshake).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::Timeout(format!(
                    "connect to {url} did not complete within {limit:?}"
                )));
            }
        };
        let (sink, stream) = ws.split();
        let shared = Arc::new(Shared {
            ns,
            sink: tokio::sync::Mutex::new(sink),
            acks: Mutex::new(HashMap::new()),
            next_ack: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        // Engine.IO v4: the server pings every pingInterval and expects nothing else from us;
        // no ping for pingInterval + pingTimeout means the server is gone (what socket.io-client does).
        let ping_deadline = if open.ping_interval_ms > 0 {
            Duration::from_millis(open.ping_interval_ms + open.ping_timeout_ms.max(1000))
        } else {
            Duration::from_secs(3600)
        };
        let reader = tokio::spawn(read_loop(shared.clone(), stream, deliver, ping_deadline));
        Ok(Client {
            em: Emitter { shared },
            rx,
            pending: VecDeque::new(),
            sid: None,
            reader,
            open,
        })
    }

    /// The Engine.IO session id (from the OPEN packet).
    pub fn engine_sid(&self) -> &str {
        &self.open.sid
    }

    /// The whole Engine.IO OPEN packet (ping interval / timeout, max payload).
    pub fn engine_open(&self) -> &EngineOpen {
        &self.open
    }

    pub fn namespace(&self) -> &str {
        &self.em.shared.ns
    }

    /// True once the reader saw the connection end.
    pub fn is_closed(&self) -> bool {
        self.em.shared.closed.load(Ordering::Acquire)
    }

    /// The next item, or `None` if nothing arrived within `timeout`. After the connection
    /// ended this returns `Some(Closed)` at once, every time.
    pub async fn next(&mut self, timeout: Duration) -> Option<Incoming> {
        if let Some(it) = self.pending.pop_front() {
            return Some(it);
        }
        match tokio::time::timeout(timeout, self.rx.recv()).await {
            Ok(Some(it)) => Some(self.note(it)),
            Ok(None) => Some(Incoming::Closed),
            Err(_) => None,
        }
    }

    /// Records the namespace sid as items go by.
    fn note(&mut self, it: Incoming) -> Incoming {
        if let Incoming::Connected { sid } = &it {
            self.sid = Some(sid.clone());
        }
        it
    }

    /// The Socket.IO socket id from the namespace `Connected` packet, once it has been received
    /// (by `next`, `expect_event` or `expect_connected`).
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// Waits up to `timeout` for event `name` and returns its args.
    ///
    /// Nothing is skipped silently: items that arrive before the event stay queued, in order,
    /// for later `next` / `expect_event` calls, with one exception: a namespace `Connected`
    /// before the event is consumed (an event implies it; its sid stays available via
    /// [`Client::sid`]). Fails early on `Disconnected` / `ConnectError` / `Closed` (nothing more
    /// can come) and on timeout; the error lists every queued item, which all stay queued.
    pub async fn expect_event(
        &mut self,
        name: &str,
        timeout: Duration,
    ) -> Result<Vec<Value>, Error> {
        let found = self
            .wait_for(
                timeout,
                name,
                |it| matches!(it, Incoming::Event { name: n, .. } if n == name),
            )
            .await?;
        // drop the Connected items queued before the event
        let mut i = 0;
        let mut idx = found;
        while i < idx {
            if matches!(self.pending[i], Incoming::Connected { .. }) {
                self.pending.remove(i);
                idx -= 1;
            } else {
                i += 1;
            }
        }
        match self.pending.remove(idx) {
            Some(Incoming::Event { args, .. }) => Ok(args),
            _ => unreachable!(),
        }
    }

    /// Waits for the namespace answer: `Ok(sid)` on `Connected`, `Err` listing what came instead
    /// (`ConnectError`, `Disconnected`, `Closed`, timeout). Other items stay queued.
    pub async fn expect_connected(&mut self, timeout: Duration) -> Result<String, Error> {
        let idx = self
            .wait_for(timeout, "<namespace connect>", |it| {
                matches!(it, Incoming::Connected { .. })
            })
            .await?;
        match self.pending.remove(idx) {
            Some(Incoming::Connected { sid }) => Ok(sid),
            _ => unreachable!(),
        }
    }

    /// Queues items until one satisfies `want` (returns its index in `pending`), a terminal
    /// item arrives, or the deadline passes.
    async fn wait_for(
        &mut self,
        timeout: Duration,
        wanted: &str,
        want: impl Fn(&Incoming) -> bool,
    ) -> Result<usize, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut scanned = 0;
        loop {
            while scanned < self.pending.len() {
                let it = &self.pending[scanned];
                if want(it) {
                    return Ok(scanned);
                }
                let why = match it {
                    Incoming::Disconnected => "the server disconnected the namespace",
                    Incoming::Closed => "the connection closed",
                    Incoming::ConnectError(_) => "the namespace connect was refused",
                    _ => {
                        scanned += 1;
                        continue;
                    }
                };
                return Err(Error::Unexpected {
                    wanted: wanted.to_owned(),
                    why,
                    seen: self.pending.iter().cloned().collect(),
                });
            }
            let it = match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(it)) => self.note(it),
                Ok(None) => Incoming::Closed,
                Err(_) => {
                    return Err(Error::Unexpected {
                        wanted: wanted.to_owned(),
                        why: "the wait timed out",
                        seen: self.pending.iter().cloned().collect(),
                    });
                }
            };
            self.pending.push_back(it);
        }
    }

    /// Takes every item queued by `expect_event` / `expect_connected` and not yet returned.
    pub fn take_pending(&mut self) -> Vec<Incoming> {
        self.pending.drain(..).collect()
    }

    /// A cloneable handle for emitting from other tasks.
    pub fn emitter(&self) -> Emitter {
        Emitter {
            shared: self.em.shared.clone(),
        }
    }

    /// `42/im,["event",data]`
    pub async fn emit(&self, event: &str, data: Value) -> Result<(), Error> {
        self.emitter_ref().emit(event, data).await
    }

    /// `42/im,["event",arg1,arg2,..]` (any number of arguments, including none).
    pub async fn emit_args(&self, event: &str, args: Vec<Value>) -> Result<(), Error> {
        self.emitter_ref().emit_args(event, args).await
    }

    /// `42/im,<id>["event",data]` and waits up to `timeout` for `43/im,<id>[..]`; returns the ack args.
    pub async fn emit_with_ack(
        &self,
        event: &str,
        data: Value,
        timeout: Duration,
    ) -> Result<Vec<Value>, Error> {
        self.emitter_ref().emit_with_ack(event, data, timeout).await
    }

    /// `emit_with_ack` with any number of arguments.
    pub async fn emit_with_ack_args(
        &self,
        event: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<Vec<Value>, Error> {
        self.emitter_ref()
            .emit_with_ack_args(event, args, timeout)
            .await
    }

    /// Sends `text` as one WebSocket text frame, verbatim (an Engine.IO packet such as
    /// `42/im,not json`): for malformed-input tests.
    pub async fn send_raw(&self, text: &str) -> Result<(), Error> {
        self.em.shared.send_text(text.to_owned()).await
    }

    fn emitter_ref(&self) -> &Emitter {
        &self.em
    }

    /// Client-side disconnect: `41/im,`, then a WebSocket close, then waits (≤1 s) for the
    /// server's close before dropping the connection.
    pub async fn close(mut self) {
        let frame = packet::encode_frame(&Packet::Disconnect {
            ns: &self.em.shared.ns,
        });
        let shared = self.em.shared.clone();
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let mut sink = shared.sink.lock().await;
            if !shared.closed.load(Ordering::Acquire) {
                let _ = sink.send(Message::text(frame)).await;
            }
            let _ = sink.close().await;
        })
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.reader).await;
    }
}

impl Emitter {
    /// `42/im,["event",data]`
    pub async fn emit(&self, event: &str, data: Value) -> Result<(), Error> {
        self.shared
            .send_text(packet::encode_event_frame(
                &self.shared.ns,
                None,
                event,
                &data,
            ))
            .await
    }

    /// `42/im,["event",arg1,arg2,..]` (any number of arguments, including none).
    pub async fn emit_args(&self, event: &str, args: Vec<Value>) -> Result<(), Error> {
        let p = Packet::Event {
            ns: &self.shared.ns,
            id: None,
            name: event.into(),
            args,
        };
        self.shared.send_text(packet::encode_frame(&p)).await
    }

    /// `42/im,<id>["event",data]` and waits up to `timeout` for `43/im,<id>[..]`; returns the ack args.
    pub async fn emit_with_ack(
        &self,
        event: &str,
        data: Value,
        timeout: Duration,
    ) -> Result<Vec<Value>, Error> {
        let (id, rx) = self.register_ack()?;
        let frame = packet::encode_event_frame(&self.shared.ns, Some(id), event, &data);
        self.finish_ack(id, frame, rx, event, timeout).await
    }

    /// `emit_with_ack` with any number of arguments.
    pub async fn emit_with_ack_args(
        &self,
        event: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<Vec<Value>, Error> {
        let (id, rx) = self.register_ack()?;
        let p = Packet::Event {
            ns: &self.shared.ns,
            id: Some(id),
            name: event.into(),
            args,
        };
        self.finish_ack(id, packet::encode_frame(&p), rx, event, timeout)
            .await
    }

    fn register_ack(&self) -> Result<(u64, oneshot::Receiver<Vec<Value>>), Error> {
        let id = self.shared.next_ack.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut acks = self.shared.acks.lock().unwrap();
            // checked under the lock: the reader sets `closed` and then clears the map under it
            if self.shared.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            acks.insert(id, tx);
        }
        Ok((id, rx))
    }

    async fn finish_ack(
        &self,
        id: u64,
        frame: String,
        rx: oneshot::Receiver<Vec<Value>>,
        event: &str,
        timeout: Duration,
    ) -> Result<Vec<Value>, Error> {
        let res = async {
            self.shared.send_text(frame).await?;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(args)) => Ok(args),
                Ok(Err(_)) => Err(Error::Closed),
                Err(_) => Err(Error::Timeout(format!(
                    "no ack for {event:?} (id {id}) within {timeout:?}"
                ))),
            }
        }
        .await;
        if res.is_err() {
            self.shared.acks.lock().unwrap().remove(&id);
        }
        res
    }

    /// Sends `text` as one WebSocket text frame, verbatim (an Engine.IO packet such as
    /// `42/im,not json`): for malformed-input tests.
    pub async fn send_raw(&self, text: &str) -> Result<(), Error> {
        self.shared.send_text(text.to_owned()).await
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

async fn read_loop(
    shared: Arc<Shared>,
    mut stream: SplitStream<Ws>,
    mut deliver: Deliver,
    ping_deadline: Duration,
) {
    let watchdog = tokio::time::sleep(ping_deadline);
    tokio::pin!(watchdog);
    loop {
        let msg = tokio::select! {
            biased;
            m = stream.next() => m,
            _ = &mut watchdog => break, // no ping from the server in time
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            Some(Ok(_)) => continue, // binary (attachments unsupported), ws ping/pong (auto-answered)
        };
        match packet::decode_eio(text.as_str()) {
            Ok(packet::EioPacket::Ping(data)) => {
                watchdog
                    .as_mut()
                    .reset(tokio::time::Instant::now() + ping_deadline);
                let pong = format!("3{data}");
                // Don't wait behind an emitter holding the sink: never stall the read side.
                match shared.sink.try_lock() {
                    Ok(mut sink) => {
                        let _ = sink.send(Message::text(pong)).await;
                    }
                    Err(_) => {
                        let s = shared.clone();
                        tokio::spawn(async move {
                            let _ = s.sink.lock().await.send(Message::text(pong)).await;
                        });
                    }
                }
            }
            Ok(packet::EioPacket::Message(sio)) => match packet::decode(sio) {
                Ok(p) if p.ns() != shared.ns => {} // another namespace
                Ok(Packet::Ack { id, args, .. }) => {
                    if let Some(tx) = shared.acks.lock().unwrap().remove(&id) {
                        let _ = tx.send(args);
                    }
                }
                Ok(Packet::Event { name, args, .. }) => deliver.push(Incoming::Event {
                    name: name.into_owned(),
                    args,
                }),
                Ok(Packet::Connect { data, .. }) => {
                    let sid = data
                        .as_ref()
                        .and_then(|d| d.get("sid"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    deliver.push(Incoming::Connected { sid });
                }
                Ok(Packet::ConnectError { data, .. }) => deliver.push(Incoming::ConnectError(data)),
                Ok(Packet::Disconnect { .. }) => deliver.push(Incoming::Disconnected),
                Err(_) => {} // malformed / binary packet from the server: ignored
            },
            Ok(packet::EioPacket::Close) => break,
            Ok(_) | Err(_) => {}
        }
    }
    {
        let mut acks = shared.acks.lock().unwrap();
        shared.closed.store(true, Ordering::Release);
        acks.clear(); // wakes every emit_with_ack with Closed
    }
    deliver.push(Incoming::Closed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_building() {
        let mut o = ConnectOptions {
            base_url: "http://127.0.0.1:3000".into(),
            ..Default::default()
        };
        assert_eq!(
            websocket_url(&o).unwrap(),
            (
                "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket".into(),
                "127.0.0.1:3000".into()
            )
        );
        o.base_url = "http://localhost/".into();
        o.query = vec![
            ("token".into(), "a b+c/=&é".into()),
            ("x".into(), "".into()),
        ];
        assert_eq!(
            websocket_url(&o).unwrap(),
            (
                "ws://localhost/socket.io/?EIO=4&transport=websocket&token=a%20b%2Bc%2F%3D%26%C3%A9&x=".into(),
                "localhost:80".into()
            )
        );
        o.base_url = "ws://[::1]:8080/ignored".into();
        o.query.clear();
        o.path = "custom".into();
        assert_eq!(
            websocket_url(&o).unwrap().0,
            "ws://[::1]:8080/custom?EIO=4&transport=websocket"
        );
        assert_eq!(websocket_url(&o).unwrap().1, "[::1]:8080");
        o.base_url = "https://x".into();
        assert!(websocket_url(&o).is_err());
        o.base_url = "127.0.0.1:3000".into();
        assert!(websocket_url(&o).is_err());
        o.base_url = "http://".into();
        assert!(websocket_url(&o).is_err());
    }

    #[test]
    fn client_is_send() {
        fn is_send<T: Send>() {}
        is_send::<Client>();
        is_send::<Error>();
        fn is_sync<T: Sync>() {}
        is_sync::<Error>();
    }

    #[test]
    fn error_lists_seen_items() {
        let e = Error::Unexpected {
            wanted: "connected".into(),
            why: "the wait timed out",
            seen: vec![
                Incoming::Connected { sid: "s1".into() },
                Incoming::Event {
                    name: "error".into(),
                    args: vec![serde_json::json!({"code":"TOKEN_MISSING"})],
                },
                Incoming::Disconnected,
            ],
        };
        let s = e.to_string();
        assert!(s.contains("\"connected\""), "{s}");
        assert!(s.contains("Connected(sid=s1)"), "{s}");
        assert!(s.contains("TOKEN_MISSING"), "{s}");
        assert!(s.contains("Disconnected"), "{s}");
    }
}
