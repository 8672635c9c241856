//! Time as the API shows it: ISO 8601 UTC to the second (`2026-11-22T10:00:00Z`).

use chrono::{DateTime, SecondsFormat, Utc};

pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn now_iso() -> String {
    iso(Utc::now())
}
