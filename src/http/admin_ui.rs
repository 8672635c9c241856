//! The Admin UI page at `/admin/`: the `@socket.io/admin-ui` build vendored in
//! `admin-ui/vendor/` (pinned, refreshed by `admin-ui/vendor.sh`), compiled into the binary
//! like client-demo, so it needs neither files on disk nor the internet. Without `[admin]`
//! credentials none of these routes exist (the API's 404 answers).

use axum::Router;
use axum::extract::Path;
use axum::response::Redirect;
use axum::routing::get;

use crate::http::demo::{Asset, serve_embedded};
use crate::state::AppState;

const ASSETS: &[Asset] = include!("../../admin-ui/vendor/assets.rs");

/// `/admin/` and its assets, when `[admin]` is on; an empty router otherwise.
pub fn router(state: &AppState) -> Router<crate::http::HttpState> {
    if !state.settings().admin.enabled() {
        return Router::new();
    }
    Router::new()
        .route("/admin", get(|| async { Redirect::permanent("/admin/") }))
        .route(
            "/admin/",
            get(|| async { serve_embedded(ASSETS, "index.html") }),
        )
        .route(
            "/admin/{*path}",
            get(|Path(path): Path<String>| async move { serve_embedded(ASSETS, &path) }),
        )
}
