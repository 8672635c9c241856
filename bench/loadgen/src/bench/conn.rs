//! Opening authenticated connections in bulk: connect → namespace CONNECT → `connected` event,
//! with failures classified by code, and bulk close.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{Semaphore, oneshot};

use crate::sio::{Client, ConnectOptions, Error, Incoming};

/// Called on the reader task for every item after the `connected` event (including the final
/// `Closed`), with the connection index. Must be short and non-blocking.
pub type OnItem = Arc<dyn Fn(usize, &Incoming) + Send + Sync>;

pub fn ignore_items() -> OnItem {
    Arc::new(|_, _| {})
}

/// An authenticated connection.
pub struct Conn {
    pub idx: usize,
    pub client: Client,
    /// From the start of the TCP connect to the arrival of `connected` on the reader task.
    pub latency: Duration,
    /// The `connected` event payload.
    pub info: Value,
}

/// A failure code for a connection-level error.
pub fn error_code(e: &Error) -> String {
    match e {
        Error::Io(io) => match io.raw_os_error() {
            Some(libc::ECONNREFUSED) => "ECONNREFUSED".into(),
            Some(libc::ECONNRESET) => "ECONNRESET".into(),
            Some(libc::EADDRNOTAVAIL) => "EADDRNOTAVAIL".into(),
            Some(libc::EADDRINUSE) => "EADDRINUSE".into(),
            Some(libc::EMFILE) | Some(libc::ENFILE) => "EMFILE".into(),
            Some(libc::ETIMEDOUT) => "ETIMEDOUT".into(),
            Some(libc::EPIPE) => "EPIPE".into(),
            _ => format!("IO_{:?}", io.kind()).to_uppercase(),
        },
        Error::Http { status, .. } => format!("HTTP_{status}"),
        Error::Timeout(_) => "CONNECT_TIMEOUT".into(),
        Error::Closed => "CLOSED".into(),
        Error::WebSocket(_) => "WS_ERROR".into(),
        Error::Protocol(_) => "PROTOCOL_ERROR".into(),
        Error::InvalidInput(_) => "INVALID_INPUT".into(),
        Error::Unexpected { .. } => "UNEXPECTED".into(),
    }
}

/// The code of a `connect_error` payload: `message` (strict mode puts the code there; it may
/// also be a JSON `{code,message}` string), else `data.code`.
pub fn connect_error_code(v: &Value) -> String {
    if let Some(code) = v
        .get("data")
        .and_then(|d| d.get("code"))
        .and_then(Value::as_str)
    {
        return code.to_owned();
    }
    let msg = v
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| v.as_str())
        .unwrap_or("CONNECT_ERROR");
    if let Ok(inner) = serde_json::from_str::<Value>(msg)
        && let Some(code) = inner.get("code").and_then(Value::as_str)
    {
        return code.to_owned();
    }
    msg.to_owned()
}

/// The code of an `error` event (`{code, message}`).
pub fn error_event_code(args: &[Value]) -> String {
    args.first()
        .and_then(|a| a.get("code"))
        .and_then(Value::as_str)
        .unwrap_or("ERROR_EVENT")
        .to_owned()
}

/// Connects one client and waits for `connected`.
pub async fn open(
    opts: ConnectOptions,
    idx: usize,
    wait: Duration,
    on_item: OnItem,
) -> Result<Conn, String> {
    type Outcome = Result<(Instant, Value), String>;
    let (tx, rx) = oneshot::channel::<Outcome>();
    let mut pending = Some(tx);
    let mut authed = false;
    let handler = move |it: Incoming| {
        if authed {
            on_item(idx, &it);
            return;
        }
        let Some(_) = pending.as_ref() else { return }; // failed handshake: ignore the rest
        let outcome = match it {
            Incoming::Event { name, mut args } if name == "connected" => {
                authed = true;
                Ok((
                    Instant::now(),
                    if args.is_empty() {
                        Value::Null
                    } else {
                        args.swap_remove(0)
                    },
                ))
            }
            Incoming::Event { name, args } if name == "error" => Err(error_event_code(&args)),
            Incoming::ConnectError(v) => Err(connect_error_code(&v)),
            Incoming::Disconnected => Err("DISCONNECTED".into()),
            Incoming::Closed => Err("CLOSED".into()),
            Incoming::Connected { .. } | Incoming::Event { .. } => return,
        };
        if let Some(tx) = pending.take() {
            let _ = tx.send(outcome);
        }
    };
    let t0 = Instant::now();
    let client = Client::connect_with_handler(opts, handler)
        .await
        .map_err(|e| error_code(&e))?;
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(Ok((at, info)))) => Ok(Conn {
            idx,
            client,
            latency: at.saturating_duration_since(t0),
            info,
        }),
        Ok(Ok(Err(code))) => Err(code),
        Ok(Err(_)) => Err("CLOSED".into()),
        Err(_) => Err("CONNECTED_TIMEOUT".into()),
    }
}

/// Result of [`open_many`].
pub struct Opened {
    pub conns: Vec<Conn>,
    pub failures: crate::bench::common::Codes,
    pub elapsed: Duration,
}

/// Opens `n` connections with at most `concurrency` handshakes in flight. `opts_for(i)` gives
/// the options (token, source address) of connection `i`.
pub async fn open_many(
    n: usize,
    concurrency: usize,
    wait: Duration,
    opts_for: impl Fn(usize) -> ConnectOptions,
    on_item: OnItem,
    on_result: impl Fn(usize, &Result<Conn, String>),
) -> Opened {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let opts = opts_for(i);
        let sem = sem.clone();
        let on_item = on_item.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore");
            (i, open(opts, i, wait, on_item).await)
        });
    }
    let mut conns = Vec::with_capacity(n);
    let mut failures = crate::bench::common::Codes::default();
    let mut done = 0usize;
    let mut last_report = Instant::now();
    while let Some(r) = set.join_next().await {
        done += 1;
        match r {
            Ok((i, res)) => {
                on_result(i, &res);
                match res {
                    Ok(c) => conns.push(c),
                    Err(code) => failures.add(code),
                }
            }
            Err(e) => failures.add(if e.is_panic() { "PANIC" } else { "CANCELLED" }),
        }
        if last_report.elapsed() > Duration::from_secs(2) {
            last_report = Instant::now();
            crate::progress!(
                "{done}/{n} handshakes done, {} ok, {} failed, {:.0}/s",
                conns.len(),
                failures.total(),
                done as f64 / t0.elapsed().as_secs_f64()
            );
        }
    }
    conns.sort_by_key(|c| c.idx);
    Opened {
        conns,
        failures,
        elapsed: t0.elapsed(),
    }
}

/// Closes every client (`41/im,` + WebSocket close), 256 at a time, within `limit` overall;
/// whatever is left is dropped (TCP close).
pub async fn close_all(clients: Vec<Client>, limit: Duration) {
    use futures_util::StreamExt;
    let n = clients.len();
    let t0 = Instant::now();
    let fut = futures_util::stream::iter(clients)
        .map(|c| async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), c.close()).await;
        })
        .buffer_unordered(256)
        .collect::<Vec<()>>();
    if tokio::time::timeout(limit, fut).await.is_err() {
        crate::progress!("closing {n} connections took over {limit:?}; dropped the rest");
    } else if n > 0 {
        crate::progress!(
            "closed {n} connections in {:.1}s",
            t0.elapsed().as_secs_f64()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn codes() {
        assert_eq!(
            connect_error_code(&json!({"message":"TOKEN_MISSING"})),
            "TOKEN_MISSING"
        );
        assert_eq!(
            connect_error_code(
                &json!({"message":"{\"code\":\"TOKEN_EXPIRED\",\"message\":\"x\"}"})
            ),
            "TOKEN_EXPIRED"
        );
        assert_eq!(
            connect_error_code(&json!({"message":"m","data":{"code":"ORIGIN_DENIED"}})),
            "ORIGIN_DENIED"
        );
        assert_eq!(
            connect_error_code(&json!("Invalid namespace")),
            "Invalid namespace"
        );
        assert_eq!(
            error_event_code(&[json!({"code":"TOKEN_REVOKED","message":"m"})]),
            "TOKEN_REVOKED"
        );
        assert_eq!(error_event_code(&[]), "ERROR_EVENT");
        let io = Error::Io(std::io::Error::from_raw_os_error(libc::ECONNREFUSED));
        assert_eq!(error_code(&io), "ECONNREFUSED");
        assert_eq!(
            error_code(&Error::Http {
                status: 403,
                body: String::new()
            }),
            "HTTP_403"
        );
        let other = Error::Io(std::io::Error::other("x"));
        assert_eq!(error_code(&other), "IO_OTHER");
    }
}
