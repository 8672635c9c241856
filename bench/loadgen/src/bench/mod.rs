//! The load generator: scenarios driving an im-server (or the Node baseline) over loopback.
//! See `bench/loadgen/README.md` for the flags and the JSON result fields.

pub mod backend;
pub mod common;
pub mod conn;
pub mod hist;
pub mod scenarios;

use serde_json::Value;

/// The command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Load generator for im-server (Socket.IO v5 over WebSocket)"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: common::Common,
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Scenario {
    /// N authenticated connections (connect → `connected`), at most C in flight: handshakes/s, latency, failures by code.
    Handshake(scenarios::HandshakeArgs),
    /// Open N authenticated connections and hold them: RSS before/after/per connection, drops.
    Idle(scenarios::IdleArgs),
    /// N sockets; M events via POST /api/publish: deliveries/s, delivery latency.
    Fanout(scenarios::FanoutArgs),
    /// Fan-out to readers and to sockets that stop reading: those are cut off, RSS stays bounded.
    Slow(scenarios::SlowArgs),
    /// P pairs exchange send_message at an open-loop aggregate rate: ack and end-to-end latency.
    Chat(scenarios::ChatArgs),
    /// Connect N, wait for a server restart, reconnect all with socket.io-client backoff: time to recover.
    Storm(scenarios::StormArgs),
    /// P sockets emit a bridged event with acks at rate R against a local backend: ack latency minus the backend's own time, RSS over the run.
    Bridge(scenarios::BridgeArgs),
    /// A trivial bridge backend for `bridge` (verifies every signature, acks): runs until killed.
    Backend(backend::BackendArgs),
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Handshake(_) => "handshake",
            Scenario::Idle(_) => "idle",
            Scenario::Fanout(_) => "fanout",
            Scenario::Slow(_) => "slow",
            Scenario::Chat(_) => "chat",
            Scenario::Storm(_) => "storm",
            Scenario::Bridge(_) => "bridge",
            Scenario::Backend(_) => "backend",
        }
    }
}

/// Runs one scenario; `Err` is a fatal problem (login failed, bad flags, server never restarted).
pub async fn run(cli: &Cli) -> Result<Value, String> {
    common::epoch();
    let nofile = common::raise_nofile_limit();
    let c = &cli.common;
    match &cli.scenario {
        Scenario::Handshake(a) => scenarios::handshake(c, a, nofile).await,
        Scenario::Idle(a) => scenarios::idle(c, a, nofile).await,
        Scenario::Fanout(a) => scenarios::fanout(c, a, nofile).await,
        Scenario::Slow(a) => scenarios::slow(c, a, nofile).await,
        Scenario::Chat(a) => scenarios::chat(c, a, nofile).await,
        Scenario::Storm(a) => scenarios::storm(c, a, nofile).await,
        Scenario::Bridge(a) => scenarios::bridge(c, a, nofile).await,
        Scenario::Backend(a) => backend::backend(a).await,
    }
}
