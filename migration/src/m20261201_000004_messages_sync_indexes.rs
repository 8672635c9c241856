//! `messages:sync` and `connected.lastMessageId` read one user's messages by id in each
//! direction: `(from_user_id, id)` and `(to_user_id, id)` make each half one range scan (the
//! conversation index `(from, to, id)` cannot: `to` sits between `from` and `id`).
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
