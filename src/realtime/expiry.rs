//! Token expiry of live sockets: `token_expiring` `auth.expiry_warning_secs` before `exp`, then
//! `error {code:"TOKEN_EXPIRED"}` and a disconnect at `exp`.
//!
//! One task and one timer wheel for all sockets (no task per socket, no database polling).
//! Connect, refresh and disconnect send commands; the task owns all timers.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::socket::Sid;
use tokio::sync::mpsc;
use tokio_util::time::{DelayQueue, delay_queue};

use super::NAMESPACE;
use crate::error::{AppError, ErrorCode};
use crate::state::AppState;

enum Cmd {
    Schedule { sid: Sid, expires_at: DateTime<Utc> },
    Cancel(Sid),
}

#[derive(Clone, Copy)]
enum Phase {
    Warn,
    Expire,
}

/// Handle given to socket handlers (as socketioxide state).
#[derive(Clone)]
pub struct ExpiryHandle(mpsc::UnboundedSender<Cmd>);

impl ExpiryHandle {
    /// (Re)arm the timers of one socket.
    pub fn schedule(&self, sid: Sid, expires_at: DateTime<Utc>) {
        let _ = self.0.send(Cmd::Schedule { sid, expires_at });
    }
    pub fn cancel(&self, sid: Sid) {
        let _ = self.0.send(Cmd::Cancel(sid));
    }
}

pub struct ExpiryRx(mpsc::UnboundedReceiver<Cmd>);

pub fn channel() -> (ExpiryHandle, ExpiryRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    (ExpiryHandle(tx), ExpiryRx(rx))
}

pub fn spawn<A: Adapter>(io: SocketIo<A>, state: AppState, rx: ExpiryRx) {
    tokio::spawn(run(io, state, rx.0));
}

async fn run<A: Adapter>(io: SocketIo<A>, state: AppState, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let warning = chrono::Duration::seconds(state.settings().auth.expiry_warning_secs as i64);
    let mut queue: DelayQueue<(Sid, Phase)> = DelayQueue::new();
    let mut keys: HashMap<Sid, Vec<delay_queue::Key>> = HashMap::new();
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                None => return,
                Some(Cmd::Cancel(sid)) => {
                    for k in keys.remove(&sid).unwrap_or_default() {
                        queue.try_remove(&k);
                    }
                }
                Some(Cmd::Schedule { sid, expires_at }) => {
                    for k in keys.remove(&sid).unwrap_or_default() {
                        queue.try_remove(&k);
                    }
                    let now = Utc::now();
                    let until = |t: DateTime<Utc>| (t - now).to_std().unwrap_or_default();
                    let mut ks = vec![queue.insert((sid, Phase::Expire), until(expires_at))];
                    if !warning.is_zero() && expires_at - warning > now {
                        ks.push(queue.insert((sid, Phase::Warn), until(expires_at - warning)));
                    }
                    keys.insert(sid, ks);
                }
            },
            Some(expired) = queue.next(), if !queue.is_empty() => {
                let (sid, phase) = expired.into_inner();
                if let Phase::Expire = phase {
                    keys.remove(&sid);
                }
                fire(&io, &state, sid, phase);
            }
        }
    }
}

fn fire<A: Adapter>(io: &SocketIo<A>, state: &AppState, sid: Sid, phase: Phase) {
    let Some(socket) = io.of(NAMESPACE).and_then(|ns| ns.get_socket(sid)) else {
        return;
    };
    let Some(ss) = socket.extensions.get::<super::SocketSession>() else {
        return;
    };
    let expires_at = ss.session.expires_at;
    match phase {
        Phase::Warn => {
            let left = (expires_at - Utc::now()).num_seconds().max(0);
            let _ = socket.emit(
                "token_expiring",
                &serde_json::json!({
                    "expiresAt": crate::clock::iso(expires_at),
                    "secondsLeft": left,
                }),
            );
            state.metrics().event_out("token_expiring");
        }
        Phase::Expire => {
            // A refresh may have moved the expiry after this timer was armed.
            if expires_at > Utc::now() + chrono::Duration::seconds(1) {
                return;
            }
            let _ = socket.emit("error", &AppError::new(ErrorCode::TokenExpired).to_event());
            state.metrics().event_out("error");
            state.metrics().kick(ErrorCode::TokenExpired.as_str(), 1);
            let _ = socket.disconnect();
        }
    }
}
