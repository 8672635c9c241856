//! The report for a terminal (one line per step, the detail and the fix indented under a
//! failure, colour only when stdout is a TTY and NO_COLOR is unset) or as JSON.

use std::io::IsTerminal;

use super::{Report, Status};

pub fn print_json(report: &Report) {
    println!(
        "{}",
        serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    );
}

pub fn print_human(report: &Report) {
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    print!("{}", render(report, colour));
}

pub fn render(report: &Report, colour: bool) -> String {
    let paint = |code: &str, text: &str| {
        if colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    let mut out = format!(
        "im-server doctor {}  (origin {}, namespace {})\n",
        report.url, report.origin, report.namespace
    );
    for s in &report.steps {
        let (label, code) = match s.status {
            Status::Ok => ("ok  ", "32"),
            Status::Fail => ("FAIL", "1;31"),
            Status::Skip => ("skip", "2"),
        };
        out.push_str(&format!(
            "{} {:<10} {}\n",
            paint(code, label),
            s.name,
            s.detail
        ));
        if let Some(h) = &s.hint {
            out.push_str(&format!("     {:<10} {} {h}\n", "", paint("33", "fix:")));
        }
    }
    let failed: Vec<&str> = report
        .steps
        .iter()
        .filter(|s| s.status == Status::Fail)
        .map(|s| s.name)
        .collect();
    if failed.is_empty() {
        out.push_str(&paint("32", "result: every step that applies is ok\n"));
    } else {
        out.push_str(&paint(
            "1;31",
            &format!(
                "result: {} failed; the first broken link is `{}`\n",
                failed.join(", "),
                failed[0]
            ),
        ));
    }
    out
}
