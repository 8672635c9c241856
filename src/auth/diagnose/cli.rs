//! `im-server token inspect <TOKEN> [--json] [--source S]`: the diagnosis offline, against this
//! machine's configuration and database. Exit 0 when the token would be accepted, 1 otherwise.

use std::io::Read as _;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use crate::auth::jwt::Keys;
use crate::config::{ConfigError, Loaded, TokenSource};
use crate::state::{AppState, StateParts};

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Diagnose a token: header, claims, signature (and why it fails), database row, user,
    /// verdict. Exit 0 if a handshake with it would be accepted, 1 if not.
    Inspect {
        /// The token, or `-` to read it from stdin (keeps it out of the shell history and `ps`).
        #[arg(allow_hyphen_values = true)]
        token: String,
        /// Print the diagnosis as JSON (the shape of POST /auth/tokens/inspect's `data`).
        #[arg(long)]
        json: bool,
        /// Where the token arrives: the handshake auth payload (default), the Authorization
        /// header, the query string or the cookie.
        #[arg(long, value_enum, default_value = "auth")]
        source: SourceArg,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum SourceArg {
    Auth,
    Header,
    Query,
    Cookie,
}

impl From<SourceArg> for TokenSource {
    fn from(s: SourceArg) -> Self {
        match s {
            SourceArg::Auth => TokenSource::Auth,
            SourceArg::Header => TokenSource::Header,
            SourceArg::Query => TokenSource::Query,
            SourceArg::Cookie => TokenSource::Cookie,
        }
    }
}

pub async fn run(loaded: &Loaded, cmd: TokenCommand) -> Result<ExitCode, ConfigError> {
    let TokenCommand::Inspect {
        token,
        json,
        source,
    } = cmd;
    let raw = if token == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| ConfigError::new("token", format!("cannot read stdin: {e}")))?;
        // One line ending from `echo`/a file is not part of the token; anything else is kept
        // so the diagnosis can see it.
        let s = s.strip_suffix('\n').unwrap_or(&s);
        s.strip_suffix('\r').unwrap_or(s).to_string()
    } else {
        token
    };

    let state = offline_state(loaded).await?;
    let d = super::diagnose_offline(&state, &raw, Some(source.into())).await;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&d).unwrap_or_else(|_| "{}".into())
        );
    } else {
        print!("{}", super::render_text(&d));
    }
    let _ = state.db().clone().close().await;
    Ok(if d.accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The state `serve` would build (same validation, keys, database and fingerprint), without a
/// listener or Socket.IO: live sockets are not available offline.
async fn offline_state(loaded: &Loaded) -> Result<AppState, ConfigError> {
    let settings = loaded.settings.clone();
    settings.validate()?;
    let keys = Keys::from_settings(&settings)?;
    let db = crate::db::connect(&settings.database.url, 2).await?;
    crate::db::migrate_up(&db).await?;
    let config_fingerprint = crate::startup::config_fingerprint(&settings, &keys);
    Ok(AppState::new(StateParts {
        settings,
        db,
        keys,
        presence: std::sync::Arc::new(crate::presence::local::LocalPresence::default()),
        node_id: "offline".into(),
        config_fingerprint,
        dummy_hash: String::new(),
    }))
}
