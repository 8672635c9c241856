//! One signed call to the app's backend and what its answer means (contract §10): a 2xx JSON
//! object is a [`Reply`]; unreachable, past `timeout_ms`, a 5xx (or any other status) or a
//! body that is not a JSON object is `BACKEND_UNAVAILABLE`; a 4xx is the reply's §5 code (else
//! `FORBIDDEN`) with its message. Every call is counted and timed; a failed one logs one line
//! (type, event, status, elapsed), never the payload.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

use crate::config::Secret;
use crate::error::{AppError, ErrorCode};
use crate::metrics::Metrics;
use crate::realtime::emit::Targets;

/// The backend's 2xx answer; every field optional.
#[derive(Debug, Default, Deserialize)]
pub struct Reply {
    /// What the client's ack callback gets (absent: `{ok:true}`).
    #[serde(default)]
    pub ack: Option<Value>,
    #[serde(default)]
    pub emit: Vec<Emit>,
    #[serde(default)]
    pub join: Vec<String>,
    #[serde(default)]
    pub leave: Vec<String>,
    /// `connect` only: sent to the client as `connected.app`.
    #[serde(default)]
    pub data: Option<Value>,
    #[serde(default)]
    pub disconnect: Option<Refusal>,
}

#[derive(Debug, Deserialize)]
pub struct Emit {
    pub event: String,
    #[serde(default)]
    pub data: Value,
    #[serde(flatten)]
    pub targets: Targets,
    #[serde(default)]
    pub except_sender: bool,
}

/// `{code, message}`: a 4xx body, or a reply's `disconnect`.
#[derive(Debug, Default, Deserialize)]
pub struct Refusal {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

impl Refusal {
    /// Its code if that is a §5 code, else `FORBIDDEN`; its message, else the code's own.
    pub fn to_error(&self) -> AppError {
        let code = self
            .code
            .as_deref()
            .and_then(|c| serde_json::from_value::<ErrorCode>(Value::String(c.into())).ok())
            .unwrap_or(ErrorCode::Forbidden);
        match self.message.as_deref().filter(|m| !m.is_empty()) {
            Some(m) => AppError::with_message(code, m.chars().take(500).collect::<String>()),
            None => AppError::new(code),
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, the `X-Im-Signature` value.
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The HTTP side of the bridge: one pooled keep-alive client for every call of this node.
pub struct Caller {
    pub url: reqwest::Url,
    pub secret: Option<Secret>,
    pub node_id: String,
    pub timeout: Duration,
    pub client: reqwest::Client,
    pub metrics: Metrics,
}

/// Why a call did not give a reply, for the log line.
struct Failed {
    status: Option<u16>,
    error: AppError,
    why: String,
}

impl Caller {
    pub fn new(
        url: reqwest::Url,
        secret: Option<Secret>,
        node_id: String,
        timeout: Duration,
        metrics: Metrics,
    ) -> Result<Caller, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("im-server/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Caller {
            url,
            secret,
            node_id,
            timeout,
            client,
            metrics,
        })
    }

    /// POST `body` (whose `type` is `kind`) and read the answer.
    pub async fn call(
        &self,
        kind: &'static str,
        event: Option<&str>,
        body: &Value,
    ) -> Result<Reply, AppError> {
        let started = Instant::now();
        let result = self.send(body).await;
        let took = started.elapsed();
        match result {
            Ok(reply) => {
                self.metrics.bridge(kind, "ok", took);
                Ok(reply)
            }
            Err(f) => {
                self.metrics.bridge(kind, f.error.code.as_str(), took);
                let event = event.map_or("-".into(), |e| e.chars().take(64).collect::<String>());
                let status = f.status.map_or("-".into(), |s| s.to_string());
                let elapsed_ms = took.as_millis() as u64;
                if f.error.code == ErrorCode::BackendUnavailable {
                    tracing::warn!(r#type = %kind, %event, %status, elapsed_ms, code = %f.error.code, why = %f.why, "bridge call failed");
                } else {
                    tracing::info!(r#type = %kind, %event, %status, elapsed_ms, code = %f.error.code, why = %f.why, "bridge call refused");
                }
                Err(f.error)
            }
        }
    }

    async fn send(&self, body: &Value) -> Result<Reply, Failed> {
        let body = serde_json::to_vec(body).unwrap_or_default();
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let mut req = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("x-im-timestamp", &timestamp)
            .header("x-im-node", &self.node_id);
        if let Some(secret) = &self.secret {
            req = req.header(
                "x-im-signature",
                signature(secret.expose().as_bytes(), &timestamp, &body),
            );
        }
        let unavailable = |status: Option<u16>, why: String, says: &str| Failed {
            status,
            error: AppError::with_message(
                ErrorCode::BackendUnavailable,
                format!("The app's backend {says}. Retry shortly."),
            ),
            why,
        };
        let resp = req.body(body).send().await.map_err(|e| {
            if e.is_timeout() {
                let ms = self.timeout.as_millis();
                unavailable(
                    None,
                    format!("no answer within {ms} ms"),
                    &format!("did not answer within {ms} ms"),
                )
            } else {
                unavailable(
                    None,
                    format!("unreachable: {}", source_chain(&e)),
                    "cannot be reached",
                )
            }
        })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| {
            let why = if e.is_timeout() {
                "reply body timed out".to_string()
            } else {
                format!("reply body: {e}")
            };
            unavailable(Some(status), why, "did not finish its answer")
        })?;
        match status {
            200..=299 => {
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    return Ok(Reply::default());
                }
                let v: Value = serde_json::from_slice(&bytes).map_err(|_| {
                    unavailable(
                        Some(status),
                        "reply is not JSON".into(),
                        "answered something that is not JSON",
                    )
                })?;
                if !v.is_object() {
                    return Err(unavailable(
                        Some(status),
                        "reply is not a JSON object".into(),
                        "answered something that is not a JSON object",
                    ));
                }
                serde_json::from_value(v).map_err(|e| {
                    unavailable(
                        Some(status),
                        format!("reply does not fit: {e}"),
                        "answered in a shape the bridge does not know",
                    )
                })
            }
            400..=499 => {
                let refusal: Refusal = serde_json::from_slice(&bytes).unwrap_or_default();
                Err(Failed {
                    status: Some(status),
                    error: refusal.to_error(),
                    why: "the backend refused".into(),
                })
            }
            _ => Err(unavailable(
                Some(status),
                format!("HTTP {status}"),
                &format!("answered HTTP {status}"),
            )),
        }
    }
}

/// The error and its causes on one line (reqwest's own Display hides "connection refused").
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        let sig = signature(b"key", "1700000000", br#"{"a":1}"#);
        // Computed independently: python3 hmac.new(b"key", b'1700000000.{"a":1}', sha256).
        assert_eq!(
            sig,
            "sha256=a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03"
        );
        assert_ne!(sig, signature(b"key", "1700000001", br#"{"a":1}"#));
    }

    #[test]
    fn refusal_keeps_contract_codes_and_maps_others_to_forbidden() {
        let r = Refusal {
            code: Some("RATE_LIMITED".into()),
            message: Some("slow down".into()),
        };
        let e = r.to_error();
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::RateLimited, "slow down")
        );
        let e = Refusal {
            code: Some("NOT_A_CODE".into()),
            message: None,
        }
        .to_error();
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert_eq!(e.message, ErrorCode::Forbidden.default_message());
    }
}
