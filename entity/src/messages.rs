use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// A user id's text form (`7`, `kefu_001`): own users' integer ids and a backend's string
    /// ids alike (contract §9).
    pub from_user_id: String,
    pub to_user_id: String,
    #[sea_orm(column_type = "Text")]
    pub content: String,
    pub client_msg_id: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
