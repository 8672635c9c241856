//! A throwaway MariaDB server of the test's own, which the test may stop (SIGKILL, as in a
//! crash) and start again on the same port and data: the fault tests cannot do that to the
//! shared service on 13306, which other tests use at the same time. Killed on drop, and by the
//! kernel if the test process itself dies (PR_SET_PDEATHSIG), so nothing is left running.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const SBIN_DIRS: [&str; 5] = [
    "/usr/sbin",
    "/usr/bin",
    "/usr/local/sbin",
    "/usr/local/bin",
    "/sbin",
];

/// `$var` (scripts/services.sh exports it), else the first of `names` on PATH or in an sbin
/// directory; a loud failure otherwise, never a skip.
fn find_bin(var: &str, names: &[&str]) -> PathBuf {
    if let Some(bin) = std::env::var_os(var) {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "{var}={} does not exist", bin.display());
        return bin;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .collect();
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| d.join(n)))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{} not found: this test runs a MariaDB server of its own. Install it \
                 (apt-get install -y mariadb-server; scripts/services.sh does when \
                 IM_TEST_SERVICES includes mysql, now {:?}) or set {var}",
                names[0],
                std::env::var("IM_TEST_SERVICES").unwrap_or_default()
            )
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("no free loopback port")
        .port()
}

/// A MariaDB server on a free loopback port with a fresh data dir; root without a password
/// over TCP (loopback only).
pub struct MariaDbServer {
    bin: PathBuf,
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl MariaDbServer {
    pub async fn start() -> Self {
        let bin = find_bin("IM_TEST_MARIADBD_BIN", &["mariadbd", "mysqld"]);
        let install = find_bin(
            "IM_TEST_MARIADB_INSTALL_DB_BIN",
            &["mariadb-install-db", "mysql_install_db"],
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new(&install)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .args(user_arg())
            .args(["--skip-test-db", "--auth-root-authentication-method=normal"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", install.display()));
        assert!(
            out.status.success(),
            "{} failed: {}{}",
            install.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut last_err = String::new();
        // The free port may be taken between probing and binding: try a few.
        let mut server = MariaDbServer {
            bin,
            port: 0,
            dir,
            child: None,
        };
        for _ in 0..3 {
            server.port = free_port();
            match server.spawn_and_wait().await {
                Ok(()) => return server,
                Err(e) => last_err = e,
            }
        }
        panic!("could not start {}: {last_err}", server.bin.display());
    }

    /// `mysql://root@127.0.0.1:PORT` (no database: see `helpers::fresh_database`).
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("mariadbd.log")
    }

    async fn spawn_and_wait(&mut self) -> Result<(), String> {
        let d = self.dir.path();
        let arg = |k: &str, p: &Path| format!("--{k}={}", p.display());
        std::fs::create_dir_all(d.join("tmp")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--no-defaults")
            .args(user_arg())
            .arg(arg("datadir", &d.join("data")))
            .arg(arg("tmpdir", &d.join("tmp")))
            .arg(arg("socket", &d.join("mariadbd.sock")))
            .arg(arg("pid-file", &d.join("mariadbd.pid")))
            .arg(arg("log-error", &self.log()))
            .arg(format!("--port={}", self.port))
            .args(["--bind-address=127.0.0.1", "--skip-name-resolve"])
            .args(["--max-connections=200", "--innodb-buffer-pool-size=32M"])
            // Each commit is written to the OS at once (no fsync): a SIGKILL of the server,
            // the fault the tests inject, loses nothing that was committed.
            .arg("--innodb-flush-log-at-trx-commit=2")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!(
                    "mariadbd on port {} exited: {status}; log: {}",
                    self.port,
                    self.log_tail()
                ));
            }
            if greets(self.port).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "no handshake on port {} within {READY_TIMEOUT:?}; log: {}",
                    self.port,
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// SIGKILL, as in a crash (no-op when stopped).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port and data (InnoDB recovers what was committed).
    pub async fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn_and_wait().await {
            panic!("restarting mariadbd on the same port: {e}");
        }
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// mariadbd refuses to run as root unless told to; anyone else runs it as themselves.
fn user_arg() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    (unsafe { libc::geteuid() } == 0).then_some("--user=root")
}

/// The server's greeting (protocol 10 handshake packet), independent of the code under test.
async fn greets(port: u16) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.ok()?;
        Some(buf[4] == 10)
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), attempt).await,
        Ok(Some(true))
    )
}
