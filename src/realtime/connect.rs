//! The `/im` handshake and connection lifecycle.
//!
//! `handshake` (connect middleware) runs [`auth::authenticate`]. In `strict` mode a failure is
//! returned, and socketioxide answers `connect_error` with the code as message. In `legacy`
//! mode the middleware cannot emit (the socket is not connected yet), so it stores the
//! rejection and `on_connect` emits `error {code,message}` and disconnects, registering no
//! handler for that socket.

use chrono::Utc;
use serde_json::Value;
use socketioxide::TransportType;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{SocketRef, State, TryData};
use socketioxide::socket::DisconnectReason;

use super::events::Admission;
use super::expiry::ExpiryHandle;
use super::{SocketSession, emit, events, rooms};
use crate::auth::authenticator::Admitted;
use crate::auth::{AuthRequest, Purpose, Transport};
use crate::config::FailureMode;
use crate::error::AppError;
use crate::net;
use crate::presence::SocketInfo;
use crate::state::AppState;

/// Outcome of the middleware, handed to `on_connect` through the socket's extensions.
#[derive(Clone)]
enum Handshake {
    Accepted(Box<Admitted>, Admission),
    Rejected(Value),
}

pub fn transport_of<A: Adapter>(s: &SocketRef<A>) -> Transport {
    match s.transport_type() {
        TransportType::Websocket => Transport::WebSocket,
        TransportType::Polling => Transport::Polling,
    }
}

pub async fn handshake<A: Adapter>(
    s: SocketRef<A>,
    TryData(auth): TryData<Value>,
    State(state): State<AppState>,
    State(events): State<events::Events>,
) -> Result<(), AppError> {
    let payload = auth.ok();
    let req = AuthRequest {
        purpose: Purpose::Handshake,
        transport: transport_of(&s),
        sources: &state.settings().auth.token_sources,
        parts: s.req_parts(),
        auth_payload: payload.as_ref(),
    };
    let verdict = state
        .auth()
        .admit_with(&req, async |session| {
            ask_hooks(&s, &state, &events, &req, session).await
        })
        .await;
    match verdict {
        Ok((admitted, admission)) => {
            s.extensions
                .insert(Handshake::Accepted(Box::new(admitted), admission));
            Ok(())
        }
        Err(e) if state.settings().auth.failure_mode == FailureMode::Strict => Err(e),
        Err(e) => {
            s.extensions.insert(Handshake::Rejected(e.to_event()));
            Ok(())
        }
    }
}

/// Ask the lifecycle hooks (the bridge's `on_connect`) about an authenticated socket; their
/// refusal is the handshake's verdict (the authenticator logs and counts it).
async fn ask_hooks<A: Adapter>(
    s: &SocketRef<A>,
    state: &AppState,
    events: &events::Events,
    req: &AuthRequest<'_>,
    session: &crate::auth::Session,
) -> Result<Admission, AppError> {
    let Some(hooks) = events.hooks() else {
        return Ok(Admission::default());
    };
    let ctx = events::ConnectCtx {
        state,
        parts: req.parts,
        session,
        socket_id: &s.id.to_string(),
        transport: req.transport,
        auth: req.auth_payload,
    };
    hooks.on_connect(ctx).await
}

pub async fn on_connect<A: Adapter>(
    s: SocketRef<A>,
    State(state): State<AppState>,
    State(expiry): State<ExpiryHandle>,
) {
    let (Admitted { session, slot }, admission) = match s.extensions.remove::<Handshake>() {
        Some(Handshake::Accepted(admitted, admission)) => (*admitted, admission),
        Some(Handshake::Rejected(event)) => {
            let _ = s.emit("error", &event);
            state.metrics().event_out("error");
            let _ = s.disconnect();
            return;
        }
        None => {
            // Unreachable while the middleware is registered; fail closed if it ever is not.
            let _ = s.disconnect();
            return;
        }
    };
    let parts = s.req_parts();
    let info = SocketInfo {
        id: s.id.to_string(),
        connected_at: Utc::now(),
        ip: net::client_ip(parts, &state.settings().server.trust_proxy).map(|ip| ip.to_string()),
        user_agent: net::header(parts, "user-agent").map(str::to_string),
        transport: transport_of(&s).as_str().to_string(),
    };
    s.join([
        rooms::user(&session.user.id),
        rooms::user_type(&session.user.user_type),
        rooms::token(&session.token_hash),
    ]);
    s.join(rooms::app_rooms(admission.join));
    expiry.schedule(s.id, session.expires_at);
    if let Some(token_id) = session.token_id {
        state.auth().store().touch(token_id);
    }
    // Where a reconnecting client resumes `messages:sync` from; null if the lookup fails.
    let last_message_id = crate::chat::sync::last_id(state.db(), &session.user.id)
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "lastMessageId lookup failed"))
        .ok()
        .flatten();
    let mut connected = serde_json::json!({
        "userId": session.user.id,
        "username": session.user.username,
        "userType": session.user.user_type,
        "displayName": session.user.display_name,
        "socketId": s.id.to_string(),
        "expiresAt": crate::clock::iso(session.expires_at),
        "serverTime": crate::clock::now_iso(),
        "lastMessageId": last_message_id,
    });
    if let Some(app) = admission.app {
        connected["app"] = app;
    }
    let ss = SocketSession { session, info };
    let entry = ss.presence_entry();
    s.extensions.insert(ss);
    // Held while the socket lives; on_disconnect (or the socket's drop) gives the place back.
    s.extensions.insert(slot);
    if let Some(budget) = state.auth().limits().event_budget() {
        s.extensions.insert(budget);
    }
    events::register(&s);
    s.on_disconnect(on_disconnect::<A>);
    state.metrics().connections.inc();
    let _ = s.emit("connected", &connected);
    state.metrics().event_out("connected");
    match state.presence().socket_up(&entry).await {
        Ok(true) => {
            emit::announce_presence(&s.broadcast(), state.metrics(), &entry.user_id, true).await
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "presence: could not record a socket"),
    }
}

async fn on_disconnect<A: Adapter>(
    s: SocketRef<A>,
    reason: DisconnectReason,
    State(state): State<AppState>,
    State(expiry): State<ExpiryHandle>,
    State(events): State<events::Events>,
) {
    expiry.cancel(s.id);
    state.metrics().connections.dec();
    s.extensions.remove::<crate::limits::ConnectionSlot>();
    let Some(ss) = s.extensions.get::<SocketSession>() else {
        return;
    };
    tracing::debug!(sid = %s.id, user_id = %ss.session.user.id, %reason, "socket disconnected");
    if reason == DisconnectReason::SlowConsumer {
        // Cut off rather than left connected with holes (contract §4): it reconnects and
        // catches up with messages:sync.
        tracing::warn!(sid = %s.id, user_id = %ss.session.user.id, "SLOW_CONSUMER: its outgoing queue stayed full; disconnected");
        state.metrics().kick("SLOW_CONSUMER", 1);
    }
    if let Some(hooks) = events.hooks().cloned() {
        let gone = events::Departure {
            user: ss.session.user.clone(),
            socket_id: s.id.to_string(),
            reason: socketio_reason(reason).to_string(),
        };
        tokio::spawn(async move { hooks.on_disconnect(gone).await });
    }
    let entry = ss.presence_entry();
    match state.presence().socket_down(&entry).await {
        Ok(true) => {
            emit::announce_presence(&s.broadcast(), state.metrics(), &entry.user_id, false).await
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "presence: could not forget a socket"),
    }
}

/// The reason as Node's socket.io names it (what a NestJS `handleDisconnect` saw).
fn socketio_reason(reason: DisconnectReason) -> &'static str {
    match reason {
        DisconnectReason::TransportClose => "transport close",
        DisconnectReason::MultipleHttpPollingError | DisconnectReason::PacketParsingError => {
            "parse error"
        }
        DisconnectReason::TransportError => "transport error",
        DisconnectReason::HeartbeatTimeout => "ping timeout",
        DisconnectReason::ClientNSDisconnect => "client namespace disconnect",
        DisconnectReason::ServerNSDisconnect => "server namespace disconnect",
        DisconnectReason::ClosingServer => "server shutting down",
        // Node has no such reason: its nearest is the transport giving up.
        DisconnectReason::SlowConsumer => "transport error",
    }
}
