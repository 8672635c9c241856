//! The steps, in the order a browser meets them (contract §12): `tcp` → `tls` → `health` →
//! `transport` → `polling` → `cors` → `websocket` → `auth` → `connected` → `heartbeat`.
//! A step that cannot run because an earlier one failed is `skip`, saying which; `health`,
//! `transport` and `cors` failing does not stop the rest (the socket may still work, and what
//! it does next tells the user more).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

use super::eio::{self, Open, Sio};
use super::link::{self, Link, OpenError, Stream};
use super::target::Target;
use super::token::TokenReport;
use super::{DoctorArgs, Report, Status, Step};

const TCP: &str = "tcp";
const TLS: &str = "tls";
const HEALTH: &str = "health";
const TRANSPORT: &str = "transport";
const POLLING: &str = "polling";
const CORS: &str = "cors";
const WEBSOCKET: &str = "websocket";
const AUTH: &str = "auth";
const CONNECTED: &str = "connected";
const HEARTBEAT: &str = "heartbeat";
const ALL: [&str; 10] = [
    TCP, TLS, HEALTH, TRANSPORT, POLLING, CORS, WEBSOCKET, AUTH, CONNECTED, HEARTBEAT,
];

/// Follow-up requests on one polling session: enough to hit a second node behind a
/// round-robin balancer.
const STICKY_PROBES: usize = 3;

type Ws = WebSocketStream<Stream>;

struct Walk<'a> {
    args: &'a DoctorArgs,
    target: &'a Target,
    http: reqwest::Client,
    steps: Vec<Step>,
    /// What `/debug/transport` said about this request's `Upgrade` header.
    upgrade_arrived: Option<bool>,
    token: Option<TokenReport>,
    raw_token: Option<String>,
    /// When a server ping was answered while waiting for something else.
    pings: u32,
    live: Option<bool>,
}

/// Walk every step; with `live` (`Some(colour)`), print each step's lines as it ends.
pub async fn walk(
    args: &DoctorArgs,
    target: &Target,
    live: Option<bool>,
) -> Result<Report, String> {
    let roots = link::load_ca(args)?;
    let http = link::http_client(args, &roots)?;
    let mut w = Walk {
        args,
        target,
        http,
        steps: vec![],
        upgrade_arrived: None,
        token: None,
        raw_token: None,
        pings: 0,
        live,
    };
    w.run(&roots).await;
    let ok = w.steps.iter().all(|s| s.status != Status::Fail);
    Ok(Report {
        url: target.url.clone(),
        origin: target.origin.clone(),
        namespace: target.namespace.clone(),
        steps: w.steps,
        token: w.token,
        ok,
    })
}

impl Walk<'_> {
    fn push(&mut self, step: Step) -> bool {
        let ok = step.status != Status::Fail;
        if let Some(colour) = self.live {
            use std::io::Write as _;
            print!("{}", super::output::step(&step, colour));
            let _ = std::io::stdout().flush();
        }
        self.steps.push(step);
        ok
    }

    /// Every step not reported yet is skipped because of `failed`.
    fn skip_rest(&mut self, failed: &str, extra: &str) {
        for name in ALL {
            if !self.steps.iter().any(|s| s.name == name) {
                self.push(Step::skip(name, format!("skipped: {failed} failed{extra}")));
            }
        }
    }

    async fn run(&mut self, roots: &[rustls::pki_types::CertificateDer<'static>]) {
        let Some(addrs) = self.tcp().await else {
            return self.skip_rest(TCP, "");
        };
        let link = match Link::new(self.target, addrs, self.args, roots) {
            Ok(l) => l,
            Err(e) => {
                self.push(Step::fail(TLS, e, "fix --url"));
                return self.skip_rest(TLS, "");
            }
        };
        if !self.tls(&link).await && !self.args.insecure {
            return self.skip_rest(TLS, " (--insecure checks the rest without verifying)");
        }
        self.health().await;
        self.transport().await;
        let polling = self.polling().await;
        self.cors(polling.as_ref()).await;
        let login = self.credentials().await;
        let Some((mut ws, open)) = self.websocket(&link).await else {
            return self.skip_rest(WEBSOCKET, "");
        };
        let connected = match login {
            Err(step) => {
                self.push(step);
                false
            }
            Ok(()) => self.auth(&mut ws).await && self.connected(&mut ws).await,
        };
        if connected {
            self.heartbeat(&mut ws, &open).await;
        } else {
            let failed = self
                .steps
                .iter()
                .find(|s| s.status == Status::Fail && (s.name == AUTH || s.name == CONNECTED))
                .map(|s| s.name)
                .unwrap_or(AUTH);
            self.skip_rest(failed, "");
        }
        let _ = ws
            .send(Message::text(format!(
                "4{}",
                eio::disconnect(&self.target.namespace)
            )))
            .await;
        let _ = ws.close(None).await;
    }

    /// Send `req` with the page's `Origin`, as the browser would; no answer fails `step`.
    async fn send(
        &mut self,
        step: &'static str,
        what: &str,
        req: reqwest::RequestBuilder,
        hint: &str,
    ) -> Option<reqwest::Response> {
        match req.header("Origin", &self.target.origin).send().await {
            Ok(r) => Some(r),
            Err(e) => {
                self.push(Step::fail(
                    step,
                    format!("{what}: {}", error_chain(&e)),
                    hint,
                ));
                None
            }
        }
    }

    async fn tcp(&mut self) -> Option<Vec<std::net::SocketAddr>> {
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

    async fn tls(&mut self, link: &Link) -> bool {
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

    async fn health(&mut self) {
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
    async fn transport(&mut self) {
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
    async fn polling(&mut self) -> Option<PollingSeen> {
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

    async fn cors(&mut self, polling: Option<&PollingSeen>) {
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
    async fn credentials(&mut self) -> Result<(), Step> {
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

    async fn websocket(&mut self, link: &Link) -> Option<(Ws, Open)> {
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
    async fn next_sio(&mut self, ws: &mut Ws, until: Instant) -> Result<Sio, String> {
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

    async fn auth(&mut self, ws: &mut Ws) -> bool {
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

    async fn connected(&mut self, ws: &mut Ws) -> bool {
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
    async fn refusal(&mut self, code: &str, message: &str, how: &str) -> (String, String) {
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
    async fn heartbeat(&mut self, ws: &mut Ws, open: &Open) {
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

/// What the polling step saw that the cors step checks.
struct PollingSeen {
    acao: Option<String>,
}

fn local_hint(code: &str, t: &TokenReport) -> String {
    match code {
        "TOKEN_EXPIRED" => format!("the token has expired ({}): log in again, or refresh it before exp (auth:refresh)", t.expiry.as_deref().unwrap_or("exp unknown")),
        "TOKEN_INVALID_SIGNATURE" => "the token is not signed with this server's secret (another service's secret, or its base64 form): compare the issuer's key fingerprint with `im-server config`".into(),
        "TOKEN_REVOKED" => "the token was revoked (logout or /api/revoke): log in again".into(),
        "TOKEN_NOT_FOUND" => "the token is valid but this server's database has no row for it (issued by another environment, or the database was reset): log in again".into(),
        "TOKEN_MALFORMED" => "the token is damaged (quotes, URL-encoding, `Bearer` twice, truncated): send it exactly as login returned it".into(),
        _ => "the token was refused".into(),
    }
}

enum Recv {
    Text(String),
    Closed(String),
    Timeout,
}

async fn recv(ws: &mut Ws, until: Instant) -> Recv {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Err(_) => return Recv::Timeout,
            Ok(None) => return Recv::Closed(CUT.into()),
            Ok(Some(Err(e))) => return Recv::Closed(closed_by(&e)),
            Ok(Some(Ok(Message::Text(t)))) => return Recv::Text(t.to_string()),
            Ok(Some(Ok(Message::Close(f)))) => {
                return Recv::Closed(match f {
                    Some(f) => format!("close frame {}", u16::from(f.code)),
                    None => "close frame".into(),
                });
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

const CUT: &str = "closed by the peer without a close frame";

/// A dropped connection in words that do not depend on who noticed first (EOF or RST).
fn closed_by(e: &tungstenite::Error) -> String {
    use tungstenite::error::ProtocolError;
    match e {
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)
        | tungstenite::Error::ConnectionClosed
        | tungstenite::Error::AlreadyClosed => CUT.into(),
        tungstenite::Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            CUT.into()
        }
        other => other.to_string(),
    }
}

/// Engine.IO's own refusals are `{"code": <digits>, "message"}` (im-server's are words).
fn engine_io_error(body: &str) -> bool {
    serde_json::from_str::<Value>(body).is_ok_and(|v| match &v["code"] {
        Value::Number(_) => true,
        Value::String(c) => !c.is_empty() && c.chars().all(|ch| ch.is_ascii_digit()),
        _ => false,
    })
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// reqwest's error with its sources ("error sending request: connection refused").
fn error_chain(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::engine_io_error;

    #[test]
    fn engine_io_refusals_are_told_from_a_wrong_path_answer() {
        assert!(engine_io_error(
            r#"{"code":"1","message":"Session ID unknown"}"#
        ));
        assert!(engine_io_error(r#"{"code":3,"message":"Bad request"}"#));
        // im-server's own answer for a route it does not have: the path is wrong.
        assert!(!engine_io_error(
            r#"{"success":false,"code":"BAD_REQUEST","message":"no route for GET /api/socket.io/"}"#
        ));
        assert!(!engine_io_error("<html>404</html>"));
    }
}
