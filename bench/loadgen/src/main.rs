//! `loadgen <scenario> [flags]`: runs one scenario against an im-server (or the Node baseline)
//! and prints exactly one JSON line with the results on stdout; progress goes to stderr.
//! Exit status: 0 when the scenario ran (whatever it measured), 2 on a fatal error (the JSON
//! line then has `"error"`).

use clap::Parser;
use loadgen::bench::{Cli, run};

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let name = cli.scenario.name();
    let out = rt.block_on(run(&cli));
    // Don't wait for stray tasks (readers of dropped connections) on the way out.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match out {
        Ok(v) => {
            println!("{v}");
        }
        Err(e) => {
            eprintln!("loadgen {name}: {e}");
            println!(
                "{}",
                serde_json::json!({"scenario": name, "url": cli.common.url, "error": e})
            );
            std::process::exit(2);
        }
    }
}
