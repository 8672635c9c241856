//! `[external]`: every `external.recheck_secs`, this node's live sockets' tokens are judged
//! again ([`auth::recheck`](crate::auth::recheck)) and the refused ones kicked through
//! [`auth::revoke`](crate::auth::revoke::revoke) with the code a new handshake would get.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;

use super::{Hub, NAMESPACE, SocketSession};
use crate::auth::recheck;
use crate::auth::revoke::{self, Revocation};
use crate::state::AppState;

pub fn spawn<A: Adapter>(io: SocketIo<A>, state: AppState, hub: Arc<dyn Hub>) {
    let every = Duration::from_secs(state.settings().external.recheck_secs.max(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate: sockets were just checked
        loop {
            tick.tick().await;
            once(&io, &state, &*hub).await;
        }
    });
}

async fn once<A: Adapter>(io: &SocketIo<A>, state: &AppState, hub: &dyn Hub) {
    let Some(ns) = io.of(NAMESPACE) else { return };
    // token hash → token: each token once, however many sockets share it.
    let live: HashMap<String, String> = ns
        .sockets()
        .into_iter()
        .filter_map(|s| s.extensions.get::<SocketSession>())
        .map(|ss| {
            (
                ss.session.token_hash.clone(),
                ss.session.token.expose().to_string(),
            )
        })
        .collect();
    let tokens: Vec<(&str, &str)> = live.iter().map(|(h, t)| (t.as_str(), h.as_str())).collect();
    let report = match recheck::recheck(state.auth(), &tokens).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "recheck: external tables unavailable; sockets kept");
            return;
        }
    };
    let mut by_code: BTreeMap<&str, (crate::error::ErrorCode, Vec<String>)> = BTreeMap::new();
    for (hash, code) in report.refused.iter().cloned() {
        by_code
            .entry(code.as_str())
            .or_insert_with(|| (code, vec![]))
            .1
            .push(hash);
    }
    let mut kicked = 0;
    for (_, (code, hashes)) in by_code {
        match revoke::revoke(
            state.auth(),
            hub.as_kicker(),
            Revocation::tokens(hashes, code),
        )
        .await
        {
            Ok(done) => kicked += done.sockets,
            Err(e) => tracing::warn!(error = %e, "recheck: kick failed"),
        }
    }
    tracing::debug!(
        tokens = report.tokens,
        queries = ?report.queries,
        refused = report.refused.len(),
        kicked,
        "recheck"
    );
}
