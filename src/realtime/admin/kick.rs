//! Disconnecting one `/im` socket by id, on whichever node holds it, the way every kick is
//! done (see `Hub::kick_tokens`): `error {code, message}` first, then the server disconnect,
//! counted in `im_kicks_total{reason}`.

use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::socket::Sid;

use crate::error::{AppError, ErrorCode};
use crate::realtime::NAMESPACE as IM;
use crate::state::AppState;

pub const OPERATOR_MESSAGE: &str =
    "an operator disconnected this socket from the Admin UI; reconnect if you still need it";

/// Kick socket `sid` with `FORBIDDEN`; `false` when no node has it (any more).
pub async fn kick_socket<A: Adapter>(io: &SocketIo<A>, state: &AppState, sid: Sid) -> bool {
    let Some(ns) = io.of(IM) else { return false };
    let event = AppError::with_message(ErrorCode::Forbidden, OPERATOR_MESSAGE).to_event();
    let code = ErrorCode::Forbidden.as_str();
    if let Some(s) = ns.get_socket(sid) {
        let _ = s.emit("error", &event);
        let _ = s.disconnect();
    } else {
        // Another node's socket: find it through the adapter, which relays both steps in order.
        let remote = match ns.fetch_sockets().await {
            Ok(list) => list.into_iter().find(|r| r.data().id == sid),
            Err(e) => {
                tracing::warn!(error = %e, "admin kick: cannot list the cluster's sockets");
                None
            }
        };
        let Some(r) = remote else { return false };
        if let Err(e) = r.emit("error", &event).await {
            tracing::warn!(error = %e, %sid, "admin kick: could not emit error event");
        }
        if let Err(e) = r.disconnect().await {
            tracing::warn!(error = %e, %sid, "admin kick: could not disconnect the socket");
        }
    }
    state.metrics().event_out("error");
    state.metrics().kick(code, 1);
    true
}
