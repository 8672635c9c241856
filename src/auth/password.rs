//! argon2id hashing, always on the blocking pool: a hash costs tens of milliseconds of CPU and
//! must not stall the async workers that carry every socket.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};

pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let hashed: Result<PasswordHash, _> = Argon2::default().hash_password(password.as_bytes());
        hashed
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2 hash failed: {e}"))
    })
    .await?
}

/// `false` for a wrong password and for an unparsable hash alike.
pub async fn verify(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordVerifier::<str>::verify_password(&Argon2::default(), password.as_bytes(), &hash)
            .is_ok()
    })
    .await
    .unwrap_or(false)
}
