//! The report for a terminal (one line per step, printed as each step ends, the fix indented
//! under a failure, colour only when stdout is a TTY and NO_COLOR is unset) or as JSON.

use std::io::IsTerminal;

use super::{Report, Status, Step};

pub fn print_json(report: &Report) {
    println!(
        "{}",
        serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    );
}

/// Whether the terminal gets colour: stdout is a TTY and NO_COLOR is unset.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn paint(colour: bool, code: &str, text: &str) -> String {
    if colour {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

pub fn header(url: &str, origin: &str, namespace: &str) -> String {
    format!("im-server doctor {url}  (origin {origin}, namespace {namespace})\n")
}

/// A step's line, and its `fix:` line under a failure.
pub fn step(s: &Step, colour: bool) -> String {
    let (label, code) = match s.status {
        Status::Ok => ("ok  ", "32"),
        Status::Fail => ("FAIL", "1;31"),
        Status::Skip => ("skip", "2"),
    };
    let mut out = format!(
        "{} {:<10} {}\n",
        paint(colour, code, label),
        s.name,
        s.detail
    );
    if let Some(h) = &s.hint {
        out.push_str(&format!(
            "     {:<10} {} {h}\n",
            "",
            paint(colour, "33", "fix:")
        ));
    }
    out
}

pub fn result(steps: &[Step], colour: bool) -> String {
    let failed: Vec<&str> = steps
        .iter()
        .filter(|s| s.status == Status::Fail)
        .map(|s| s.name)
        .collect();
    match failed.first() {
        None => paint(colour, "32", "result: every step that applies is ok\n"),
        Some(first) => paint(
            colour,
            "1;31",
            &format!(
                "result: {} failed; the first broken link is `{first}`\n",
                failed.join(", ")
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_when_asked_and_a_fix_line_under_a_failure() {
        let ok = Step::ok("tcp", "127.0.0.1:3000 accepts TCP connections");
        let bad = Step::fail("cors", "no Access-Control-Allow-Origin", "add the origin");
        assert_eq!(
            step(&ok, false),
            "ok   tcp        127.0.0.1:3000 accepts TCP connections\n"
        );
        assert_eq!(
            step(&bad, false),
            "FAIL cors       no Access-Control-Allow-Origin\n                fix: add the origin\n"
        );
        assert!(step(&ok, true).starts_with("\x1b[32mok  \x1b[0m tcp"));
        assert!(step(&bad, true).contains("\x1b[1;31mFAIL\x1b[0m"));
        assert_eq!(
            result(&[ok.clone(), bad.clone()], false),
            "result: cors failed; the first broken link is `cors`\n"
        );
        assert_eq!(
            result(&[ok], false),
            "result: every step that applies is ok\n"
        );
    }
}
