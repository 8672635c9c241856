//! `im-server doctor` (contract §12): walks the chain a browser at `--origin` walks to reach
//! `/im` through the app's own URL (its proxy, its load balancer) and names the FIRST broken
//! link, with the likely cause and fix. The server explains what it sees (`/debug/transport`,
//! token inspection); this is the view from the outside.
//!
//! - [`target`]: what `--url` / `--namespace` / `--origin` mean (as `io(URL)` reads them).
//! - [`link`]: TCP, TLS (rustls + ring; `--insecure`, `--ca-cert`) and the HTTP client.
//! - [`eio`]: the few Engine.IO / Socket.IO packets a doctor needs to read and write.
//! - [`steps`]: the steps, in order, each `ok` / `fail` / `skip`.
//! - [`token`]: a token seen from the outside: fingerprint, claims decoded without a secret,
//!   and the server's diagnosis (§6) when it will give it.
//! - [`output`]: one line per step for a terminal (colour on a TTY only), or `--json`.

mod eio;
mod link;
mod output;
mod steps;
mod target;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

/// `im-server doctor --url URL [...]`.
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// The URL the app connects to, as in `io(URL)`: https://chat.example.com/im (its path is
    /// the namespace). Use the public URL, through nginx / the load balancer.
    #[arg(long, env = "IM_DOCTOR_URL")]
    pub url: String,
    /// The page's origin, sent as `Origin` like a browser does (default: the URL's own).
    #[arg(long)]
    pub origin: Option<String>,
    /// A token to connect with (`-` reads it from stdin). Never printed: fingerprints only.
    #[arg(
        long,
        env = "IM_DOCTOR_TOKEN",
        hide_env_values = true,
        conflicts_with = "username"
    )]
    pub token: Option<String>,
    /// Log in through `POST /auth/login` as this user (with --password).
    #[arg(long, requires = "password")]
    pub username: Option<String>,
    #[arg(long, env = "IM_DOCTOR_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Socket.IO namespace (default: the URL's path, else /im).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Engine.IO path, the client's `path` option.
    #[arg(long, default_value = "/socket.io/")]
    pub path: String,
    /// `server.api_key`: lets the doctor ask `/auth/tokens/inspect` about a refused token.
    #[arg(long, env = "IM_DOCTOR_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Go on past an untrusted TLS certificate (the `tls` step still fails: browsers refuse it).
    #[arg(long)]
    pub insecure: bool,
    /// Trust this CA (PEM) as well as the public roots, for a private CA.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// Hold the connected socket this many seconds (answering pings) and report a cut.
    #[arg(long, default_value_t = 0)]
    pub wait: u64,
    /// Bound, in seconds, on each network wait.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Machine-readable output: `{url, steps:[{name, status, detail, hint}], ok}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Fail,
    Skip,
}

/// One link of the chain: what was seen and, for a failure, the likely cause and fix.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    pub hint: Option<String>,
}

impl Step {
    pub fn ok(name: &'static str, detail: impl Into<String>) -> Step {
        Step {
            name,
            status: Status::Ok,
            detail: detail.into(),
            hint: None,
        }
    }

    pub fn fail(name: &'static str, detail: impl Into<String>, hint: impl Into<String>) -> Step {
        Step {
            name,
            status: Status::Fail,
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn skip(name: &'static str, why: impl Into<String>) -> Step {
        Step {
            name,
            status: Status::Skip,
            detail: why.into(),
            hint: None,
        }
    }
}

/// The whole walk, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Report {
    pub url: String,
    pub origin: String,
    pub namespace: String,
    pub steps: Vec<Step>,
    /// The token used, from the outside (fingerprint, decoded claims, server diagnosis).
    pub token: Option<token::TokenReport>,
    pub ok: bool,
}

pub async fn run(mut args: DoctorArgs) -> ExitCode {
    // reqwest and the doctor's own TLS both use ring; say so once for the whole process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if args.token.as_deref() == Some("-") {
        let mut t = String::new();
        if let Err(e) = std::io::stdin().read_line(&mut t) {
            eprintln!("error: --token -: cannot read the token from stdin: {e}");
            return ExitCode::FAILURE;
        }
        args.token = Some(t.trim().to_string());
    }
    let target = match target::Target::parse(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A terminal sees each step as it ends (the heartbeat may wait a whole ping interval).
    let live = (!args.json).then(output::colour);
    if live.is_some() {
        print!(
            "{}",
            output::header(&target.url, &target.origin, &target.namespace)
        );
    }
    let report = match steps::walk(&args, &target, live).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match live {
        Some(colour) => print!("{}", output::result(&report.steps, colour)),
        None => output::print_json(&report),
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
