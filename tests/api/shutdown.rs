//! SIGTERM: stop accepting, close sockets, exit 0 — the real binary, a real signal.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use loadgen::sio::Incoming;

use crate::helpers::*;

#[tokio::test]
async fn sigterm_disconnects_clients_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_im-server"))
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("JWT_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Logs share stdout (as PM2 and containers collect it); the URL line is the one we need.
    let line = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap() == 0 || line.contains("listening on http://") {
                break;
            }
        }
        // Keep draining so the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        line
    })
    .await
    .unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    let http = reqwest::Client::new();
    let body: serde_json::Value = http
        .post(format!("{base}/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": "admin123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["data"]["token"].as_str().unwrap();
    let mut c = loadgen::sio::Client::connect(loadgen::sio::ConnectOptions {
        base_url: base.clone(),
        auth: Some(serde_json::json!({"token": token})),
        ..Default::default()
    })
    .await
    .unwrap();
    c.expect_event("connected", WAIT).await.unwrap();

    let started = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut closed = false;
    while let Some(item) = c.next(Duration::from_secs(5)).await {
        if matches!(item, Incoming::Closed | Incoming::Disconnected) {
            closed = true;
            break;
        }
    }
    assert!(closed, "the client was told");
    let status = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap()
    .expect("exits within 15 s");
    assert_eq!(status.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    // Nothing listens any more.
    assert!(http.get(format!("{base}/health")).send().await.is_err());
}
