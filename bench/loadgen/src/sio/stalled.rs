//! A `/im` WebSocket client that authenticates, then stops reading: a slow consumer on purpose.
//!
//! Its TCP receive buffer is a few KiB (set before connecting, so the window stays small), so the
//! server's writes to it stall as soon as it stops: what the server then queues for it is what
//! a slow-consumer bound has to hold (the test `delivery.rs` and the `slow` scenario use it).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::packet::{self, EioPacket, Packet};
use super::{ConnectOptions, Error, websocket_url};

/// Receive buffer asked for (Linux doubles it): small enough that a few frames fill it.
const RCVBUF: u32 = 4096;

/// One event the server sent: its name and first argument.
pub type Event = (String, Value);

pub struct StalledClient {
    ws: WebSocketStream<TcpStream>,
}

impl StalledClient {
    /// Connects, sends the namespace CONNECT and reads until `connected` (which it returns);
    /// from then on it reads nothing unless told to.
    pub async fn connect(
        opts: &ConnectOptions,
        limit: Duration,
    ) -> Result<(StalledClient, Value), Error> {
        let (url, addr) = websocket_url(opts)?;
        let handshake = async {
            let mut last = None;
            let mut tcp = None;
            for sa in tokio::net::lookup_host(&addr).await? {
                let sock = if sa.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                sock.set_recv_buffer_size(RCVBUF)?;
                match sock.connect(sa).await {
                    Ok(s) => {
                        tcp = Some(s);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            let tcp = tcp.ok_or_else(|| {
                last.map(Error::Io)
                    .unwrap_or_else(|| Error::InvalidInput(format!("{addr} resolves to nothing")))
            })?;
            let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), tcp).await?;
            let connect = packet::encode_frame(&Packet::Connect {
                ns: &opts.namespace,
                data: opts.auth.clone(),
            });
            ws.send(Message::text(connect)).await?;
            let mut me = StalledClient { ws };
            let mut seen = vec![];
            me.read_until(&mut seen, |e| e.0 == "connected" || e.0 == "error", limit)
                .await;
            match seen.pop() {
                Some((name, info)) if name == "connected" => Ok((me, info)),
                other => Err(Error::Protocol(format!(
                    "expected `connected`, got {other:?}"
                ))),
            }
        };
        tokio::time::timeout(limit, handshake)
            .await
            .map_err(|_| Error::Timeout(format!("no `connected` within {limit:?}")))?
    }

    /// Reads events into `events` until `stop` says so (returns false), the connection ends
    /// (true) or `limit` passes without a frame (false).
    pub async fn read_until(
        &mut self,
        events: &mut Vec<Event>,
        stop: impl Fn(&Event) -> bool,
        limit: Duration,
    ) -> bool {
        loop {
            let frame = match tokio::time::timeout(limit, self.ws.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(Message::Text(t)))) => t,
                Ok(Some(Ok(_))) => continue,
            };
            let Ok(EioPacket::Message(m)) = packet::decode_eio(&frame) else {
                continue;
            };
            if let Ok(Packet::Event { name, args, .. }) = packet::decode(m) {
                let event = (
                    name.to_string(),
                    args.into_iter().next().unwrap_or(Value::Null),
                );
                let done = stop(&event);
                events.push(event);
                if done {
                    return false;
                }
            }
        }
    }

    /// Reads whatever is left until the server closes the connection: the events, and whether
    /// it did close within `limit` of silence.
    pub async fn drain(&mut self, limit: Duration) -> (Vec<Event>, bool) {
        let mut events = vec![];
        let closed = self.read_until(&mut events, |_| false, limit).await;
        (events, closed)
    }
}
