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

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    // What a request would meet: the pool answering, and (SQLite) answering from the file
    // at the configured path, not from one replaced or deleted under it.
    let same_file = state.sqlite_file().map_or(Ok(()), |f| f.check());
    let database = match (crate::db::ping(state.db()).await, same_file) {
        (Ok(()), Ok(())) => "ok",
        (Err(e), _) => {
            tracing::warn!(error = %e, "health: database ping failed");
            "down"
        }
        (_, Err(why)) => {
            tracing::warn!(reason = %why, "health: the SQLite file is not the one the server holds");
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
