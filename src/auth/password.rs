//! argon2id hashing on a small pool of dedicated threads: a hash costs tens of milliseconds of
//! CPU and 19 MiB of memory, and must not stall the async workers that carry every socket.
//!
//! Why not `spawn_blocking`: the blocking pool grows to hundreds of threads, and glibc gives
//! each thread its own arena that keeps its 19 MiB block after the hash. Measured: 50 logins in
//! a burst left the server at 1.6 GB RSS. One thread per core bounds that to a few blocks, and
//! queued logins wait a few milliseconds instead.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

fn pool() -> &'static Sender<Job> {
    // `Sender` is `Sync`: callers share it without a lock; the workers share the receiver.
    static POOL: OnceLock<Sender<Job>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        let rx: Arc<Mutex<Receiver<Job>>> = Arc::new(Mutex::new(rx));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("im-argon2-{i}"))
                .spawn(move || {
                    loop {
                        // A statement of its own, so the lock is released before the job runs
                        // (in a `while let` scrutinee the guard would live through the body).
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok(job) = job else { return };
                        job();
                    }
                })
                .expect("spawning a hashing thread");
        }
        tx
    })
}

/// Run `f` on the hashing pool and wait for its result without blocking the runtime.
pub(crate) async fn on_pool<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    pool()
        .send(job)
        .map_err(|_| anyhow::anyhow!("the hashing pool has stopped"))?;
    Ok(rx.await?)
}

pub async fn hash(password: String) -> anyhow::Result<String> {
    on_pool(move || {
        let hashed: Result<PasswordHash, _> = Argon2::default().hash_password(password.as_bytes());
        hashed
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2 hash failed: {e}"))
    })
    .await?
}

/// `false` for a wrong password and for an unparsable hash alike.
pub async fn verify(password: String, hash: String) -> bool {
    on_pool(move || {
        PasswordVerifier::<str>::verify_password(&Argon2::default(), password.as_bytes(), &hash)
            .is_ok()
    })
    .await
    .unwrap_or(false)
}
