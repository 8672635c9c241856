//! A token as the doctor may show it: its fingerprint, its header and claims decoded without a
//! secret (exp against this machine's clock), and, when it is refused, the server's diagnosis
//! (§6) from `POST /auth/tokens/inspect` — by `X-Api-Key` (`--api-key`), or by the token's own
//! Bearer, which the server honours only while the token is valid.

use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::diagnose::relative;
use crate::auth::jwt::decode_segment;
use crate::auth::jwt::ts;
use crate::config::fingerprint;

#[derive(Clone, Debug, Serialize)]
pub struct TokenReport {
    /// `--token`, or `login as <username>`.
    pub from: String,
    pub fingerprint: String,
    pub length: usize,
    /// `{alg, typ, kid}` as the token states them, or why they cannot be read.
    pub header: Value,
    /// `{sub, iat, exp, nbf, iss, aud, jti}` as stated (not trusted).
    pub claims: Value,
    /// `exp` against this machine's clock ("expired 3h ago").
    pub expiry: Option<String>,
    /// The server's diagnosis (§6), when it gave one.
    pub server_diagnosis: Option<Value>,
    /// Why there is none, when it was asked for.
    pub server_diagnosis_note: Option<String>,
}

impl TokenReport {
    pub fn new(raw: &str, from: String) -> TokenReport {
        let token = raw.trim();
        let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
        let parts: Vec<&str> = token.split('.').collect();
        let (header, claims) = if parts.len() == 3 {
            (
                decode_segment(parts[0])
                    .map(|h| json!({"alg": h["alg"], "typ": h["typ"], "kid": h["kid"]}))
                    .unwrap_or_else(|e| json!({"error": format!("the header {e}")})),
                decode_segment(parts[1])
                    .map(|c| {
                        json!({"sub": c["sub"], "iat": c["iat"], "exp": c["exp"], "nbf": c["nbf"],
                               "iss": c["iss"], "aud": c["aud"], "jti": c["jti"]})
                    })
                    .unwrap_or_else(|e| json!({"error": format!("the claims {e}")})),
            )
        } else {
            let e = json!({"error": format!("not a JWT: {} dot-separated parts, expected 3", parts.len())});
            (e.clone(), e)
        };
        let now = Utc::now();
        let expiry = claims["exp"].as_i64().map(|exp| {
            format!(
                "exp {} ({})",
                ts(exp).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                relative(ts(exp), now, "expired", "expires")
            )
        });
        TokenReport {
            from,
            fingerprint: fingerprint(token.as_bytes()),
            length: token.len(),
            header,
            claims,
            expiry,
            server_diagnosis: None,
            server_diagnosis_note: None,
        }
    }

    /// "sha256:…, 248 chars, HS256, sub "1", exp … (expired 3h ago)".
    pub fn summary(&self) -> String {
        let mut s = format!("{}, {} chars", self.fingerprint, self.length);
        if let Some(alg) = self.header["alg"].as_str() {
            s.push_str(&format!(", {alg}"));
        }
        if !self.claims["sub"].is_null() {
            s.push_str(&format!(", sub {}", self.claims["sub"]));
        }
        if let Some(e) = &self.expiry {
            s.push_str(&format!(", {e}"));
        }
        if let Some(e) = self.claims["error"].as_str() {
            s.push_str(&format!(", {e}"));
        }
        s
    }

    /// Ask the server; keeps the diagnosis, or a note saying why there is none.
    pub async fn ask_server(
        &mut self,
        http: &reqwest::Client,
        url: &str,
        raw: &str,
        api_key: Option<&str>,
    ) {
        let req = http.post(url).json(&json!({ "token": raw }));
        let req = match api_key {
            Some(k) => req.header("X-Api-Key", k),
            None => req.bearer_auth(raw),
        };
        let (status, body) = match req.send().await {
            Ok(r) => (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            ),
            Err(e) => {
                self.server_diagnosis_note = Some(format!("{url} did not answer: {e}"));
                return;
            }
        };
        match (status, api_key) {
            (200, _) => self.server_diagnosis = Some(body["data"].clone()),
            (401 | 403, None) => {
                self.server_diagnosis_note = Some(format!(
                    "the server explains a refused token only to its API key ({} {} with the \
                     token as Bearer): pass --api-key (IM_DOCTOR_API_KEY = server.api_key), or \
                     run `im-server token inspect` where the server's configuration is",
                    status,
                    body["code"].as_str().unwrap_or("")
                ))
            }
            (_, Some(_)) if status == 401 || status == 403 => {
                self.server_diagnosis_note = Some(format!(
                    "--api-key was refused ({status} {}): it is not this server's server.api_key",
                    body["code"].as_str().unwrap_or("")
                ))
            }
            _ => {
                self.server_diagnosis_note = Some(format!(
                    "{url} answered {status} {}",
                    body["code"].as_str().unwrap_or("")
                ))
            }
        }
    }

    /// The diagnosis in a few sentences, for the step's hint: the verdict, then the
    /// signature's finding and fix when it is the signature, else the server's explanation.
    pub fn diagnosis_text(&self) -> Option<String> {
        let d = self.server_diagnosis.as_ref()?;
        let mut head = format!(
            "server diagnosis: verdict {}, signature {}",
            d["verdict"].as_str().unwrap_or("?"),
            d["signature"]["status"].as_str().unwrap_or("?")
        );
        if let Some(c) = d["signature"]["cause"].as_str() {
            head.push_str(&format!(" ({c})"));
        }
        if let Some(s) = d["db"]["status"].as_str() {
            head.push_str(&format!(", db {s}"));
        }
        let sig = &d["signature"];
        let rest: Vec<&str> = if sig["detail"].is_string() || sig["hint"].is_string() {
            [&sig["detail"], &sig["hint"]]
                .into_iter()
                .filter_map(Value::as_str)
                .collect()
        } else {
            d["explanation"].as_str().into_iter().collect()
        };
        let mut out = vec![head];
        out.extend(rest.iter().map(|t| t.trim().to_string()));
        Some(
            out.iter()
                .map(|t| {
                    if t.ends_with(['.', '!', '?']) {
                        t.clone()
                    } else {
                        format!("{t}.")
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
        )
    }
}
