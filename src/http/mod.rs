//! The HTTP API (contract §3): one `router()` per module, layers in one place.
//!
//! Layer order matters: CORS must wrap the Socket.IO layer (else preflights to /socket.io/
//! fail), and request tracing/metrics wrap only the HTTP routes (not every long-poll).

pub mod admin_ui;
pub mod auth;
pub mod debug;
pub mod demo;
pub mod extract;
pub mod health;
pub mod inspect;
pub mod messages;
pub mod publish;
pub mod reply;
pub mod revoke;
pub mod wrong_path;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{FromRef, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::error::AppError;
use crate::realtime::{Hub, Realtime};
use crate::state::AppState;

/// What HTTP handlers extract: the shared state, and beside it the hub that reaches sockets
/// (`State<AppState>` and `State<Arc<dyn Hub>>` both work through `FromRef`).
#[derive(Clone, FromRef)]
pub struct HttpState {
    pub app: AppState,
    pub hub: Arc<dyn Hub>,
}

pub fn router(state: AppState, realtime: Realtime<impl socketioxide::adapter::Adapter>) -> Router {
    let Realtime {
        layer: socketio,
        hub,
    } = realtime;
    let http_state = HttpState {
        app: state.clone(),
        hub,
    };
    let api = Router::new()
        .merge(health::router())
        .merge(auth::router())
        .merge(messages::router())
        .merge(publish::router())
        .merge(revoke::router())
        .merge(demo::router())
        .merge(debug::router())
        .merge(inspect::router())
        .merge(admin_ui::router(&state))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        // Spans record the path only: a query may carry a token (`?token=`).
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            tracing::debug_span!("http", method = %req.method(), path = %req.uri().path())
        }))
        .with_state(http_state);
    api.layer(
        ServiceBuilder::new()
            .layer(cors(&state))
            .layer(middleware::from_fn(wrong_path::guard))
            .map_request(compact_request)
            .layer(socketio),
    )
}

/// Copy the request line and headers out of hyper's read buffer.
///
/// hyper parses headers and the URI as slices of its 8 KiB connection read buffer, and
/// socketioxide keeps every socket's request `Parts` for its whole life (`req_parts()`), so
/// each idle socket pinned that whole buffer. Measured with massif: ~4.5 KiB of heap per idle
/// connection, and more in RSS. A few hundred bytes of copies let the buffer go.
fn compact_request<B>(req: http::Request<B>) -> http::Request<B> {
    let (mut parts, body) = req.into_parts();
    let mut headers = http::HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in parts.headers.iter() {
        if let Ok(v) = http::HeaderValue::from_bytes(value.as_bytes()) {
            headers.append(name.clone(), v);
        }
    }
    parts.headers = headers;
    if let Ok(uri) = http::Uri::try_from(parts.uri.to_string()) {
        // axum's Router already stored the original URI: it points into the same buffer.
        parts
            .extensions
            .insert(axum::extract::OriginalUri(uri.clone()));
        parts.uri = uri;
    }
    http::Request::from_parts(parts, body)
}

async fn not_found(method: Method, uri: axum::http::Uri) -> AppError {
    AppError::bad_request(format!("no route for {method} {}", uri.path())).with_status_not_found()
}

/// `im_http_requests_total{route,status}`: labelled by the route template, never the raw path.
async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let resp = next.run(req).await;
    state
        .metrics()
        .http(&route, resp.status().as_u16(), started.elapsed());
    resp
}

/// CORS from `cors.origins`: any origin in development unless configured, none in production
/// unless configured. Credentials are allowed, so origins are mirrored, never `*`.
fn cors(state: &AppState) -> CorsLayer {
    let base = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("x-api-key"),
        ])
        .allow_credentials(true)
        .max_age(std::time::Duration::from_secs(600));
    match state.settings().allowed_origins() {
        None => base.allow_origin(AllowOrigin::mirror_request()),
        Some(list) => base.allow_origin(AllowOrigin::list(
            list.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
        )),
    }
}
