//! The HTTP half of the walk: `tcp`, `tls`, `health`, `transport`, `polling`, `cors`, and the
//! credentials the socket steps need.

use super::*;

impl Walk<'_> {
    pub(super) async fn tcp(&mut self) -> Option<Vec<std::net::SocketAddr>> {
        let t = self.target;
        let timeout = Duration::from_secs(self.args.timeout.max(1));
        let addrs = match tokio::time::timeout(
            timeout,
            tokio::net::lookup_host((t.host.as_str(), t.port)),
        )
        .await
        {
            Ok(Ok(a)) => a.collect::<Vec<_>>(),
            Ok(Err(e)) => {
                self.push(Step::fail(
                    TCP,
                    format!("cannot resolve {}: {e}", t.host),
                    "the host name does not resolve from here: check the spelling in --url and DNS (inside a container, the service name of the compose file)",
                ));
                return None;
            }
            Err(_) => {
                self.push(Step::fail(
                    TCP,
                    format!(
                        "resolving {} took longer than {}s",
                        t.host,
                        timeout.as_secs()
                    ),
                    "DNS does not answer: check /etc/resolv.conf or use an IP address",
                ));
                return None;
            }
        };
        // Every address the name resolves to, as a browser would; the first refusal decides
        // the hint only when no address answers.
        let mut refused = vec![];
        let mut other = None;
        for addr in &addrs {
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(_)) => {
                    self.push(Step::ok(TCP, format!("{addr} accepts TCP connections")));
                    return Some(addrs);
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    refused.push(addr.to_string())
                }
                Ok(Err(e)) => other = Some(format!("connecting to {addr}: {e}")),
                Err(_) => {
                    other = Some(format!(
                        "no answer from {addr} within {}s",
                        timeout.as_secs()
                    ))
                }
            }
        }
        let step = match other {
            None => {
                let on = refused.join(", ");
                Step::fail(
                    TCP,
                    format!("connection to {on} refused"),
                    format!(
                        "nothing listens on {on}: start im-server (`im-server serve`; it listens on server.port / PORT, 3000 by default), or fix the port in --url; behind a proxy, check its `listen` and that it runs; in a container, publish the port"
                    ),
                )
            }
            Some(what) => Step::fail(
                TCP,
                what,
                "packets are dropped on the way (a firewall, a security group, the wrong host): check that the port is open from where the clients are",
            ),
        };
        self.push(step);
        None
    }

    pub(super) async fn tls(&mut self, link: &Link) -> bool {
        if !self.target.tls {
            return self.push(Step::skip(TLS, "plain http: no TLS to check"));
        }
        match link.verify_tls().await {
            Ok(what) => self.push(Step::ok(
                TLS,
                format!("{what}; certificate valid for {}", self.target.host),
            )),
            Err(OpenError::Tcp(e)) => self.push(Step::fail(
                TLS,
                format!("reconnecting for TLS: {e}"),
                "the server stopped accepting connections between two steps",
            )),
            Err(OpenError::Tls(e)) => {
                let text = e.to_string();
                let hint = if text.contains("UnknownIssuer")
                    || text.contains("self-signed")
                    || text.contains("BadSignature")
                {
                    format!(
                        "the certificate is not signed by a CA this client trusts (self-signed, or the server does not send its intermediate certificates): browsers refuse it too. Serve a certificate from a public CA with its full chain (nginx: ssl_certificate fullchain.pem), or pass --ca-cert FILE for a private CA{}",
                        if self.args.insecure {
                            "; --insecure: going on without verifying"
                        } else {
                            "; --insecure checks the rest without verifying"
                        }
                    )
                } else if text.contains("NotValidForName") {
                    format!(
                        "the certificate is for another name than {}: serve one that lists it (subjectAltName), or use the name it is for in --url",
                        self.target.host
                    )
                } else if text.contains("Expired") {
                    "the certificate has expired: renew it (certbot renew) and reload the proxy"
                        .to_string()
                } else if text.contains("InvalidContentType")
                    || text.contains("corrupt message")
                    || text.contains("no TLS handshake")
                {
                    "this port does not speak TLS: use http:// in --url, or point https at the TLS listener (443)".to_string()
                } else {
                    "the TLS handshake failed: check the certificate and the proxy's ssl_protocols"
                        .to_string()
                };
                self.push(Step::fail(
                    TLS,
                    format!("TLS handshake with {}: {text}", self.target.host),
                    hint,
                ))
            }
        }
    }

    pub(super) async fn health(&mut self) {
        let url = self.target.http("/health");
        let req = self.http.get(&url);
        let hint = "the server accepted TCP but did not answer HTTP: is this port im-server (or its proxy)?";
        let Some(resp) = self.send(HEALTH, "GET /health", req, hint).await else {
            return;
        };
        let status = resp.status().as_u16();
        let location = header(&resp, "location");
        let text = resp.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let step = match status {
            200 if body["status"] == "ok" => {
                let mut detail = format!(
                    "status ok, version {}, node {}, database {}, redis {}, {} connection(s)",
                    str_of(&body["version"]),
                    str_of(&body["node_id"]),
                    str_of(&body["database"]),
                    str_of(&body["redis"]),
                    body["connections"]
                );
                if let Some(n) = body["nodes"].as_array() {
                    detail.push_str(&format!(", {} node(s) in the cluster", n.len()));
                }
                if body["config_drift"] == true {
                    Step::fail(
                        HEALTH,
                        detail,
                        "config_drift: the nodes disagree on the JWT secret, algorithms, issuer or audience, so a token accepted by one node is refused by another; compare `im-server config --fingerprint` on each and give them the same environment",
                    )
                } else {
                    Step::ok(HEALTH, detail)
                }
            }
            503 if body.is_object() => Step::fail(
                HEALTH,
                format!("503, failing: {}", body["failing"]),
                "im-server runs but a backing service is down (logins and handshakes get AUTH_UNAVAILABLE until it is back): check database.url / redis.url from the server's host and the server's log",
            ),
            301 | 302 | 307 | 308 => Step::fail(
                HEALTH,
                format!(
                    "{status} redirect to {}",
                    location.as_deref().unwrap_or("?")
                ),
                "the URL redirects (http → https, or a missing prefix): give the app the final URL; Socket.IO clients do not follow redirects on the WebSocket",
            ),
            502..=504 => Step::fail(
                HEALTH,
                format!("{status} from the proxy: {}", eio::preview(&text)),
                "the proxy answers but cannot reach im-server: the upstream address/port in the proxy config is wrong, or im-server is not running there",
            ),
            404 => Step::fail(
                HEALTH,
                format!("404 for GET /health: {}", eio::preview(&text)),
                "this URL does not lead to im-server's HTTP routes: the proxy forwards only some paths (im-server serves /health, /auth/*, /debug/transport and /socket.io/ on one port), or --url names another service",
            ),
            _ => Step::fail(
                HEALTH,
                format!("{status}: {}", eio::preview(&text)),
                "not im-server's /health answer: check that --url reaches im-server",
            ),
        };
        self.push(step);
    }

    /// `GET /debug/transport` twice: as a plain request (its hints are this step's verdict),
    /// and with a browser's WebSocket upgrade headers, to learn whether they survive the way
    /// in. That second answer only informs the `websocket` step: many proxies pass `Upgrade`
    /// for the Socket.IO path alone, so a missing one here is not a failure by itself.
    pub(super) async fn transport(&mut self) {
        let hint = "the server did not answer this HTTP request";
        let req = self.http.get(self.target.http("/debug/transport"));
        let Some(resp) = self
            .send(TRANSPORT, "GET /debug/transport", req, hint)
            .await
        else {
            return;
        };
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let d = &body["data"];
        if status != 200 || !d.is_object() {
            self.push(Step::skip(TRANSPORT, format!("GET /debug/transport answered {status}: an older im-server, or a proxy that forwards only {}", self.target.path)));
            return;
        }
        let upgrade = self
            .http
            .get(self.target.http("/debug/transport?expect=websocket"))
            .header("Origin", &self.target.origin)
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "ZG9jdG9yLXByb2JlLWtleQ==");
        let seen = match upgrade.send().await {
            Ok(r) => r.json::<Value>().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let arrived = seen["data"]["websocket"]["upgrade_arrived"].as_bool();
        self.upgrade_arrived = arrived;
        let detail = format!(
            "the server saw: scheme {}, host {}, client address {}, Origin {} {}; a request with WebSocket upgrade headers: Upgrade {}",
            str_of(&d["scheme"]),
            str_of(&d["host"]),
            str_of(&d["client_address"]),
            str_of(&d["origin"]["value"]),
            if d["origin"]["allowed"] == true {
                "allowed"
            } else {
                "NOT allowed"
            },
            match arrived {
                Some(true) => "arrived",
                Some(false) => "did NOT arrive (see the websocket step)",
                None => "not checked",
            },
        );
        let hints: Vec<&str> = d["hints"]
            .as_array()
            .map(|h| h.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if hints.is_empty() {
            self.push(Step::ok(TRANSPORT, detail));
        } else {
            self.push(Step::fail(TRANSPORT, detail, hints.join(" — ")));
        }
    }

    /// The Engine.IO handshake over long-polling, then a few more requests on that session.
    pub(super) async fn polling(&mut self) -> Option<PollingSeen> {
        let path = &self.target.path;
        let url = self
            .target
            .eio(&format!("transport=polling&t=doctor{}", std::process::id()));
        let what = format!("GET {path}?EIO=4&transport=polling");
        let req = self.http.get(&url);
        let hint = "the server did not answer the handshake request";
        let resp = self.send(POLLING, &what, req, hint).await?;
        let status = resp.status().as_u16();
        let acao = header(&resp, "access-control-allow-origin");
        let text = resp.text().await.unwrap_or_default();
        let first = eio::polling_packets(&text)
            .first()
            .copied()
            .unwrap_or("")
            .to_string();
        let what = format!("GET {path}?EIO=4&transport=polling answered {status}");
        let open = match (status, Open::parse(&first)) {
            (200, Ok(open)) => open,
            (200, Err(e)) => {
                self.push(Step::fail(POLLING, format!("{what}, but {e}"), format!("something other than im-server answers {path} (a single-page app's catch-all route, another service): route {path} to im-server, or set --path to the client's `path` option")));
                return None;
            }
            (400, _) if engine_io_error(&text) => {
                self.push(Step::fail(POLLING, format!("{what}: {}", eio::preview(&text)), "the server refused the Engine.IO handshake itself: check the client's protocol version (socket.io-client 2.x needs EIO=3) and the query the proxy passes on"));
                return None;
            }
            (400..=499, _) => {
                self.push(Step::fail(POLLING, format!("{what}: {}", eio::preview(&text)), format!("no Engine.IO server at {path}: im-server serves /socket.io/ (io(\"https://HOST/im\") connects to path /socket.io/ with namespace /im). The client's `path` option, or a proxy location that adds or strips a prefix, sends it elsewhere")));
                return None;
            }
            (502..=504, _) => {
                self.push(Step::fail(POLLING, format!("{what}: {}", eio::preview(&text)), format!("the proxy cannot reach im-server for {path}: check the upstream of that location")));
                return None;
            }
            _ => {
                self.push(Step::fail(
                    POLLING,
                    format!("{what}: {}", eio::preview(&text)),
                    "not an Engine.IO answer: check that --url reaches im-server",
                ));
                return None;
            }
        };
        let sid: String = form_urlencoded::byte_serialize(open.sid.as_bytes()).collect();
        let session = self.target.eio(&format!("transport=polling&sid={sid}"));
        for i in 1..=STICKY_PROBES {
            let r = self
                .http
                .post(&session)
                .header("Origin", &self.target.origin)
                .header("Content-Type", "text/plain;charset=UTF-8")
                .body("3")
                .send()
                .await;
            let (st, body) = match r {
                Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                Err(e) => (0, error_chain(&e)),
            };
            if st != 200 {
                let hint = if body.contains("Session ID unknown") {
                    "more than one server answers this URL and the balancer does not keep a client on one of them: long-polling needs sticky sessions (nginx upstream: ip_hash; or hash $cookie_io / a sticky cookie; a cloud balancer: session affinity), or clients with transports: [\"websocket\"] only".to_string()
                } else {
                    "the session did not survive its next request: check the proxy's timeouts and that every node runs the same version".to_string()
                };
                self.push(Step::fail(POLLING, format!("the handshake worked ({}), but request {} of {} on the same session answered {st}: {}", open.describe(), i + 1, STICKY_PROBES + 1, eio::preview(&body)), hint));
                return Some(PollingSeen { acao });
            }
        }
        let _ = self
            .http
            .post(&session)
            .header("Content-Type", "text/plain;charset=UTF-8")
            .body("1")
            .send()
            .await;
        self.push(Step::ok(POLLING, format!("Engine.IO open over HTTP long-polling ({}); {STICKY_PROBES} more requests on the session answered 200", open.describe())));
        Some(PollingSeen { acao })
    }

    pub(super) async fn cors(&mut self, polling: Option<&PollingSeen>) {
        let origin = &self.target.origin;
        if self.target.same_origin {
            self.push(Step::skip(CORS, format!("the page is on the server's own origin ({origin}): no CORS; pass --origin for a page elsewhere")));
            return;
        }
        let Some(polling) = polling else {
            self.push(Step::skip(CORS, "skipped: polling failed"));
            return;
        };
        let url = self.target.eio("transport=polling&t=doctor-preflight");
        let req = self
            .http
            .request(reqwest::Method::OPTIONS, &url)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization");
        let what = format!("preflight OPTIONS {}", self.target.path);
        let Some(pre) = self
            .send(CORS, &what, req, "the preflight got no answer")
            .await
        else {
            return;
        };
        let (pre_status, pre_acao) = (
            pre.status().as_u16(),
            header(&pre, "access-control-allow-origin"),
        );
        let allows = |v: &Option<String>| v.as_deref().is_some_and(|v| v == origin || v == "*");
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "absent".into());
        let detail = format!(
            "Origin {origin}: preflight {pre_status} with Access-Control-Allow-Origin {}; polling GET with Access-Control-Allow-Origin {}",
            show(&pre_acao),
            show(&polling.acao)
        );
        if allows(&pre_acao) && allows(&polling.acao) && (200..300).contains(&pre_status) {
            self.push(Step::ok(CORS, detail));
        } else {
            self.push(Step::fail(CORS, detail, format!(
                "{origin} is not in cors.origins, so browsers on that page block im-server's answers (and /im refuses its socket with ORIGIN_DENIED): add it, cors.origins = [\"{origin}\"] in im-server.toml, or IM_CORS__ORIGINS / FRONTEND_URL (a comma list). If it is listed, a proxy answers OPTIONS itself or strips the Access-Control-* headers"
            )));
        }
    }

    /// The token to connect with: `--token`, or a login through the same URL. A failed login
    /// is the `auth` step's failure.
    pub(super) async fn credentials(&mut self) -> Result<(), Step> {
        if let Some(t) = &self.args.token {
            self.token = Some(TokenReport::new(t, "--token".into()));
            self.raw_token = Some(t.clone());
            return Ok(());
        }
        let (Some(user), Some(pass)) = (&self.args.username, &self.args.password) else {
            return Ok(());
        };
        let url = self.target.http("/auth/login");
        let sent = self
            .http
            .post(&url)
            .header("Origin", &self.target.origin)
            .json(&json!({"username": user, "password": pass}))
            .send()
            .await;
        let (status, body) = match sent {
            Ok(r) => (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            ),
            Err(e) => {
                return Err(Step::fail(
                    AUTH,
                    format!("POST /auth/login as {user}: {}", error_chain(&e)),
                    "the login request got no answer",
                ));
            }
        };
        match body["data"]["token"].as_str() {
            Some(t) if status == 200 => {
                self.token = Some(TokenReport::new(t, format!("login as {user}")));
                self.raw_token = Some(t.to_string());
                Ok(())
            }
            _ => {
                let code = body["code"].as_str().unwrap_or("");
                let hint = match code {
                    "INVALID_CREDENTIALS" => format!("wrong username or password for {user} (the password itself is never shown)"),
                    "RATE_LIMITED" => "too many failed logins for this user or address: wait for auth.login_failure_window_secs".into(),
                    "FORBIDDEN" => "this server does not issue tokens (an [external] backend does): pass --token with one your backend issued".into(),
                    _ => "the login was refused: see the message".into(),
                };
                Err(Step::fail(
                    AUTH,
                    format!(
                        "POST /auth/login as {user}: {status} {code}: {}",
                        str_of(&body["message"])
                    ),
                    hint,
                ))
            }
        }
    }
}
