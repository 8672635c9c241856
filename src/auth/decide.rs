//! THE decision: given what each step found, which code a token gets. Pure, so the handshake
//! and the diagnosis (`token inspect`, `/auth/tokens/inspect`) cannot disagree: both gather the
//! evidence their own way (the handshake stops early, the diagnosis asks everything) and both
//! ask [`decide`].

use chrono::{DateTime, Duration, Utc};

use super::jwt::Verified;
use super::session::User;
use super::store::{Lookup, TokenRecord};
use crate::error::ErrorCode;

/// The settings a verdict depends on.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// `auth.require_db_record`: a valid JWT also needs its row.
    pub require_row: bool,
    /// The same leeway as the JWT's `exp`, for the row's `expires_at`.
    pub leeway_secs: u64,
    /// The code of a row recorded for another user than the token's: `TOKEN_NOT_FOUND` for
    /// im-server's own rows (that row was not issued for this token), `TOKEN_CLAIMS_INVALID`
    /// for a backend's (contract §9: the claim lies about the row's user).
    pub other_users_row: ErrorCode,
}

/// What the steps found about one token.
pub struct Evidence<'a> {
    pub jwt: Result<&'a Verified, ErrorCode>,
    pub row: &'a Lookup<TokenRecord>,
    pub user: &'a Lookup<User>,
}

/// The order of the contract's codes: JWT, then the row (missing, revoked, expired, issued to
/// another user), then the user (missing, disabled). An unanswered store fails closed.
pub fn decide(e: &Evidence<'_>, rules: Rules, now: DateTime<Utc>) -> Result<(), ErrorCode> {
    let verified = e.jwt?;
    if rules.require_row {
        match e.row {
            Lookup::Unavailable(_) | Lookup::NotChecked => return Err(ErrorCode::AuthUnavailable),
            Lookup::Missing => return Err(ErrorCode::TokenNotFound),
            Lookup::Found(r) => {
                row_state(r, now, rules.leeway_secs)?;
                if r.user_id != verified.user_id {
                    return Err(rules.other_users_row);
                }
            }
        }
    }
    match e.user {
        Lookup::Unavailable(_) | Lookup::NotChecked => Err(ErrorCode::AuthUnavailable),
        Lookup::Missing => Err(ErrorCode::UserNotFound),
        Lookup::Found(u) => user_state(u),
    }
}

/// Whether the row alone already refuses the token (then the user need not be asked).
pub fn row_refuses(row: &Lookup<TokenRecord>, rules: Rules) -> bool {
    rules.require_row && !matches!(row, Lookup::Found(_))
}

/// A row's own verdict: revoked, or past its `expires_at` (with leeway).
pub fn row_state(row: &TokenRecord, now: DateTime<Utc>, leeway_secs: u64) -> Result<(), ErrorCode> {
    if row.revoked {
        Err(ErrorCode::TokenRevoked)
    } else if row
        .expires_at
        .is_some_and(|at| at + Duration::seconds(leeway_secs as i64) < now)
    {
        Err(ErrorCode::TokenExpired)
    } else {
        Ok(())
    }
}

pub fn user_state(user: &User) -> Result<(), ErrorCode> {
    if user.is_active {
        Ok(())
    } else {
        Err(ErrorCode::UserDisabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::{Claims, KeyUsed};

    fn verified(user_id: i64) -> Verified {
        Verified {
            claims: Claims::for_user(user_id, 0, 60),
            user_id: user_id.into(),
            key: KeyUsed::Current,
        }
    }
    fn row(user_id: i64, revoked: bool, expires_in: i64) -> Lookup<TokenRecord> {
        Lookup::Found(TokenRecord {
            id: Some(1),
            user_id: user_id.into(),
            revoked,
            expires_at: Some(Utc::now() + Duration::seconds(expires_in)),
            created_at: None,
            last_used_at: None,
        })
    }
    fn user(id: i64, active: bool) -> Lookup<User> {
        Lookup::Found(User {
            id: id.into(),
            username: "u".into(),
            user_type: "user".into(),
            display_name: "u".into(),
            email: None,
            is_active: active,
        })
    }
    const RULES: Rules = Rules {
        require_row: true,
        leeway_secs: 30,
        other_users_row: ErrorCode::TokenNotFound,
    };

    fn verdict(
        jwt: Result<&Verified, ErrorCode>,
        r: &Lookup<TokenRecord>,
        u: &Lookup<User>,
    ) -> Result<(), ErrorCode> {
        decide(
            &Evidence {
                jwt,
                row: r,
                user: u,
            },
            RULES,
            Utc::now(),
        )
    }

    #[test]
    fn codes_come_in_the_contract_order() {
        let v = verified(7);
        let ok_row = row(7, false, 600);
        let ok_user = user(7, true);
        assert_eq!(verdict(Ok(&v), &ok_row, &ok_user), Ok(()));
        assert_eq!(
            verdict(
                Err(ErrorCode::TokenExpired),
                &row(7, true, -600),
                &Lookup::Missing
            ),
            Err(ErrorCode::TokenExpired),
            "the JWT's verdict comes first"
        );
        assert_eq!(
            verdict(Ok(&v), &Lookup::Missing, &ok_user),
            Err(ErrorCode::TokenNotFound)
        );
        assert_eq!(
            verdict(Ok(&v), &row(7, true, -600), &ok_user),
            Err(ErrorCode::TokenRevoked)
        );
        assert_eq!(
            verdict(Ok(&v), &row(7, false, -600), &ok_user),
            Err(ErrorCode::TokenExpired)
        );
        assert_eq!(
            verdict(Ok(&v), &row(7, false, -10), &ok_user),
            Ok(()),
            "within the leeway"
        );
        assert_eq!(
            verdict(Ok(&v), &row(8, false, 600), &ok_user),
            Err(ErrorCode::TokenNotFound)
        );
        let backend = Rules {
            other_users_row: ErrorCode::TokenClaimsInvalid,
            ..RULES
        };
        assert_eq!(
            decide(
                &Evidence {
                    jwt: Ok(&v),
                    row: &row(8, false, 600),
                    user: &ok_user
                },
                backend,
                Utc::now()
            ),
            Err(ErrorCode::TokenClaimsInvalid),
            "a backend's row of another user: the claim is wrong (contract §9)"
        );
        assert_eq!(
            verdict(Ok(&v), &ok_row, &Lookup::Missing),
            Err(ErrorCode::UserNotFound)
        );
        assert_eq!(
            verdict(Ok(&v), &ok_row, &user(7, false)),
            Err(ErrorCode::UserDisabled)
        );
    }

    #[test]
    fn a_store_that_does_not_answer_fails_closed() {
        let v = verified(7);
        let down = Lookup::Unavailable("connection refused".into());
        assert_eq!(
            verdict(Ok(&v), &down, &user(7, true)),
            Err(ErrorCode::AuthUnavailable)
        );
        assert_eq!(
            verdict(
                Ok(&v),
                &row(7, false, 600),
                &Lookup::Unavailable("x".into())
            ),
            Err(ErrorCode::AuthUnavailable)
        );
        let no_rows = Rules {
            require_row: false,
            ..RULES
        };
        assert_eq!(
            decide(
                &Evidence {
                    jwt: Ok(&v),
                    row: &Lookup::NotChecked,
                    user: &user(7, true)
                },
                no_rows,
                Utc::now()
            ),
            Ok(()),
            "no row needed when rows are not required"
        );
    }
}
