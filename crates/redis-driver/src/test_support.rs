//! A throwaway redis-server for tests (feature `test-support`): the one launcher of the
//! workspace, used by this crate's tests and by im-server's tests/api.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// `IM_TEST_REDIS_SERVER_BIN` (scripts/services.sh exports it), else redis-server on PATH or in
/// an sbin directory.
fn redis_server_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("IM_TEST_REDIS_SERVER_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "IM_TEST_REDIS_SERVER_BIN={} does not exist",
            bin.display()
        );
        return bin;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "redis-server not found: these tests need a real Redis. Install it \
                 (apt-get install -y redis-server) or set IM_TEST_REDIS_SERVER_BIN"
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("no free loopback port")
        .port()
}

/// A throwaway redis-server of the test's own on a free loopback port (so parallel tests never
/// share channels or keys), with its own temp dir, no persistence; it can be stopped (SIGKILL,
/// as in a crash) and started again on the same port; killed on drop.
pub struct RedisServer {
    bin: PathBuf,
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start() -> Self {
        let bin = redis_server_bin();
        let mut last_err = String::new();
        // The free port may be taken between probing and binding: try a few.
        for _ in 0..3 {
            let mut p = RedisServer {
                bin: bin.clone(),
                port: free_port(),
                dir: tempfile::tempdir().expect("tempdir"),
                child: None,
            };
            match p.spawn_and_wait().await {
                Ok(()) => return p,
                Err(e) => last_err = e,
            }
        }
        panic!("could not start {}: {last_err}", bin.display());
    }

    /// `redis://127.0.0.1:PORT/?protocol=resp3` (the driver needs RESP3).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/?protocol=resp3", self.port)
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).unwrap()
    }

    async fn spawn_and_wait(&mut self) -> Result<(), String> {
        let child = Command::new(&self.bin)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!(
                    "redis-server on port {} exited: {status}",
                    self.port
                ));
            }
            if ping(self.port).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "no PONG on port {} within {READY_TIMEOUT:?}",
                    self.port
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, as in a crash (no-op when stopped).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL on Unix
            let _ = child.wait();
        }
    }

    /// Stop it if running, then start it again on the same port and dir.
    pub async fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn_and_wait().await {
            panic!("restarting redis-server on the same port: {e}");
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Raw RESP PING, independent of the code under test.
async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).await.ok()?;
        Some(buf[..n].starts_with(b"+PONG"))
    };
    matches!(
        timeout(Duration::from_millis(500), attempt).await,
        Ok(Some(true))
    )
}
