//! Shared plumbing: CLI flags common to every scenario, login, publish, source addresses,
//! the open-files limit, RSS, the run clock.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::sio::ConnectOptions;

/// Flags shared by every scenario (accepted before or after the scenario name).
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Server base URL (http:// only; loopback). A comma-separated list spreads the sockets
    /// over several nodes (connection i goes to URL i mod k; chat pairs land on different
    /// nodes); logins and publishes go to the first.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:3000",
        env = "LOADGEN_URL"
    )]
    pub url: String,
    /// X-Api-Key for POST /api/publish (fanout).
    #[arg(long, global = true, env = "LOADGEN_API_KEY")]
    pub api_key: Option<String>,
    /// Seeded users are <prefix>1..<prefix>K.
    #[arg(long, global = true, default_value = "bench")]
    pub users_prefix: String,
    #[arg(long, global = true, default_value = "bench-pass")]
    pub password: String,
    /// Distinct users to log in; their tokens are reused round-robin over the connections
    /// (the `multi` login policy allows many sockets per token). Default: per scenario
    /// (chat: 2 x pairs, others: min(N, 100)).
    #[arg(long, global = true)]
    pub users: Option<usize>,
    /// Source addresses for the TCP connections: `auto` (spread over 127.0.0.1.. when N > 10,000,
    /// ~28k ephemeral ports per source address), `none`, a range `127.0.0.1-127.0.0.50` or a
    /// comma list.
    #[arg(long, global = true, default_value = "auto")]
    pub source_ips: String,
    /// Read the server's VmRSS from /proc/PID/status before and after.
    #[arg(long, global = true)]
    pub server_pid: Option<u32>,
    /// Socket.IO namespace.
    #[arg(long, global = true, default_value = "/im")]
    pub namespace: String,
    /// Engine.IO path.
    #[arg(long, global = true, default_value = "/socket.io/")]
    pub path: String,
    /// Bound on TCP connect + upgrade + Engine.IO OPEN, per attempt.
    #[arg(long, global = true, default_value_t = 10_000)]
    pub connect_timeout_ms: u64,
    /// Bound on the wait for the `connected` event after the upgrade.
    #[arg(long, global = true, default_value_t = 15_000)]
    pub connected_timeout_ms: u64,
    /// Parallel logins.
    #[arg(long, global = true, default_value_t = 8)]
    pub login_concurrency: usize,
    /// Tokens issued by someone else (a backend in front of `[external]` tables, where
    /// `/auth/login` answers 403): one `username<TAB>token` per line, used instead of logging in.
    #[arg(long, global = true)]
    pub tokens_file: Option<std::path::PathBuf>,
}

impl Default for Common {
    fn default() -> Self {
        Common {
            url: "http://127.0.0.1:3000".into(),
            api_key: None,
            users_prefix: "bench".into(),
            password: "bench-pass".into(),
            users: None,
            source_ips: "auto".into(),
            server_pid: None,
            namespace: "/im".into(),
            path: "/socket.io/".into(),
            connect_timeout_ms: 10_000,
            connected_timeout_ms: 15_000,
            login_concurrency: 8,
            tokens_file: None,
        }
    }
}

impl Common {
    pub fn base_options(&self) -> ConnectOptions {
        ConnectOptions {
            base_url: self.primary_url(),
            namespace: self.namespace.clone(),
            path: self.path.clone(),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            ..Default::default()
        }
    }

    /// The node URLs of `--url` (one, or a comma-separated list), without trailing `/`.
    pub fn urls(&self) -> Vec<String> {
        let v: Vec<String> = self
            .url
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if v.is_empty() { vec![String::new()] } else { v }
    }

    /// The first URL: logins and publishes go there.
    pub fn primary_url(&self) -> String {
        self.urls().swap_remove(0)
    }

    pub fn connected_timeout(&self) -> Duration {
        Duration::from_millis(self.connected_timeout_ms)
    }

    pub fn source_addrs(&self, n: usize) -> Result<Vec<IpAddr>, String> {
        parse_source_ips(&self.source_ips, n)
    }
}

/// Connections per source address above which `auto` spreads them (the kernel has
/// ~28k ephemeral ports per source address towards one server port; stay well below).
pub const AUTO_SPREAD_ABOVE: usize = 10_000;

/// `auto` | `none` | `a.b.c.d-a.b.c.e` | `ip,ip,..`. Empty result = let the kernel choose.
pub fn parse_source_ips(spec: &str, n: usize) -> Result<Vec<IpAddr>, String> {
    let spec = spec.trim();
    match spec {
        "" | "none" => return Ok(vec![]),
        "auto" => {
            if n <= AUTO_SPREAD_ABOVE {
                return Ok(vec![]);
            }
            let k = n.div_ceil(AUTO_SPREAD_ABOVE).min(250) as u8;
            return Ok((1..=k)
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
                .collect());
        }
        _ => {}
    }
    if let Some((a, b)) = spec.split_once('-') {
        let a: Ipv4Addr = a
            .trim()
            .parse()
            .map_err(|e| format!("--source-ips {a:?}: {e}"))?;
        let b: Ipv4Addr = b
            .trim()
            .parse()
            .map_err(|e| format!("--source-ips {b:?}: {e}"))?;
        let (a, b) = (u32::from(a), u32::from(b));
        if b < a || b - a > 65_535 {
            return Err(format!("--source-ips range {spec:?} is empty or too large"));
        }
        return Ok((a..=b).map(|x| IpAddr::V4(Ipv4Addr::from(x))).collect());
    }
    spec.split(',')
        .map(|s| {
            s.trim()
                .parse::<IpAddr>()
                .map_err(|e| format!("--source-ips {s:?}: {e}"))
        })
        .collect()
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
/// Note: on these machines the hard limit is 20,000 (`ulimit -Hn`), so one loadgen process can
/// hold at most ~19,900 sockets, whatever the source-address spread.
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: plain libc calls on a stack struct.
    unsafe {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 0;
        }
        if rl.rlim_cur < rl.rlim_max {
            let want = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                rl.rlim_cur = rl.rlim_max;
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every target
        let cur = rl.rlim_cur as u64;
        cur
    }
}

/// VmRSS of a process in KiB (`None` if unreadable).
pub fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let s = std::fs::read_to_string(path).ok()?;
    parse_vmrss(&s)
}

pub fn parse_vmrss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Start the run clock (idempotent).
pub fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since the run epoch: what `t` / scheduled times in payloads carry. Small enough
/// to survive a JavaScript server's doubles exactly (< 2^53 ns = 104 days).
pub fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// Prints a progress line on stderr.
#[macro_export]
macro_rules! progress {
    ($($t:tt)*) => {{
        eprintln!("[loadgen {:>8.3}s] {}", $crate::bench::common::epoch().elapsed().as_secs_f64(), format!($($t)*));
    }};
}

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub username: String,
    pub user_id: i64,
    pub token: String,
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(64)
        .build()
        .expect("reqwest client")
}

/// `POST /auth/login` → token and user id.
pub async fn login(
    http: &reqwest::Client,
    url: &str,
    username: &str,
    password: &str,
) -> Result<Session, String> {
    let resp = http
        .post(format!("{}/auth/login", url.trim_end_matches('/')))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .map_err(|e| format!("login {username}: {e}"))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .map_err(|e| format!("login {username}: HTTP {status}, body not JSON: {e}"))?;
    if !status.is_success() {
        return Err(format!("login {username}: HTTP {status} {body}"));
    }
    let token = body["data"]["token"]
        .as_str()
        .ok_or_else(|| format!("login {username}: no data.token in {body}"))?;
    let user_id = body["data"]["user"]["id"].as_i64().unwrap_or(0);
    Ok(Session {
        username: username.to_owned(),
        user_id,
        token: token.to_owned(),
    })
}

/// Logs in `<prefix>1..<prefix>k` with bounded parallelism and retries on 429.
pub async fn login_many(c: &Common, k: usize) -> Result<Vec<Session>, String> {
    use futures_util::StreamExt;
    if let Some(path) = &c.tokens_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--tokens-file {}: {e}", path.display()))?;
        let sessions: Vec<Session> = text
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .take(k)
            .map(|(username, token)| Session {
                username: username.to_owned(),
                user_id: 0,
                token: token.trim().to_owned(),
            })
            .collect();
        if sessions.len() < k {
            return Err(format!(
                "--tokens-file has {} tokens, {k} needed",
                sessions.len()
            ));
        }
        progress!(
            "logged in {} users in 0.0s (tokens from --tokens-file)",
            sessions.len()
        );
        return Ok(sessions);
    }
    let http = http_client();
    let t0 = Instant::now();
    let results: Vec<Result<Session, String>> = futures_util::stream::iter(1..=k)
        .map(|i| {
            let http = http.clone();
            let name = format!("{}{}", c.users_prefix, i);
            async move {
                let mut delay = Duration::from_millis(200);
                for attempt in 0..5 {
                    match login(&http, &c.primary_url(), &name, &c.password).await {
                        Ok(s) => return Ok(s),
                        Err(e) if e.contains("429") && attempt < 4 => {
                            tokio::time::sleep(delay).await;
                            delay *= 2;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(format!("login {name}: still rate limited"))
            }
        })
        .buffered(c.login_concurrency.max(1))
        .collect()
        .await;
    let sessions: Result<Vec<_>, _> = results.into_iter().collect();
    let sessions = sessions?;
    progress!(
        "logged in {} users in {:.1}s",
        sessions.len(),
        t0.elapsed().as_secs_f64()
    );
    Ok(sessions)
}

/// `POST /api/publish` → `data.delivered_to_sockets`.
pub async fn publish(
    http: &reqwest::Client,
    url: &str,
    api_key: &str,
    body: &Value,
) -> Result<u64, String> {
    let resp = http
        .post(format!("{}/api/publish", url.trim_end_matches('/')))
        .header("X-Api-Key", api_key)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("publish: {e}"))?;
    let status = resp.status();
    let v: Value = resp
        .json()
        .await
        .map_err(|e| format!("publish: HTTP {status}, body not JSON: {e}"))?;
    if !status.is_success() {
        return Err(v["code"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP_{}", status.as_u16())));
    }
    Ok(v["data"]["delivered_to_sockets"].as_u64().unwrap_or(0))
}

/// Counts of failure codes, serialised as a JSON object.
#[derive(Debug, Default, Clone)]
pub struct Codes(pub BTreeMap<String, u64>);

impl Codes {
    pub fn add(&mut self, code: impl Into<String>) {
        *self.0.entry(code.into()).or_default() += 1;
    }
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
    pub fn merge(&mut self, other: &Codes) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_default() += v;
        }
    }
    pub fn to_json(&self) -> Value {
        json!(self.0)
    }
}

/// Small, fast, seedable PRNG for jitter (xorshift64*): no dependency needed.
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Jitter(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_list() {
        let mut c = Common::default();
        assert_eq!(c.urls(), vec!["http://127.0.0.1:3000"]);
        c.url = "http://127.0.0.1:1/, http://127.0.0.1:2".into();
        assert_eq!(c.urls(), vec!["http://127.0.0.1:1", "http://127.0.0.1:2"]);
        assert_eq!(c.primary_url(), "http://127.0.0.1:1");
        assert_eq!(c.base_options().base_url, "http://127.0.0.1:1");
    }

    #[test]
    fn source_ips() {
        assert!(parse_source_ips("auto", 10_000).unwrap().is_empty());
        let v = parse_source_ips("auto", 19_000).unwrap();
        assert_eq!(
            v,
            vec![
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "127.0.0.2".parse().unwrap()
            ]
        );
        assert_eq!(parse_source_ips("auto", 30_001).unwrap().len(), 4);
        assert!(parse_source_ips("none", 50_000).unwrap().is_empty());
        let r = parse_source_ips("127.0.0.1-127.0.0.50", 1).unwrap();
        assert_eq!(r.len(), 50);
        assert_eq!(r[49], "127.0.0.50".parse::<IpAddr>().unwrap());
        assert_eq!(
            parse_source_ips("127.0.0.254-127.0.1.1", 1).unwrap().len(),
            4
        );
        assert_eq!(
            parse_source_ips("127.0.0.2, 127.0.0.3", 1).unwrap().len(),
            2
        );
        assert!(parse_source_ips("127.0.0.5-127.0.0.1", 1).is_err());
        assert!(parse_source_ips("nope", 1).is_err());
    }

    #[test]
    fn vmrss() {
        let s = "Name:\tnode\nVmPeak:\t  100 kB\nVmRSS:\t   52340 kB\nThreads: 7\n";
        assert_eq!(parse_vmrss(s), Some(52340));
        assert_eq!(parse_vmrss("Name: x\n"), None);
        assert!(rss_kib(None).unwrap() > 0);
    }

    #[test]
    fn jitter_in_range() {
        let mut j = Jitter::new(42);
        let mut sum = 0.0;
        for _ in 0..10_000 {
            let x = j.next_f64();
            assert!((0.0..1.0).contains(&x));
            sum += x;
        }
        assert!((sum / 10_000.0 - 0.5).abs() < 0.05);
    }

    #[test]
    fn codes() {
        let mut c = Codes::default();
        c.add("A");
        c.add("A");
        c.add("B");
        assert_eq!(c.total(), 3);
        assert_eq!(c.to_json(), json!({"A":2,"B":1}));
    }
}
