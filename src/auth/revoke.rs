//! The one way a token stops working before its `exp`: logout, `kick_previous`, `/api/revoke`,
//! an operator. In this order, so no step can undo another: mark the rows (where the store may
//! write), forget cached verdicts here and on every node (no handshake can then be accepted
//! from a cache), then kick the live sockets on every node with the code.
//!
//! A user disabled or enabled again by an operator ([`user_changed`]) comes here too: cached
//! verdicts naming the user are dropped, and a disabled user's sockets are kicked with
//! `USER_DISABLED`. Every node hears the operator's announcement and does this for itself.
//!
//! Expiry does not come here: an expired token fails its own `exp` check on every node, so no
//! row, cache or other node needs telling; the expiry timer kicks its one socket locally.

use futures_util::future::BoxFuture;

use super::Authenticator;
use crate::error::{AppError, ErrorCode};
use crate::ids::UserId;

/// The socket side of a revocation, implemented by the realtime hub (auth never reaches into
/// socketioxide itself).
pub trait SocketKicker: Send + Sync {
    /// Tell every other node to drop cached verdicts of these tokens and users.
    fn announce_revoked(
        &self,
        token_hashes: Vec<String>,
        user_ids: Vec<UserId>,
    ) -> BoxFuture<'static, ()>;
    /// `error {code}` then a disconnect for every socket using one of these tokens or
    /// belonging to one of these users, on every node; how many sockets that was.
    fn kick(
        &self,
        token_hashes: Vec<String>,
        user_ids: Vec<UserId>,
        code: ErrorCode,
    ) -> BoxFuture<'static, usize>;
    /// `error {code}` then a disconnect for every socket of this user on THIS node.
    fn kick_user_here(&self, user_id: UserId, code: ErrorCode) -> BoxFuture<'static, usize>;
}

/// The Redis channel on which `im-server user disable|enable` tells every node.
pub const USER_CHANGES: &str = "im:user-active";

/// What `im-server user disable|enable` announces.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct UserChange {
    pub user_id: i64,
    pub active: bool,
}

/// An operator changed a user's `is_active` (heard on every node): no cached verdict may
/// still say otherwise, and a disabled user keeps no socket. Returns the sockets kicked here.
pub async fn user_changed(
    auth: &Authenticator,
    sockets: &dyn SocketKicker,
    user_id: i64,
    active: bool,
) -> usize {
    let user_id = UserId::Int(user_id);
    auth.cache()
        .invalidate_users(std::slice::from_ref(&user_id));
    match active {
        true => 0,
        false => {
            sockets
                .kick_user_here(user_id, ErrorCode::UserDisabled)
                .await
        }
    }
}

/// What to revoke, and the code the sockets get.
pub struct Revocation {
    /// [`super::store::token_hash`] of each token.
    pub token_hashes: Vec<String>,
    /// Users all of whose sockets go (`POST /api/revoke {user_ids}`); with im-server's own
    /// tables their live tokens are revoked too.
    pub user_ids: Vec<UserId>,
    pub code: ErrorCode,
}

impl Revocation {
    pub fn tokens(token_hashes: Vec<String>, code: ErrorCode) -> Revocation {
        Revocation {
            token_hashes,
            user_ids: vec![],
            code,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    /// Rows marked revoked (0 where the store is read-only).
    pub rows: u64,
    /// Live sockets disconnected, on every node.
    pub sockets: usize,
}

pub async fn revoke(
    auth: &Authenticator,
    sockets: &dyn SocketKicker,
    r: Revocation,
) -> Result<Revoked, AppError> {
    let Revocation {
        mut token_hashes,
        user_ids,
        code,
    } = r;
    if token_hashes.is_empty() && user_ids.is_empty() {
        return Ok(Revoked {
            rows: 0,
            sockets: 0,
        });
    }
    for u in &user_ids {
        let live = auth
            .store()
            .live_token_hashes(u)
            .await
            .map_err(AppError::internal)?;
        token_hashes.extend(live);
    }
    let rows = auth
        .store()
        .revoke(&token_hashes)
        .await
        .map_err(AppError::internal)?;
    auth.cache().invalidate(&token_hashes);
    auth.cache().invalidate_users(&user_ids);
    sockets
        .announce_revoked(token_hashes.clone(), user_ids.clone())
        .await;
    let kicked = sockets.kick(token_hashes, user_ids, code).await;
    Ok(Revoked {
        rows,
        sockets: kicked,
    })
}
