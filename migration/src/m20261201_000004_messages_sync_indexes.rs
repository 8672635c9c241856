//! `messages:sync` and `connected.lastMessageId` read one user's messages by id in each
//! direction: `(from_user_id, id)` and `(to_user_id, id)` make each half one range scan (the
//! conversation index `(from, to, id)` cannot: `to` sits between `from` and `id`).
//! EXPLAIN (100k rows, 500 users): SQLite `SEARCH … USING COVERING INDEX idx_messages_from_id
//! (from_user_id=? AND id>?)`, MariaDB `range … key idx_messages_from_id, Using index` (MAX:
//! "Select tables optimized away"), PostgreSQL `Index Only Scan using idx_messages_from_id`
//! (MAX: `Index Only Scan Backward`); the same for `to`.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: [(&str, Messages); 2] = [
    ("idx_messages_from_id", Messages::FromUserId),
    ("idx_messages_to_id", Messages::ToUserId),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, user) in INDEXES {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Messages::Table)
                        .col(user)
                        .col(Messages::Id)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DatabaseBackend::MySql {
            // InnoDB silently dropped the index it made for `fk_messages_to` when ours could
            // serve the foreign key; it must be back before ours can go.
            manager
                .create_index(
                    Index::create()
                        .name("fk_messages_to")
                        .table(Messages::Table)
                        .col(Messages::ToUserId)
                        .to_owned(),
                )
                .await?;
        }
        for (name, _) in INDEXES {
            manager
                .drop_index(Index::drop().name(name).table(Messages::Table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Messages {
    Table,
    Id,
    FromUserId,
    ToUserId,
}
