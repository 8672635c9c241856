//! `im-server admin hash-password [--password P]`: the argon2id hash for
//! `[admin] password_hash`. Without `--password` the password is read from standard input
//! (so it stays out of the shell history and the process list); only the hash is printed.

use std::io::Read;
use std::process::ExitCode;

use clap::Subcommand;

use crate::config::ConfigError;

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Print an argon2id hash of a password for `[admin] password_hash`.
    HashPassword {
        /// The password; read from standard input when left out.
        #[arg(long)]
        password: Option<String>,
    },
}

pub async fn run(command: AdminCommand) -> Result<ExitCode, ConfigError> {
    let AdminCommand::HashPassword { password } = command;
    let password = match password {
        Some(p) => p,
        None => read_stdin()?,
    };
    if password.is_empty() {
        return Err(ConfigError::new(
            "admin hash-password",
            "the password is empty; pass --password or pipe it on standard input",
        ));
    }
    let hash = crate::auth::password::hash(password)
        .await
        .map_err(|e| ConfigError::new("admin hash-password", format!("{e:#}")))?;
    println!("{hash}");
    eprintln!("put it in [admin] password_hash (or IM_ADMIN__PASSWORD_HASH), quoted");
    Ok(ExitCode::SUCCESS)
}

/// All of standard input, without the line ending `echo` or a terminal adds.
fn read_stdin() -> Result<String, ConfigError> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| ConfigError::new("admin hash-password", format!("cannot read stdin: {e}")))?;
    let trimmed = s.strip_suffix('\n').unwrap_or(&s);
    Ok(trimmed.strip_suffix('\r').unwrap_or(trimmed).to_string())
}
