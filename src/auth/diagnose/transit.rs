//! Transit damage: what a client, a proxy or a copy-paste did to a token on the way, undone
//! so the diagnosis can say what the token would get without it.

use super::{Finding, FindingKind};

/// Undo transit damage: quotes, URL-encoding, a second `Bearer `, whitespace inside. Returns
/// what was found and the repaired token (when anything was).
pub fn repair(token: &str) -> (Vec<Finding>, Option<String>) {
    let mut findings: Vec<Finding> = vec![];
    let mut s = token.to_string();
    let mut add = |kind: FindingKind, detail: String| {
        if !findings.iter().any(|f| f.kind == kind) {
            findings.push(Finding { kind, detail });
        }
    };
    for _ in 0..6 {
        let before = s.clone();
        // Quotes: a JSON string pasted with its quotes, or shell quoting that stayed.
        for (open, close) in [("\\\"", "\\\""), ("\"", "\""), ("'", "'"), ("`", "`")] {
            if s.len() >= open.len() + close.len() && s.starts_with(open) && s.ends_with(close) {
                s = s[open.len()..s.len() - close.len()].to_string();
                add(
                    FindingKind::Quotes,
                    format!(
                        "the token is wrapped in {open}…{close} (a JSON string or shell quoting kept its quotes)"
                    ),
                );
            }
        }
        // URL-encoding: base64url JWTs never contain '%' or '+'.
        if has_percent_escape(&s) || s.contains('+') {
            let seen: Vec<String> = percent_escapes(&s)
                .into_iter()
                .chain(s.contains('+').then(|| "+".to_string()))
                .collect();
            let decoded: String = form_urlencoded::parse(format!("v={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            if decoded != s {
                s = decoded;
                add(
                    FindingKind::UrlEncoded,
                    format!(
                        "the token is URL-encoded ({}); it was encoded once more than it was decoded",
                        seen.join(", ")
                    ),
                );
            }
        }
        let trimmed = s.trim();
        if let Some(rest) = crate::auth::source::strip_bearer(trimmed) {
            s = rest.trim().to_string();
            add(
                FindingKind::BearerTwice,
                "'Bearer ' appears twice (the client adds it to a value that already has it)"
                    .into(),
            );
        } else if trimmed.len() != s.len() {
            s = trimmed.to_string();
        }
        if s.chars().any(char::is_whitespace) {
            let n = s.chars().filter(|c| c.is_whitespace()).count();
            s.retain(|c| !c.is_whitespace());
            add(
                FindingKind::Whitespace,
                format!(
                    "{n} whitespace character(s) inside the token (line-wrapped or pasted with breaks)"
                ),
            );
        }
        if s == before {
            break;
        }
    }
    let repaired = (!findings.is_empty()).then_some(s);
    (findings, repaired)
}

fn has_percent_escape(s: &str) -> bool {
    !percent_escapes(s).is_empty()
}

fn percent_escapes(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut out: Vec<String> = vec![];
    for i in 0..b.len().saturating_sub(2) {
        if b[i] == b'%' && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
            let e = s[i..i + 3].to_ascii_uppercase();
            if !out.contains(&e) {
                out.push(e);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repair_undoes_each_kind_of_damage() {
        let t = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln";
        let cases = [
            (format!("\"{t}\""), FindingKind::Quotes),
            (t.replace('.', "%2E"), FindingKind::UrlEncoded),
            (format!("Bearer%20{t}"), FindingKind::UrlEncoded),
            (format!("Bearer+{t}"), FindingKind::UrlEncoded),
            (format!("Bearer {t}"), FindingKind::BearerTwice),
            (
                format!("{}\n{}", &t[..10], &t[10..]),
                FindingKind::Whitespace,
            ),
        ];
        for (input, kind) in cases {
            let (findings, repaired) = repair(&input);
            assert!(
                findings.iter().any(|f| f.kind == kind),
                "{input}: {findings:?}"
            );
            assert_eq!(repaired.as_deref(), Some(t), "{input}");
        }
        assert!(repair(t).1.is_none());
    }
}
