use crate::m20261122_000001_create_users::Users;
use crate::timestamps::utc;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Messages::Id))
                    .col(big_integer(Messages::FromUserId))
                    .col(big_integer(Messages::ToUserId))
                    .col(text(Messages::Content))
                    .col(string_len_null(Messages::ClientMsgId, 128))
                    .col(utc(db, Messages::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_messages_from")
                            .from(Messages::Table, Messages::FromUserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_messages_to")
                            .from(Messages::Table, Messages::ToUserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // History of one conversation pages by id in both directions: (from, to, id) serves both
        // halves of `(from=a AND to=b) OR (from=b AND to=a)`.
        manager
            .create_index(
                Index::create()
                    .name("idx_messages_conversation")
                    .table(Messages::Table)
                    .col(Messages::FromUserId)
                    .col(Messages::ToUserId)
                    .col(Messages::Id)
                    .to_owned(),
            )
            .await?;
        // A client retrying after a reconnect resends its client_msg_id; NULLs stay distinct.
        manager
            .create_index(
                Index::create()
                    .name("uniq_messages_client_msg")
                    .table(Messages::Table)
                    .col(Messages::FromUserId)
                    .col(Messages::ClientMsgId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Messages::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    FromUserId,
    ToUserId,
    Content,
    ClientMsgId,
    CreatedAt,
}
