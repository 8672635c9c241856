//! `GET /health` (bare JSON for probes) and `GET /metrics` (Prometheus text).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use super::HttpState;
use crate::state::AppState;

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
}

/// Why a request would not get its answer from the database now, if it would not: the pool
/// answering, and for SQLite answering from the file at the configured path (not one replaced
/// or deleted under it) with no other process holding the lock a write needs.
async fn database_fault(state: &AppState) -> Option<String> {
    if let Some(Err(why)) = state.sqlite_file().map(|f| f.check()) {
        return Some(why);
    }
    if let Err(e) = crate::db::ping(state.db()).await {
        return Some(format!("the database did not answer: {e}"));
    }
    state.sqlite_file()?;
    let busy = state.settings().database.timeout();
    let wait = busy.min(std::time::Duration::from_secs(1));
    let pool = state.db().get_sqlite_connection_pool();
    crate::db::probe_write_lock(pool, wait, busy).await.err()
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let database_reason = database_fault(&state).await;
    let database = match &database_reason {
        None => "ok",
        Some(why) => {
            tracing::warn!(reason = %why, "health: database unavailable");
            "down"
        }
    };
    let redis = match state.presence().ping().await {
        None => "disabled",
        Some(Ok(())) => "ok",
        Some(Err(e)) => {
            tracing::warn!(error = %e, "health: redis ping failed");
            "down"
        }
    };
    // `[external]`: the backend's tables every handshake reads.
    let external = match state.auth().store().ping().await {
        None => None,
        Some(Ok(())) => Some("ok"),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "health: external.url ping failed");
            Some("down")
        }
    };
    let failing: Vec<&str> = [("database", database), ("redis", redis)]
        .into_iter()
        .chain(external.map(|s| ("external", s)))
        .into_iter()
        .filter(|(_, s)| *s == "down")
        .map(|(name, _)| name)
        .collect();
    let healthy = failing.is_empty();
    let mut body = serde_json::json!({
        "status": if healthy { "ok" } else { "unavailable" },
        "failing": failing,
        "database": database,
        "redis": redis,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.uptime_secs(),
        "connections": state.metrics().connections.get(),
        "node_id": state.node_id(),
        "config_fingerprint": state.config_fingerprint(),
    });
    if let Some(external) = external {
        body["external"] = serde_json::json!(external);
    }
    if let Some(why) = database_reason {
        body["database_reason"] = serde_json::json!(why);
    }
    if redis == "ok"
        && let Ok(Some(nodes)) = state.presence().nodes().await
    {
        // Nodes that verify tokens differently (secret, encoding, algorithms, issuer, audience).
        let fingerprints: std::collections::HashSet<&str> = nodes
            .iter()
            .map(|n| n.config_fingerprint.as_str())
            .collect();
        body["config_drift"] = serde_json::json!(fingerprints.len() > 1);
        body["nodes"] = serde_json::json!(nodes);
    }
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(),
    )
}
