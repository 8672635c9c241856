//! `loadgen backend`: a trivial bridge backend (contract §10) for `loadgen bridge`, in Rust so
//! its own time is microseconds with a flat tail — the node backend's GC and single thread made
//! the bridge's added p99 unmeasurable. Verifies every call's `X-Im-Signature`
//! (HMAC-SHA256 over `"<X-Im-Timestamp>.<body>"`), answers `{"ack":{"ok":true}}`, or 401 for a
//! bad signature (the bridged ack is then an error, counted by `loadgen bridge`). Runs until
//! killed.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::Value;

#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    #[arg(long)]
    pub port: u16,
    /// The server's `bridge.secret`.
    #[arg(long)]
    pub secret: String,
}

pub async fn backend(a: &BackendArgs) -> Result<Value, String> {
    let secret = std::sync::Arc::new(a.secret.clone().into_bytes());
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let secret = secret.clone();
        async move {
            match signed(&secret, &headers, &body) {
                true => (StatusCode::OK, r#"{"ack":{"ok":true}}"#),
                false => (StatusCode::UNAUTHORIZED, r#"{"code":"FORBIDDEN"}"#),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", a.port))
        .await
        .map_err(|e| format!("backend: bind 127.0.0.1:{}: {e}", a.port))?;
    eprintln!("backend listening on 127.0.0.1:{}", a.port);
    axum::serve(listener, app)
        .await
        .map_err(|e| e.to_string())?;
    Ok(serde_json::json!({"scenario": "backend"}))
}

fn signed(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match (header("x-im-timestamp"), header("x-im-signature")) {
        (Some(ts), Some(sig)) => sig == signature(secret, ts, body),
        _ => false,
    }
}

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`: what im-server sends as
/// `X-Im-Signature` (loadgen's direct calls sign the same way).
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
