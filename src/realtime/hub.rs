//! [`Hub`]: what HTTP (and revocation) may do with sockets, independent of the adapter type:
//! kick the sockets of tokens, list a token's sockets, publish, close everything.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::socket::Sid;

use super::emit::{self, Publication};
use super::{NAMESPACE, connect, redis_driver, rooms};
use crate::auth::revoke::SocketKicker;
use crate::error::{AppError, ErrorCode};
use crate::ids::UserId;
use crate::presence::SocketInfo;
use crate::state::AppState;

/// Realtime operations the HTTP side needs. Kicks come through [`SocketKicker`], which
/// [`crate::auth::revoke::revoke`] drives.
pub trait Hub: SocketKicker + Send + Sync + 'static {
    /// Sockets currently using this token, on every node.
    fn token_sockets(&self, token_hash: String) -> BoxFuture<'static, Vec<SocketInfo>>;
    /// Emit `event` on `/im` to every socket of the target, on every node; returns how many
    /// sockets that was.
    fn publish(&self, p: Publication) -> BoxFuture<'static, Result<usize, String>>;
    /// Close every connection (graceful shutdown).
    fn close(&self) -> BoxFuture<'static, ()>;
    /// Kick the one `/im` socket `sid` on whichever node holds it, like every kick (`error`
    /// with `why`, then the disconnect, counted); `false` when no node has it (any more).
    fn kick_socket(&self, sid: Sid, why: AppError) -> BoxFuture<'static, bool>;
    /// As a [`SocketKicker`], for [`crate::auth::revoke::revoke`].
    fn as_kicker(&self) -> &dyn SocketKicker;
}

pub struct SocketHub<A: Adapter> {
    io: SocketIo<A>,
    state: AppState,
    /// With Redis: where revocations are announced so every node drops its cached auth.
    revocations: Option<redis_driver::CmDriver>,
}

impl<A: Adapter> Clone for SocketHub<A> {
    fn clone(&self) -> Self {
        SocketHub {
            io: self.io.clone(),
            state: self.state.clone(),
            revocations: self.revocations.clone(),
        }
    }
}

impl<A: Adapter> SocketHub<A> {
    pub fn new(
        io: SocketIo<A>,
        state: AppState,
        revocations: Option<redis_driver::CmDriver>,
    ) -> Self {
        SocketHub {
            io,
            state,
            revocations,
        }
    }
}

/// The Redis channel that carries revoked token hashes (and users) between nodes.
const REVOCATIONS: &str = "im:revoked";

/// One message on [`REVOCATIONS`]; a bare list of token hashes is read too (older nodes).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Wire {
    Announced(Announced),
    Tokens(Vec<String>),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Announced {
    tokens: Vec<String>,
    #[serde(default)]
    users: Vec<UserId>,
}

impl<A: Adapter> SocketKicker for SocketHub<A> {
    fn announce_revoked(
        &self,
        token_hashes: Vec<String>,
        user_ids: Vec<UserId>,
    ) -> BoxFuture<'static, ()> {
        let bus = self.revocations.clone();
        Box::pin(async move {
            let Some(bus) = bus else { return };
            use socketioxide_redis::drivers::Driver;
            let payload = serde_json::to_vec(&Announced {
                tokens: token_hashes,
                users: user_ids,
            })
            .unwrap_or_default();
            if let Err(e) = bus.publish(REVOCATIONS.into(), payload).await {
                tracing::warn!(error = %e, "could not announce a revocation to other nodes");
            }
        })
    }

    fn kick(
        &self,
        token_hashes: Vec<String>,
        user_ids: Vec<UserId>,
        code: ErrorCode,
    ) -> BoxFuture<'static, usize> {
        let hub = self.clone();
        Box::pin(async move {
            let Some(ns) = hub.io.of(NAMESPACE) else {
                return 0;
            };
            let rooms: Vec<String> = token_hashes
                .iter()
                .map(|h| rooms::token(h))
                .chain(user_ids.iter().map(rooms::user))
                .collect();
            if rooms.is_empty() {
                return 0;
            }
            hub.kick_op(ns.within(rooms), code).await
        })
    }

    fn kick_user_here(&self, user_id: UserId, code: ErrorCode) -> BoxFuture<'static, usize> {
        let hub = self.clone();
        Box::pin(async move {
            let Some(ns) = hub.io.of(NAMESPACE) else {
                return 0;
            };
            hub.kick_op(ns.local().within(rooms::user(&user_id)), code)
                .await
        })
    }
}

impl<A: Adapter> SocketHub<A> {
    /// `error {code}` + disconnect for `op`'s sockets, counted in `im_kicks_total`.
    async fn kick_op(
        &self,
        op: socketioxide::operators::BroadcastOperators<A>,
        code: ErrorCode,
    ) -> usize {
        let metrics = self.state.metrics();
        let sockets = match op.clone().fetch_sockets().await {
            Ok(s) => s.len(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list sockets to kick; kicking blind");
                0
            }
        };
        let _ = emit::emit(
            op.clone(),
            "error",
            &AppError::new(code).to_event(),
            metrics,
        )
        .await;
        if let Err(e) = op.disconnect().await {
            tracing::warn!(error = %e, code = %code, "kick: could not disconnect sockets");
        }
        metrics.kick(code.as_str(), sockets as u64);
        sockets
    }
}

impl<A: Adapter> Hub for SocketHub<A> {
    fn token_sockets(&self, token_hash: String) -> BoxFuture<'static, Vec<SocketInfo>> {
        let presence = self.state.presence().clone();
        let io = self.io.clone();
        Box::pin(async move {
            let mut list = presence.token_sockets(&token_hash).await.unwrap_or_else(|e| {
                tracing::warn!(error = %format!("{e:#}"), "presence: cannot list a token's sockets");
                vec![]
            });
            // Sockets of this node answer with their live transport (a polling socket may have
            // upgraded since it was recorded; other nodes refresh theirs on each tick).
            if let Some(ns) = io.of(NAMESPACE) {
                for info in &mut list {
                    if let Some(s) = info.id.parse().ok().and_then(|sid| ns.get_socket(sid)) {
                        info.transport = connect::transport_of(&s).as_str().to_string();
                    }
                }
            }
            list
        })
    }

    fn publish(&self, p: Publication) -> BoxFuture<'static, Result<usize, String>> {
        let io = self.io.clone();
        let state = self.state.clone();
        Box::pin(async move {
            let ns = io.of(NAMESPACE).ok_or("namespace /im is not registered")?;
            let Some(target) = p.target else {
                return Err("a publication needs a target".into());
            };
            emit::emit_counted(target.on(ns), &p.event, &p.data, state.metrics()).await
        })
    }

    fn close(&self) -> BoxFuture<'static, ()> {
        let io = self.io.clone();
        Box::pin(async move { io.close().await })
    }

    fn kick_socket(&self, sid: Sid, why: AppError) -> BoxFuture<'static, bool> {
        let hub = self.clone();
        Box::pin(async move {
            let Some(ns) = hub.io.of(NAMESPACE) else {
                return false;
            };
            let event = why.to_event();
            if let Some(s) = ns.get_socket(sid) {
                let _ = s.emit("error", &event);
                let _ = s.disconnect();
            } else {
                // Another node's: found through the adapter, which relays both steps in order
                // (a socket has no room of its own to address it by).
                let remote = match ns.fetch_sockets().await {
                    Ok(list) => list.into_iter().find(|r| r.data().id == sid),
                    Err(e) => {
                        tracing::warn!(error = %e, "kick: cannot list the cluster's sockets");
                        None
                    }
                };
                let Some(r) = remote else { return false };
                if let Err(e) = r.emit("error", &event).await {
                    tracing::warn!(error = %e, %sid, "kick: could not emit the error event");
                }
                if let Err(e) = r.disconnect().await {
                    tracing::warn!(error = %e, %sid, "kick: could not disconnect the socket");
                }
            }
            let metrics = hub.state.metrics();
            metrics.event_out("error");
            metrics.kick(why.code.as_str(), 1);
            true
        })
    }

    fn as_kicker(&self) -> &dyn SocketKicker {
        self
    }
}

/// Apply `im-server user disable|enable` announcements (every node hears them): through
/// [`revoke::user_changed`](crate::auth::revoke::user_changed), cache then kicks.
pub async fn listen_for_user_changes(
    bus: &redis_driver::CmDriver,
    state: &AppState,
    hub: Arc<dyn Hub>,
) -> anyhow::Result<()> {
    use crate::auth::revoke::{self, USER_CHANGES, UserChange};
    use futures_util::StreamExt;
    use socketioxide_redis::drivers::Driver;
    let mut stream = bus.subscribe(USER_CHANGES.into(), 1024).await?;
    let state = state.clone();
    tokio::spawn(async move {
        while let Some((_, payload)) = stream.next().await {
            match serde_json::from_slice::<UserChange>(&payload) {
                Ok(c) => {
                    let kicked =
                        revoke::user_changed(state.auth(), hub.as_kicker(), c.user_id, c.active)
                            .await;
                    tracing::info!(
                        user_id = c.user_id,
                        active = c.active,
                        kicked,
                        "user state changed by an operator"
                    );
                }
                Err(e) => tracing::warn!(error = %e, "ignoring a malformed user change message"),
            }
        }
    });
    Ok(())
}

/// Drop cached auth of tokens another node revoked. The subscription is resumed by the driver
/// after a Redis restart.
pub async fn listen_for_revocations(
    bus: &redis_driver::CmDriver,
    state: &AppState,
) -> anyhow::Result<()> {
    use futures_util::StreamExt;
    use socketioxide_redis::drivers::Driver;
    let mut stream = bus.subscribe(REVOCATIONS.into(), 1024).await?;
    let state = state.clone();
    tokio::spawn(async move {
        while let Some((_, payload)) = stream.next().await {
            match serde_json::from_slice::<Wire>(&payload) {
                Ok(Wire::Tokens(hashes)) => state.auth().cache().invalidate(&hashes),
                Ok(Wire::Announced(a)) => {
                    state.auth().cache().invalidate(&a.tokens);
                    state.auth().cache().invalidate_users(&a.users);
                }
                Err(e) => tracing::warn!(error = %e, "ignoring a malformed revocation message"),
            }
        }
    });
    Ok(())
}
