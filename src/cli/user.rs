//! `im-server user disable|enable --username U`: the row, then the running nodes.
//!
//! The nodes hear it on Redis ([`USER_CHANGES`]) and each runs
//! [`revoke::user_changed`](crate::auth::revoke::user_changed): cached verdicts dropped, a
//! disabled user's sockets kicked with `USER_DISABLED`. Without Redis (a single node) the
//! command posts the change to the node at `server.host`/`server.port`, signed with the
//! shared `auth.jwt_secret` ([`control`]); with no node answering there, a server started
//! later reads the row anyway.

use std::process::ExitCode;

use redis::AsyncCommands;

use super::CliError;
use crate::auth::control;
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
    let change = UserChange {
        user_id: user.id,
        active,
    };
    let Some(url) = &settings.redis.url else {
        println!("{}", tell_local_node(settings, change).await);
        return Ok(ExitCode::SUCCESS);
    };
    let announce = async {
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
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

/// Without Redis: the one node this configuration describes, on its own address (a wildcard
/// host means this machine). What happened, as a line for the operator.
async fn tell_local_node(settings: &Settings, change: UserChange) -> String {
    let host = match settings.server.host.as_str() {
        "0.0.0.0" | "" => "127.0.0.1",
        "::" | "[::]" => "[::1]",
        h => h,
    };
    let url = format!(
        "http://{host}:{}{}",
        settings.server.port,
        control::USER_ACTIVE_PATH
    );
    let keys = match crate::auth::jwt::Keys::from_settings(settings) {
        Ok(k) => k,
        Err(e) => return format!("not announced (auth settings: {e})"),
    };
    let signed = match control::sign(&keys, change) {
        Ok(t) => t,
        Err(e) => return format!("not announced (cannot sign with auth.jwt_secret: {e})"),
    };
    let sent = reqwest::Client::new()
        .post(&url)
        .bearer_auth(signed)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => {
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            format!(
                "no redis.url: told the running server at {host}:{} ({} socket(s) kicked)",
                settings.server.port,
                body["data"]["kicked"].as_u64().unwrap_or(0)
            )
        }
        Ok(r) => format!(
            "no redis.url: the server at {host}:{} refused the change ({}): it reads another \
             auth.jwt_secret (this one: {}); it sees the row at the next handshake after \
             auth.cache_ttl_secs",
            settings.server.port,
            r.status(),
            keys.current.fingerprint
        ),
        Err(_) => format!(
            "no redis.url and no server answering at {host}:{}: a server started later reads \
             the row; one running elsewhere sees it at the next handshake after \
             auth.cache_ttl_secs ({} s)",
            settings.server.port, settings.auth.cache_ttl_secs
        ),
    }
}
