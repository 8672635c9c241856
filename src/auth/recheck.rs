//! The periodic recheck of live sockets' tokens (`[external]`, contract §9): a change the
//! backend makes in its own tables — a revoked or deleted row, an `expires_at` moved into the
//! past, a user deleted or disabled — reaches the sockets already connected within
//! `external.recheck_secs`.
//!
//! Batched: the rows of up to [`BATCH`](super::store::external::BATCH) tokens per query, then
//! their users the same way, so 10,000 sockets cost a handful of queries, never one each. The
//! verdict is [`decide`](super::decide::decide)'s, so a socket gets exactly the code a new
//! handshake with its token would get.

use std::collections::HashMap;

use chrono::Utc;

use super::Authenticator;
use super::decide::{self, Evidence};
use super::store::Lookup;
use crate::error::ErrorCode;
use crate::ids::UserId;

/// What one recheck found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Distinct tokens checked.
    pub tokens: usize,
    /// Queries the store says it sent for this recheck (`None`: it does not count them).
    pub queries: Option<u64>,
    /// Tokens (by hash) that a handshake would now refuse, with the code.
    pub refused: Vec<(String, ErrorCode)>,
}

/// Judge these live tokens (`(token, token_hash)`, distinct) again. `Err` when the store did
/// not answer: nothing is refused then (a database outage must not drop every socket; new
/// handshakes fail closed meanwhile).
pub async fn recheck(auth: &Authenticator, tokens: &[(&str, &str)]) -> Result<Report, String> {
    let mut report = Report {
        tokens: tokens.len(),
        ..Report::default()
    };
    if tokens.is_empty() {
        return Ok(report);
    }
    let store = auth.store();
    let sent_before = store.queries_sent();
    let rules = auth.rules();
    let now = Utc::now();
    let rows = if rules.require_row {
        let raw: Vec<&str> = tokens.iter().map(|(t, _)| *t).collect();
        Some(store.tokens(&raw).await.map_err(|e| e.to_string())?)
    } else {
        None
    };
    let verified: Vec<_> = tokens
        .iter()
        .map(|(t, h)| (*h, auth.keys().verify(t, now.timestamp())))
        .collect();
    let mut ids: Vec<UserId> = verified
        .iter()
        .filter_map(|(_, v)| v.as_ref().ok().map(|v| v.user_id.clone()))
        .collect();
    ids.sort();
    ids.dedup();
    let users: HashMap<UserId, _> = store
        .users(&ids, None)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|u| (u.id.clone(), u))
        .collect();
    for (hash, jwt) in &verified {
        let row = match &rows {
            None => Lookup::NotChecked,
            Some(rows) => rows
                .get(*hash)
                .cloned()
                .map_or(Lookup::Missing, Lookup::Found),
        };
        let user = match jwt {
            Ok(v) => users
                .get(&v.user_id)
                .cloned()
                .map_or(Lookup::Missing, Lookup::Found),
            Err(_) => Lookup::NotChecked,
        };
        let verdict = decide::decide(
            &Evidence {
                jwt: jwt.as_ref().map_err(|c| *c),
                row: &row,
                user: &user,
            },
            rules,
            now,
        );
        if let Err(code) = verdict {
            report.refused.push((hash.to_string(), code));
        }
    }
    report.queries = store
        .queries_sent()
        .zip(sent_before)
        .map(|(after, before)| after - before);
    Ok(report)
}
