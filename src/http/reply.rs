//! The success envelope `{"success": true, "message": str, "data": {...}}`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub struct Reply<T> {
    pub message: &'static str,
    pub data: T,
}

impl<T: Serialize> Reply<T> {
    pub fn ok(message: &'static str, data: T) -> Self {
        Reply { message, data }
    }
}

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        Json(serde_json::json!({
            "success": true,
            "message": self.message,
            "data": self.data,
        }))
        .into_response()
    }
}
