//! Command line (contract §1): `serve` (default), `migrate`, `user add`, `token inspect`,
//! `config`. Every failure prints one line and exits non-zero.

mod admin;
mod token;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use migration::{Migrator, MigratorTrait};

use crate::config::{ConfigError, ConfigSources, Loaded, Settings};

/// Why a command failed: a configuration problem (the key and what is wrong with it), or the
/// command's own failure. Printed as one line: `error: <what>: <message>`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{what}: {message}")]
    Failed { what: &'static str, message: String },
}

impl CliError {
    pub fn failed(what: &'static str, message: impl std::fmt::Display) -> Self {
        CliError::Failed {
            what,
            message: message.to_string(),
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "im-server",
    version,
    about = "Socket.IO-compatible realtime IM server"
)]
pub struct Cli {
    /// Config file (TOML); default: im-server.toml in the working directory. Also IM_CONFIG.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Run database migrations against database.url.
    Migrate {
        #[arg(value_enum, default_value = "up")]
        action: MigrateAction,
        /// For `down`: how many migrations to roll back (default: all).
        #[arg(long)]
        steps: Option<u32>,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Diagnose tokens offline (`token inspect <TOKEN|->`).
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    /// The Socket.IO Admin UI (`admin hash-password`).
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Print the effective configuration (secrets redacted) and where each value came from.
    Config {
        /// Print only the config fingerprint (compare it across services and nodes).
        #[arg(long)]
        fingerprint: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Walk the chain a browser takes to /im (tcp … heartbeat) and name the first broken link.
    Doctor(crate::doctor::DoctorArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum MigrateAction {
    Up,
    Down,
    Status,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user (argon2id password hash).
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        password: String,
        #[arg(long = "type", default_value = "user")]
        user_type: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        email: Option<String>,
    },
    /// Disable a user: the row says so, and with Redis every running node drops its cached
    /// verdicts and kicks the user's sockets with USER_DISABLED at once.
    Disable {
        #[arg(long)]
        username: String,
    },
    /// Enable a disabled user again (every running node forgets the cached refusal).
    Enable {
        #[arg(long)]
        username: String,
    },
    /// Create many users at once (load tests): PREFIX1..PREFIXN sharing one password.
    Seed {
        #[arg(long, default_value = "bench")]
        prefix: String,
        #[arg(long)]
        count: u32,
        #[arg(long, default_value = "bench-pass")]
        password: String,
        #[arg(long = "type", default_value = "user")]
        user_type: String,
    },
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    let loaded = Settings::load(&ConfigSources::from_process(cli.config.clone()))?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(loaded).await,
        Command::Config { fingerprint, json } => Ok(print_config(&loaded, fingerprint, json)?),
        Command::Token { command } => token::run(&loaded, command).await,
        Command::Doctor(args) => Ok(crate::doctor::run(args).await),
        Command::Admin { command } => Ok(admin::run(command).await?),
        Command::Migrate { action, steps } => Ok(migrate(&loaded.settings, action, steps).await?),
        Command::User {
            command:
                UserCommand::Add {
                    username,
                    password,
                    user_type,
                    display_name,
                    email,
                },
        } => {
            let db = connect(&loaded.settings).await?;
            crate::db::migrate_up(&db).await?;
            let user = crate::users::create(
                &db,
                crate::users::NewUser {
                    username,
                    password,
                    user_type,
                    display_name,
                    email,
                },
            )
            .await
            .map_err(|e| CliError::failed("user add", e))?;
            println!(
                "created user id={} username={} type={}",
                user.id, user.username, user.user_type
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::User {
            command: UserCommand::Disable { username },
        } => user::set_active(&loaded.settings, &username, false).await,
        Command::User {
            command: UserCommand::Enable { username },
        } => user::set_active(&loaded.settings, &username, true).await,
        Command::User {
            command:
                UserCommand::Seed {
                    prefix,
                    count,
                    password,
                    user_type,
                },
        } => {
            let db = connect(&loaded.settings).await?;
            crate::db::migrate_up(&db).await?;
            let n = crate::users::seed_many(&db, &prefix, count, password, &user_type)
                .await
                .map_err(|e| CliError::failed("user seed", format!("{e:#}")))?;
            println!("created {n} users ({prefix}1..{prefix}{count}; existing ones kept)");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn connect(settings: &Settings) -> Result<sea_orm::DatabaseConnection, ConfigError> {
    crate::db::connect(&settings.database.url, 2, settings.database.timeout()).await
}

async fn serve(loaded: Loaded) -> Result<ExitCode, CliError> {
    crate::telemetry::init(&loaded.settings.log);
    for key in &loaded.unknown_keys {
        tracing::warn!(key = %key, "unknown key in the config file is ignored (typo?)");
    }
    let app = crate::startup::Application::build(loaded.settings).await?;
    let addr = app.local_addr();
    let shown = if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    };
    tracing::info!(%addr, node_id = app.state().node_id(), "im-server listening");
    println!("im-server listening on http://{addr} — demo page: http://{shown}/");
    app.run_until_stopped(crate::shutdown::signal())
        .await
        .map_err(|e| CliError::failed("server", format!("server error: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

async fn migrate(
    settings: &Settings,
    action: MigrateAction,
    steps: Option<u32>,
) -> Result<ExitCode, ConfigError> {
    let db = connect(settings).await?;
    let fail =
        |e: sea_orm::DbErr| ConfigError::new("database.url", format!("migration failed: {e}"));
    match action {
        MigrateAction::Up => {
            Migrator::up(&db, None).await.map_err(fail)?;
            println!("migrations applied");
        }
        MigrateAction::Down => {
            Migrator::down(&db, steps).await.map_err(fail)?;
            println!("migrations rolled back");
        }
        MigrateAction::Status => {
            for m in Migrator::get_migration_with_status(&db)
                .await
                .map_err(fail)?
            {
                println!("{:<10} {}", format!("{}", m.status()), m.name());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_config(
    loaded: &Loaded,
    only_fingerprint: bool,
    json: bool,
) -> Result<ExitCode, ConfigError> {
    let settings = &loaded.settings;
    settings.validate()?;
    let keys = crate::auth::jwt::Keys::from_settings(settings)?;
    let fp = crate::auth::authenticator::config_fingerprint(settings, &keys);
    if only_fingerprint {
        println!("{fp}");
        return Ok(ExitCode::SUCCESS);
    }
    let rows = Settings::provenance(loaded);
    if json {
        let values: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(k, v, src)| (k.clone(), serde_json::json!({"value": v, "source": src})))
            .collect();
        let out = serde_json::json!({
            "config_file": loaded.config_file.as_ref().map(|p| p.display().to_string()),
            "jwt_secret_fingerprint": keys.current.fingerprint,
            "config_fingerprint": fp,
            "unknown_keys": loaded.unknown_keys,
            "values": values,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "# config file: {}",
        loaded
            .config_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "none".into())
    );
    println!(
        "# jwt secret fingerprint: {}{}",
        keys.current.fingerprint,
        if settings.uses_development_secret() {
            " (built-in development secret)"
        } else {
            ""
        }
    );
    println!("# config fingerprint: {fp}");
    for k in &loaded.unknown_keys {
        println!("# warning: unknown key {k} in the config file is ignored");
    }
    let width = rows.iter().map(|(k, _, _)| k.len()).max().unwrap_or(0);
    for (key, value, source) in rows {
        let shown = match value {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        println!("{key:<width$} = {shown}    [{source}]");
    }
    Ok(ExitCode::SUCCESS)
}
