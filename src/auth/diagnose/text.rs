//! The human-readable form of a [`Diagnosis`] (`im-server token inspect` without `--json`):
//! one aligned section per part, in handshake order, the verdict last.

use std::fmt::Write as _;

use serde_json::Value;

use super::Diagnosis;

const WIDTH: usize = 11;
/// Long sentences wrap here, so the output reads in a terminal and in a doc.
const COLUMNS: usize = 100;

/// Greedy word wrap; a word longer than the width stays whole.
fn wrap(line: &str, width: usize) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    for word in line.split(' ') {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    out.push(cur);
    out
}

struct Out(String);

impl Out {
    /// A section: its label on the first line, continuation lines indented under the value.
    fn section(&mut self, label: &str, lines: &[String]) {
        let mut first = true;
        for line in lines {
            for (j, piece) in wrap(line, COLUMNS - WIDTH).into_iter().enumerate() {
                let l = if first { label } else { "" };
                let indent = if j > 0 { "  " } else { "" };
                let _ = writeln!(self.0, "{l:<WIDTH$}{indent}{piece}");
                first = false;
            }
        }
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

pub fn render_text(d: &Diagnosis) -> String {
    let mut out = Out(String::new());
    out.section(
        "Token",
        &[match &d.token.fingerprint {
            Some(fp) => format!("{fp}, {} chars", d.token.length),
            None => format!("(empty; {} chars given)", d.token.raw_length),
        }],
    );
    out.section(
        "Source",
        &[format!(
            "{}{}",
            d.source,
            if d.source_enabled {
                String::new()
            } else {
                format!(
                    " (disabled: auth.token_sources = {})",
                    d.server.token_sources.join(", ")
                )
            }
        )],
    );

    let h = &d.header;
    let mut header = vec![format!(
        "alg {}{}   typ {}   kid {}",
        h.alg.as_deref().unwrap_or("-"),
        match (&h.alg, h.alg_allowed) {
            (Some(_), true) => " (allowed)",
            (Some(_), false) => " (not allowed)",
            _ => "",
        },
        h.typ.as_deref().unwrap_or("-"),
        h.kid.as_deref().unwrap_or("-"),
    )];
    if let Some(e) = &h.error {
        header = vec![format!("unreadable: {e}")];
    }
    out.section("Header", &header);

    let c = &d.claims;
    let claims = match &c.error {
        Some(e) => vec![format!("unreadable: {e}")],
        None => {
            let time = |v: &Value, utc: &Option<String>, rel: &Option<String>| match (utc, rel) {
                (Some(u), Some(r)) => format!("{u}  ({r})"),
                _ => show(v),
            };
            let mut lines = vec![
                format!("sub  {}", show(&c.sub)),
                format!("iat  {}", time(&c.iat, &c.iat_utc, &c.iat_relative)),
                format!("exp  {}", time(&c.exp, &c.exp_utc, &c.exp_relative)),
                format!("nbf  {}", time(&c.nbf, &c.nbf_utc, &c.nbf_relative)),
                format!("iss  {}", show(&c.iss)),
                format!("aud  {}", show(&c.aud)),
                format!("jti  {}", show(&c.jti)),
            ];
            lines.extend(c.problems.iter().map(|p| format!("! {p}")));
            lines
        }
    };
    out.section("Claims", &claims);

    if !d.transit.findings.is_empty() {
        let mut lines: Vec<String> = d
            .transit
            .findings
            .iter()
            .map(|f| format!("{}: {}", f.kind, f.detail))
            .collect();
        if let Some(r) = &d.transit.repaired {
            lines.push(format!(
                "repaired: signature {}, verdict {}",
                r.signature, r.verdict
            ));
        }
        out.section("Transit", &lines);
    }

    let s = &d.signature;
    let mut sig = vec![match (&s.algorithm, &s.key) {
        (Some(a), Some(k)) => format!("{} ({a}, {k} secret)", s.status),
        (Some(a), None) => format!("{} ({a})", s.status),
        _ => s.status.to_string(),
    }];
    if let Some(cause) = s.cause {
        sig.push(format!("cause: {cause}"));
    }
    if let Some(detail) = &s.detail {
        sig.push(detail.clone());
    }
    if let Some(hint) = &s.hint {
        sig.push(format!("hint: {hint}"));
    }
    out.section("Signature", &sig);

    let db = &d.db;
    let mut database = vec![match db.id {
        Some(id) => format!(
            "{}  (row #{id} of user {})",
            db.status,
            db.user_id
                .as_ref()
                .map(|u| u.to_string())
                .unwrap_or_default()
        ),
        None => db.status.to_string(),
    }];
    for (label, v) in [
        ("expires_at  ", &db.expires_at),
        ("created_at  ", &db.created_at),
        ("last_used_at", &db.last_used_at),
    ] {
        if db.id.is_some() {
            database.push(format!("{label} {}", v.as_deref().unwrap_or("-")));
        }
    }
    if let Some(n) = &db.note {
        database.push(n.clone());
    }
    out.section("Database", &database);

    let u = &d.user;
    out.section(
        "User",
        &[match (&u.id, &u.username) {
            (Some(id), Some(name)) => format!(
                "#{id} {name} ({}) \"{}\", {}",
                u.user_type.as_deref().unwrap_or("-"),
                u.display_name.as_deref().unwrap_or(""),
                if u.is_active == Some(true) {
                    "active"
                } else {
                    "disabled"
                }
            ),
            _ => u.status.to_string(),
        }],
    );

    let sockets = match (&d.sockets, &d.sockets_note) {
        (None, Some(note)) => vec![note.clone()],
        (Some(list), _) if list.is_empty() => vec!["none".into()],
        (Some(list), _) => list
            .iter()
            .map(|s| {
                format!(
                    "{} {} since {} from {}",
                    s.id,
                    s.transport,
                    crate::clock::iso(s.connected_at),
                    s.ip.as_deref().unwrap_or("?")
                )
            })
            .collect(),
        (None, None) => vec!["-".into()],
    };
    out.section("Sockets", &sockets);

    out.section(
        "Verdict",
        &[
            format!(
                "{} — {}",
                d.verdict,
                if d.accepted { "accepted" } else { "rejected" }
            ),
            match d.verdict.as_str() {
                // Signature already said why, in full.
                "TOKEN_INVALID_SIGNATURE" | "TOKEN_ALGORITHM_NOT_ALLOWED" => format!(
                    "The signature check failed ({}): see Signature above.",
                    d.signature.cause.map_or("invalid", |c| c.as_str())
                ),
                _ => d.explanation.clone(),
            },
        ],
    );
    out.0
}
