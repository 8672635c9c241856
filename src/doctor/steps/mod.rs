//! The steps, in the order a browser meets them (contract §12): `tcp` → `tls` → `health` →
//! `transport` → `polling` → `cors` → `websocket` → `auth` → `connected` → `heartbeat`.
//! A step that cannot run because an earlier one failed is `skip`, saying which; `health`,
//! `transport` and `cors` failing does not stop the rest (the socket may still work, and what
//! it does next tells the user more).

mod http;
mod socket;

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
