//! @generated-style sea-orm entities for the tables created in `migration/`.
//! Keep them in step with the migrations; behaviour lives in the server crate, not here.
pub mod messages;
pub mod prelude;
pub mod user_tokens;
pub mod users;
