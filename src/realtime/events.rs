//! Every event an authenticated `/im` socket handles, registered in one list.
//!
//! Payloads are parsed with `TryData` so a malformed one becomes an ack
//! `{ok:false, code:"BAD_REQUEST"}`, never a panic or a closed socket.

use serde_json::Value;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Event, SocketRef, State, TryData};

use super::expiry::ExpiryHandle;
use super::{SocketSession, rooms};
use crate::auth::{self, source};
use crate::error::{AppError, ErrorCode};
use crate::state::AppState;

/// Event names we count by name in metrics; anything else is counted as "unknown".
const KNOWN: &[&str] = &["auth:refresh"];

pub fn register<A: Adapter>(s: &SocketRef<A>) {
    s.on("auth:refresh", on_refresh::<A>);
    s.on_fallback(on_unknown::<A>);
}

fn ack<A: Adapter>(ack: AckSender<A>, result: Result<Value, AppError>) {
    let body = match result {
        Ok(v) => v,
        Err(e) => e.to_ack(),
    };
    let _ = ack.send(&body);
}

/// `auth:refresh {token}`: switch this socket to a newer token of the same user, keeping the
/// connection. On failure the socket keeps its old token.
async fn on_refresh<A: Adapter>(
    s: SocketRef<A>,
    TryData(data): TryData<Value>,
    reply: AckSender<A>,
    State(state): State<AppState>,
    State(expiry): State<ExpiryHandle>,
) {
    state.metrics().event_in("auth:refresh");
    let result = refresh(&s, data.ok(), &state, &expiry).await;
    if let Err(e) = &result {
        tracing::info!(sid = %s.id, code = %e.code, "auth:refresh refused");
    }
    ack(reply, result);
}

async fn refresh<A: Adapter>(
    s: &SocketRef<A>,
    data: Option<Value>,
    state: &AppState,
    expiry: &ExpiryHandle,
) -> Result<Value, AppError> {
    let raw = data
        .as_ref()
        .and_then(|d| d.get("token"))
        .and_then(Value::as_str)
        .and_then(source::RawToken::parse)
        .ok_or_else(|| AppError::bad_request("auth:refresh needs {token: \"<jwt>\"}"))?;
    let current = s
        .extensions
        .get::<SocketSession>()
        .ok_or_else(|| AppError::new(ErrorCode::Internal))?;
    let found = source::Found {
        source: crate::config::TokenSource::Auth,
        token: raw,
    };
    let session = auth::verify_token(state, &found).await?;
    if session.user.id != current.session.user.id {
        return Err(AppError::with_message(
            ErrorCode::Forbidden,
            "auth:refresh must use a token of the same user; reconnect to switch users",
        ));
    }
    s.leave(rooms::token(&current.session.token_hash));
    s.join(rooms::token(&session.token_hash));
    expiry.schedule(s.id, session.expires_at);
    let expires_at = session.expires_at;
    s.extensions.insert(SocketSession {
        session,
        info: current.info,
    });
    Ok(serde_json::json!({ "ok": true, "expiresAt": crate::clock::iso(expires_at) }))
}

/// Unknown events: an ack `BAD_REQUEST` if one was asked for; the socket stays open.
async fn on_unknown<A: Adapter>(
    Event(event): Event,
    reply: AckSender<A>,
    State(state): State<AppState>,
) {
    state
        .metrics()
        .event_in(if KNOWN.contains(&event.as_str()) {
            &event
        } else {
            "unknown"
        });
    ack(
        reply,
        Err(AppError::bad_request(format!(
            "unknown event {:?}",
            event.chars().take(64).collect::<String>()
        ))),
    );
}
