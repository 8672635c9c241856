//! docs/TROUBLESHOOTING.md's examples, produced by the code they describe, so the guide cannot
//! drift: a real `im-server serve` process (its log lines), the real `im-server token inspect`
//! and `im-server config`, real handshakes and HTTP requests.
//!
//! `UPDATE_DOCS=1 cargo test --test api troubleshooting` rewrites every block between
//! `<!-- example:NAME -->` and `<!-- /example -->`; without it the test fails when a block
//! differs from what the code prints now. Values that change per run (times, token
//! fingerprints, ports, jti, elapsed) are replaced with placeholders; secret and config
//! fingerprints are stable because the secrets here are fixed.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use im_server::auth::jwt::{Claims, Keys};
use im_server::auth::store;
use im_server::config::{Secret, Settings, fingerprint};
use jsonwebtoken::Algorithm;
use loadgen::sio::{Client, ConnectOptions, Incoming};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{b64, forge_bytes, im_server};
use crate::helpers::WAIT;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/TROUBLESHOOTING.md");

/// This server's secret: base64 text (of [`RAW`]) configured as plain UTF-8, as people do.
const SECRET: &str = "aW0tc2VydmVyLWRvYy1leGFtcGxlLXNoYXJlZC1zZWNyZXQ=";
const RAW: &str = "im-server-doc-example-shared-secret";
/// What another service signs with when it holds a different secret.
const OTHER: &str = "the-other-services-own-secret-0123456789";
/// Node B of the PM2 example, started without the `.env` that holds JWT_SECRET.
const NODE_B_SECRET: &str = "a-stale-secret-from-an-old-ecosystem-file";
const API_KEY: &str = "doc-example-api-key-0123456789";
const ORIGIN: &str = "https://chat.example.com";

/// A real `im-server serve` child process with its log lines.
struct Server {
    child: tokio::process::Child,
    base: String,
    env: Vec<(&'static str, String)>,
    lines: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let env = vec![
            (
                "DATABASE_URL",
                format!("sqlite://{}?mode=rwc", dir.path().join("im.db").display()),
            ),
            ("JWT_SECRET", SECRET.to_string()),
            ("FRONTEND_URL", ORIGIN.to_string()),
            ("IM_SERVER__API_KEY", API_KEY.to_string()),
        ];
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_im-server"));
        cmd.current_dir(dir.path())
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("IM_LOG__LEVEL", "info")
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("im-server serve starts");
        let lines = Arc::new(Mutex::new(vec![]));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let base = loop {
            let found = lines.lock().unwrap().iter().find_map(|l| {
                l.strip_prefix("im-server listening on ")
                    .and_then(|r| r.split_whitespace().next())
                    .map(str::to_string)
            });
            if let Some(b) = found {
                break b;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "server did not start: {:?}",
                lines.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Server {
            child,
            base,
            env,
            lines,
            _dir: dir,
        }
    }

    fn mark(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// The first log line after `from` that contains every needle.
    async fn line_after(&self, from: usize, needles: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(l) = self.lines.lock().unwrap()[from..]
                .iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return l.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no log line with {needles:?} in {:?}",
                &self.lines.lock().unwrap()[from..]
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn sio(&self) -> ConnectOptions {
        ConnectOptions {
            base_url: self.base.clone(),
            ..Default::default()
        }
    }

    /// A `/im` handshake: the verdict, the `error` payload the client got (legacy mode), and
    /// the server's handshake log line for it.
    async fn handshake(&self, opts: ConnectOptions) -> (String, Value, String) {
        let from = self.mark();
        let mut c = Client::connect(opts).await.expect("engine.io opens");
        let (code, payload) = loop {
            match c.next(WAIT).await {
                Some(Incoming::Event { name, .. }) if name == "connected" => {
                    break ("OK".to_string(), Value::Null);
                }
                Some(Incoming::Event { name, args }) if name == "error" => {
                    break (
                        args[0]["code"].as_str().unwrap().to_string(),
                        args[0].clone(),
                    );
                }
                Some(Incoming::Connected { .. }) => continue,
                other => panic!("handshake ended without a verdict: {other:?}"),
            }
        };
        let line = self
            .line_after(from, &["im_server::handshake", &format!("auth {code}")])
            .await;
        (code, payload, line)
    }

    async fn inspect(&self, args: &[&str]) -> (i32, String) {
        let dir = tempfile::tempdir().unwrap();
        let mut all = vec!["token", "inspect"];
        all.extend_from_slice(args);
        let (code, out, err) = im_server(dir.path(), &self.env, &all, None).await;
        assert!(err.is_empty(), "token inspect stderr: {err}");
        (code, out)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn keys(secret: &str) -> Keys {
    let mut s = Settings::default();
    s.auth.jwt_secret = Some(Secret::new(secret));
    Keys::from_settings(&s).unwrap()
}

/// Claims as `POST /auth/login` writes them.
fn login_claims(user: &entity::users::Model, iat: i64, exp: i64) -> Claims {
    Claims {
        username: Some(user.username.clone()),
        user_type: Some(user.user_type.clone()),
        jti: Some(uuid::Uuid::new_v4().simple().to_string()),
        ..Claims::for_user(user.id, iat, exp)
    }
}

/// A token issued the way login issues it (signed, and its `user_tokens` row stored), at
/// another time than now.
async fn issue(db: &sea_orm::DatabaseConnection, claims: &Claims) -> String {
    let token = keys(SECRET).sign(claims).unwrap();
    store::own::insert_token(
        db,
        store::own::NewToken {
            user_id: im_server::ids::user_id(&claims.sub).unwrap(),
            token: &token,
            jti: claims.jti.as_deref().unwrap(),
            expires_at: claims.expires_at(),
            user_agent: Some("doc-example".into()),
            ip: Some("127.0.0.1".into()),
        },
    )
    .await
    .unwrap();
    token
}

fn in_auth(s: &Server, token: &str) -> ConnectOptions {
    ConnectOptions {
        auth: Some(json!({ "token": token })),
        ..s.sio()
    }
}

/// One handshake example of the guide: what the client sends, the verdict the server must
/// give, and the blocks it fills: `<name>-log` (the server's handshake line) always,
/// `<name>-client` (the client's `error` payload) and `<name>-inspect` (`im-server token
/// inspect` on the token) when asked.
struct Case {
    name: &'static str,
    opts: ConnectOptions,
    code: &'static str,
    /// The token to inspect (also kept out of every output), and a text its report must hold.
    inspect: Option<(String, Option<&'static str>)>,
    client: bool,
}

impl Case {
    /// A handshake with `token` in `auth`, refused with `code`, then inspected.
    fn token(name: &'static str, s: &Server, token: &str, code: &'static str) -> Case {
        Case {
            inspect: Some((token.to_string(), None)),
            ..Case::refused(name, in_auth(s, token), code)
        }
    }

    /// A handshake refused with `code`: its log line only.
    fn refused(name: &'static str, opts: ConnectOptions, code: &'static str) -> Case {
        Case {
            name,
            opts,
            code,
            inspect: None,
            client: false,
        }
    }

    fn with_client(self) -> Case {
        Case {
            client: true,
            ..self
        }
    }

    fn inspect_says(mut self, needle: &'static str) -> Case {
        if let Some((_, expect)) = &mut self.inspect {
            *expect = Some(needle);
        }
        self
    }

    async fn run(self, s: &Server, ex: &mut BTreeMap<String, String>, tokens: &mut Vec<String>) {
        let (code, client, line) = s.handshake(self.opts).await;
        assert_eq!(code, self.code, "{}", self.name);
        ex.insert(format!("{}-log", self.name), fenced("text", &line));
        if self.client {
            ex.insert(
                format!("{}-client", self.name),
                fenced("json", &serde_json::to_string_pretty(&client).unwrap()),
            );
        }
        if let Some((token, expect)) = self.inspect {
            inspect_example(s, ex, self.name, &token, expect).await;
            tokens.push(token);
        }
    }
}

/// `im-server token inspect "$TOKEN"` as a session, into `<name>-inspect`; its exit code. The
/// report must contain `expect` when given.
async fn inspect_example(
    s: &Server,
    ex: &mut BTreeMap<String, String>,
    name: &str,
    token: &str,
    expect: Option<&str>,
) -> i32 {
    let (rc, out) = s.inspect(&[token]).await;
    if let Some(needle) = expect {
        assert!(out.contains(needle), "{out}");
    }
    ex.insert(
        format!("{name}-inspect"),
        fenced(
            "text",
            &session("im-server token inspect \"$TOKEN\"", &out, rc),
        ),
    );
    rc
}

/// The JSON body of a request that must succeed at the HTTP level.
async fn json_of(req: reqwest::RequestBuilder) -> Value {
    req.send().await.unwrap().json().await.unwrap()
}

/// Values that change per run become placeholders.
struct Normalizer {
    /// Fingerprints that are the same on every run (secrets, config): kept.
    stable: Vec<String>,
}

impl Normalizer {
    fn apply(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        let b = text.as_bytes();
        while i < text.len() {
            let rest = &text[i..];
            if let Some(n) = iso_time_len(rest) {
                out.push_str("<time>");
                i += n;
            } else if rest.starts_with("sha256:") && hex_run(&rest[7..]) == 12 {
                let fp = &rest[..19];
                if self.stable.iter().any(|s| s == fp) {
                    out.push_str(fp);
                } else {
                    out.push_str("sha256:<token>");
                }
                i += 19;
            } else if hex_run(rest) == 32 && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) {
                out.push_str("<jti>");
                i += 32;
            } else if let Some(r) = rest.strip_prefix("127.0.0.1:")
                && r.starts_with(|c: char| c.is_ascii_digit())
            {
                out.push_str("127.0.0.1:<port>");
                i += 10 + r.chars().take_while(char::is_ascii_digit).count();
            } else if digit_run(rest) == 10 && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) {
                // A NumericDate (`"exp": 1795352674`).
                out.push_str("<epoch>");
                i += 10;
            } else if let Some(r) = rest.strip_prefix("elapsed_ms=") {
                out.push_str("elapsed_ms=<ms>");
                i += 11
                    + r.chars()
                        .take_while(|c| c.is_ascii_digit() || *c == '.')
                        .count();
            } else if let Some(r) = rest.strip_prefix("issued ")
                && let Some(n) = r.find("s ago")
                && n <= 2
                && r[..n].chars().all(|c| c.is_ascii_digit())
            {
                // A token logged in a moment ago: 0 to 59 seconds depending on the machine.
                out.push_str("issued just now");
                i += 7 + n + 5;
            } else {
                let c = rest.chars().next().unwrap();
                out.push(c);
                i += c.len_utf8();
            }
        }
        out
    }
}

fn digit_run(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

fn hex_run(s: &str) -> usize {
    s.bytes()
        .take_while(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        .count()
}

/// `2026-11-22T10:00:00Z` or `2026-11-22T10:00:00.123456Z`.
fn iso_time_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if b.len() < shape.len() + 1 {
        return None;
    }
    for (i, want) in shape.iter().enumerate() {
        let ok = match want {
            b'd' => b[i].is_ascii_digit(),
            c => b[i] == *c,
        };
        if !ok {
            return None;
        }
    }
    let mut n = shape.len();
    if b[n] == b'.' {
        n += 1;
        while n < b.len() && b[n].is_ascii_digit() {
            n += 1;
        }
    }
    (n < b.len() && b[n] == b'Z').then_some(n + 1)
}

fn fenced(lang: &str, body: &str) -> String {
    format!("```{lang}\n{}\n```", body.trim_end())
}

/// `$ command` and what it printed (with the exit code when it is not 0).
fn session(command: &str, output: &str, code: i32) -> String {
    let mut s = format!("$ {command}\n{}", output.trim_end());
    if code != 0 {
        s.push_str(&format!("\n$ echo $?\n{code}"));
    }
    s
}

async fn generate() -> (BTreeMap<String, String>, Vec<String>) {
    let s = Server::start().await;
    let db = im_server::db::connect(&s.env[0].1, 2, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let admin = im_server::users::find_by_username(&db, "admin")
        .await
        .unwrap()
        .unwrap();
    let http = reqwest::Client::new();
    let now = Utc::now().timestamp();
    let hour = 3600;
    let mut ex: BTreeMap<String, String> = BTreeMap::new();
    let mut outputs: Vec<String> = vec![];
    let mut tokens: Vec<String> = vec![];

    // A fresh login, for the cases that start from a good token.
    let login = |u: &'static str, p: &'static str| {
        let http = http.clone();
        let url = s.url("/auth/login");
        async move {
            let body: Value = http
                .post(url)
                .json(&json!({"username": u, "password": p}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["data"]["token"].as_str().unwrap().to_string()
        }
    };

    // Every handshake example: the token (or its absence) a client sends, the verdict the
    // server must give, and the blocks of the guide it fills (see `Case`).
    let mut cases: Vec<Case> = vec![];

    // 1. Another service signs with its own secret.
    let other = forge_bytes(
        OTHER.as_bytes(),
        Algorithm::HS256,
        &login_claims(&admin, now, now + hour),
    );
    cases.push(
        Case::token("invalid-signature", &s, &other, "TOKEN_INVALID_SIGNATURE").with_client(),
    );

    // 2. The other service base64-decodes the shared secret; this server uses its text.
    let decoded = forge_bytes(
        RAW.as_bytes(),
        Algorithm::HS256,
        &login_claims(&admin, now, now + hour),
    );
    cases.push(
        Case::token("base64", &s, &decoded, "TOKEN_INVALID_SIGNATURE")
            .inspect_says("base64_decoded_secret"),
    );

    // 3. Expired: issued 27 h ago for 24 h.
    let expired = issue(&db, &login_claims(&admin, now - 27 * hour, now - 3 * hour)).await;
    cases.push(Case::token("expired", &s, &expired, "TOKEN_EXPIRED"));
    let body = json_of(
        http.post(s.url("/auth/tokens/inspect"))
            .header("X-Api-Key", API_KEY)
            .json(&json!({ "token": expired })),
    )
    .await;
    let pretty = serde_json::to_string_pretty(&body).unwrap();
    outputs.push(pretty.clone());
    ex.insert("expired-json".into(), fenced("json", &pretty));

    // 4. Revoked (logged out), and unknown to this database.
    let revoked = login("admin", "admin123").await;
    let resp = http
        .post(s.url("/auth/logout"))
        .bearer_auth(&revoked)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    cases.push(Case::token("revoked", &s, &revoked, "TOKEN_REVOKED"));
    let unknown = keys(SECRET)
        .sign(&login_claims(&admin, now - 60, now + 23 * hour))
        .unwrap();
    cases.push(Case::token("not-found", &s, &unknown, "TOKEN_NOT_FOUND"));

    // 5. The token never arrives: a browser WebSocket with extraHeaders (dropped), or a
    // query parameter the server does not read.
    let good = login("admin", "admin123").await;
    tokens.push(good.clone());
    cases.push(Case::refused("missing", s.sio(), "TOKEN_MISSING").with_client());
    let wrong_query = ConnectOptions {
        query: vec![("access_token".into(), good.clone())],
        ..s.sio()
    };
    cases.push(Case::refused("wrong-query", wrong_query, "TOKEN_MISSING"));
    // Encoded once too often on the way (`Bearer%20…` as the auth token).
    let encoded = format!("Bearer%20{}", good.replace('.', "%2E"));
    cases.push(
        Case::token("url-encoded", &s, &encoded, "TOKEN_MALFORMED")
            .inspect_says("repaired: signature valid, verdict OK"),
    );

    // 6. A page on an origin that is not in cors.origins.
    let evil = ConnectOptions {
        headers: vec![("Origin".into(), "https://staging.example.com".into())],
        ..in_auth(&s, &good)
    };
    cases.push(Case::refused("cors", evil, "ORIGIN_DENIED"));

    // 9. Clock skew: the issuer's clock is 2 h ahead, and it sets nbf = iat.
    let mut ahead = login_claims(&admin, now + 2 * hour, now + 26 * hour);
    ahead.nbf = ahead.iat;
    let skewed = issue(&db, &ahead).await;
    cases.push(Case::token(
        "clock-skew",
        &s,
        &skewed,
        "TOKEN_NOT_YET_VALID",
    ));

    for case in cases {
        case.run(&s, &mut ex, &mut tokens).await;
    }

    // 6. (continued) What /debug/transport tells that page.
    let body = json_of(
        http.get(s.url("/debug/transport"))
            .header("Origin", "https://staging.example.com"),
    )
    .await;
    outputs.push(body.to_string());
    let hints = body["data"]["hints"].clone();
    let origin = body["data"]["origin"].clone();
    ex.insert(
        "cors-debug".into(),
        fenced(
            "json",
            &serde_json::to_string_pretty(&json!({"origin": origin, "hints": hints})).unwrap(),
        ),
    );

    // 7. nginx without the WebSocket upgrade headers (and without trust_proxy here).
    let body = json_of(
        http.get(s.url("/debug/transport?expect=websocket"))
            .header("X-Forwarded-For", "203.0.113.7")
            .header("X-Forwarded-Proto", "https")
            .header("X-Real-IP", "203.0.113.7"),
    )
    .await;
    outputs.push(body.to_string());
    let d = &body["data"];
    let excerpt = json!({
        "client_address": d["client_address"],
        "peer_address": d["peer_address"],
        "trust_proxy": d["trust_proxy"],
        "forwarded": d["forwarded"],
        "websocket": d["websocket"],
        "hints": d["hints"],
    });
    ex.insert(
        "nginx-debug".into(),
        fenced("json", &serde_json::to_string_pretty(&excerpt).unwrap()),
    );

    // 8. PM2: two processes, one started without the .env holding JWT_SECRET.
    let dir = tempfile::tempdir().unwrap();
    let node_a = vec![("JWT_SECRET", SECRET.to_string())];
    let node_b = vec![("JWT_SECRET", NODE_B_SECRET.to_string())];
    let mut lines = vec![];
    for (name, env) in [("A", &node_a), ("B", &node_b)] {
        let (code, out, err) = im_server(dir.path(), env, &["config"], None).await;
        assert_eq!(code, 0, "{err}");
        outputs.push(out.clone());
        lines.push(format!("$ im-server config | head -3        # node {name}"));
        lines.extend(
            out.lines()
                .take_while(|l| l.starts_with("# "))
                .take(3)
                .map(str::to_string),
        );
    }
    ex.insert("drift-config".into(), fenced("text", &lines.join("\n")));
    let (_, fp_a, _) = im_server(dir.path(), &node_a, &["config", "--fingerprint"], None).await;
    let (_, fp_b, _) = im_server(dir.path(), &node_b, &["config", "--fingerprint"], None).await;
    let health = json_of(http.get(s.url("/health"))).await;
    assert_eq!(health["config_fingerprint"].as_str(), Some(fp_a.trim()));
    ex.insert(
        "drift-fingerprint".into(),
        fenced(
            "text",
            &format!(
                "$ im-server config --fingerprint   # node A\n{}\n$ im-server config --fingerprint   # node B\n{}\n$ curl -s localhost:3000/health | jq -r .config_fingerprint   # the node behind the balancer\n{}",
                fp_a.trim(),
                fp_b.trim(),
                health["config_fingerprint"].as_str().unwrap()
            ),
        ),
    );

    // A good token, for the "what OK looks like" example (fresh, so "expires in 24h" holds).
    let good = login("admin", "admin123").await;
    let rc = inspect_example(&s, &mut ex, "ok", &good, None).await;
    assert_eq!(rc, 0, "{}", ex["ok-inspect"]);
    tokens.push(good);

    let good = login("admin", "admin123").await;
    doctor_examples(&s, &db, &admin, good, &mut ex, &mut outputs, &mut tokens).await;

    // Nothing printed anywhere carries a secret, a hash or a whole token.
    let log = s.lines.lock().unwrap().join("\n");
    outputs.push(log);
    outputs.extend(ex.values().cloned());
    let password_hashes: Vec<String> = vec![admin.password_hash.clone()];
    let mut forbidden: Vec<String> = vec![
        SECRET.into(),
        RAW.into(),
        OTHER.into(),
        NODE_B_SECRET.into(),
        API_KEY.into(),
        b64(RAW.as_bytes()),
    ];
    forbidden.extend(password_hashes);
    for t in &tokens {
        forbidden.push(t.clone());
        forbidden.push(store::token_hash(t));
        // The signature alone would do as much harm as the whole token.
        forbidden.push(t.rsplit('.').next().unwrap().to_string());
    }
    for text in &outputs {
        for f in &forbidden {
            assert!(
                f.len() < 16 || !text.contains(f.as_str()),
                "an output contains a secret, hash or token:\n{text}"
            );
        }
    }

    let norm = Normalizer {
        stable: vec![
            fingerprint(SECRET.as_bytes()),
            fingerprint(NODE_B_SECRET.as_bytes()),
            fp_a.trim().to_string(),
            fp_b.trim().to_string(),
        ],
    };
    let ex = ex.into_iter().map(|(k, v)| (k, norm.apply(&v))).collect();
    drop(db);
    (ex, outputs)
}

/// The guide's first section: `im-server doctor` on a healthy chain, through a proxy that
/// drops the WebSocket upgrade, and with an expired token (explained through the API key).
async fn doctor_examples(
    s: &Server,
    db: &sea_orm::DatabaseConnection,
    admin: &entity::users::Model,
    good: String,
    ex: &mut BTreeMap<String, String>,
    outputs: &mut Vec<String>,
    tokens: &mut Vec<String>,
) {
    use crate::doctor::proxy::{Proxy, ProxyOptions};
    let health: Value = reqwest::get(s.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let node = health["node_id"].as_str().unwrap().to_string();
    // Per-run values the shared normalizer does not know: this node's id, live connections.
    let tidy = |out: &str| {
        let mut t = out.replace(&node, "<node>");
        for n in 0..10 {
            t = t.replace(&format!(", {n} connection(s)"), ", <n> connection(s)");
        }
        t
    };
    let dir = tempfile::tempdir().unwrap();
    let url = s.url("/im");
    let healthy = async {
        let env = vec![("IM_DOCTOR_PASSWORD", "admin123".to_string())];
        let args = [
            "doctor",
            "--url",
            &url,
            "--origin",
            ORIGIN,
            "--username",
            "admin",
        ];
        let (code, out, err) = im_server(dir.path(), &env, &args, None).await;
        assert_eq!(code, 0, "{out}{err}");
        (code, out)
    };
    let addr = s.base.trim_start_matches("http://").parse().unwrap();
    let p = Proxy::start(vec![addr], ProxyOptions::strip_upgrade()).await;
    let proxied = p.url("http", "/im");
    let no_upgrade = async {
        let args = [
            "doctor", "--url", &proxied, "--origin", ORIGIN, "--token", &good,
        ];
        let (code, out, err) = im_server(dir.path(), &[], &args, None).await;
        assert_eq!(code, 1, "{out}{err}");
        (code, out)
    };
    let now = Utc::now().timestamp();
    let expired = issue(db, &login_claims(admin, now - 27 * 3600, now - 3 * 3600)).await;
    let refused = async {
        let env = vec![("IM_DOCTOR_API_KEY", API_KEY.to_string())];
        let args = [
            "doctor", "--url", &url, "--origin", ORIGIN, "--token", &expired,
        ];
        let (code, out, err) = im_server(dir.path(), &env, &args, None).await;
        assert_eq!(code, 1, "{out}{err}");
        (code, out)
    };
    // The healthy run waits one ping round (25 s): the others run meanwhile.
    let ((c1, ok), (c2, upgrade), (c3, token)) = tokio::join!(healthy, no_upgrade, refused);
    for (name, command, code, out) in [
        (
            "doctor-ok",
            format!(
                "IM_DOCTOR_PASSWORD=… im-server doctor --url {url} --origin {ORIGIN} --username admin"
            ),
            c1,
            ok,
        ),
        (
            "doctor-no-upgrade",
            format!("im-server doctor --url {proxied} --origin {ORIGIN} --token \"$TOKEN\""),
            c2,
            upgrade,
        ),
        (
            "doctor-expired",
            format!(
                "IM_DOCTOR_API_KEY=… im-server doctor --url {url} --origin {ORIGIN} --token \"$TOKEN\""
            ),
            c3,
            token,
        ),
    ] {
        outputs.push(out.clone());
        ex.insert(
            name.into(),
            fenced("text", &session(&command, &tidy(&out), code)),
        );
    }
    tokens.push(good);
    tokens.push(expired);
}

/// `(name, byte range of the block's content)` for every marker pair in the doc.
fn blocks(doc: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let mut out = vec![];
    let mut at = 0;
    while let Some(start) = doc[at..].find("<!-- example:") {
        let start = at + start;
        let name_end = start + doc[start..].find(" -->").expect("unterminated marker");
        let name = doc[start + 13..name_end].trim().to_string();
        let content_start = name_end + 4;
        let end = content_start
            + doc[content_start..]
                .find("<!-- /example -->")
                .unwrap_or_else(|| panic!("example {name} has no <!-- /example -->"));
        out.push((name, content_start..end));
        at = end;
    }
    out
}

#[tokio::test]
async fn troubleshooting_guide_examples_are_what_the_code_prints() {
    let (examples, _) = generate().await;
    let doc = std::fs::read_to_string(DOC).expect("docs/TROUBLESHOOTING.md");
    let found = blocks(&doc);
    let names: Vec<&String> = found.iter().map(|(n, _)| n).collect();
    for name in examples.keys() {
        assert!(
            names.contains(&name),
            "example {name} has no <!-- example:{name} --> marker in {DOC}"
        );
    }
    for name in &names {
        assert!(
            examples.contains_key(*name),
            "{DOC} has a marker for {name}, which no test produces"
        );
    }
    if std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1") {
        let mut updated = doc.clone();
        for (name, range) in found.iter().rev() {
            updated.replace_range(range.clone(), &format!("\n{}\n", examples[name]));
        }
        std::fs::write(DOC, updated).unwrap();
        return;
    }
    let stale: Vec<String> = found
        .iter()
        .filter(|(name, range)| doc[range.clone()].trim() != examples[name].trim())
        .map(|(name, range)| {
            format!(
                "--- {name} in the doc:\n{}\n--- what the code prints now:\n{}\n",
                doc[range.clone()].trim(),
                examples[name]
            )
        })
        .collect();
    assert!(
        stale.is_empty(),
        "docs/TROUBLESHOOTING.md is stale; run `UPDATE_DOCS=1 cargo test --test api \
         troubleshooting` and review the diff:\n{}",
        stale.join("\n")
    );
}

#[test]
fn normalizer_keeps_stable_fingerprints_and_replaces_the_rest() {
    let n = Normalizer {
        stable: vec!["sha256:0123456789ab".into()],
    };
    assert_eq!(
        n.apply("2026-11-22T16:02:15.947941Z x token=sha256:abcdefabcdef key sha256:0123456789ab http://127.0.0.1:35083/ elapsed_ms=0.10 client"),
        "<time> x token=sha256:<token> key sha256:0123456789ab http://127.0.0.1:<port>/ elapsed_ms=<ms> client"
    );
    assert_eq!(
        n.apply("exp 2026-11-23T15:58:10Z (issued 12s ago) jti 68676504153d43b8bf05250efb781477 \"exp\": 1795352674,"),
        "exp <time> (issued just now) jti <jti> \"exp\": <epoch>,"
    );
}
