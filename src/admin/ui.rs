//! The Admin UI page at `/admin/`: the `@socket.io/admin-ui` build vendored in
//! `admin-ui/vendor/` (pinned, refreshed by `admin-ui/vendor.sh`), compiled into the binary
//! like client-demo, so it needs neither files on disk nor the internet. Without `[admin]`
//! credentials none of these routes exist (the API's 404 answers).

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::error::AppError;
use crate::state::AppState;

struct Asset {
    path: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = include!("../../admin-ui/vendor/assets.rs");

/// `/admin/` and its assets, when `[admin]` is on; an empty router otherwise.
pub fn router(state: &AppState) -> Router<AppState> {
    if !state.settings().admin.enabled() {
        return Router::new();
    }
    Router::new()
        .route("/admin", get(|| async { Redirect::permanent("/admin/") }))
        .route("/admin/", get(|| async { serve("index.html") }))
        .route(
            "/admin/{*path}",
            get(|Path(path): Path<String>| async move { serve(&path) }),
        )
}

fn serve(path: &str) -> Response {
    match ASSETS.iter().find(|a| a.path == path) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.mime),
                // The file names of the build carry content hashes; index.html does not.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            a.body,
        )
            .into_response(),
        None => AppError::bad_request(format!("no file /admin/{path} in the Admin UI"))
            .with_status_not_found()
            .into_response(),
    }
}
