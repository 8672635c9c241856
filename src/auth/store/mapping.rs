//! `[external]` as SQL: the validated table and column names of the backend's tables, the
//! SELECT statements built from them (identifiers quoted by sea-query for the backend, values
//! bound, nothing pasted), the check of the mapping against the live schema, and the lenient
//! reading of the values backends store (contract §9).

use chrono::{DateTime, NaiveDateTime, Utc};
use sea_orm::sea_query::{
    Alias, Expr, ExprTrait, IntoIden, Query, SchemaName, SelectStatement, TableName,
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Statement, Value as DbValue,
};

use crate::config::{ConfigError, ExternalSettings, TokenFormat};
use crate::ids::{IdKind, UserId};

/// A mapped table: `name` or `schema.name`.
#[derive(Clone, Debug)]
pub struct Table {
    pub schema: Option<String>,
    pub name: String,
}

impl Table {
    fn parse(s: &str) -> Table {
        match s.split_once('.') {
            Some((schema, name)) => Table {
                schema: Some(schema.into()),
                name: name.into(),
            },
            None => Table {
                schema: None,
                name: s.into(),
            },
        }
    }
    fn name(&self) -> TableName {
        TableName(
            self.schema
                .as_ref()
                .map(|s| SchemaName(None, Alias::new(s.as_str()).into_iden())),
            Alias::new(self.name.as_str()).into_iden(),
        )
    }
    fn shown(&self) -> String {
        match &self.schema {
            Some(s) => format!("{s}.{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// `[external.tokens]`, validated.
#[derive(Clone, Debug)]
pub struct TokensMap {
    pub table: Table,
    pub token: String,
    pub format: TokenFormat,
    pub user_id: String,
    pub revoked: Option<String>,
    pub expires_at: Option<String>,
}

/// `[external.users]`, validated.
#[derive(Clone, Debug)]
pub struct UsersMap {
    pub table: Table,
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub user_type: Option<String>,
    pub active: Option<String>,
}

/// The whole mapping; built only from settings that passed `Settings::validate` (every name an
/// identifier).
#[derive(Clone, Debug)]
pub struct Mapping {
    pub tokens: Option<TokensMap>,
    pub users: UsersMap,
}

fn col(c: &str) -> Alias {
    Alias::new(c)
}

impl Mapping {
    pub fn new(x: &ExternalSettings) -> Mapping {
        Mapping {
            tokens: x.tokens.as_ref().map(|t| TokensMap {
                table: Table::parse(&t.table),
                token: t.token.clone(),
                format: t.token_format,
                user_id: t.user_id.clone(),
                revoked: t.revoked.clone(),
                expires_at: t.expires_at.clone(),
            }),
            users: UsersMap {
                table: Table::parse(&x.users.table),
                id: x.users.id.clone(),
                username: x.users.username.clone(),
                display_name: x.users.display_name.clone(),
                user_type: x.users.user_type.clone(),
                active: x.users.active.clone(),
            },
        }
    }

    /// `SELECT token, user_id[, revoked][, expires_at] FROM tokens WHERE token IN (…)`; the
    /// columns come back in [`TokenCols`] order.
    pub fn select_tokens(&self, keys: Vec<String>) -> Option<SelectStatement> {
        let t = self.tokens.as_ref()?;
        let mut q = Query::select();
        q.column(col(&t.token)).column(col(&t.user_id));
        for c in [&t.revoked, &t.expires_at].into_iter().flatten() {
            q.column(col(c));
        }
        q.from(t.table.name());
        if keys.len() == 1 {
            q.and_where(Expr::col(col(&t.token)).eq(keys.into_iter().next()));
        } else {
            q.and_where(Expr::col(col(&t.token)).is_in(keys));
        }
        Some(q.to_owned())
    }

    /// `SELECT id, username[, display_name][, user_type][, active] FROM users WHERE id IN (…)`.
    pub fn select_users(&self, ids: &[UserId], kind: IdKind) -> SelectStatement {
        let u = &self.users;
        let mut q = Query::select();
        q.column(col(&u.id)).column(col(&u.username));
        for c in [&u.display_name, &u.user_type, &u.active]
            .into_iter()
            .flatten()
        {
            q.column(col(c));
        }
        q.from(u.table.name());
        let values: Vec<DbValue> = ids
            .iter()
            .filter_map(|id| match (kind, id) {
                (IdKind::Int, UserId::Int(n)) => Some(DbValue::from(*n)),
                (IdKind::Int, UserId::Str(_)) => None,
                (IdKind::Str, id) => Some(DbValue::from(id.to_string())),
            })
            .collect();
        q.and_where(Expr::col(col(&u.id)).is_in(values));
        q.to_owned()
    }

    /// What the backend's rows are keyed by: the token, or its SHA-256 hex.
    pub fn token_key(&self, token: &str) -> String {
        match self.tokens.as_ref().map(|t| t.format) {
            Some(TokenFormat::Sha256Hex) => super::token_hash(token),
            _ => token.to_string(),
        }
    }

    /// Check every mapped table and column against the live schema: one line naming the key
    /// (`external.tokens.revoked: no column is_revoked in user_tokens`). Returns how the users'
    /// id column reads (integer or text).
    pub async fn check(&self, db: &DatabaseConnection) -> Result<IdKind, ConfigError> {
        if let Some(t) = &self.tokens {
            let cols = columns(db, &t.table, "external.tokens.table").await?;
            let wanted = [
                ("external.tokens.token", Some(&t.token)),
                ("external.tokens.user_id", Some(&t.user_id)),
                ("external.tokens.revoked", t.revoked.as_ref()),
                ("external.tokens.expires_at", t.expires_at.as_ref()),
            ];
            for (key, c) in wanted {
                if let Some(c) = c {
                    find(&cols, c, &t.table, key)?;
                }
            }
        }
        let u = &self.users;
        let cols = columns(db, &u.table, "external.users.table").await?;
        let id_type = find(&cols, &u.id, &u.table, "external.users.id")?;
        let wanted = [
            ("external.users.username", Some(&u.username)),
            ("external.users.display_name", u.display_name.as_ref()),
            ("external.users.user_type", u.user_type.as_ref()),
            ("external.users.active", u.active.as_ref()),
        ];
        for (key, c) in wanted {
            if let Some(c) = c {
                find(&cols, c, &u.table, key)?;
            }
        }
        Ok(if id_type.to_ascii_lowercase().contains("int") {
            IdKind::Int
        } else {
            IdKind::Str
        })
    }
}

/// The `(name, type)` of a live table's columns, from information_schema (MySQL, PostgreSQL:
/// only columns this user may read) or `PRAGMA table_info` (SQLite).
async fn columns(
    db: &DatabaseConnection,
    table: &Table,
    key: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let backend = db.get_database_backend();
    let schema = table.schema.clone();
    let stmt = match backend {
        DbBackend::MySql => Statement::from_sql_and_values(
            backend,
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
            [schema.into(), table.name.clone().into()],
        ),
        DbBackend::Postgres => Statement::from_sql_and_values(
            backend,
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = COALESCE($1, current_schema()) AND table_name = $2",
            [schema.into(), table.name.clone().into()],
        ),
        _ => Statement::from_sql_and_values(
            backend,
            "SELECT name, type FROM pragma_table_info(?, ?)",
            [
                table.name.clone().into(),
                schema.unwrap_or_else(|| "main".into()).into(),
            ],
        ),
    };
    let rows = db.query_all_raw(stmt).await.map_err(|e| {
        ConfigError::new(
            key,
            format!("cannot read the columns of {}: {e}", table.shown()),
        )
    })?;
    let cols: Vec<(String, String)> = rows
        .iter()
        .filter_map(|r| {
            Some((
                r.try_get_by_index::<String>(0).ok()?,
                r.try_get_by_index::<String>(1).unwrap_or_default(),
            ))
        })
        .collect();
    if cols.is_empty() {
        return Err(ConfigError::new(
            key,
            format!(
                "no table {} in external.url (or this database user may not read it)",
                table.shown()
            ),
        ));
    }
    Ok(cols)
}

/// The type of column `c`, or the error naming the key.
fn find<'a>(
    cols: &'a [(String, String)],
    c: &str,
    table: &Table,
    key: &str,
) -> Result<&'a str, ConfigError> {
    cols.iter()
        .find(|(name, _)| name == c)
        .or_else(|| cols.iter().find(|(name, _)| name.eq_ignore_ascii_case(c)))
        .map(|(_, t)| t.as_str())
        .ok_or_else(|| {
            ConfigError::new(
                key,
                format!(
                    "no column {c} in {} (it has: {})",
                    table.shown(),
                    cols.iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
}

/// One value of a backend's row, whatever the column's type.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Bool(bool),
    Float(f64),
    Text(String),
    Time(DateTime<Utc>),
}

impl Cell {
    /// Reads column `i` trying the types backends use (sqlx refuses a mismatched type, so the
    /// first that decodes is the column's).
    pub fn read(row: &QueryResult, i: usize) -> Cell {
        macro_rules! try_as {
            ($t:ty, $f:expr) => {
                if let Ok(v) = row.try_get_by_index::<Option<$t>>(i) {
                    return v.map($f).unwrap_or(Cell::Null);
                }
            };
        }
        try_as!(i64, Cell::Int);
        try_as!(i32, |v: i32| Cell::Int(v.into()));
        try_as!(i16, |v: i16| Cell::Int(v.into()));
        try_as!(i8, |v: i8| Cell::Int(v.into()));
        try_as!(u64, |v: u64| Cell::Int(v as i64));
        try_as!(u32, |v: u32| Cell::Int(v.into()));
        try_as!(u8, |v: u8| Cell::Int(v.into()));
        try_as!(bool, Cell::Bool);
        try_as!(String, Cell::Text);
        try_as!(DateTime<Utc>, Cell::Time);
        try_as!(NaiveDateTime, |v: NaiveDateTime| Cell::Time(v.and_utc()));
        try_as!(f64, Cell::Float);
        try_as!(Vec<u8>, |v: Vec<u8>| Cell::Text(
            String::from_utf8_lossy(&v).into_owned()
        ));
        Cell::Null
    }

    /// A revoked flag: true / non-zero / `'1'` / `'true'` = set; NULL = not set.
    pub fn truthy(&self) -> bool {
        match self {
            Cell::Null => false,
            Cell::Int(n) => *n != 0,
            Cell::Bool(b) => *b,
            Cell::Float(f) => *f != 0.0,
            Cell::Text(s) => matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "t" | "yes" | "y"
            ),
            Cell::Time(_) => true,
        }
    }

    /// An active flag: false / 0 / `'0'` / `'false'` = disabled; NULL counts as active.
    pub fn active(&self) -> bool {
        match self {
            Cell::Null => true,
            Cell::Text(s) => !matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "0" | "false" | "f" | "no" | "n" | ""
            ),
            other => other.truthy(),
        }
    }

    /// An instant: DATETIME / TIMESTAMP, text (`2026-12-01 10:00:00`, ISO 8601; UTC unless it
    /// has an offset) or unix seconds.
    pub fn time(&self) -> Option<DateTime<Utc>> {
        match self {
            Cell::Time(t) => Some(*t),
            Cell::Int(n) => DateTime::from_timestamp(*n, 0),
            Cell::Float(f) => DateTime::from_timestamp(*f as i64, 0),
            Cell::Text(s) => parse_time(s.trim()),
            Cell::Null | Cell::Bool(_) => None,
        }
    }

    pub fn text(&self) -> Option<String> {
        match self {
            Cell::Null => None,
            Cell::Text(s) => Some(s.clone()),
            Cell::Int(n) => Some(n.to_string()),
            Cell::Bool(b) => Some(b.to_string()),
            Cell::Float(f) => Some(f.to_string()),
            Cell::Time(t) => Some(crate::clock::iso(*t)),
        }
    }

    pub fn user_id(&self, kind: IdKind) -> Option<UserId> {
        match (kind, self) {
            (IdKind::Int, Cell::Int(n)) => Some(UserId::Int(*n)),
            (IdKind::Int, Cell::Text(s)) => s.trim().parse().ok().map(UserId::Int),
            (IdKind::Str, c) => c.text().filter(|s| !s.is_empty()).map(UserId::Str),
            _ => None,
        }
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f%:z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc));
        }
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    s.parse::<i64>()
        .ok()
        .and_then(|n| DateTime::from_timestamp(n, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_backends_store_them() {
        let at = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(Cell::Text("2026-12-01 10:00:00".into()).time(), Some(at));
        assert_eq!(
            Cell::Text("2026-12-01T12:00:00+02:00".into()).time(),
            Some(at)
        );
        assert_eq!(Cell::Int(at.timestamp()).time(), Some(at));
        assert!(Cell::Text("1".into()).truthy());
        assert!(!Cell::Text("0".into()).truthy());
        assert!(Cell::Int(1).truthy() && !Cell::Null.truthy());
        assert!(!Cell::Text("0".into()).active() && !Cell::Bool(false).active());
        assert!(Cell::Null.active() && Cell::Int(1).active());
        assert_eq!(
            Cell::Text("kefu_001".into()).user_id(IdKind::Str),
            Some(UserId::Str("kefu_001".into()))
        );
        assert_eq!(Cell::Int(7).user_id(IdKind::Int), Some(UserId::Int(7)));
    }

    #[test]
    fn identifiers_are_quoted_per_backend_and_values_bound() {
        let mut x = ExternalSettings::default();
        x.tokens = Some(crate::config::ExternalTokens {
            revoked: Some("is_revoked".into()),
            ..Default::default()
        });
        x.users.table = "app.users".into();
        let m = Mapping::new(&x);
        let q = m.select_tokens(vec!["a'b".into(), "c".into()]).unwrap();
        let (sql, values) = q.build(sea_orm::sea_query::MysqlQueryBuilder);
        assert_eq!(
            sql,
            "SELECT `token`, `user_id`, `is_revoked` FROM `user_tokens` WHERE `token` IN (?, ?)"
        );
        assert_eq!(values.0.len(), 2);
        let q = m.select_users(&[UserId::Int(1)], IdKind::Int);
        let (sql, _) = q.build(sea_orm::sea_query::PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"SELECT "id", "username" FROM "app"."users" WHERE "id" IN ($1)"#
        );
    }
}
