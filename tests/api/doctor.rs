//! `im-server doctor` (contract §12) against each broken setup of the field reports, built for
//! real: a real server, real proxies on loopback (doctor/proxy.rs), the real binary with
//! `--json`. Every run asserts the token and the password never appear in what it printed.

pub mod proxy;

use std::process::Stdio;
use std::time::Duration;

use im_server::config::Secret;
use serde_json::Value;

use self::proxy::{Proxy, ProxyOptions};
use crate::helpers::*;
use crate::tokens::{claims, forge};

const ORIGIN: &str = "https://chat.example.com";
const API_KEY: &str = "doctor-test-api-key-0123456789";
const PASSWORD: &str = "admin123";

/// Quick pings, so a heartbeat round takes a second, not 25.
fn fast_pings(s: &mut im_server::config::Settings) {
    s.socketio.ping_interval_ms = 1000;
    s.socketio.ping_timeout_ms = 1000;
    s.cors.origins = Some(vec![ORIGIN.into()]);
    s.server.api_key = Some(Secret::new(API_KEY));
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub json: Value,
}

impl Run {
    pub fn step(&self, name: &str) -> &Value {
        self.json["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == name))
            .unwrap_or_else(|| panic!("no step {name} in {}", self.stdout))
    }

    pub fn status(&self, name: &str) -> &str {
        self.step(name)["status"].as_str().unwrap()
    }

    /// Statuses of all ten steps in order, e.g. `["ok", "skip", …]`.
    pub fn statuses(&self) -> Vec<(String, String)> {
        self.json["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    pub fn text(&self, name: &str) -> String {
        let s = self.step(name);
        format!(
            "{} | {}",
            s["detail"].as_str().unwrap_or(""),
            s["hint"].as_str().unwrap_or("")
        )
    }
}

/// Run `im-server doctor ARGS` (in an empty directory, with an empty environment) and check
/// that none of `secrets` — and no JWT at all — is in its output.
pub async fn doctor(args: &[&str], secrets: &[&str], json: bool) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_im-server"));
    cmd.current_dir(dir.path())
        .env_clear()
        .arg("doctor")
        .args(args)
        .args(["--timeout", "5"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if json {
        cmd.arg("--json");
    }
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("doctor finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    for text in [&stdout, &stderr] {
        for s in secrets {
            assert!(
                !text.contains(s),
                "the doctor printed a secret or token:\n{text}"
            );
        }
        // Every JWT starts with base64url('{"'): none may be printed, whoever issued it.
        assert!(!text.contains("eyJ"), "the doctor printed a token:\n{text}");
    }
    if std::env::var_os("DOCTOR_SHOW").is_some() {
        eprintln!("{stdout}{stderr}");
    }
    let json = if json {
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("--json output ({e}): {stdout} {stderr}"))
    } else {
        Value::Null
    };
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout,
        stderr,
        json,
    }
}

fn only_failures(run: &Run) -> Vec<String> {
    run.statuses()
        .into_iter()
        .filter(|(_, s)| s == "fail")
        .map(|(n, _)| n)
        .collect()
}

#[tokio::test]
async fn doctor_walks_a_healthy_chain_through_a_proxy_and_logs_in() {
    let app = spawn_with(fast_pings).await;
    let p = Proxy::start(vec![app.addr], ProxyOptions::default()).await;
    let url = p.url("http", "/im");
    let run = doctor(
        &[
            "--url",
            &url,
            "--origin",
            ORIGIN,
            "--username",
            "admin",
            "--password",
            PASSWORD,
        ],
        &[PASSWORD, API_KEY],
        true,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.json["ok"], true);
    assert_eq!(run.json["url"], url.as_str());
    let names: Vec<String> = run.statuses().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "tcp",
            "tls",
            "health",
            "transport",
            "polling",
            "cors",
            "websocket",
            "auth",
            "connected",
            "heartbeat"
        ]
    );
    for (name, status) in run.statuses() {
        let want = if name == "tls" { "skip" } else { "ok" };
        assert_eq!(status, want, "{name}: {}", run.text(&name));
    }
    assert!(
        run.step("polling")["detail"]
            .as_str()
            .unwrap()
            .contains("pingInterval 1000 ms")
    );
    assert!(
        run.text("cors")
            .contains(&format!("Access-Control-Allow-Origin {ORIGIN}"))
    );
    assert!(
        run.text("connected").contains("as user 1 admin (admin)"),
        "{}",
        run.text("connected")
    );
    let fp = run.json["token"]["fingerprint"].as_str().unwrap();
    assert!(fp.starts_with("sha256:") && fp.len() == 19, "{fp}");
    assert!(run.text("auth").contains(fp));
    assert_eq!(run.json["token"]["from"], "login as admin");
}

#[tokio::test]
async fn doctor_human_output_is_one_line_per_step_and_exit_code_follows_failures() {
    let app = spawn_with(fast_pings).await;
    let token = app.login("admin", PASSWORD).await;
    let url = app.url("/im");
    let run = doctor(
        &["--url", &url, "--origin", ORIGIN, "--token", &token],
        &[&token],
        false,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("im-server doctor {url}")),
        "{}",
        run.stdout
    );
    let steps = [
        "tcp",
        "tls",
        "health",
        "transport",
        "polling",
        "cors",
        "websocket",
        "auth",
        "connected",
        "heartbeat",
    ];
    for (line, name) in lines[1..=10].iter().zip(steps) {
        let mut words = line.split_whitespace();
        let status = words.next().unwrap();
        assert!(["ok", "skip"].contains(&status), "{line}");
        assert_eq!(words.next(), Some(name), "{line}");
    }
    assert_eq!(lines[11], "result: every step that applies is ok");
    assert!(
        !run.stdout.contains('\x1b'),
        "colour without a TTY: {:?}",
        run.stdout
    );

    // Nothing listening: exit 1, the tcp line fails with its fix, the rest are skipped.
    let closed = format!("http://127.0.0.1:{}/im", free_port());
    let run = doctor(&["--url", &closed], &[], false).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[1].starts_with("FAIL tcp"), "{}", run.stdout);
    assert!(
        lines[2]
            .trim_start()
            .starts_with("fix: nothing listens on 127.0.0.1:"),
        "{}",
        run.stdout
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("skip ")).count(),
        9,
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .ends_with("result: tcp failed; the first broken link is `tcp`\n")
    );
    // And a bad --url is one line on stderr, exit 1.
    let run = doctor(&["--url", "ftp://example.com"], &[], false).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("scheme \"ftp\""), "{}", run.stderr);
}

#[tokio::test]
async fn doctor_names_nothing_listening() {
    let closed = format!("http://127.0.0.1:{}/im", free_port());
    let run = doctor(&["--url", &closed, "--token", "x.y.z"], &[], true).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.json["ok"], false);
    assert_eq!(run.status("tcp"), "fail");
    assert!(run.text("tcp").contains("refused"), "{}", run.text("tcp"));
    assert!(
        run.text("tcp").contains("nothing listens"),
        "{}",
        run.text("tcp")
    );
    for (name, status) in run.statuses().into_iter().skip(1) {
        assert_eq!(status, "skip", "{name}");
        assert_eq!(run.step(&name)["detail"], "skipped: tcp failed");
    }
}

#[tokio::test]
async fn doctor_sees_a_proxy_that_drops_the_upgrade_headers() {
    let app = spawn_with(fast_pings).await;
    let token = app.login("admin", PASSWORD).await;
    let p = Proxy::start(vec![app.addr], ProxyOptions::strip_upgrade()).await;
    let run = doctor(
        &[
            "--url",
            &p.url("http", "/im"),
            "--origin",
            ORIGIN,
            "--token",
            &token,
        ],
        &[&token],
        true,
    )
    .await;
    assert_eq!(run.code, 1);
    // Long-polling works; the WebSocket does not, and the server saw why.
    assert_eq!(run.status("polling"), "ok", "{}", run.text("polling"));
    assert_eq!(run.status("cors"), "ok", "{}", run.text("cors"));
    assert_eq!(run.status("transport"), "ok");
    assert!(
        run.text("transport").contains("Upgrade did NOT arrive"),
        "{}",
        run.text("transport")
    );
    assert_eq!(run.status("websocket"), "fail");
    let ws = run.text("websocket");
    assert!(
        ws.contains("drops the hop-by-hop Upgrade / Connection headers"),
        "{ws}"
    );
    assert!(
        ws.contains("proxy_set_header Upgrade $http_upgrade"),
        "{ws}"
    );
    assert!(ws.contains("saw them go missing"), "{ws}");
    for name in ["auth", "connected", "heartbeat"] {
        assert_eq!(run.step(name)["detail"], "skipped: websocket failed");
    }
    assert_eq!(only_failures(&run), ["websocket"]);
}

#[tokio::test]
async fn doctor_sees_an_origin_missing_from_cors_origins() {
    let app = spawn_with(fast_pings).await;
    let token = app.login("admin", PASSWORD).await;
    let evil = "https://staging.example.com";
    let run = doctor(
        &[
            "--url",
            &app.url("/im"),
            "--origin",
            evil,
            "--token",
            &token,
        ],
        &[&token],
        true,
    )
    .await;
    assert_eq!(run.code, 1);
    assert_eq!(run.status("polling"), "ok");
    assert_eq!(run.status("cors"), "fail");
    let cors = run.text("cors");
    assert!(
        cors.contains("Access-Control-Allow-Origin absent"),
        "{cors}"
    );
    assert!(
        cors.contains(&format!("cors.origins = [\"{evil}\"]")),
        "{cors}"
    );
    assert_eq!(run.status("websocket"), "ok");
    assert_eq!(run.status("auth"), "ok");
    assert_eq!(run.status("connected"), "fail");
    let c = run.text("connected");
    assert!(c.contains("error ORIGIN_DENIED"), "{c}");
    assert!(c.contains("is not in cors.origins"), "{c}");
    assert_eq!(run.step("heartbeat")["detail"], "skipped: connected failed");
    assert_eq!(only_failures(&run), ["transport", "cors", "connected"]);
}

#[tokio::test]
async fn doctor_sees_a_wrong_path_and_a_wrong_namespace() {
    let app = spawn_with(fast_pings).await;
    let token = app.login("admin", PASSWORD).await;
    // A proxy prefix left on the Engine.IO path.
    let run = doctor(
        &[
            "--url",
            &app.url("/im"),
            "--path",
            "/api/socket.io/",
            "--token",
            &token,
        ],
        &[&token],
        true,
    )
    .await;
    assert_eq!(run.code, 1);
    assert_eq!(run.status("health"), "ok");
    assert_eq!(run.status("polling"), "fail");
    let polling = run.text("polling");
    assert!(
        polling.contains("GET /api/socket.io/?EIO=4&transport=polling answered 404"),
        "{polling}"
    );
    assert!(
        polling.contains("im-server serves /socket.io/"),
        "{polling}"
    );
    assert_eq!(run.status("websocket"), "fail");
    assert!(
        run.text("websocket").contains("404"),
        "{}",
        run.text("websocket")
    );

    // The Engine.IO path as the namespace: io("http://HOST/chat").
    let run = doctor(
        &[
            "--url",
            &app.url("/chat"),
            "--origin",
            ORIGIN,
            "--token",
            &token,
        ],
        &[&token],
        true,
    )
    .await;
    assert_eq!(run.json["namespace"], "/chat");
    assert_eq!(run.status("websocket"), "ok");
    assert_eq!(run.status("auth"), "fail");
    let auth = run.text("auth");
    assert!(auth.contains("Invalid namespace"), "{auth}");
    assert!(auth.contains("im-server serves /im"), "{auth}");
    assert_eq!(only_failures(&run), ["auth"]);
}

#[tokio::test]
async fn doctor_stops_at_an_untrusted_certificate_unless_insecure() {
    let app = spawn_with(fast_pings).await;
    let token = app.login("admin", PASSWORD).await;
    let (acceptor, pem) = proxy::self_signed();
    let p = Proxy::start(vec![app.addr], ProxyOptions::tls(acceptor)).await;
    let url = p.url("https", "/im");
    let run = doctor(
        &["--url", &url, "--origin", ORIGIN, "--token", &token],
        &[&token],
        true,
    )
    .await;
    assert_eq!(run.code, 1);
    assert_eq!(run.status("tcp"), "ok");
    assert_eq!(run.status("tls"), "fail");
    let tls = run.text("tls");
    assert!(
        tls.contains("not signed by a CA this client trusts"),
        "{tls}"
    );
    assert!(tls.contains("--insecure checks the rest"), "{tls}");
    for (name, status) in run.statuses().into_iter().skip(2) {
        assert_eq!(status, "skip", "{name}");
    }

    // --insecure: the tls step still fails (a browser would refuse it), the rest is checked.
    let run = doctor(
        &[
            "--url",
            &url,
            "--origin",
            ORIGIN,
            "--token",
            &token,
            "--insecure",
        ],
        &[&token],
        true,
    )
    .await;
    assert_eq!(run.code, 1);
    assert_eq!(only_failures(&run), ["tls"], "{}", run.stdout);
    assert!(run.text("tls").contains("going on without verifying"));
    assert_eq!(run.status("connected"), "ok", "{}", run.text("connected"));
    assert_eq!(run.status("heartbeat"), "ok");

    // The same certificate as a trusted (private) CA: every step ok.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let run = doctor(
        &[
            "--url",
            &url,
            "--origin",
            ORIGIN,
            "--token",
            &token,
            "--ca-cert",
            ca.to_str().unwrap(),
        ],
        &[&token],
        true,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.text("tls").contains("certificate valid for 127.0.0.1"),
        "{}",
        run.text("tls")
    );
}

#[tokio::test]
async fn doctor_explains_a_token_signed_elsewhere_expired_or_revoked() {
    let app = spawn_with(fast_pings).await;
    let url = app.url("/im");

    // Another service's secret; the API key lets the server explain it.
    let other = forge(
        "the-other-services-secret-0123456789",
        "HS256",
        &claims(1, 3600),
    );
    let run = doctor(
        &[
            "--url",
            &url,
            "--origin",
            ORIGIN,
            "--token",
            &other,
            "--api-key",
            API_KEY,
        ],
        &[&other, API_KEY],
        true,
    )
    .await;
    assert_eq!(run.code, 1);
    assert_eq!(only_failures(&run), ["connected"]);
    let c = run.text("connected");
    assert!(c.contains("error TOKEN_INVALID_SIGNATURE"), "{c}");
    assert!(
        c.contains("verdict TOKEN_INVALID_SIGNATURE, signature invalid (other_secret)"),
        "{c}"
    );
    assert_eq!(
        run.json["token"]["server_diagnosis"]["signature"]["cause"],
        "other_secret"
    );
    assert_eq!(run.json["token"]["claims"]["sub"], "1");

    // Expired, without an API key: decoded locally, and the doctor says what it could not ask.
    let expired = forge(SECRET, "HS256", &claims(1, -3 * 3600));
    let run = doctor(
        &["--url", &url, "--origin", ORIGIN, "--token", &expired],
        &[&expired],
        true,
    )
    .await;
    assert_eq!(only_failures(&run), ["connected"]);
    let c = run.text("connected");
    assert!(c.contains("error TOKEN_EXPIRED"), "{c}");
    assert!(c.contains("(expired 3h ago)"), "{c}");
    assert!(c.contains("pass --api-key"), "{c}");
    assert!(run.json["token"]["server_diagnosis"].is_null());
    assert!(
        run.json["token"]["expiry"]
            .as_str()
            .unwrap()
            .ends_with("(expired 3h ago)")
    );

    // Revoked by /auth/logout.
    let revoked = app.login("admin", PASSWORD).await;
    let (status, _) = app
        .post("/auth/logout", serde_json::json!({}), Some(&revoked))
        .await;
    assert_eq!(status, 200);
    let run = doctor(
        &[
            "--url",
            &url,
            "--origin",
            ORIGIN,
            "--token",
            &revoked,
            "--api-key",
            API_KEY,
        ],
        &[&revoked, API_KEY],
        true,
    )
    .await;
    assert_eq!(only_failures(&run), ["connected"]);
    let c = run.text("connected");
    assert!(c.contains("error TOKEN_REVOKED"), "{c}");
    assert!(
        c.contains("verdict TOKEN_REVOKED, signature valid, db revoked"),
        "{c}"
    );
}

#[tokio::test]
async fn doctor_sees_missing_sticky_sessions_behind_two_nodes() {
    let a = spawn_with(fast_pings).await;
    let db = a.state.settings().database.url.clone();
    let b = spawn_with(|s| {
        fast_pings(s);
        s.database.url = db;
    })
    .await;
    let token = a.login("admin", PASSWORD).await;
    let p = Proxy::start(vec![a.addr, b.addr], ProxyOptions::default()).await;
    let run = doctor(
        &[
            "--url",
            &p.url("http", "/im"),
            "--origin",
            ORIGIN,
            "--token",
            &token,
        ],
        &[&token],
        true,
    )
    .await;
    assert_eq!(run.code, 1);
    assert_eq!(only_failures(&run), ["polling"], "{}", run.stdout);
    let polling = run.text("polling");
    assert!(polling.contains("the handshake worked"), "{polling}");
    assert!(polling.contains("Session ID unknown"), "{polling}");
    assert!(polling.contains("needs sticky sessions"), "{polling}");
    // A WebSocket needs no stickiness: clients with transports: ["websocket"] connect.
    assert_eq!(run.status("websocket"), "ok");
    assert_eq!(run.status("connected"), "ok");
}

/// A server pinging every `ping_ms` behind a proxy that cuts connections quiet for `cut`,
/// and the doctor holding the socket `wait` seconds.
async fn held_behind_idle_cut(ping_ms: u64, timeout_ms: u64, cut: Duration, wait: &str) -> Run {
    let app = spawn_with(|s| {
        fast_pings(s);
        s.socketio.ping_interval_ms = ping_ms;
        s.socketio.ping_timeout_ms = timeout_ms;
    })
    .await;
    let token = app.login("admin", PASSWORD).await;
    let p = Proxy::start(vec![app.addr], ProxyOptions::idle_cut(cut)).await;
    let url = p.url("http", "/im");
    let args = [
        "--url", &url, "--origin", ORIGIN, "--token", &token, "--wait", wait,
    ];
    doctor(&args, &[&token], true).await
}

#[tokio::test]
async fn doctor_reports_a_proxy_that_cuts_quiet_connections() {
    // Pings every 4 s, a proxy that cuts after 1.5 s of silence: every idle socket dies.
    let run = held_behind_idle_cut(4000, 2000, Duration::from_millis(1500), "8").await;
    assert_eq!(run.code, 1);
    assert_eq!(only_failures(&run), ["heartbeat"], "{}", run.stdout);
    let hb = run.text("heartbeat");
    assert!(hb.contains("the connection was cut after"), "{hb}");
    assert!(hb.contains("before the server's first ping"), "{hb}");
    assert!(
        hb.contains("shorter than pingInterval + pingTimeout (6s)"),
        "{hb}"
    );
    assert!(hb.contains("proxy_read_timeout 60s"), "{hb}");

    // Pings every second keep the same kind of proxy (3 s) happy for the whole --wait.
    let run = held_behind_idle_cut(1000, 1000, Duration::from_secs(3), "5").await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let hb = run.text("heartbeat");
    assert!(hb.contains("held the socket 5s with"), "{hb}");
    assert!(hb.contains("no cut"), "{hb}");
}

#[tokio::test]
async fn doctor_reads_a_strict_mode_refusal_and_a_missing_token() {
    let app = spawn_with(|s| {
        fast_pings(s);
        s.auth.failure_mode = im_server::config::FailureMode::Strict;
    })
    .await;
    let url = app.url("/im");
    // Strict: the refusal is the CONNECT's connect_error, so `auth` fails.
    let expired = forge(SECRET, "HS256", &claims(1, -3 * 3600));
    let run = doctor(
        &[
            "--url",
            &url,
            "--origin",
            ORIGIN,
            "--token",
            &expired,
            "--api-key",
            API_KEY,
        ],
        &[&expired, API_KEY],
        true,
    )
    .await;
    assert_eq!(only_failures(&run), ["auth"], "{}", run.stdout);
    let auth = run.text("auth");
    assert!(auth.contains("connect_error TOKEN_EXPIRED"), "{auth}");
    assert!(auth.contains("verdict TOKEN_EXPIRED"), "{auth}");
    assert_eq!(run.step("connected")["detail"], "skipped: auth failed");
    // No credentials at all: the doctor says to pass some.
    let run = doctor(&["--url", &url, "--origin", ORIGIN], &[], true).await;
    assert_eq!(only_failures(&run), ["auth"]);
    let auth = run.text("auth");
    assert!(auth.contains("connect_error TOKEN_MISSING"), "{auth}");
    assert!(auth.contains("pass --token"), "{auth}");
    assert!(run.json["token"].is_null());
}
