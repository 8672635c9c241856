//! `im-server token inspect <TOKEN> [--json] [--source S]`: the diagnosis offline, against this
//! machine's configuration and database. Exit 0 when the token would be accepted, 1 otherwise.

use std::io::Read as _;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use super::CliError;
use crate::auth::Authenticator;
use crate::auth::jwt::Keys;
use crate::auth::store::OwnStore;
use crate::config::{ConfigError, Loaded, TokenSource};

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

pub async fn run(loaded: &Loaded, cmd: TokenCommand) -> Result<ExitCode, CliError> {
    let TokenCommand::Inspect {
        token,
        json,
        source,
    } = cmd;
    let raw = if token == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::failed("token", format!("cannot read stdin: {e}")))?;
        // One line ending from `echo`/a file is not part of the token; anything else is kept
        // so the diagnosis can see it.
        let s = s.strip_suffix('\n').unwrap_or(&s);
        s.strip_suffix('\r').unwrap_or(s).to_string()
    } else {
        token
    };

    let (auth, db) = offline_authenticator(loaded).await?;
    let d = crate::auth::diagnose::diagnose(&auth, &raw, Some(source.into()), None).await;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&d).unwrap_or_else(|_| "{}".into())
        );
    } else {
        print!("{}", crate::auth::diagnose::render_text(&d));
    }
    let _ = db.close().await;
    Ok(if d.accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The authenticator `serve` would build (same validation, keys, store and fingerprint) and
/// nothing else: no listener, no Socket.IO, no background writers. Live sockets are not
/// available offline.
async fn offline_authenticator(
    loaded: &Loaded,
) -> Result<(Authenticator, sea_orm::DatabaseConnection), ConfigError> {
    let settings = loaded.settings.clone();
    settings.validate()?;
    let keys = Keys::from_settings(&settings)?;
    let db = crate::db::connect(&settings.database.url, 2, settings.database.timeout()).await?;
    crate::db::migrate_up(&db).await?;
    let store = crate::auth::store::open(&settings, || OwnStore::read_only(db.clone())).await?;
    let auth = Authenticator::new(
        std::sync::Arc::new(settings),
        keys,
        store,
        crate::metrics::Metrics::new(),
    );
    Ok((auth, db))
}
