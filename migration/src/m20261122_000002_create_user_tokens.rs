use crate::m20261122_000001_create_users::Users;
use crate::timestamps::{utc, utc_null};
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
                    .table(UserTokens::Table)
                    .if_not_exists()
                    .col(big_pk_auto(UserTokens::Id))
                    .col(big_integer(UserTokens::UserId))
                    // SHA-256 hex of the token: the raw token is never stored, and 64 chars keep
                    // the unique index far below MySQL's key length limit.
                    .col(char_len_uniq(UserTokens::TokenHash, 64))
                    .col(string_len(UserTokens::Jti, 64))
                    .col(boolean(UserTokens::IsRevoked).default(false))
                    .col(utc(db, UserTokens::ExpiresAt))
                    .col(utc(db, UserTokens::CreatedAt))
                    .col(utc_null(db, UserTokens::LastUsedAt))
                    .col(string_len_null(UserTokens::UserAgent, 512))
                    .col(string_len_null(UserTokens::Ip, 64))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_user_tokens_user")
                            .from(UserTokens::Table, UserTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_user_tokens_user")
                    .table(UserTokens::Table)
                    .col(UserTokens::UserId)
                    .col(UserTokens::IsRevoked)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_user_tokens_jti")
                    .table(UserTokens::Table)
                    .col(UserTokens::Jti)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UserTokens::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum UserTokens {
    Table,
    Id,
    UserId,
    TokenHash,
    Jti,
    IsRevoked,
    ExpiresAt,
    CreatedAt,
    LastUsedAt,
    UserAgent,
    Ip,
}
