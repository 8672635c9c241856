//! Schema migrations for im-server. Entities in `entity/` mirror these tables; change the schema
//! here (a new migration file), never by editing an applied one.
pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_users;
mod m20261122_000002_create_user_tokens;
mod m20261122_000003_create_messages;
mod m20261201_000004_messages_sync_indexes;
mod m20261201_000010_messages_string_user_ids;
mod timestamps;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_users::Migration),
            Box::new(m20261122_000002_create_user_tokens::Migration),
            Box::new(m20261122_000003_create_messages::Migration),
            Box::new(m20261201_000004_messages_sync_indexes::Migration),
            Box::new(m20261201_000010_messages_string_user_ids::Migration),
        ]
    }
}
