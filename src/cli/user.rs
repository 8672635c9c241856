//! `im-server user disable|enable --username U`: the row, then the running nodes.
//!
//! The nodes hear it on Redis ([`USER_CHANGES`]) and each runs
//! [`revoke::user_changed`](crate::auth::revoke::user_changed): cached verdicts dropped, a
//! disabled user's sockets kicked with `USER_DISABLED`. Without Redis there is no channel to a
//! running server: it sees the row at the next handshake after `auth.cache_ttl_secs`, and
//! the user's open sockets stay until they reconnect; the command says so.

use std::process::ExitCode;

use redis::AsyncCommands;

use super::CliError;
use crate::auth::revoke::{USER_CHANGES, UserChange};
use crate::config::Settings;

pub async fn set_active(
    settings: &Settings,
    username: &str,
    active: bool,
) -> Result<ExitCode, CliError> {
    let what = if active {
        "user enable"
    } else {
        "user disable"
    };
    let db = super::connect(settings).await?;
    let user = crate::users::set_active(&db, username, active)
        .await
        .map_err(|e| CliError::failed(what, e))?
        .ok_or_else(|| CliError::failed(what, format!("no user named {username:?}")))?;
    let state = if active { "enabled" } else { "disabled" };
    println!("user id={} username={} {state}", user.id, user.username);
    let Some(url) = &settings.redis.url else {
        println!(
            "no redis.url: running servers see this at the next handshake after \
             auth.cache_ttl_secs ({} s); sockets already open stay until they reconnect",
            settings.auth.cache_ttl_secs
        );
        return Ok(ExitCode::SUCCESS);
    };
    let announce = async {
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let change = UserChange {
            user_id: user.id,
            active,
        };
        let payload = serde_json::to_vec(&change).unwrap_or_default();
        conn.publish::<_, _, i64>(USER_CHANGES, payload).await
    };
    let nodes = tokio::time::timeout(std::time::Duration::from_secs(5), announce)
        .await
        .map_err(|_| CliError::failed(what, "Redis did not answer within 5 s"))?
        .map_err(|e| CliError::failed(what, format!("announcing on Redis: {e}")))?;
    println!("announced to {nodes} running node(s)");
    Ok(ExitCode::SUCCESS)
}
