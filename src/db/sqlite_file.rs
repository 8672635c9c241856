//! The SQLite file under the pool, watched: a file replaced at the configured path (a restore
//! from backup), deleted or moved away leaves every pooled connection reading and writing the
//! old, unlinked inode — every query still succeeds and every write is lost for everyone.
//!
//! Checked on every pool acquire (one `stat`), by a 1 s watch task and by `/health`. Once the
//! path no longer names the file the pool holds:
//! - new connections are pointed at a path that cannot open, so every query fails at once
//!   (handshakes get `AUTH_UNAVAILABLE`, writes an error ack) instead of writing into the void;
//! - pooled connections are closed as they are acquired or released, so the old file's WAL is
//!   checkpointed into it and removed before anything opens the path again (a new file opened
//!   beside the old file's `-wal` would read the old file's pages as its own);
//! - the cause is logged once, and once more when it is over.
//!
//! It is over when the original file is back at the path, or when a file has sat unchanged at
//! the path for two checks (a restore that has finished copying) after the last old
//! connection closed: the pool then opens that file. No restart either way.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use sea_orm::sqlx::pool::PoolOptions;
use sea_orm::sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqlitePool};

/// (device, inode): which file, whatever its name.
type Identity = (u64, u64);

/// What the path names now, with enough to tell a file still being copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    identity: Identity,
    len: u64,
    modified: Option<SystemTime>,
}

fn seen(path: &Path) -> Option<Seen> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Seen {
        identity: (m.dev(), m.ino()),
        len: m.len(),
        modified: m.modified().ok(),
    })
}

/// Where connections are sent while the file is faulted: opening it fails at once
/// (`create_if_missing` is off), unlike an `after_connect` refusal, which sqlx retries until
/// the acquire timeout.
const NOWHERE: &str =
    "/nonexistent/im-server: the configured SQLite file is not the one the server holds";

pub struct SqliteFile {
    path: PathBuf,
    pool: OnceLock<(SqlitePool, SqliteConnectOptions)>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The file the pool's connections hold (set by the first connection).
    held: Option<Identity>,
    /// Its `-wal` and `-shm` files as the connections opened them (refreshed on each connect:
    /// SQLite removes and recreates them when the last connection closes).
    companions: [Option<Identity>; 2],
    /// Why the path is not that file, while it is not.
    fault: Option<String>,
    /// While faulted: what the path named at the previous check.
    last_seen: Option<Seen>,
}

impl SqliteFile {
    /// The file behind a `sqlite:` URL (`None` for other databases and `:memory:`).
    pub fn of(url: &str) -> Option<Arc<SqliteFile>> {
        let rest = url.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest
            .split('?')
            .next()
            .filter(|p| !p.is_empty() && !p.contains(":memory:"))?;
        Some(Arc::new(SqliteFile {
            path: PathBuf::from(path),
            pool: OnceLock::new(),
            state: Mutex::new(State::default()),
        }))
    }

    /// The pool hooks: the first connection records the file; an idle connection is checked
    /// (and closed while faulted) before it is handed out, and closed when given back.
    ///
    /// No connection is retired by age or idleness: with the pool filled at startup
    /// ([`attach`](Self::attach)) a connection is opened later only after one was closed, so
    /// every acquire is an idle connection passing the check first. A connect while
    /// connections to a replaced file are still open would pair the new file with the old
    /// one's WAL.
    pub fn hook(self: &Arc<Self>, opts: PoolOptions<Sqlite>) -> PoolOptions<Sqlite> {
        let (first, before, after) = (self.clone(), self.clone(), self.clone());
        opts.idle_timeout(None)
            .max_lifetime(None)
            .after_connect(move |_, _| {
                let file = first.clone();
                Box::pin(async move {
                    let mut s = file.state();
                    if s.held.is_none() {
                        s.held = seen(&file.path).map(|s| s.identity);
                    }
                    if s.fault.is_none() {
                        s.companions = file.companion_paths().map(|p| seen(&p).map(|s| s.identity));
                    }
                    Ok(())
                })
            })
            .before_acquire(move |_, _| {
                let file = before.clone();
                Box::pin(async move { Ok(file.check().is_ok()) })
            })
            .after_release(move |_, _| {
                let file = after.clone();
                Box::pin(async move { Ok(file.state().fault.is_none()) })
            })
    }

    /// Called once the pool exists (its first connection has made the file WAL): from now on
    /// a missing file is never created anew (it would be an empty database where the real one
    /// was), and the pool is filled, one connection after the other (opened all at once on a
    /// new file they would race to switch it to WAL: "database is locked").
    pub async fn attach(&self, pool: &SqlitePool) -> Result<(), sea_orm::sqlx::Error> {
        let opts = (*pool.connect_options()).clone().create_if_missing(false);
        pool.set_connect_options(opts.clone());
        let _ = self.pool.set((pool.clone(), opts));
        let mut held = vec![];
        for _ in 0..pool.options().get_max_connections() {
            held.push(pool.acquire().await?);
        }
        Ok(())
    }

    /// Whether the path names the file the pool holds; why not otherwise. Moves the state
    /// along (fault, recovery) and logs each change once.
    pub fn check(&self) -> Result<(), String> {
        let now = seen(&self.path);
        let mut s = self.state();
        let Some(held) = s.held else {
            return Ok(()); // no connection opened yet
        };
        if s.fault.is_none() {
            if now.map(|n| n.identity) == Some(held) {
                return Ok(());
            }
            let why = match now {
                Some(_) => format!(
                    "{} was replaced since the server opened it; the server stops using the old \
                     file and opens the new one once it is complete",
                    self.path.display()
                ),
                None => format!(
                    "{} is gone; the database fails closed until a file is back at that path",
                    self.path.display()
                ),
            };
            tracing::error!(path = %self.path.display(), reason = %why, "SQLite file changed under the server");
            s.fault = Some(why.clone());
            s.last_seen = now;
            self.point_connections(false);
            return Err(why);
        }
        let why = s.fault.clone().unwrap_or_default();
        let back = match now {
            // The original back: its connections (if any are left) are still right.
            Some(n) if n.identity == held => true,
            // A new file, unchanged since the last check, and nothing holds the old one.
            Some(n) if s.last_seen == Some(n) && self.pool_size() == 0 => {
                self.set_aside_old_companions(&s.companions);
                s.held = Some(n.identity);
                true
            }
            _ => false,
        };
        s.last_seen = now;
        if !back {
            return Err(why);
        }
        s.fault = None;
        tracing::warn!(path = %self.path.display(), "SQLite file back: the database is in use again");
        self.point_connections(true);
        Ok(())
    }

    /// Runs [`check`](Self::check) every second, so a fault is seen (and its old connections
    /// drained) while nothing asks the database, and recovery does not wait for a request.
    pub fn spawn_watch(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let file = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if file.check().is_err()
                    && let Some((pool, _)) = file.pool.get()
                    && pool.num_idle() > 0
                {
                    // An acquire closes every idle old connection (before_acquire), then fails
                    // to open a new one: that is the drain.
                    let _ = pool.acquire().await;
                }
            }
        })
    }

    /// `<file>-wal` and `<file>-shm`.
    fn companion_paths(&self) -> [PathBuf; 2] {
        ["-wal", "-shm"].map(|suffix| {
            let mut name = self.path.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        })
    }

    /// The old file's `-wal` / `-shm` are still at the path after its last connection closed
    /// (SQLite leaves them for an unlinked database): the new file would read them as its own
    /// ("database disk image is malformed"). Moved aside (the WAL holds the old file's last
    /// writes), unless the restore brought its own.
    fn set_aside_old_companions(&self, old: &[Option<Identity>; 2]) {
        for (path, old) in self.companion_paths().iter().zip(old) {
            if old.is_some() && seen(path).map(|s| s.identity) == *old {
                let mut aside = path.clone().into_os_string();
                aside.push(".replaced");
                match std::fs::rename(path, &aside) {
                    Ok(()) => tracing::warn!(
                        from = %path.display(),
                        to = %PathBuf::from(&aside).display(),
                        "moved the replaced SQLite file's companion aside"
                    ),
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "cannot move the replaced SQLite file's companion aside")
                    }
                }
            }
        }
    }

    fn point_connections(&self, at_the_file: bool) {
        if let Some((pool, opts)) = self.pool.get() {
            pool.set_connect_options(match at_the_file {
                true => opts.clone(),
                false => opts.clone().filename(NOWHERE),
            });
        }
    }

    fn pool_size(&self) -> u32 {
        self.pool.get().map_or(0, |(pool, _)| pool.size())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether another process holds a lock that stops this server writing, asked the way a
/// write would (`BEGIN IMMEDIATE`) but waiting at most `wait`. For `/health`: a file locked by
/// a backup tool or a `sqlite3` shell otherwise shows only as requests that hang.
pub async fn probe_write_lock(
    pool: &SqlitePool,
    wait: Duration,
    busy: Duration,
) -> Result<(), String> {
    use sea_orm::sqlx::Executor;
    let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
    // A number we format, not input.
    let set = |d: Duration| {
        sea_orm::sqlx::AssertSqlSafe(format!("PRAGMA busy_timeout = {}", d.as_millis()))
    };
    (&mut *conn)
        .execute(set(wait))
        .await
        .map_err(|e| e.to_string())?;
    let begun = (&mut *conn).execute("BEGIN IMMEDIATE").await;
    if begun.is_ok() {
        let _ = (&mut *conn).execute("ROLLBACK").await;
    }
    let _ = (&mut *conn).execute(set(busy)).await;
    begun.map(|_| ()).map_err(|e| match e {
        sea_orm::sqlx::Error::Database(d) if d.message().contains("locked") => format!(
            "the SQLite file is locked by another process (a backup, a sqlite3 shell?): writes \
             wait up to database.timeout_secs ({} s) and then fail",
            busy.as_secs()
        ),
        e => e.to_string(),
    })
}
