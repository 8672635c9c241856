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
                    .table(Users::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Users::Id))
                    .col(string_len_uniq(Users::Username, 64))
                    .col(string_len(Users::PasswordHash, 255))
                    .col(string_len(Users::UserType, 32).default("user"))
                    .col(string_len(Users::DisplayName, 128))
                    .col(string_len_null(Users::Email, 255))
                    .col(boolean(Users::IsActive).default(true))
                    .col(utc(db, Users::CreatedAt))
                    .col(utc(db, Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_users_user_type")
                    .table(Users::Table)
                    .col(Users::UserType)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Users {
    Table,
    Id,
    Username,
    PasswordHash,
    UserType,
    DisplayName,
    Email,
    IsActive,
    CreatedAt,
    UpdatedAt,
}
