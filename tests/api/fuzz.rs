//! A seeded, bounded fuzz of the Engine.IO / Socket.IO framing over both transports: a few
//! thousand random and mutated frames, then the server must be alive and serve a normal
//! client. Reproducible: the seed is fixed (override with IM_FUZZ_SEED) and printed.

use std::time::Duration;

use loadgen::sio::Client;
use serde_json::json;

use crate::helpers::*;

/// xorshift64*: enough randomness for mutations, identical on every machine for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Valid frames of every packet type, the seeds of the mutations.
const CORPUS: &[&str] = &[
    "2",
    "3",
    "3probe",
    "5",
    "6",
    "1",
    "40/im,{}",
    "40/im,{\"token\":\"x\"}",
    "40",
    "41/im,",
    "42/im,[\"send_message\",{\"to\":2,\"content\":\"hi\"}]",
    "421/im,[\"send_message\",{\"to\":2,\"content\":\"fuzz\"}]",
    "422/im,[\"presence:subscribe\",{\"userIds\":[1,2]}]",
    "423/im,[\"messages:sync\",{\"after_id\":0}]",
    "424/im,[\"auth:refresh\",{\"token\":\"a.b.c\"}]",
    "425/im,[\"no_such_event\"]",
    "43/im,1[{\"ok\":true}]",
    "44/im,{\"message\":\"x\"}",
    "451-/im,[\"send_message\",{\"_placeholder\":true,\"num\":0}]",
    "461-/im,1[{\"_placeholder\":true,\"num\":0}]",
    "42/im,[]",
    "42/im,[\"\"]",
    "42/im,[\"send_message\",null]",
    "42/im,[\"send_message\",{\"to\":\"1e309\",\"content\":[]}]",
    "42/nope,[\"x\"]",
];

const NOISE: &[&str] = &[
    "\u{0}",
    "\u{fffd}",
    "é",
    "[",
    "]",
    "{",
    "}",
    "\"",
    ",",
    "/",
    "-",
    "9999999999999999999999",
    "-1",
    "null",
    "\u{1e}",
    "\\",
    "%",
    "\n",
    "𝄞",
];

fn mutate(rng: &mut Rng) -> String {
    let mut s: Vec<char> = rng.pick(CORPUS).chars().collect();
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !s.is_empty() => {
                let n = rng.below(s.len());
                s.truncate(n);
            }
            1 => {
                let at = rng.below(s.len() + 1);
                for (i, c) in rng.pick(NOISE).chars().enumerate() {
                    s.insert(at + i, c);
                }
            }
            2 if !s.is_empty() => {
                let at = rng.below(s.len());
                s[at] = char::from(b' ' + (rng.below(95) as u8));
            }
            3 if !s.is_empty() => {
                let at = rng.below(s.len());
                s.remove(at);
            }
            4 => {
                let dup: Vec<char> = s.clone();
                s.extend(dup);
            }
            _ => {
                let n = rng.below(64);
                s.extend((0..n).map(|_| char::from_u32(rng.below(0x3000) as u32).unwrap_or('x')));
            }
        }
    }
    s.into_iter().collect()
}

/// A polling session's sid (the Engine.IO OPEN packet of a polling handshake).
async fn polling_sid(app: &TestApp) -> Option<String> {
    let body = app
        .http
        .get(app.url("/socket.io/?EIO=4&transport=polling"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let open: serde_json::Value = serde_json::from_str(body.strip_prefix('0')?).ok()?;
    open["sid"].as_str().map(str::to_string)
}

#[tokio::test]
async fn thousands_of_random_and_mutated_frames_leave_the_server_alive_and_serving() {
    let seed: u64 = std::env::var("IM_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x1d_c0ffee);
    eprintln!("fuzz seed {seed} (IM_FUZZ_SEED to reproduce)");
    let mut rng = Rng(seed);
    let app = spawn_with(|s| s.socketio.max_payload_bytes = 64 * 1024).await;
    let token = app.login("admin", "admin123").await;
    let fuzz = async {
        // WebSocket: 2,000 frames on authenticated sockets; a socket the server closes for a
        // frame it cannot parse is replaced.
        let mut ws = app.connect(&token).await;
        let (mut sent, mut reopened) = (0, 0);
        while sent < 2000 {
            if ws.is_closed() || ws.send_raw(&mutate(&mut rng)).await.is_err() {
                ws = app.connect(&token).await;
                reopened += 1;
                continue;
            }
            sent += 1;
            ws.take_pending();
        }
        // Polling: 600 payloads (records joined by the 0x1e separator) on polling sessions,
        // and 200 requests with mangled queries.
        let mut sid = polling_sid(&app).await.expect("a polling session opens");
        for i in 0..600 {
            let records: Vec<String> = (0..=rng.below(3)).map(|_| mutate(&mut rng)).collect();
            let url = app.url(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}"));
            let status = app
                .http
                .post(url)
                .body(records.join("\u{1e}"))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            if status != 200 || i % 50 == 0 {
                sid = polling_sid(&app).await.expect("a polling session opens");
            }
        }
        for _ in 0..200 {
            let q: String = mutate(&mut rng)
                .chars()
                .filter(|c| c.is_ascii_graphic() && *c != '#')
                .collect();
            let method = if rng.below(2) == 0 {
                reqwest::Method::GET
            } else {
                reqwest::Method::POST
            };
            let _ = app
                .http
                .request(
                    method,
                    app.url(&format!("/socket.io/?EIO={q}&transport={q}&sid={q}")),
                )
                .send()
                .await;
        }
        (sent, reopened)
    };
    let (sent, reopened) = tokio::time::timeout(Duration::from_secs(50), fuzz)
        .await
        .expect("the fuzz run is bounded");
    eprintln!("sent {sent} WebSocket frames ({reopened} sockets reopened), 800 polling requests");
    assert!(
        !app.task.as_ref().unwrap().is_finished(),
        "the server is still running"
    );
    let (status, health) = app.get("/health", None).await;
    assert_eq!(
        (status, health["status"].as_str()),
        (200, Some("ok")),
        "{health}"
    );
    let (c, _) = app.connect_ok(&token).await;
    let ack = c
        .emit_with_ack(
            "send_message",
            json!({"to": 2, "content": "still here"}),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(ack[0]["ok"], true, "{ack:?}");
    // And a second one, over a fresh connection.
    let mut again = Client::connect(app.with_token(&token)).await.unwrap();
    again.expect_event("connected", WAIT).await.unwrap();
}
