//! The ws transport module is responsible for handling websocket connections
//! The only public function is [`new_req`] which is used to upgrade a http request to a websocket connection
//!
//! Other functions are used internally to handle the websocket connection through tasks and channels
//! and to handle upgrade from polling to ws

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, request::Parts};
use smallvec::smallvec;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    time::Instant,
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message,
        handshake::derive_accept_key,
        protocol::{Role, WebSocketConfig},
    },
};
use tokio_util::future::FutureExt as _;

use engineioxide_core::{Packet, PacketBuf, ProtocolVersion, Sid, Str, TransportType};

use crate::{
    DisconnectReason, Socket, body::ResponseBody, config::EngineIoConfig, engine::EngineIo,
    errors::Error, handler::EngineIoHandler, socket::InternalRx, transport::make_open_packet,
};

/// Create a response for websocket upgrade
fn ws_response<B>(ws_key: &HeaderValue) -> Response<ResponseBody<B>> {
    let derived = derive_accept_key(ws_key.as_bytes());
    let sec = derived.parse::<HeaderValue>().unwrap();
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::UPGRADE, HeaderValue::from_static("websocket"))
        .header(
            http::header::CONNECTION,
            HeaderValue::from_static("Upgrade"),
        )
        .header(http::header::SEC_WEBSOCKET_ACCEPT, sec)
        .body(ResponseBody::empty_response())
        .unwrap() // we are only using constants
}

/// Upgrade a websocket request to create a websocket connection.
///
/// If a sid is provided in the query it means that is is upgraded from an existing HTTP polling request.
/// In this case the http polling request is closed and the SID is kept for the websocket
pub fn new_req<R: Send + 'static, B, H: EngineIoHandler>(
    engine: Arc<EngineIo<H>>,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req: Request<R>,
) -> Result<Response<ResponseBody<B>>, Error> {
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts.clone(), body);

    let ws_key = parts
        .headers
        .get("Sec-WebSocket-Key")
        .ok_or(Error::InvalidWebSocketKey)?
        .clone();

    tokio::spawn(async move {
        let conn = hyper::upgrade::on(req)
            .await
            .map(hyper_util::rt::TokioIo::new);

        let res = match conn {
            Ok(conn) => on_init(engine.clone(), conn, protocol, sid, parts).await,
            Err(_e) => {
                #[cfg(feature = "tracing")]
                tracing::debug!("ws upgrade error: {}", _e);
                return;
            }
        };

        match res {
            Ok(_) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(?sid, "ws connection set up")
            }
            Err(Error::MultipleWebsocketRequests) => {}
            Err(_e) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(?sid, "ws closed with error: {_e}");
                if let Some(sid) = sid {
                    engine.close_session(sid, DisconnectReason::TransportError);
                }
            }
        }
    });

    Ok(ws_response(&ws_key))
}

/// Handle a websocket connection upgrade
///
/// Sends an open packet if it is not an upgrade from a polling request
///
/// Then hands the connection to its own task ([`run`]), which reads and writes it until it closes.
#[cfg_attr(
    feature = "tracing",
    tracing::instrument(level = "trace", name = "init_websocket", skip(engine, conn, req_data))
)]
pub async fn on_init<H: EngineIoHandler, S>(
    engine: Arc<EngineIo<H>>,
    conn: S,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req_data: Parts,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(engine.config.ws_read_buffer_size)
        .max_message_size(Some(engine.config.ws_max_message_size))
        .max_frame_size(Some(engine.config.ws_max_frame_size));

    let ws_init = move || WebSocketStream::from_raw_socket(conn, Role::Server, Some(ws_config));
    let (socket, ws, heartbeat) = if let Some(sid) = sid {
        match engine.get_socket(sid) {
            None => return Err(Error::UnknownSessionID(sid)),
            Some(socket) if socket.is_ws() => return Err(Error::MultipleWebsocketRequests),
            Some(socket) => {
                let mut ws = ws_init().await;

                let upgrade_fut = upgrade_handshake::<H, S>(&socket, &mut ws);
                match tokio::time::timeout(engine.config.upgrade_timeout, upgrade_fut)
                    .with_cancellation_token(&socket.cancellation_token)
                    .await
                {
                    Some(Ok(res)) => res?,
                    Some(Err(_)) => {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(?sid, "ws upgrade timed out, closing session");
                        engine.close_session(socket.id, DisconnectReason::TransportError);
                        return Err(Error::Upgrade);
                    }
                    None => {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(?sid, "socket is being closed");
                        return Err(Error::Upgrade);
                    }
                }
                (socket, ws, None)
            }
        }
    } else {
        let socket = engine.create_session(protocol, TransportType::Websocket, req_data, false);

        #[cfg(feature = "tracing")]
        tracing::debug!("new websocket connection");

        let mut ws = ws_init().await;
        init_handshake(socket.id, &mut ws, &engine.config).await?;
        // The heartbeat of a session opened on WebSocket runs in this connection's loop below,
        // not in a task of its own (a session upgraded from polling keeps its polling task).
        let heartbeat = Heartbeat::new(socket.protocol, &engine.config);
        (socket, ws, Some(heartbeat))
    };

    // The connection lives on in a task of its own: this (upgrade/handshake) future, larger
    // than what an open connection needs, is freed as soon as the connection is set up.
    tokio::spawn(run(engine, socket, ws, heartbeat));
    Ok(())
}

/// Drives an established connection to its end and closes the session accordingly.
///
/// It owns the stream and the heartbeat and lends them to [`drive`]: an async fn keeps its
/// arguments in its state for its whole life, so passing them on by value would store them twice
/// in every open connection.
async fn run<H: EngineIoHandler, S>(
    engine: Arc<EngineIo<H>>,
    socket: Arc<Socket<H::Data>>,
    mut ws: WebSocketStream<S>,
    mut heartbeat: Option<Heartbeat>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match drive(&engine, &socket, &mut ws, &mut heartbeat).await {
        Err(ref e) => {
            let reason =
                Option::<DisconnectReason>::from(e).unwrap_or(DisconnectReason::TransportError);

            #[cfg(feature = "tracing")]
            tracing::debug!("error when handling packet: {:?}", e);
            engine.close_session(socket.id, reason);
        }
        Ok(Ended::ByClient) => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = %socket.id, "ws transport was closed");
            engine.close_session(socket.id, DisconnectReason::TransportClose);
        }
        Ok(Ended::Cancelled) => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = %socket.id, "socket is closing");
        }
    }
    if socket.is_slow_consumer() {
        // It is not reading: a closing flush would only wait for the timeout below.
        return;
    }
    #[cfg(feature = "tracing")]
    tracing::trace!(sid = %socket.id, "ws closing flush");
    // Bounded: a peer that stopped reading must not keep the connection's memory forever.
    let closing = async {
        ws.flush().await.ok();
        ws.close(None).await.ok();
    };
    tokio::time::timeout(engine.config.ping_timeout, closing)
        .await
        .ok();
}

/// Why [`drive`] returned without an error.
#[derive(Debug, PartialEq)]
enum Ended {
    /// The client closed the connection (close packet, close frame or end of stream).
    ByClient,
    /// The session was closed from the server side (its cancellation token).
    Cancelled,
}

/// The heartbeat of a session opened on WebSocket, kept by [`drive`] instead of a task.
///
/// Same protocol as `Socket::heartbeat_job`: Engine.IO v4, the server pings every
/// `ping_interval` and wants a pong within `ping_timeout`; v3, the client pings and the server
/// answers, and wants the next ping within `ping_interval + ping_timeout`.
#[derive(Debug)]
struct Heartbeat {
    interval: std::time::Duration,
    timeout: std::time::Duration,
    v3: bool,
    /// v4: when the last ping was sent, while its pong is awaited.
    ping_sent: Option<Instant>,
    /// When the timer fires next: v4 the next ping or the pong deadline, v3 the ping deadline.
    deadline: Instant,
}

impl Heartbeat {
    fn new(protocol: ProtocolVersion, config: &EngineIoConfig) -> Self {
        let v3 = protocol == ProtocolVersion::V3;
        let (interval, timeout) = (config.ping_interval, config.ping_timeout);
        let first = if v3 { interval + timeout } else { interval };
        Self {
            interval,
            timeout,
            v3,
            ping_sent: None,
            deadline: Instant::now() + first,
        }
    }

    /// The timer fired: v4 sends the next ping, or gives up when the pong is late; v3 gives up.
    fn on_deadline<D: Default + Send + Sync + 'static>(
        &mut self,
        socket: &Socket<D>,
    ) -> Result<(), Error> {
        if self.v3 || self.ping_sent.is_some() {
            return Err(Error::HeartbeatTimeout);
        }
        #[cfg(feature = "tracing")]
        tracing::trace!(sid = ?socket.id, "emitting ping");
        socket
            .internal_tx
            .try_send(smallvec![Packet::Ping])
            .map_err(|_| Error::HeartbeatTimeout)?;
        let now = Instant::now();
        self.ping_sent = Some(now);
        self.deadline = now + self.timeout;
        Ok(())
    }

    /// A ping (v3) or pong (v4) arrived from the client.
    fn on_beat<D: Default + Send + Sync + 'static>(
        &mut self,
        socket: &Socket<D>,
    ) -> Result<(), Error> {
        if self.v3 {
            socket
                .internal_tx
                .try_send(smallvec![Packet::Pong])
                .map_err(|_| Error::HeartbeatTimeout)?;
            self.deadline = Instant::now() + self.interval + self.timeout;
        } else if let Some(sent) = self.ping_sent.take() {
            // Pings keep their cadence, as with `tokio::time::interval` in the heartbeat task.
            self.deadline = (sent + self.interval).max(Instant::now());
        }
        // A v4 pong nobody asked for (some clients send one first) is ignored.
        Ok(())
    }
}

/// Runs a WebSocket connection on one task: reads frames into the handler, writes the socket's
/// queued packets, keeps the heartbeat of a session opened on WebSocket.
///
/// One loop instead of a reader, a writer task and a heartbeat task: an idle connection costs
/// one task and no split of the stream. Writes are flushed once the queue is drained.
async fn drive<H: EngineIoHandler, S>(
    engine: &Arc<EngineIo<H>>,
    socket: &Arc<Socket<H::Data>>,
    ws: &mut WebSocketStream<S>,
    heartbeat: &mut Option<Heartbeat>,
) -> Result<Ended, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // A polling request that was in progress during the upgrade may still hold the lock.
    let lock = socket.internal_rx.lock();
    let Some(mut internal_rx) = lock
        .with_cancellation_token(&socket.cancellation_token)
        .await
    else {
        #[cfg(feature = "tracing")]
        tracing::debug!(sid = %socket.id, "session closed before starting the ws writer");
        return Ok(Ended::Cancelled);
    };
    let InternalRx {
        buffered_rx,
        volatile_rx,
        ..
    } = &mut *internal_rx;

    // Without a heartbeat the timer stays disabled (the `if` of its branch below).
    let far = Instant::now() + std::time::Duration::from_secs(86400 * 365);
    let timer = tokio::time::sleep_until(heartbeat.as_ref().map_or(far, |h| h.deadline));
    tokio::pin!(timer);

    let ended = loop {
        // Every branch that has packets to write yields them here, so the future has one
        // write path (its size is what every idle connection pays).
        let packets: PacketBuf = tokio::select! {
            biased;
            items = buffered_rx.recv() => match items {
                Some(packets) => packets,
                None => break Ended::Cancelled,
            },
            _ = socket.cancellation_token.cancelled() => break Ended::Cancelled,
            msg = ws.next() => {
                let Some(msg) = msg.transpose()? else { break Ended::ByClient };
                match on_message(engine, socket, msg)? {
                    Incoming::Handled => {}
                    Incoming::Closed => break Ended::ByClient,
                    Incoming::Beat => match heartbeat.as_mut() {
                        Some(hb) => {
                            hb.on_beat(socket)?;
                            timer.as_mut().reset(hb.deadline);
                        }
                        // A session upgraded from polling: its heartbeat task listens.
                        // A full channel means that the client is already known to be alive.
                        None => {
                            socket.heartbeat_tx.try_send(()).ok();
                        }
                    },
                }
                continue;
            }
            Ok(()) = volatile_rx.changed() => match volatile_rx.borrow_and_update().clone() {
                Some(packets) => {
                    #[cfg(feature = "tracing")]
                    tracing::debug!(sid = ?socket.id, "ws volatile flush: {} packets", packets.len());
                    packets
                }
                None => continue,
            },
            () = &mut timer, if heartbeat.is_some() => {
                if let Some(hb) = heartbeat.as_mut() {
                    hb.on_deadline(socket)?;
                    timer.as_mut().reset(hb.deadline);
                }
                continue;
            }
        };
        // Write what came, then whatever else is queued, and flush once.
        let write = async {
            let mut next = Some(packets);
            while let Some(packets) = next.take() {
                for item in packets {
                    if let Some(msg) = to_message(socket, item)
                        && let Err(_e) = ws.feed(msg).await
                    {
                        #[cfg(feature = "tracing")]
                        tracing::debug!("[sid={}] error sending packet: {}", socket.id, _e);
                    }
                }
                next = buffered_rx.try_recv().ok();
            }
            #[cfg(feature = "tracing")]
            tracing::trace!(sid = %socket.id, "ws flush");
            ws.flush().await.ok();
        };
        // A peer that stopped reading blocks the write: closing the session (e.g. as a slow
        // consumer) must still end the connection.
        tokio::select! {
            biased;
            () = write => {}
            _ = socket.cancellation_token.cancelled() => break Ended::Cancelled,
        }
    };

    Ok(ended)
}

/// What a frame from the client was, for [`drive`].
enum Incoming {
    Handled,
    /// A ping (v3) or pong (v4): the client is alive.
    Beat,
    /// A close packet or close frame: the session is closed.
    Closed,
}

/// Hands one frame from the client to the handler.
fn on_message<H: EngineIoHandler>(
    engine: &Arc<EngineIo<H>>,
    socket: &Arc<Socket<H::Data>>,
    msg: Message,
) -> Result<Incoming, Error> {
    match msg {
        Message::Text(msg) => match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
            Packet::Close => {
                #[cfg(feature = "tracing")]
                tracing::debug!("[sid={}] closing session", socket.id);
                engine.close_session(socket.id, DisconnectReason::TransportClose);
                Ok(Incoming::Closed)
            }
            Packet::Pong | Packet::Ping => Ok(Incoming::Beat),
            Packet::Message(msg) => {
                if !socket.guard_incoming(&msg) {
                    return Ok(Incoming::Closed);
                }
                engine.handler.on_message(msg, socket.clone());
                Ok(Incoming::Handled)
            }
            p => Err(Error::BadPacket(p)),
        },
        Message::Binary(mut data) => {
            if socket.protocol == ProtocolVersion::V3 && !data.is_empty() {
                // The first byte is the message type, which we don't need.
                data = data.split_off(1);
            }
            engine.handler.on_binary(data, socket.clone());
            Ok(Incoming::Handled)
        }
        Message::Close(_) => {
            #[cfg(feature = "tracing")]
            tracing::debug!("websocket closed, closing session");
            engine.close_session(socket.id, DisconnectReason::TransportClose);
            Ok(Incoming::Closed)
        }
        _ => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = ?socket.id, "unexpected ws message");
            Ok(Incoming::Handled)
        }
    }
}

/// The WebSocket frame for one packet; `None` for a packet that is not sent.
fn to_message<D>(socket: &Socket<D>, item: Packet) -> Option<Message>
where
    D: Default + Send + Sync + 'static,
{
    match item {
        Packet::Binary(bin) | Packet::BinaryV3(bin) => {
            if socket.protocol == ProtocolVersion::V3 {
                // v3 protocol requires packet type as the first byte.
                // This requires a new buffer. This is OK as it is only for the V3 protocol.
                let mut buff = Vec::with_capacity(bin.len() + 1);
                buff.push(0x04);
                buff.extend(bin);
                Some(Message::Binary(buff.into()))
            } else {
                Some(Message::Binary(bin))
            }
        }
        // A Noop Packet maybe sent by the server to upgrade from a polling connection
        // In the case that the packet was not poll in time it will remain in the buffer and therefore
        // it should be discarded here
        Packet::Noop => None,
        _ => {
            let packet: String = item.try_into().unwrap();
            Some(Message::Text(packet.into()))
        }
    }
}

/// Send a Engine.IO [`OpenPacket`] to initiate a websocket connection
async fn init_handshake<S>(
    sid: Sid,
    ws: &mut WebSocketStream<S>,
    config: &EngineIoConfig,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let packet = Packet::Open(make_open_packet(TransportType::Websocket, sid, config));
    let packet: String = packet.into();
    ws.send(Message::Text(packet.into())).await?;
    Ok(())
}

/// Upgrade a session from a polling request to a websocket request.
///
/// Before upgrading the session the server should send a NOOP packet to any pending polling request.
///
/// ## Handshake :
/// ```text
/// CLIENT                                                 SERVER
///│                                                      │
///│   GET /engine.io/?EIO=4&transport=websocket&sid=...  │
///│ ───────────────────────────────────────────────────► │
///│  ◄─────────────────────────────────────────────────┘ │
///│            HTTP 101 (WebSocket handshake)            │
///│                                                      │
///│            -----  WebSocket frames -----             │
///│  ─────────────────────────────────────────────────►  │
///│                         2probe                       │ (ping packet)
///│  ◄─────────────────────────────────────────────────  │
///│                         3probe                       │ (pong packet)
///│  ─────────────────────────────────────────────────►  │
///│                         5                            │ (upgrade packet)
///│                                                      │
///│            -----  WebSocket frames -----             │
/// ```
#[cfg_attr(
    feature = "tracing",
    tracing::instrument(level = "trace", skip(socket, ws))
)]
async fn upgrade_handshake<H: EngineIoHandler, S>(
    socket: &Arc<Socket<H::Data>>,
    ws: &mut WebSocketStream<S>,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    #[cfg(feature = "tracing")]
    tracing::debug!("starting websocket connection upgrade");

    // The socket is upgrading, from now on all polling
    // request will return a `Packet::Noop`
    socket.start_upgrade();

    // We send a last Noop request to close a potential waiting polling request.
    socket
        .internal_tx
        .send(smallvec![Packet::Noop])
        .await
        .map_err(|_| Error::Upgrade)?;

    // wait for any current polling connection to finish by waiting for the socket to be unlocked
    // All other polling connection will be immediately closed with a NOOP packet.
    let _lock = socket.internal_rx.lock().await;

    // Fetch the next packet from the ws stream, it should be a PingUpgrade packet
    let msg = match ws.next().await {
        Some(Ok(Message::Text(d))) => d,
        _ => Err(Error::Upgrade)?,
    };
    match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
        Packet::PingUpgrade => {
            #[cfg(feature = "tracing")]
            tracing::debug!("received first ping upgrade");
            // Respond with a PongUpgrade packet
            ws.send(Message::Text(String::from(Packet::PongUpgrade).into()))
                .await?;
        }
        p => Err(Error::BadPacket(p))?,
    };

    // Fetch the next packet from the ws stream, it should be an Upgrade packet
    let msg = match ws.next().await {
        Some(Ok(Message::Text(d))) => d,
        Some(Ok(Message::Close(_))) => {
            #[cfg(feature = "tracing")]
            tracing::debug!("ws stream closed before upgrade");
            Err(Error::Upgrade)?
        }
        _ => {
            #[cfg(feature = "tracing")]
            tracing::debug!("unexpected ws message before upgrade");
            Err(Error::Upgrade)?
        }
    };
    match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
        Packet::Upgrade => {
            #[cfg(feature = "tracing")]
            tracing::debug!("ws upgraded successfully")
        }
        p => Err(Error::BadPacket(p))?,
    };

    socket.upgrade_to_websocket();
    Ok(())
}

fn ws_bytes_to_str(bytes: tungstenite::Utf8Bytes) -> Str {
    // SAFETY: the bytes are guaranteed to be valid UTF-8 by the tungstenite parser
    unsafe { Str::from_bytes_unchecked(bytes.into()) }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use futures_util::StreamExt;
    use http::Request;
    use tokio::io::DuplexStream;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(1);

    #[derive(Debug)]
    struct StubHandler;
    impl EngineIoHandler for StubHandler {
        type Data = ();
        fn on_connect(self: Arc<Self>, _: Arc<Socket<()>>) {}
        fn on_disconnect(&self, _: Arc<Socket<()>>, _: DisconnectReason) {}
        fn on_message(self: &Arc<Self>, _: Str, _: Arc<Socket<()>>) {}
        fn on_binary(self: &Arc<Self>, _: Bytes, _: Arc<Socket<()>>) {}
    }

    fn engine(config: EngineIoConfig) -> Arc<EngineIo<StubHandler>> {
        Arc::new(EngineIo::new(Arc::new(StubHandler), config))
    }

    fn socket(engine: &Arc<EngineIo<StubHandler>>) -> Arc<Socket<()>> {
        engine.create_session(
            ProtocolVersion::V4,
            TransportType::Websocket,
            Request::<()>::default().into_parts().0,
            false,
        )
    }

    async fn ws_pair() -> (WebSocketStream<DuplexStream>, WebSocketStream<DuplexStream>) {
        let (server, client) = tokio::io::duplex(1024);
        (
            WebSocketStream::from_raw_socket(server, Role::Server, None).await,
            WebSocketStream::from_raw_socket(client, Role::Client, None).await,
        )
    }

    async fn next_text(client: &mut WebSocketStream<DuplexStream>) -> Option<Message> {
        tokio::time::timeout(TIMEOUT, client.next())
            .await
            .expect("the server should send a frame")
            .map(Result::unwrap)
    }

    /// A polling request can still hold the lock at the end of an upgrade.
    #[tokio::test]
    async fn writer_waits_for_the_lock_of_a_polling_request() {
        let engine = engine(EngineIoConfig::default());
        let socket = socket(&engine);
        let (server, mut client) = ws_pair().await;

        let polling = socket.internal_rx.lock().await;
        let driver = {
            let (engine, socket) = (engine.clone(), socket.clone());
            tokio::spawn(async move { drive(&engine, &socket, &mut { server }, &mut None).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!driver.is_finished(), "the writer should wait for the lock");

        drop(polling);
        socket.emit(Str::from("hello")).unwrap();
        assert_eq!(next_text(&mut client).await, Some(Message::text("4hello")));
    }

    #[tokio::test]
    async fn writer_waiting_for_the_lock_stops_with_the_session() {
        let engine = engine(EngineIoConfig::default());
        let socket = socket(&engine);
        let (server, _client) = ws_pair().await;

        let _polling = socket.internal_rx.lock().await;
        let driver = {
            let (engine, socket) = (engine.clone(), socket.clone());
            tokio::spawn(async move { drive(&engine, &socket, &mut { server }, &mut None).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;

        socket.cancellation_token.cancel();
        let ended = tokio::time::timeout(TIMEOUT, driver)
            .await
            .expect("the writer should stop")
            .unwrap();
        assert_eq!(ended.unwrap(), Ended::Cancelled);
    }

    /// v4: the loop pings every interval, keeps the session while pongs come back, and ends it
    /// with a heartbeat timeout once they stop.
    #[tokio::test]
    async fn heartbeat_pings_and_times_out_without_a_pong() {
        let config = EngineIoConfig::builder()
            .ping_interval(Duration::from_millis(50))
            .ping_timeout(Duration::from_millis(50))
            .build();
        let engine = engine(config);
        let socket = socket(&engine);
        let (server, mut client) = ws_pair().await;
        let heartbeat = Heartbeat::new(ProtocolVersion::V4, &engine.config);
        let driver = {
            let (engine, socket) = (engine.clone(), socket.clone());
            tokio::spawn(async move {
                drive(&engine, &socket, &mut { server }, &mut Some(heartbeat)).await
            })
        };
        for _ in 0..3 {
            assert_eq!(next_text(&mut client).await, Some(Message::text("2")));
            client.send(Message::text("3")).await.unwrap();
        }
        assert_eq!(next_text(&mut client).await, Some(Message::text("2")));
        // No pong this time.
        let ended = tokio::time::timeout(TIMEOUT, driver)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(ended, Err(Error::HeartbeatTimeout)), "{ended:?}");
        assert_eq!(
            Option::<DisconnectReason>::from(&ended.unwrap_err()),
            Some(DisconnectReason::HeartbeatTimeout)
        );
    }

    /// v3: the client pings, the loop answers each ping with a pong and ends the session when
    /// no ping comes within interval + timeout.
    #[tokio::test]
    async fn heartbeat_v3_answers_pings_and_times_out_without_one() {
        let config = EngineIoConfig::builder()
            .ping_interval(Duration::from_millis(50))
            .ping_timeout(Duration::from_millis(50))
            .build();
        let engine = engine(config);
        let socket = socket(&engine);
        let (server, mut client) = ws_pair().await;
        let heartbeat = Heartbeat::new(ProtocolVersion::V3, &engine.config);
        let driver = {
            let (engine, socket) = (engine.clone(), socket.clone());
            tokio::spawn(async move {
                drive(&engine, &socket, &mut { server }, &mut Some(heartbeat)).await
            })
        };
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(60)).await;
            client.send(Message::text("2")).await.unwrap();
            assert_eq!(next_text(&mut client).await, Some(Message::text("3")));
        }
        let ended = tokio::time::timeout(TIMEOUT, driver)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(ended, Err(Error::HeartbeatTimeout)), "{ended:?}");
    }

    /// A close frame from the client ends the loop and the session.
    #[tokio::test]
    async fn a_close_frame_ends_the_session() {
        let engine = engine(EngineIoConfig::default());
        let socket = socket(&engine);
        let (server, mut client) = ws_pair().await;
        let driver = {
            let (engine, socket) = (engine.clone(), socket.clone());
            tokio::spawn(async move { drive(&engine, &socket, &mut { server }, &mut None).await })
        };
        client.close(None).await.unwrap();
        let ended = tokio::time::timeout(TIMEOUT, driver)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ended.unwrap(), Ended::ByClient);
        assert!(engine.get_socket(socket.id).is_none(), "session removed");
    }
}
