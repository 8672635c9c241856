//! `spawn_app()` and friends: a real im-server on 127.0.0.1:0 with a fresh SQLite file (or a
//! fresh MySQL/PostgreSQL database), driven through real sockets.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use im_server::config::{Secret, Settings};
use im_server::realtime::events::Events;
use im_server::startup::Application;
use im_server::state::AppState;
use loadgen::sio::{Client, ConnectOptions, Incoming};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};

pub const SECRET: &str = "integration-test-secret-0123456789abcdef";
pub const WAIT: Duration = Duration::from_secs(5);

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub http: reqwest::Client,
    pub state: AppState,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Settings for a test: loopback, port 0, a fresh SQLite file, a fixed secret, quiet limits.
pub fn test_settings(dir: &std::path::Path) -> Settings {
    let mut s = Settings::default();
    s.server.host = "127.0.0.1".into();
    s.server.port = 0;
    s.server.shutdown_timeout_secs = 5;
    s.database.url = format!("sqlite://{}?mode=rwc", dir.join("im.db").display());
    s.auth.jwt_secret = Some(Secret::new(SECRET));
    s
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = test_settings(dir.path());
    configure(&mut settings);
    spawn_settings(settings, dir).await
}

pub async fn spawn_settings(settings: Settings, dir: tempfile::TempDir) -> TestApp {
    spawn_with_events(settings, dir, Events::default()).await
}

/// A server with `events` besides the built-in ones (what an embedding crate does).
pub async fn spawn_with_events(
    settings: Settings,
    dir: tempfile::TempDir,
    events: Events,
) -> TestApp {
    init_logs();
    let app = Application::build_with_events(settings, events)
        .await
        .expect("application builds");
    let addr = app.local_addr();
    let state = app.state().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        state,
        dir,
        stop: Some(stop),
        task: Some(task),
    }
}

fn init_logs() {
    let level = std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(level)
        .with_test_writer()
        .try_init();
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Stop the server as SIGTERM would, and wait for it.
    pub async fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
    }

    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        user_type: &str,
    ) -> entity::users::Model {
        im_server::users::create(
            self.state.db(),
            im_server::users::NewUser {
                username: username.into(),
                password: password.into(),
                user_type: user_type.into(),
                display_name: None,
                email: None,
            },
        )
        .await
        .expect("create user")
    }

    pub async fn post(&self, path: &str, body: Value, bearer: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).json(&body);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Log in and return the token (panics with the server's answer otherwise).
    pub async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .post(
                "/auth/login",
                json!({"username": username, "password": password}),
                None,
            )
            .await;
        assert_eq!(status, 200, "login {username}: {body}");
        body["data"]["token"].as_str().unwrap().to_string()
    }

    pub fn sio_options(&self) -> ConnectOptions {
        ConnectOptions {
            base_url: self.base.clone(),
            ..Default::default()
        }
    }

    /// Options carrying `token` in the handshake `auth` payload (anything `json!` accepts).
    pub fn with_token<T: serde::Serialize + ?Sized>(&self, token: &T) -> ConnectOptions {
        ConnectOptions {
            auth: Some(json!({ "token": token })),
            ..self.sio_options()
        }
    }

    /// Open a `/im` socket with the token in the handshake `auth` payload.
    pub async fn connect(&self, token: &str) -> Client {
        self.connect_with(self.with_token(token)).await
    }

    pub async fn connect_with(&self, opts: ConnectOptions) -> Client {
        Client::connect(opts)
            .await
            .expect("engine.io connection opens")
    }

    /// Connect and wait for `connected`; returns the client and the `connected` payload.
    pub async fn connect_ok(&self, token: &str) -> (Client, Value) {
        let mut c = self.connect(token).await;
        let args = c
            .expect_event("connected", WAIT)
            .await
            .expect("connected event");
        (c, args[0].clone())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Legacy-mode rejection as the client sees it: `error {code}` then a server disconnect.
/// Returns the `error` payload; fails if anything else (e.g. `connected`) arrives.
pub async fn expect_rejected(c: &mut Client) -> Value {
    let mut seen = vec![];
    let mut error = None;
    while let Some(item) = c.next(WAIT).await {
        match &item {
            Incoming::Event { name, args } if name == "error" => error = Some(args[0].clone()),
            Incoming::Disconnected | Incoming::Closed => {
                return error
                    .unwrap_or_else(|| panic!("disconnected without an error event: {seen:?}"));
            }
            Incoming::Connected { .. } => {}
            other => panic!("unexpected {other} before the rejection; seen {seen:?}"),
        }
        seen.push(item);
    }
    panic!("no rejection within {WAIT:?}; seen {seen:?}");
}

/// The code a handshake with this token gets ("OK" when `connected` arrives).
pub async fn handshake_code(app: &TestApp, opts: ConnectOptions) -> String {
    verdict(&mut app.connect_with(opts).await).await
}

/// The verdict of the handshake on an opened client: "OK" for `connected`, else the code of
/// its `error` event (legacy) or `connect_error` (strict).
pub async fn verdict(c: &mut Client) -> String {
    loop {
        match c.next(WAIT).await {
            Some(Incoming::Event { name, .. }) if name == "connected" => return "OK".into(),
            Some(Incoming::Event { name, args }) if name == "error" => {
                return args[0]["code"].as_str().unwrap().to_string();
            }
            Some(Incoming::ConnectError(v)) => return v["message"].as_str().unwrap().to_string(),
            Some(Incoming::Connected { .. }) => continue,
            other => panic!("handshake ended without a verdict: {other:?}"),
        }
    }
}

/// Run the im-server binary in `dir` with only `env` set; success and stdout+stderr.
pub fn run_cli(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_im-server"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A TCP forwarder in front of a database or Redis that a test can cut and restore: the
/// server really loses its connections, as when the database host goes away.
pub struct TcpGate {
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    cut: Arc<Notify>,
}

impl TcpGate {
    pub async fn start(target: SocketAddr) -> TcpGate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(Notify::new());
        let (o, c) = (open.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !o.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let c = c.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = c.notified() => {}
                    }
                });
            }
        });
        TcpGate { addr, open, cut }
    }

    /// Drop every live connection and refuse new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// A service the test script promises (IM_TEST_SERVICES): its URL, or a loud failure.
pub fn service_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: run the tests through scripts/test.sh, which starts redis, MariaDB \
             and PostgreSQL on loopback (IM_TEST_SERVICES={:?})",
            std::env::var("IM_TEST_SERVICES").unwrap_or_default()
        ),
    }
}

/// A fresh, empty database on a server URL (`mysql://…` or `postgres://…` without a db name).
pub async fn fresh_database(server_url: &str) -> String {
    use sea_orm::{ConnectionTrait, Database};
    let name = format!("im_t_{}", uuid::Uuid::new_v4().simple());
    let admin_url = if server_url.starts_with("postgres") {
        format!("{}/im", server_url.trim_end_matches('/'))
    } else {
        server_url.to_string()
    };
    let admin = Database::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("connect {admin_url}: {e}"));
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    admin.close().await.ok();
    format!("{}/{name}", server_url.trim_end_matches('/'))
}

pub fn host_port(url: &str) -> SocketAddr {
    let after = url.split("://").nth(1).unwrap();
    let hostport = after.rsplit('@').next().unwrap().split('/').next().unwrap();
    hostport
        .parse()
        .unwrap_or_else(|_| panic!("expected host:port in {url}"))
}

pub fn replace_host_port(url: &str, addr: SocketAddr) -> String {
    let old = host_port(url).to_string();
    url.replacen(&old, &addr.to_string(), 1)
}

/// A redis-server of the test's own (the workspace's one launcher, in crates/redis-driver).
pub use im_redis_driver::test_support::RedisServer;

/// A MariaDB server of the test's own that it may stop and start (fault tests).
mod mariadb;
pub use mariadb::MariaDbServer;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An im-server process (the real binary), for multi-node and crash tests.
pub struct NodeProcess {
    pub base: String,
    pub node_id: String,
    child: std::process::Child,
}

impl NodeProcess {
    pub async fn start(node_id: &str, env: &[(&str, &str)]) -> NodeProcess {
        use std::io::{BufRead, BufReader};
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_im-server"));
        cmd.arg("serve")
            .env_clear()
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("JWT_SECRET", SECRET)
            .env("IM_SERVER__NODE_ID", node_id)
            .env("IM_SERVER__API_KEY", "cluster-key")
            .env("IM_REDIS__LEASE_SECS", "3")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start im-server");
        let stdout = child.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0
                    || line.contains("listening on http://")
                {
                    break;
                }
            }
            std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
            line
        })
        .await
        .unwrap();
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("node {node_id} did not start: {line:?}"))
            .to_string();
        NodeProcess {
            base,
            node_id: node_id.into(),
            child,
        }
    }

    pub fn sio(&self, token: &str) -> ConnectOptions {
        ConnectOptions {
            base_url: self.base.clone(),
            auth: Some(json!({ "token": token })),
            ..Default::default()
        }
    }

    /// The process's resident set (`VmRSS` in /proc/<pid>/status), in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS")
    }

    /// A KiB field of /proc/<pid>/status (`VmRSS`, `RssAnon`, `RssFile`, ...).
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_else(|e| panic!("node {}: read /proc status: {e}", self.node_id));
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("node {}: no {field} in /proc status", self.node_id))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Plain HTTP against any base URL.
pub async fn http_json(
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
    bearer: Option<&str>,
    api_key: Option<&str>,
) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut req = client.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    if let Some(k) = api_key {
        req = req.header("X-Api-Key", k);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `im_handshakes_total{result, source}` as `/metrics` reports it now.
pub async fn handshakes(app: &TestApp, result: &str, source: &str) -> u64 {
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let want = format!("im_handshakes_total{{result=\"{result}\",source=\"{source}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&want))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// One raw HTTP/1.x request over TCP (hop-by-hop headers exactly as written); the response
/// head and body as text, read until complete, a 101, or the close (bounded wait).
pub async fn raw_http(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut out = vec![];
    let mut buf = [0u8; 4096];
    // Until the server closes or the answer is complete; a hang fails at the bound.
    let read = async {
        loop {
            let n = tcp.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&out);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head.lines().find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                });
                if len.is_some_and(|len| body.len() >= len) || head.starts_with("HTTP/1.1 101") {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("the server answers at once, never hangs");
    String::from_utf8_lossy(&out).into_owned()
}

/// Poll `check` until it returns true (bounded); panics with `what` otherwise.
pub async fn eventually<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out after {secs} s waiting for: {what}");
}
