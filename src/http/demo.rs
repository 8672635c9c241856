//! The client-demo debug page (contract §7), compiled into the binary so `cargo run --release`
//! alone serves a working page — no files to deploy, no CDN.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::HttpState;

/// A file compiled into the binary (also the Admin UI's, `crate::realtime::admin::ui`).
pub(crate) struct Asset {
    pub(crate) path: &'static str,
    pub(crate) mime: &'static str,
    pub(crate) body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "index.html",
        mime: "text/html; charset=utf-8",
        body: include_bytes!("../../client-demo/index.html"),
    },
    Asset {
        path: "app.js",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("../../client-demo/app.js"),
    },
    Asset {
        path: "style.css",
        mime: "text/css; charset=utf-8",
        body: include_bytes!("../../client-demo/style.css"),
    },
    Asset {
        path: "vendor/socket.io.min.js",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("../../client-demo/vendor/socket.io.min.js"),
    },
];

/// The page at `/` and at `/client-demo/` (its relative asset URLs resolve under either).
pub fn router() -> Router<HttpState> {
    let mut r = Router::new()
        .route("/", get(|| async { serve("index.html") }))
        .route("/client-demo/", get(|| async { serve("index.html") }))
        .route(
            "/client-demo",
            get(|| async { Redirect::permanent("/client-demo/") }),
        );
    for a in ASSETS.iter().filter(|a| a.path != "index.html") {
        let p = a.path;
        r = r
            .route(&format!("/{p}"), get(move || async move { serve(p) }))
            .route(
                &format!("/client-demo/{p}"),
                get(move || async move { serve(p) }),
            );
    }
    r
}

fn serve(path: &str) -> Response {
    serve_embedded(ASSETS, path)
}

/// `path` from `assets` (`no-cache`: the names do not change with the content), else 404.
pub(crate) fn serve_embedded(assets: &[Asset], path: &str) -> Response {
    match assets.iter().find(|a| a.path == path) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.mime),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            a.body,
        )
            .into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}
