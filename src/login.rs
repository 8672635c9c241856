//! `POST /auth/login`'s decision, outside the handler: rate limit, credentials, user state,
//! `auth.login_policy`, the token and its row, and (`kick_previous`) the older sessions revoked
//! through [`auth::revoke`](crate::auth::revoke::revoke).

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};

use crate::auth::decide::user_state;
use crate::auth::jwt::{self, Claims};
use crate::auth::revoke::{self, Revocation, SocketKicker};
use crate::auth::store::own::{self, NewToken};
use crate::auth::{User, password};
use crate::config::{LoginPolicy, fingerprint};
use crate::error::{AppError, ErrorCode};
use crate::state::AppState;

pub struct Credentials {
    pub username: String,
    pub password: String,
    pub user_type: Option<String>,
}

/// Who is logging in from where.
pub struct Client {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// A token issued by a successful login.
pub struct Issued {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: User,
}

pub async fn login(
    state: &AppState,
    kicker: &dyn SocketKicker,
    creds: Credentials,
    client: Client,
) -> Result<Issued, AppError> {
    let shown_client = client.ip.map_or_else(|| "-".into(), |i| i.to_string());
    if !state.auth().store().issues_tokens() {
        return Err(backend_issues_tokens());
    }
    if creds.username.trim().is_empty() {
        return Err(AppError::bad_request("username must not be empty"));
    }
    let _attempt = state.limiter().attempt(&creds.username, client.ip).await;
    if let Some(wait) = state.limiter().blocked_for(&creds.username, client.ip) {
        return Err(rate_limited(wait));
    }
    let found = crate::users::find_by_username(state.db(), &creds.username)
        .await
        .map_err(AppError::auth_unavailable)?;
    // Unknown users are verified against a dummy hash: same answer, similar time.
    let hash = found.as_ref().map_or_else(
        || state.dummy_hash().to_string(),
        |u| u.password_hash.clone(),
    );
    let password_ok = password::verify(creds.password, hash).await;
    let type_ok = match (&found, &creds.user_type) {
        (Some(u), Some(t)) => &u.user_type == t,
        _ => true,
    };
    let (own_id, user): (i64, User) = match found {
        Some(u) if password_ok && type_ok => (u.id, u.into()),
        _ => {
            // An unknown username may be a password typed into the wrong field: fingerprint it.
            let shown_user = match &found {
                Some(u) => u.username.clone(),
                None => format!("unknown:{}", fingerprint(creds.username.as_bytes())),
            };
            tracing::info!(username = %shown_user, client = %shown_client,
                "login failed: INVALID_CREDENTIALS");
            if let Some(wait) = state.limiter().record_failure(&creds.username, client.ip) {
                return Err(rate_limited(wait));
            }
            return Err(ErrorCode::InvalidCredentials.into());
        }
    };
    user_state(&user)?;

    let policy = state.settings().auth.login_policy;
    let now = Utc::now();
    if policy == LoginPolicy::RejectNew
        && !own::live_tokens(state.db(), own_id, None, now)
            .await?
            .is_empty()
    {
        return Err(ErrorCode::AlreadyLoggedIn.into());
    }
    let (token, row) = issue(state, own_id, &user, &client, now).await?;
    if policy == LoginPolicy::KickPrevious {
        replace_older_sessions(state, kicker, own_id, row.id, now).await?;
    }
    tracing::info!(user_id = %user.id, client = %shown_client,
        token = %fingerprint(token.as_bytes()), "login OK");
    Ok(Issued {
        token,
        expires_at: row.expires_at,
        user,
    })
}

/// Sign a token for `user` and record its row.
async fn issue(
    state: &AppState,
    own_id: i64,
    user: &User,
    client: &Client,
    now: DateTime<Utc>,
) -> Result<(String, entity::user_tokens::Model), AppError> {
    let auth = &state.settings().auth;
    let expires_at = now + Duration::seconds(auth.token_ttl_secs as i64);
    let jti = uuid::Uuid::new_v4().simple().to_string();
    let claims = Claims {
        username: Some(user.username.clone()),
        user_type: Some(user.user_type.clone()),
        iss: auth.issuer.clone(),
        aud: auth.audience.clone().map(serde_json::Value::String),
        jti: Some(jti.clone()),
        ..Claims::for_user(own_id, now.timestamp(), expires_at.timestamp())
    };
    let token = state
        .auth()
        .keys()
        .sign(&claims)
        .map_err(AppError::internal)?;
    let row = own::insert_token(
        state.db(),
        NewToken {
            user_id: own_id,
            token: &token,
            jti: &jti,
            expires_at: jwt::ts(claims.exp),
            user_agent: client.user_agent.clone(),
            ip: client.ip.map(|i| i.to_string()),
        },
    )
    .await?;
    Ok((token, row))
}

/// `kick_previous`: every other live token of the user is revoked, its sockets get
/// `SESSION_REPLACED`.
async fn replace_older_sessions(
    state: &AppState,
    kicker: &dyn SocketKicker,
    user_id: i64,
    keep: i64,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let older = own::live_tokens(state.db(), user_id, Some(keep), now).await?;
    if older.is_empty() {
        return Ok(());
    }
    let revocation = Revocation::tokens(
        older.into_iter().map(|t| t.token_hash).collect(),
        ErrorCode::SessionReplaced,
    );
    let done = revoke::revoke(state.auth(), kicker, revocation).await?;
    tracing::info!(
        user_id,
        revoked = done.rows,
        kicked = done.sockets,
        "kick_previous: older sessions replaced"
    );
    Ok(())
}

/// `[external]`: `/auth/login` and `/auth/logout` belong to the backend (contract §9).
pub fn backend_issues_tokens() -> AppError {
    AppError::with_message(
        ErrorCode::Forbidden,
        "Tokens are issued and revoked by the application's backend ([external] tables): log in \
         and out there, then connect with its token.",
    )
}

fn rate_limited(wait: u64) -> AppError {
    AppError {
        retry_after: Some(wait),
        ..AppError::with_message(
            ErrorCode::RateLimited,
            format!("Too many failed login attempts. Try again in {wait} s."),
        )
    }
}
