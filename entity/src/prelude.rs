pub use super::messages::Entity as Messages;
pub use super::user_tokens::Entity as UserTokens;
pub use super::users::Entity as Users;
