//! `GET /health` (bare JSON for probes) and `GET /metrics` (Prometheus text).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let database = match crate::db::ping(state.db()).await {
        Ok(()) => "ok".to_string(),
        Err(e) => {
            tracing::warn!(error = %e, "health: database ping failed");
            "down".to_string()
        }
    };
    let redis = "disabled";
    let healthy = database == "ok";
    let failing: Vec<&str> = [("database", database == "ok")]
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| name)
        .collect();
    let body = serde_json::json!({
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
