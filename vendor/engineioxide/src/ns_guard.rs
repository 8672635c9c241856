//! im-server addition: an Engine.IO session that holds no Socket.IO namespace is closed after
//! a while, and the namespace CONNECTs one session may send are bounded.
//!
//! socketioxide closes a session that never connects a namespace within `connect_timeout`, but
//! not one whose CONNECT was accepted and then disconnected (a refused handshake in the
//! NestJS-style legacy mode), nor one that was refused with CONNECT_ERROR and keeps trying: such
//! sessions stayed open forever, answering pings, and one could send CONNECTs without end. The
//! session sees every Socket.IO packet in both directions, so it keeps the set of connected
//! namespaces itself: the server's CONNECT (`0<ns>`) adds, a DISCONNECT (`1<ns>`) either way
//! removes, a CONNECT_ERROR (`4<ns>`) leaves it as it is; whenever it becomes (or stays) empty
//! a timer is armed, and the session is closed if it is still empty when it fires.
//!
//! Off unless [`configure`] was called (a process-wide setting: socketioxide's builder has no
//! way to pass new engine options through).

use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

/// The bounds of every session created after [`configure`].
#[derive(Debug, Clone, Copy)]
pub struct NsGuardConfig {
    /// How long a session may hold no namespace after a CONNECT was answered.
    pub idle_timeout: Duration,
    /// CONNECT packets one session may send; the next one closes it.
    pub max_connects: u32,
}

static CONFIG: RwLock<Option<NsGuardConfig>> = RwLock::new(None);

/// Turn the guard on (or change it) for sessions created from now on.
pub fn configure(config: NsGuardConfig) {
    *CONFIG.write().unwrap_or_else(|e| e.into_inner()) = Some(config);
}

fn current() -> Option<NsGuardConfig> {
    *CONFIG.read().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
struct State {
    namespaces: Vec<Box<str>>,
    connects: u32,
    /// Bumped on every change, so a timer armed before it knows it is stale.
    generation: u64,
}

type Closer = Arc<dyn Fn() + Send + Sync>;

pub(crate) struct NsGuard {
    config: NsGuardConfig,
    state: Arc<Mutex<State>>,
    close: OnceLock<Closer>,
}

/// The Socket.IO packet type and namespace of a text message (`42/im,[...]` → ('2', "/im")).
fn type_and_ns(msg: &str) -> Option<(u8, &str)> {
    let kind = *msg.as_bytes().first()?;
    let rest = &msg[1..];
    let ns = match rest.strip_prefix('/') {
        Some(_) => rest.split(',').next().unwrap_or(rest),
        None => "/",
    };
    Some((kind, ns))
}

impl NsGuard {
    /// A guard for a new session, when the guard is configured.
    pub(crate) fn new() -> Option<NsGuard> {
        current().map(|config| NsGuard {
            config,
            state: Arc::default(),
            close: OnceLock::new(),
        })
    }

    /// How to close the session (set once the session is shared).
    pub(crate) fn set_closer(&self, close: Closer) {
        let _ = self.close.set(close);
    }

    /// A packet from the client; `false` when the session must be closed instead.
    pub(crate) fn incoming(&self, msg: &str) -> bool {
        let Some((kind, ns)) = type_and_ns(msg) else {
            return true;
        };
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match kind {
            b'0' => {
                s.connects += 1;
                s.connects <= self.config.max_connects
            }
            b'1' => {
                s.namespaces.retain(|n| &**n != ns);
                self.arm_if_empty(&mut s);
                true
            }
            _ => true,
        }
    }

    /// A packet to the client.
    pub(crate) fn outgoing(&self, msg: &str) {
        let Some((kind, ns)) = type_and_ns(msg) else {
            return;
        };
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match kind {
            b'0' if !s.namespaces.iter().any(|n| &**n == ns) => {
                s.namespaces.push(ns.into());
                s.generation += 1;
            }
            b'1' => {
                s.namespaces.retain(|n| &**n != ns);
                self.arm_if_empty(&mut s);
            }
            b'4' => self.arm_if_empty(&mut s),
            _ => {}
        }
    }

    fn arm_if_empty(&self, s: &mut State) {
        s.generation += 1;
        let (Some(close), true) = (self.close.get().cloned(), s.namespaces.is_empty()) else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (state, generation, wait) =
            (self.state.clone(), s.generation, self.config.idle_timeout);
        rt.spawn(async move {
            tokio::time::sleep(wait).await;
            let idle = {
                let s = state.lock().unwrap_or_else(|e| e.into_inner());
                s.generation == generation && s.namespaces.is_empty()
            };
            if idle {
                #[cfg(feature = "tracing")]
                tracing::debug!("closing a session that holds no namespace");
                close();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn namespaces_of_packets() {
        assert_eq!(type_and_ns("0/im,{}"), Some((b'0', "/im")));
        assert_eq!(type_and_ns("1/im,"), Some((b'1', "/im")));
        assert_eq!(type_and_ns("4/im,{\"message\":\"x\"}"), Some((b'4', "/im")));
        assert_eq!(type_and_ns("0{\"sid\":\"x\"}"), Some((b'0', "/")));
        assert_eq!(type_and_ns("1"), Some((b'1', "/")));
        assert_eq!(type_and_ns(""), None);
    }

    fn guard(max_connects: u32) -> (NsGuard, Arc<AtomicBool>) {
        let g = NsGuard {
            config: NsGuardConfig {
                idle_timeout: Duration::from_millis(50),
                max_connects,
            },
            state: Arc::default(),
            close: OnceLock::new(),
        };
        let closed = Arc::new(AtomicBool::new(false));
        let c = closed.clone();
        g.set_closer(Arc::new(move || c.store(true, Ordering::SeqCst)));
        (g, closed)
    }

    #[tokio::test]
    async fn a_session_left_without_namespace_is_closed_and_one_with_a_namespace_is_not() {
        let (g, closed) = guard(10);
        g.outgoing("0/im,{\"sid\":\"a\"}");
        g.outgoing("0{\"sid\":\"b\"}");
        g.outgoing("1/im,"); // "/" is still connected
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!closed.load(Ordering::SeqCst));
        assert!(g.incoming("1"));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(closed.load(Ordering::SeqCst));

        let (g, closed) = guard(10);
        g.outgoing("4/im,{\"message\":\"TOKEN_MISSING\"}");
        g.outgoing("0/im,{\"sid\":\"a\"}"); // a later CONNECT succeeded
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!closed.load(Ordering::SeqCst));
    }

    #[test]
    fn connects_are_bounded() {
        let (g, _) = guard(2);
        assert!(g.incoming("0/im,{}"));
        assert!(g.incoming("0/im,{}"));
        assert!(!g.incoming("0/im,{}"));
        assert!(g.incoming("2"), "other packets are not counted");
    }
}
