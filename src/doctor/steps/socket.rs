//! The WebSocket half of the walk: `websocket`, `auth`, `connected`, `heartbeat`.

use super::*;

impl Walk<'_> {
    pub(super) async fn websocket(&mut self, link: &Link) -> Option<(Ws, Open)> {
        let upgrade_hint = format!(
            "a proxy between here and im-server drops the hop-by-hop Upgrade / Connection headers{}, so the WebSocket never opens; HTTP long-polling still works, so clients fall back to it or fail with `websocket error`. nginx, in the location for {}: proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\";",
            if self.upgrade_arrived == Some(false) {
                " (the server's /debug/transport saw them go missing)"
            } else {
                ""
            },
            self.target.path
        );
        let stream = match link.open().await {
            Ok(s) => s,
            Err(OpenError::Tcp(e) | OpenError::Tls(e)) => {
                self.push(Step::fail(
                    WEBSOCKET,
                    format!("connecting: {e}"),
                    "the connection for the WebSocket could not be opened",
                ));
                return None;
            }
        };
        let ws_url = self.target.ws_url();
        let mut req = match ws_url.as_str().into_client_request() {
            Ok(r) => r,
            Err(e) => {
                self.push(Step::fail(WEBSOCKET, format!("{ws_url}: {e}"), "fix --url"));
                return None;
            }
        };
        if let Ok(v) = HeaderValue::from_str(&self.target.origin) {
            req.headers_mut().insert("Origin", v);
        }
        let what = format!(
            "GET {}?EIO=4&transport=websocket (Upgrade)",
            self.target.path
        );
        let timeout = link.timeout;
        let handshake =
            tokio::time::timeout(timeout, tokio_tungstenite::client_async(req, stream)).await;
        let mut ws = match handshake {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(tungstenite::Error::Http(resp))) => {
                let status = resp.status().as_u16();
                let body = resp
                    .body()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default()
                    .to_string();
                let hint = if self.upgrade_arrived == Some(false) || body.contains("Upgrade") {
                    upgrade_hint
                } else if status == 403 {
                    format!(
                        "the upgrade was refused for Origin {}: add it to cors.origins, or a proxy/WAF blocks WebSockets",
                        self.target.origin
                    )
                } else if status == 404 {
                    format!(
                        "no WebSocket endpoint at {}: im-server serves /socket.io/ (check the proxy location and the client's `path`)",
                        self.target.path
                    )
                } else if (502..=504).contains(&status) {
                    "the proxy cannot reach im-server for the WebSocket: check the upstream of the /socket.io/ location".into()
                } else {
                    "the upgrade was refused: see the answer".into()
                };
                self.push(Step::fail(
                    WEBSOCKET,
                    format!(
                        "{what} answered {status} instead of 101: {}",
                        eio::preview(&body)
                    ),
                    hint,
                ));
                return None;
            }
            Ok(Err(e)) => {
                self.push(Step::fail(WEBSOCKET, format!("{what}: {e}"), upgrade_hint));
                return None;
            }
            Err(_) => {
                self.push(Step::fail(
                    WEBSOCKET,
                    format!("{what}: no answer within {}s", timeout.as_secs()),
                    upgrade_hint,
                ));
                return None;
            }
        };
        match recv(&mut ws, Instant::now() + timeout).await {
            Recv::Text(t) => match Open::parse(&t) {
                Ok(open) => {
                    self.push(Step::ok(
                        WEBSOCKET,
                        format!(
                            "101 Switching Protocols, then Engine.IO open over WebSocket ({})",
                            open.describe()
                        ),
                    ));
                    Some((ws, open))
                }
                Err(e) => {
                    self.push(Step::fail(
                        WEBSOCKET,
                        format!("101, but {e}"),
                        "something other than im-server answers the WebSocket",
                    ));
                    None
                }
            },
            Recv::Closed(why) => {
                self.push(Step::fail(WEBSOCKET, format!("101 Switching Protocols, then the connection closed ({why}) before the Engine.IO open packet"), upgrade_hint));
                None
            }
            Recv::Timeout => {
                self.push(Step::fail(
                    WEBSOCKET,
                    format!(
                        "101 Switching Protocols, but no Engine.IO open packet within {}s",
                        timeout.as_secs()
                    ),
                    upgrade_hint,
                ));
                None
            }
        }
    }

    /// Read until a Socket.IO packet for our namespace, answering pings on the way.
    pub(super) async fn next_sio(&mut self, ws: &mut Ws, until: Instant) -> Result<Sio, String> {
        loop {
            match recv(ws, until).await {
                Recv::Text(t) if t == "2" => {
                    self.pings += 1;
                    let _ = ws.send(Message::text("3")).await;
                }
                Recv::Text(t) => {
                    if let Some(msg) = t.strip_prefix('4') {
                        let p = Sio::parse(msg);
                        let ours = match &p {
                            Sio::Connect { ns, .. }
                            | Sio::Disconnect { ns }
                            | Sio::Event { ns, .. }
                            | Sio::ConnectError { ns, .. } => *ns == self.target.namespace,
                            Sio::Other => false,
                        };
                        if ours {
                            return Ok(p);
                        }
                    } else if t == "1" {
                        return Err("the server closed the Engine.IO session".into());
                    }
                }
                Recv::Closed(why) => return Err(format!("the connection closed ({why})")),
                Recv::Timeout => {
                    return Err(format!("no answer within {}s", self.args.timeout.max(1)));
                }
            }
        }
    }

    pub(super) async fn auth(&mut self, ws: &mut Ws) -> bool {
        let ns = self.target.namespace.clone();
        let auth = match &self.raw_token {
            Some(t) => json!({ "token": t }),
            None => json!({}),
        };
        let with = match &self.token {
            Some(t) => format!("{} in the auth payload, from {}", t.fingerprint, t.from),
            None => "no token (pass --token or --username/--password)".into(),
        };
        if ws
            .send(Message::text(eio::connect(&ns, &auth)))
            .await
            .is_err()
        {
            return self.push(Step::fail(
                AUTH,
                "the connection closed while sending the namespace CONNECT",
                "see the websocket step",
            ));
        }
        let until = Instant::now() + Duration::from_secs(self.args.timeout.max(1));
        match self.next_sio(ws, until).await {
            Ok(Sio::Connect { .. }) => self.push(Step::ok(AUTH, format!("namespace {ns} accepted the CONNECT with {with}"))),
            Ok(Sio::ConnectError { data, .. }) => {
                let message = data["message"].as_str().unwrap_or_default().to_string();
                if message == "Invalid namespace" {
                    return self.push(Step::fail(AUTH, format!("CONNECT to namespace {ns} refused: Invalid namespace"), format!("this server has no namespace {ns}: im-server serves /im. The path of the URL given to io() is the namespace (io(\"https://HOST/im\")); the Engine.IO path is the separate `path` option")));
                }
                // Strict mode: the message is the code, or JSON {code, message}.
                let (code, text) = match serde_json::from_str::<Value>(&message) {
                    Ok(v) if v["code"].is_string() => (str_of(&v["code"]), str_of(&v["message"])),
                    _ => (message.clone(), String::new()),
                };
                let (detail, hint) = self.refusal(&code, &text, "connect_error").await;
                self.push(Step::fail(AUTH, detail, hint))
            }
            Ok(other) => self.push(Step::fail(AUTH, format!("unexpected answer to the CONNECT: {other:?}"), "not the Socket.IO protocol im-server speaks")),
            Err(e) => self.push(Step::fail(AUTH, format!("namespace CONNECT to {ns}: {e}"), "the server did not answer the namespace CONNECT: check the server's log for this handshake")),
        }
    }

    pub(super) async fn connected(&mut self, ws: &mut Ws) -> bool {
        let until = Instant::now() + Duration::from_secs(self.args.timeout.max(1));
        loop {
            match self.next_sio(ws, until).await {
                Ok(Sio::Event { name, args, .. }) if name == "connected" => {
                    let c = args.first().cloned().unwrap_or(Value::Null);
                    return self.push(Step::ok(CONNECTED, format!(
                        "`connected` as user {} {} ({}), token expires {}",
                        c["userId"], str_of(&c["username"]), str_of(&c["userType"]), str_of(&c["expiresAt"])
                    )));
                }
                Ok(Sio::Event { name, args, .. }) if name == "error" => {
                    let e = args.first().cloned().unwrap_or(Value::Null);
                    let (detail, hint) = self.refusal(&str_of(&e["code"]), &str_of(&e["message"]), "error").await;
                    return self.push(Step::fail(CONNECTED, detail, hint));
                }
                Ok(Sio::Event { .. }) => continue,
                Ok(Sio::Disconnect { .. }) => return self.push(Step::fail(CONNECTED, "the server disconnected the socket without an `error` event", "see the server's handshake log line for this connection")),
                Ok(other) => return self.push(Step::fail(CONNECTED, format!("unexpected packet {other:?}"), "not the Socket.IO protocol im-server speaks")),
                Err(e) => return self.push(Step::fail(CONNECTED, format!("waiting for `connected`: {e}"), "the server accepted the namespace but sent neither `connected` nor `error`: check its log")),
            }
        }
    }

    /// A refused handshake: what the client got, the token seen from the outside, and the
    /// server's diagnosis when it gives one.
    pub(super) async fn refusal(
        &mut self,
        code: &str,
        message: &str,
        how: &str,
    ) -> (String, String) {
        let mut detail = format!("{how} {code}: {message}");
        let token_code =
            code.starts_with("TOKEN_") || code.starts_with("USER_") || code == "SESSION_REPLACED";
        let hint = match code {
            "ORIGIN_DENIED" => format!(
                "Origin {} is not in cors.origins: add it (cors.origins = [\"{0}\"], IM_CORS__ORIGINS or FRONTEND_URL){}",
                self.target.origin,
                if self.args.origin.is_none() {
                    "; the doctor sent the URL's own origin: pass --origin with the page's origin to check that one"
                } else {
                    ""
                }
            ),
            "TOKEN_MISSING" if self.raw_token.is_none() => "no token was sent: pass --token (or - to read it from stdin) or --username/--password".into(),
            "TOKEN_MISSING" => "the token was sent in the auth payload but did not arrive: a proxy or the server's auth.token_sources drops it".into(),
            "CONNECTION_LIMIT" | "RATE_LIMITED" => "a [limits] setting refused the connection: see the message".into(),
            "AUTH_UNAVAILABLE" => "the server cannot reach its database (fail closed): see the health step".into(),
            _ if !token_code => "see the message".into(),
            _ => String::new(),
        };
        if !token_code {
            return (detail, hint);
        }
        let (Some(raw), Some(t)) = (self.raw_token.clone(), self.token.as_mut()) else {
            return (detail, hint);
        };
        detail.push_str(&format!(" Token: {}.", t.summary()));
        let url = self.target.http("/auth/tokens/inspect");
        t.ask_server(&self.http, &url, &raw, self.args.api_key.as_deref())
            .await;
        let hint = match (t.diagnosis_text(), &t.server_diagnosis_note) {
            (Some(d), _) => d,
            (None, Some(note)) => format!("{}; {note}", local_hint(code, t)),
            (None, None) => local_hint(code, t),
        };
        (detail, hint)
    }

    /// One ping round (the server pings every pingInterval), and with `--wait` the socket held
    /// that long: a proxy that cuts quiet connections shows here.
    pub(super) async fn heartbeat(&mut self, ws: &mut Ws, open: &Open) {
        let started = Instant::now();
        let interval = Duration::from_millis(open.ping_interval_ms);
        let cycle = Duration::from_millis(open.ping_interval_ms + open.ping_timeout_ms);
        let hold = Duration::from_secs(self.args.wait);
        let hold_until = started + hold;
        let mut rounds = self.pings;
        loop {
            if rounds >= 1 && Instant::now() >= hold_until {
                let held = if self.args.wait > 0 {
                    format!(
                        "; held the socket {}s with {rounds} ping round(s), no cut",
                        self.args.wait
                    )
                } else {
                    String::new()
                };
                self.push(Step::ok(
                    HEARTBEAT,
                    format!(
                        "server ping answered with pong (pingInterval {} ms){held}",
                        open.ping_interval_ms
                    ),
                ));
                return;
            }
            // Before the first ping: one whole cycle (and some slack); after it, until the hold ends.
            let until = if rounds == 0 {
                started + cycle + Duration::from_secs(5)
            } else {
                hold_until
            };
            match recv(ws, until).await {
                Recv::Text(t) if t == "2" => {
                    rounds += 1;
                    if ws.send(Message::text("3")).await.is_err() {
                        continue;
                    }
                }
                Recv::Text(t) if t == "1" || t.starts_with("41") => {
                    self.push(Step::fail(
                        HEARTBEAT,
                        format!(
                            "the server closed the session after {:.1}s",
                            started.elapsed().as_secs_f64()
                        ),
                        "see the server's log: it disconnected this socket",
                    ));
                    return;
                }
                Recv::Text(_) => {}
                Recv::Timeout if rounds >= 1 => {}
                Recv::Timeout => {
                    self.push(Step::fail(HEARTBEAT, format!("no ping from the server within {}s (pingInterval {} ms)", until.duration_since(started).as_secs(), open.ping_interval_ms), "something between here and im-server holds the WebSocket frames back (a buffering proxy), or the server is overloaded"));
                    return;
                }
                Recv::Closed(why) => {
                    let secs = started.elapsed().as_secs_f64();
                    let sum = cycle.as_secs();
                    let nginx = (sum + 15).max(60);
                    let hint = if rounds == 0 && started.elapsed() < interval {
                        format!(
                            "something between here and im-server cuts connections that are quiet for about {secs:.1}s, shorter than pingInterval + pingTimeout ({sum}s), so every idle client is dropped and reconnects: raise the proxy's read timeout above {sum}s (nginx: proxy_read_timeout {nginx}s; proxy_send_timeout {nginx}s; a cloud load balancer: its idle timeout), or lower socketio.ping_interval_ms below it"
                        )
                    } else {
                        format!(
                            "the connection was cut after {secs:.0}s although pings flowed: a load balancer's maximum connection age, or an idle timeout that counts one direction only; raise it above pingInterval + pingTimeout ({sum}s) (nginx: proxy_read_timeout {nginx}s;)"
                        )
                    };
                    self.push(Step::fail(
                        HEARTBEAT,
                        format!(
                            "the connection was cut after {secs:.1}s ({why}), {}",
                            if rounds == 0 {
                                "before the server's first ping".to_string()
                            } else {
                                format!("after {rounds} ping round(s)")
                            }
                        ),
                        hint,
                    ));
                    return;
                }
            }
        }
    }
}
