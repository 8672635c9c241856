//! The accept loop: hyper's HTTP/1 server driven directly instead of through `axum::serve`,
//! which has no header read timeout — 200 connections sending their headers one byte a second
//! stayed open indefinitely. Here a request's headers must arrive within
//! `server.header_read_timeout_secs`; TCP_NODELAY, the peer address (`ConnectInfo`), WebSocket
//! upgrades and the graceful drain stay as `axum::serve` had them.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

/// Serve `router` on `listener` until `shutdown` resolves, then wait for the open connections
/// (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    // `stop` tells every connection to finish its request and close; each holds a `live`
    // receiver, so `live_tx.closed()` resolves when the last one is gone.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let (live_tx, live_rx) = tokio::sync::watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                // Out of file descriptors and the like: wait a little, as axum::serve does.
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Small writes (the Engine.IO OPEN packet, `connected`, a chat message) must leave at
        // once: with Nagle on, each waited for the peer's delayed ACK, ~40 ms per handshake.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let app = router
            .clone()
            .map_request(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                req
            });
        let conn = http
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(app))
            .with_upgrades();
        let (mut stop, live) = (stop_rx.clone(), live_rx.clone());
        tokio::spawn(async move {
            tokio::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(live);
        });
    }
    drop(listener); // no new connections while the open ones drain
    let _ = stop_tx.send(());
    drop(live_rx);
    live_tx.closed().await;
    Ok(())
}
