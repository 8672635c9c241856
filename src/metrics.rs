//! Prometheus metrics (contract §3 `/metrics`). One registry per application instance, so
//! in-process tests and multiple nodes never mix their counts.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub connections: IntGauge,
    handshakes: IntCounterVec,
    handshake_seconds: Histogram,
    auth_db_seconds: Histogram,
    logins: IntCounterVec,
    events: IntCounterVec,
    kicks: IntCounterVec,
    http_requests: IntCounterVec,
    http_seconds: HistogramVec,
    bridge_requests: IntCounterVec,
    bridge_seconds: HistogramVec,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let connections = IntGauge::new("im_connections", "Authenticated sockets on /im").unwrap();
        let handshakes = IntCounterVec::new(
            Opts::new(
                "im_handshakes_total",
                "Socket.IO /im handshakes by verdict code and token source",
            ),
            &["result", "source"],
        )
        .unwrap();
        let handshake_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "im_handshake_duration_seconds",
                "Time to decide a /im handshake",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .unwrap();
        let auth_db_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "im_auth_db_duration_seconds",
                "Database time spent per authentication",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .unwrap();
        let logins = IntCounterVec::new(
            Opts::new("im_logins_total", "POST /auth/login by result code"),
            &["result"],
        )
        .unwrap();
        let events = IntCounterVec::new(
            Opts::new(
                "im_events_total",
                "Socket.IO events received (in) and emitted (out) by name",
            ),
            &["direction", "event"],
        )
        .unwrap();
        let kicks = IntCounterVec::new(
            Opts::new(
                "im_kicks_total",
                "Sockets disconnected by the server, by reason",
            ),
            &["reason"],
        )
        .unwrap();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "im_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["route", "status"],
        )
        .unwrap();
        let http_seconds = HistogramVec::new(
            HistogramOpts::new(
                "im_http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .unwrap();
        let bridge_requests = IntCounterVec::new(
            Opts::new(
                "im_bridge_requests_total",
                "Calls to the app's backend by type (event, connect, disconnect) and result",
            ),
            &["type", "result"],
        )
        .unwrap();
        let bridge_seconds = HistogramVec::new(
            HistogramOpts::new(
                "im_bridge_duration_seconds",
                "Time of one call to the app's backend, by type",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["type"],
        )
        .unwrap();
        let build = IntGaugeVec::new(
            Opts::new("im_build_info", "Build information"),
            &["version"],
        )
        .unwrap();
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for c in [
            Box::new(connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(handshakes.clone()),
            Box::new(handshake_seconds.clone()),
            Box::new(auth_db_seconds.clone()),
            Box::new(logins.clone()),
            Box::new(events.clone()),
            Box::new(kicks.clone()),
            Box::new(http_requests.clone()),
            Box::new(http_seconds.clone()),
            Box::new(bridge_requests.clone()),
            Box::new(bridge_seconds.clone()),
            Box::new(build),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            registry,
            connections,
            handshakes,
            handshake_seconds,
            auth_db_seconds,
            logins,
            events,
            kicks,
            http_requests,
            http_seconds,
            bridge_requests,
            bridge_seconds,
        }
    }

    pub fn handshake(&self, verdict: &str, source: &str, took: Duration) {
        self.handshakes.with_label_values(&[verdict, source]).inc();
        self.handshake_seconds.observe(took.as_secs_f64());
    }
    pub fn auth_db(&self, took: Duration) {
        self.auth_db_seconds.observe(took.as_secs_f64());
    }
    pub fn login(&self, result: &str) {
        self.logins.with_label_values(&[result]).inc();
    }
    pub fn event_in(&self, event: &str) {
        self.events.with_label_values(&["in", event]).inc();
    }
    pub fn event_out(&self, event: &str) {
        self.events.with_label_values(&["out", event]).inc();
    }
    pub fn kick(&self, reason: &str, n: u64) {
        self.kicks.with_label_values(&[reason]).inc_by(n);
    }
    pub fn http(&self, route: &str, status: u16, took: Duration) {
        self.http_requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
        self.http_seconds
            .with_label_values(&[route])
            .observe(took.as_secs_f64());
    }

    /// One call to the app's backend: `result` is `ok` or the code the client got.
    pub fn bridge(&self, kind: &str, result: &str, took: Duration) {
        self.bridge_requests
            .with_label_values(&[kind, result])
            .inc();
        self.bridge_seconds
            .with_label_values(&[kind])
            .observe(took.as_secs_f64());
    }

    pub fn render(&self) -> String {
        let mut buf = vec![];
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
