//! `POST /api/publish`: a backend pushes an event to users, rooms, a user type or everyone on
//! `/im`, across all nodes ("purchase completed, refresh access" to a user's open tabs).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde::Deserialize;
use serde_json::Value;

use super::HttpState;
use super::extract::{ApiJson, ApiKey};
use super::reply::Reply;
use crate::error::AppError;
use crate::realtime::Hub;
use crate::realtime::emit::{Publication, Targets};

pub fn router() -> Router<HttpState> {
    Router::new().route("/api/publish", post(publish))
}

#[derive(Deserialize)]
struct PublishBody {
    event: String,
    #[serde(default)]
    data: Value,
    #[serde(flatten)]
    targets: Targets,
}

async fn publish(
    State(hub): State<Arc<dyn Hub>>,
    _key: ApiKey,
    ApiJson(body): ApiJson<PublishBody>,
) -> Result<Reply<Value>, AppError> {
    let p = Publication::new(&body.event, body.data, &body.targets, false)
        .map_err(AppError::bad_request)?;
    let delivered = hub
        .publish(p)
        .await
        .map_err(|e| AppError::internal(anyhow::anyhow!("publish failed: {e}")))?;
    Ok(Reply::ok(
        "Published",
        serde_json::json!({ "delivered_to_sockets": delivered }),
    ))
}
