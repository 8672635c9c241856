//! Users: creation (CLI `user add`, seeding) and lookup.

use chrono::Utc;
use entity::users;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set,
};

use crate::auth::password;

pub struct NewUser {
    pub username: String,
    pub password: String,
    pub user_type: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("username {0:?} is already taken")]
    Duplicate(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub async fn create(
    db: &impl ConnectionTrait,
    u: NewUser,
) -> Result<users::Model, CreateUserError> {
    let username = u.username.trim().to_string();
    if username.is_empty() || username.len() > 64 {
        return Err(CreateUserError::Invalid(
            "username must be 1 to 64 characters".into(),
        ));
    }
    if u.password.is_empty() {
        return Err(CreateUserError::Invalid(
            "password must not be empty".into(),
        ));
    }
    if find_by_username(db, &username)
        .await
        .map_err(anyhow::Error::from)?
        .is_some()
    {
        return Err(CreateUserError::Duplicate(username));
    }
    let hash = password::hash(u.password).await?;
    let now = Utc::now();
    users::ActiveModel {
        display_name: Set(u.display_name.unwrap_or_else(|| username.clone())),
        username: Set(username.clone()),
        password_hash: Set(hash),
        user_type: Set(u.user_type),
        email: Set(u.email),
        is_active: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .map_err(|e| match e.sql_err() {
        // Two creators raced past the check above.
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => CreateUserError::Duplicate(username),
        _ => CreateUserError::Other(e.into()),
    })
}

pub async fn find_by_username(
    db: &impl ConnectionTrait,
    username: &str,
) -> Result<Option<users::Model>, sea_orm::DbErr> {
    users::Entity::find()
        .filter(users::Column::Username.eq(username.trim()))
        .one(db)
        .await
}

/// Set `is_active` of the user named `username`; `None` when there is no such user.
pub async fn set_active(
    db: &impl ConnectionTrait,
    username: &str,
    active: bool,
) -> Result<Option<users::Model>, sea_orm::DbErr> {
    let Some(user) = find_by_username(db, username).await? else {
        return Ok(None);
    };
    let mut row: users::ActiveModel = user.into();
    row.is_active = Set(active);
    row.updated_at = Set(Utc::now());
    row.update(db).await.map(Some)
}

/// Development convenience: when there are no users at all, create the demo accounts.
pub async fn seed_demo_users(db: &impl ConnectionTrait) -> anyhow::Result<bool> {
    if users::Entity::find().count(db).await? > 0 {
        return Ok(false);
    }
    for (name, pass, kind, display) in [
        ("admin", "admin123", "admin", "Administrator"),
        ("kefu1", "kefu123", "kefu", "Support agent 1"),
    ] {
        create(
            db,
            NewUser {
                username: name.into(),
                password: pass.into(),
                user_type: kind.into(),
                display_name: Some(display.into()),
                email: None,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("seeding {name}: {e}"))?;
    }
    tracing::warn!(
        "seeded demo users admin/admin123 and kefu1/kefu123 (development profile, empty users table)"
    );
    Ok(true)
}

/// Create `{prefix}1..{prefix}{count}` with one password, hashed once and inserted in batches:
/// benchmark and load-test fixtures in seconds instead of one argon2 hash per user.
pub async fn seed_many(
    db: &impl ConnectionTrait,
    prefix: &str,
    count: u32,
    password: String,
    user_type: &str,
) -> anyhow::Result<u32> {
    let hash = password::hash(password).await?;
    let now = Utc::now();
    let mut created = 0;
    let names: Vec<String> = (1..=count).map(|i| format!("{prefix}{i}")).collect();
    for chunk in names.chunks(500) {
        let existing: Vec<String> = users::Entity::find()
            .filter(users::Column::Username.is_in(chunk.iter().cloned()))
            .all(db)
            .await?
            .into_iter()
            .map(|u| u.username)
            .collect();
        let rows: Vec<users::ActiveModel> = chunk
            .iter()
            .filter(|n| !existing.contains(n))
            .map(|n| users::ActiveModel {
                username: Set(n.clone()),
                password_hash: Set(hash.clone()),
                user_type: Set(user_type.to_string()),
                display_name: Set(n.clone()),
                email: Set(None),
                is_active: Set(true),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            })
            .collect();
        created += rows.len() as u32;
        if !rows.is_empty() {
            users::Entity::insert_many(rows).exec(db).await?;
        }
    }
    Ok(created)
}

/// Who is online (any node), with each user's details and socket count, ordered by id.
pub async fn online(
    presence: &dyn crate::presence::Presence,
    store: &dyn crate::auth::store::TokenStore,
    user_type: Option<&str>,
) -> Result<Vec<serde_json::Value>, crate::error::AppError> {
    use crate::error::AppError;
    use crate::ids::UserId;
    let online = presence
        .online_users()
        .await
        .map_err(|e| AppError::internal(e.context("presence lookup failed")))?;
    let ids: Vec<UserId> = online.iter().map(|o| o.user_id.clone()).collect();
    let mut users = store.users(&ids, user_type).await?;
    users.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(users
        .iter()
        .filter_map(|u| {
            let o = online.iter().find(|o| o.user_id == u.id)?;
            Some(serde_json::json!({
                "id": u.id,
                "username": u.username,
                "user_type": u.user_type,
                "display_name": u.display_name,
                "sockets": o.sockets,
                "since": crate::clock::iso(o.since),
            }))
        })
        .collect())
}
