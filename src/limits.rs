//! Contract §11: what one node, one user, one address and one socket may take.
//!
//! [`Limits`] is asked by [`Authenticator`](crate::auth::Authenticator) inside the handshake,
//! so every refusal gets the handshake's failure mode, its log line and
//! `im_handshakes_total{result}` like any other verdict: the address's handshake rate before
//! the token is read (refused handshakes count too), the node's and the user's connection
//! places after it was accepted. A place is a [`ConnectionSlot`] the socket holds; dropping
//! it gives the place back. Rates are governor's (GCRA), the per-user count is
//! [`Presence::take_place`] (cluster-wide through Redis, with the nodes' leases).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitsSettings;
use crate::error::ErrorCode;
use crate::ids::UserId;
use crate::presence::Presence;

pub struct Limits {
    settings: LimitsSettings,
    /// Authenticated sockets holding a place on this node.
    node_places: AtomicU32,
    handshakes: Option<DefaultKeyedRateLimiter<IpAddr>>,
    presence: Option<Arc<dyn Presence>>,
}

impl Limits {
    /// `presence` counts the per-user places (absent: no per-user limit can apply).
    pub fn new(settings: &LimitsSettings, presence: Option<Arc<dyn Presence>>) -> Arc<Limits> {
        Arc::new(Limits {
            handshakes: NonZeroU32::new(settings.handshakes_per_ip_per_minute)
                .map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            settings: settings.clone(),
            node_places: AtomicU32::new(0),
            presence,
        })
    }

    /// No limit at all (`token inspect`, embedders that build an Authenticator alone).
    pub fn unlimited() -> Arc<Limits> {
        Limits::new(&LimitsSettings::default(), None)
    }

    /// Before a handshake's token is read: the address's handshake rate.
    pub fn handshake_from(&self, client: Option<IpAddr>) -> Result<(), ErrorCode> {
        match (&self.handshakes, client) {
            (Some(rate), Some(ip)) if rate.check_key(&ip).is_err() => Err(ErrorCode::RateLimited),
            _ => Ok(()),
        }
    }

    /// After the token was accepted: a place on this node and among the user's places.
    pub async fn admit(self: &Arc<Self>, user_id: UserId) -> Result<ConnectionSlot, ErrorCode> {
        let max = self.settings.max_connections;
        let taken = self.node_places.fetch_add(1, Ordering::SeqCst);
        // The slot exists from here: an early return gives the node's place back.
        let mut slot = SlotInner {
            limits: self.clone(),
            user_id: user_id.clone(),
            user_place: false,
        };
        if max > 0 && taken >= max {
            return Err(ErrorCode::ConnectionLimit);
        }
        let per_user = self.settings.max_connections_per_user;
        if let (Some(presence), true) = (&self.presence, per_user > 0) {
            match presence.take_place(&user_id, per_user).await {
                Ok(true) => slot.user_place = true,
                Ok(false) => return Err(ErrorCode::ConnectionLimit),
                // A count that cannot be read does not lock every user out.
                Err(e) => tracing::warn!(error = %format!("{e:#}"), user_id = %user_id,
                    "limits: the per-user connection count did not answer; admitting"),
            }
        }
        Ok(ConnectionSlot(Arc::new(slot)))
    }

    /// Authenticated sockets holding a place on this node now.
    pub fn node_connections(&self) -> u32 {
        self.node_places.load(Ordering::SeqCst)
    }

    /// A fresh event budget for one socket (`None`: events are not limited).
    pub fn event_budget(&self) -> Option<EventBudget> {
        NonZeroU32::new(self.settings.events_per_socket_per_second)
            .map(|n| EventBudget(Arc::new(RateLimiter::direct(Quota::per_second(n)))))
    }

    /// Forget the rates of addresses that have fully recovered (called periodically).
    pub fn housekeeping(&self) {
        if let Some(rate) = &self.handshakes {
            rate.retain_recent();
            rate.shrink_to_fit();
        }
    }
}

/// One socket's place on this node (and among its user's): held in the socket's extensions,
/// given back when the last clone drops (disconnect, or a socket that never got going).
#[derive(Clone)]
pub struct ConnectionSlot(#[allow(dead_code)] Arc<SlotInner>);

struct SlotInner {
    limits: Arc<Limits>,
    user_id: UserId,
    user_place: bool,
}

impl Drop for SlotInner {
    fn drop(&mut self) {
        self.limits.node_places.fetch_sub(1, Ordering::SeqCst);
        if !self.user_place {
            return;
        }
        let (Some(presence), Ok(rt)) = (
            self.limits.presence.clone(),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        let user_id = self.user_id.clone();
        rt.spawn(async move {
            if let Err(e) = presence.give_back_place(&user_id).await {
                tracing::warn!(error = %format!("{e:#}"), user_id = %user_id,
                    "limits: could not give a connection place back (the node's lease drops it)");
            }
        });
    }
}

/// One socket's event rate (`limits.events_per_socket_per_second`).
#[derive(Clone)]
pub struct EventBudget(Arc<DefaultDirectRateLimiter>);

impl EventBudget {
    /// Spend one event; `false` when the socket is over its rate.
    pub fn spend(&self) -> bool {
        self.0.check().is_ok()
    }
}
