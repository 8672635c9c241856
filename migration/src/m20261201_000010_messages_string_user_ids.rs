//! `messages.from_user_id` / `to_user_id` hold text: a backend's users (`[external]`, contract
//! §9) may have string ids like `kefu_001`, and they are not in im-server's `users` table, so
//! the foreign keys to it go too (recipients are checked by the token store instead). Own
//! users' integer ids are stored as their digits. Existing databases migrate in place: ALTER
//! on MySQL/MariaDB and PostgreSQL; on SQLite, which cannot change a column's type, the table
//! is rebuilt and every index it had (whoever created it) is recreated from its own SQL.

use crate::m20261122_000001_create_users::Users;
use crate::timestamps::utc;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Longest user id held (utf8mb4: 764 bytes, so the (from, to, id) index stays under 3072).
const ID_LEN: u32 = 191;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::MySql => {
                for fk in ["fk_messages_from", "fk_messages_to"] {
                    db.execute_unprepared(&format!("ALTER TABLE messages DROP FOREIGN KEY {fk}"))
                        .await?;
                }
                db.execute_unprepared(&format!(
                    "ALTER TABLE messages MODIFY from_user_id VARCHAR({ID_LEN}) NOT NULL, \
                     MODIFY to_user_id VARCHAR({ID_LEN}) NOT NULL"
                ))
                .await?;
            }
            DatabaseBackend::Postgres => {
                for fk in ["fk_messages_from", "fk_messages_to"] {
                    db.execute_unprepared(&format!("ALTER TABLE messages DROP CONSTRAINT {fk}"))
                        .await?;
                }
                db.execute_unprepared(&format!(
                    "ALTER TABLE messages \
                     ALTER COLUMN from_user_id TYPE VARCHAR({ID_LEN}) USING from_user_id::text, \
                     ALTER COLUMN to_user_id TYPE VARCHAR({ID_LEN}) USING to_user_id::text"
                ))
                .await?;
            }
            _ => rebuild_sqlite(manager, true).await?,
        }
        Ok(())
    }

    /// Back to integer ids with foreign keys: only possible while every stored id is a number
    /// of an existing user (string ids make it fail, and nothing is lost).
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::MySql => {
                db.execute_unprepared(
                    "ALTER TABLE messages MODIFY from_user_id BIGINT NOT NULL, \
                     MODIFY to_user_id BIGINT NOT NULL",
                )
                .await?;
                add_foreign_keys(manager).await?;
            }
            DatabaseBackend::Postgres => {
                db.execute_unprepared(
                    "ALTER TABLE messages \
                     ALTER COLUMN from_user_id TYPE BIGINT USING from_user_id::bigint, \
                     ALTER COLUMN to_user_id TYPE BIGINT USING to_user_id::bigint",
                )
                .await?;
                add_foreign_keys(manager).await?;
            }
            _ => rebuild_sqlite(manager, false).await?,
        }
        Ok(())
    }
}

async fn add_foreign_keys(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    for (name, col) in [
        ("fk_messages_from", Messages::FromUserId),
        ("fk_messages_to", Messages::ToUserId),
    ] {
        manager
            .create_foreign_key(
                ForeignKey::create()
                    .name(name)
                    .from(Messages::Table, col)
                    .to(Users::Table, Users::Id)
                    .on_delete(ForeignKeyAction::Cascade)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

/// SQLite: a new `messages` with text (or, going down, integer) user ids, the rows copied,
/// the old table dropped, the new one renamed, and the old table's indexes recreated — in one
/// transaction on one connection (another pooled connection may not see the rename yet).
async fn rebuild_sqlite(outer: &SchemaManager<'_>, text_ids: bool) -> Result<(), DbErr> {
    let manager = outer.begin().await?;
    let db = manager.get_connection();
    let backend = manager.get_database_backend();
    let indexes: Vec<String> = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages' \
             AND sql IS NOT NULL",
        ))
        .await?
        .iter()
        .filter_map(|r| r.try_get_by_index::<String>(0).ok())
        .collect();
    let id_col = |c: Messages| {
        if text_ids {
            string_len(c, ID_LEN)
        } else {
            big_integer(c)
        }
    };
    let mut table = Table::create();
    table
        .table(Messages::New)
        .col(big_pk_auto(Messages::Id))
        .col(id_col(Messages::FromUserId))
        .col(id_col(Messages::ToUserId))
        .col(text(Messages::Content))
        .col(string_len_null(Messages::ClientMsgId, 128))
        .col(utc(backend, Messages::CreatedAt));
    if !text_ids {
        for (name, col) in [
            ("fk_messages_from", Messages::FromUserId),
            ("fk_messages_to", Messages::ToUserId),
        ] {
            table.foreign_key(
                ForeignKey::create()
                    .name(name)
                    .from(Messages::New, col)
                    .to(Users::Table, Users::Id)
                    .on_delete(ForeignKeyAction::Cascade),
            );
        }
    }
    manager.create_table(table.to_owned()).await?;
    let cast = if text_ids { "TEXT" } else { "INTEGER" };
    db.execute_unprepared(&format!(
        "INSERT INTO messages_new (id, from_user_id, to_user_id, content, client_msg_id, created_at) \
         SELECT id, CAST(from_user_id AS {cast}), CAST(to_user_id AS {cast}), content, \
         client_msg_id, created_at FROM messages"
    ))
    .await?;
    db.execute_unprepared("DROP TABLE messages").await?;
    db.execute_unprepared("ALTER TABLE messages_new RENAME TO messages")
        .await?;
    for sql in indexes {
        db.execute_unprepared(&sql).await?;
    }
    manager.commit().await
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    #[sea_orm(iden = "messages_new")]
    New,
    Id,
    FromUserId,
    ToUserId,
    Content,
    ClientMsgId,
    CreatedAt,
}
