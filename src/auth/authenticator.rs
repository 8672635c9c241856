//! [`Authenticator`]: keys, cache and token store behind one `authenticate()`, built once in
//! `startup` (or by `token inspect`, which needs nothing else). Every HTTP route, every
//! handshake and `auth:refresh` ask it; the diagnosis reads the same store and the same
//! [`decide`](super::decide::decide).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::cache::{AuthCache, Cached};
use super::decide::{self, Evidence, Rules};
use super::jwt::{self, Keys, Verified};
use super::source::{self, Found};
use super::store::{Lookup, TokenStore, token_hash};
use super::{AuthRequest, Purpose, Session};
use crate::config::{Settings, fingerprint};
use crate::error::{AppError, ErrorCode};
use crate::limits::{ConnectionSlot, Limits};
use crate::metrics::Metrics;
use crate::net;

pub struct Authenticator {
    settings: Arc<Settings>,
    keys: Keys,
    cache: AuthCache,
    store: Arc<dyn TokenStore>,
    metrics: Metrics,
    limits: Arc<Limits>,
    config_fingerprint: String,
}

/// An accepted handshake: the session and the connection's place (contract §11 limits).
#[derive(Clone)]
pub struct Admitted {
    pub session: Session,
    pub slot: ConnectionSlot,
}

impl Authenticator {
    pub fn new(
        settings: Arc<Settings>,
        mut keys: Keys,
        store: Arc<dyn TokenStore>,
        metrics: Metrics,
    ) -> Self {
        keys.id_kind = store.id_kind();
        Authenticator {
            cache: AuthCache::new(Duration::from_secs(settings.auth.cache_ttl_secs)),
            config_fingerprint: config_fingerprint(&settings, &keys),
            settings,
            keys,
            store,
            metrics,
            limits: Limits::unlimited(),
        }
    }

    /// Enforce these limits on handshakes (the default is none).
    pub fn with_limits(mut self, limits: Arc<Limits>) -> Self {
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }
    pub fn keys(&self) -> &Keys {
        &self.keys
    }
    pub fn cache(&self) -> &AuthCache {
        &self.cache
    }
    pub fn store(&self) -> &dyn TokenStore {
        &*self.store
    }
    pub fn store_arc(&self) -> Arc<dyn TokenStore> {
        self.store.clone()
    }
    /// What two nodes must agree on to accept each other's tokens, hashed.
    pub fn config_fingerprint(&self) -> &str {
        &self.config_fingerprint
    }
    pub fn rules(&self) -> Rules {
        Rules {
            require_row: self.settings.auth.require_db_record && self.store.has_token_rows(),
            leeway_secs: self.settings.auth.leeway_secs,
            other_users_row: if self.store.issues_tokens() {
                ErrorCode::TokenNotFound
            } else {
                ErrorCode::TokenClaimsInvalid
            },
        }
    }

    /// Authenticate one request, HTTP or refresh, and log the decision in one line.
    pub async fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Session, AppError> {
        self.run(req, async |_| Ok(()))
            .await
            .map(|(session, ..)| session)
    }

    /// A Socket.IO handshake: [`authenticate`](Self::authenticate) within the limits of
    /// contract §11 (the address's rate first, then the node's and the user's places), logged
    /// and counted as one verdict.
    pub async fn admit(&self, req: &AuthRequest<'_>) -> Result<Admitted, AppError> {
        self.admit_with(req, async |_| Ok(()))
            .await
            .map(|(admitted, ())| admitted)
    }

    /// [`admit`](Self::admit) with a last say for the caller once the token and the limits
    /// passed (the bridge's `on_connect`): its refusal is the handshake's verdict, logged and
    /// counted in `im_handshakes_total` like any other, and gives the connection place back.
    pub async fn admit_with<T>(
        &self,
        req: &AuthRequest<'_>,
        last_say: impl AsyncFnOnce(&Session) -> Result<T, AppError>,
    ) -> Result<(Admitted, T), AppError> {
        let (session, slot, said) = self.run(req, last_say).await?;
        let slot = slot.ok_or(ErrorCode::Internal)?; // run gives every handshake a slot
        Ok((Admitted { session, slot }, said))
    }

    async fn run<T>(
        &self,
        req: &AuthRequest<'_>,
        last_say: impl AsyncFnOnce(&Session) -> Result<T, AppError>,
    ) -> Result<(Session, Option<ConnectionSlot>, T), AppError> {
        let started = Instant::now();
        let auth = &self.settings.auth;
        let found = source::find(req.parts, req.auth_payload, auth, req.sources);
        let ignored = match &found {
            None => source::ignored(req.parts, req.auth_payload, auth, req.sources),
            Some(_) => None,
        };
        let client = net::client_ip(req.parts, &self.settings.server.trust_proxy);
        let result = async {
            let handshake = req.purpose == Purpose::Handshake;
            if handshake {
                self.limits.handshake_from(client)?;
            }
            let session = self.steps(req, found.as_ref()).await?;
            let slot = match handshake {
                true => Some(self.limits.admit(session.user.id.clone()).await?),
                false => None,
            };
            let said = last_say(&session).await?;
            Ok((session, slot, said))
        }
        .await;
        let elapsed = started.elapsed();
        let logged = result.as_ref().map(|(s, ..)| s);
        self.log(
            req,
            client,
            found.as_ref(),
            ignored.as_deref(),
            logged,
            elapsed,
        );
        if req.purpose != Purpose::Http {
            let verdict = result.as_ref().err().map_or("OK", |e| e.code.as_str());
            let source = found.as_ref().map_or("none", |f| f.source.as_str());
            self.metrics.handshake(verdict, source, elapsed);
        }
        result
    }

    async fn steps(
        &self,
        req: &AuthRequest<'_>,
        found: Option<&Found>,
    ) -> Result<Session, AppError> {
        if req.purpose == Purpose::Handshake
            && !net::origin_allowed(&self.settings, net::header(req.parts, "origin"))
        {
            return Err(ErrorCode::OriginDenied.into());
        }
        self.verify_token(found.ok_or(ErrorCode::TokenMissing)?)
            .await
    }

    /// The token steps: JWT, then the row (unless `auth.require_db_record = false`) and the
    /// user, from the cache when fresh, judged by [`decide::decide`].
    async fn verify_token(&self, found: &Found) -> Result<Session, AppError> {
        let now = Utc::now();
        let verified = self.keys.verify(found.token.as_str(), now.timestamp())?;
        let db_started = Instant::now();
        let hash = token_hash(found.token.as_str());
        let evidence = match self.cache.get(&hash) {
            Some(c) => c,
            None => self.load(found.token.as_str(), &hash, &verified).await,
        };
        self.metrics.auth_db(db_started.elapsed());
        let verdict = decide::decide(
            &Evidence {
                jwt: Ok(&verified),
                row: &evidence.row,
                user: &evidence.user,
            },
            self.rules(),
            now,
        );
        if let Err(code) = verdict {
            return Err(refusal(code, &evidence));
        }
        let Cached { row, user } = evidence;
        let Lookup::Found(user) = user else {
            return Err(ErrorCode::Internal.into()); // decide accepts only a found user
        };
        Ok(Session {
            user,
            token_id: row.found().and_then(|r| r.id),
            token_hash: hash,
            token: crate::config::Secret::new(found.token.as_str()),
            token_fingerprint: found.token.fingerprint(),
            source: found.source,
            issued_at: verified.claims.iat.map(jwt::ts),
            expires_at: verified.claims.expires_at(),
        })
    }

    /// Ask the store for the row and the user of `sub` (the user only if the row does not
    /// already refuse). What was found is cached — a revoked row or a disabled user stays
    /// refused — but never a missing row or an unanswered store.
    async fn load(&self, token: &str, hash: &str, verified: &Verified) -> Cached {
        let rules = self.rules();
        let row = if rules.require_row {
            Lookup::from_result(self.store.token(token).await)
        } else {
            Lookup::NotChecked
        };
        let user = if decide::row_refuses(&row, rules) {
            Lookup::NotChecked
        } else {
            Lookup::from_result(self.store.user(&verified.user_id).await)
        };
        let cached = Cached { row, user };
        let complete = matches!(cached.row, Lookup::Found(_) | Lookup::NotChecked)
            && matches!(cached.user, Lookup::Found(_));
        if complete {
            self.cache.put(hash, cached.clone());
        }
        cached
    }

    fn log(
        &self,
        req: &AuthRequest<'_>,
        client: Option<std::net::IpAddr>,
        found: Option<&Found>,
        ignored: Option<&str>,
        result: Result<&Session, &AppError>,
        elapsed: Duration,
    ) {
        let verdict = result.err().map_or("OK", |e| e.code.as_str());
        let source = found.map_or("none", |f| f.source.as_str());
        let client = client.map(|ip| ip.to_string()).unwrap_or_default();
        let origin = net::header(req.parts, "origin").unwrap_or("-");
        let user_id = result.map_or_else(|_| "-".into(), |s| s.user.id.to_string());
        let token_fp = found.map_or_else(|| "-".into(), |f| f.token.fingerprint());
        let elapsed_ms = format!("{:.2}", elapsed.as_secs_f64() * 1000.0);
        let transport = req.transport.as_str();
        let ignored = ignored.unwrap_or("-");
        // A refresh says so in the message; the fields stay those of every handshake line.
        let what = match req.purpose {
            Purpose::Refresh => "auth:refresh",
            _ => "auth",
        };
        match result {
            Err(e) if e.code.is_server_fault() => tracing::error!(
                target: "im_server::handshake", transport = %transport, source = %source,
                verdict = %verdict, user_id = %user_id, token = %token_fp,
                elapsed_ms = %elapsed_ms, client = %client, origin = %origin,
                ignored = %ignored,
                error = e.source.as_ref().map(|s| format!("{s:#}")),
                "{what} {verdict}"
            ),
            _ => tracing::info!(
                target: "im_server::handshake", transport = %transport, source = %source,
                verdict = %verdict, user_id = %user_id, token = %token_fp,
                elapsed_ms = %elapsed_ms, client = %client, origin = %origin,
                ignored = %ignored, "{what} {verdict}"
            ),
        }
    }
}

/// The refusal for a code, carrying the store's error when the store did not answer (logged
/// by the handshake line, never sent).
fn refusal(code: ErrorCode, evidence: &Cached) -> AppError {
    let cause = evidence
        .row
        .unavailable()
        .or(evidence.user.unavailable())
        .cloned();
    match (code, cause) {
        (ErrorCode::AuthUnavailable, Some(cause)) => {
            AppError::auth_unavailable(anyhow::anyhow!(cause))
        }
        _ => code.into(),
    }
}

/// What two services must agree on to accept each other's tokens, hashed: compare this value
/// across nodes instead of comparing secrets.
pub fn config_fingerprint(settings: &Settings, keys: &Keys) -> String {
    let a = &settings.auth;
    let material = format!(
        "key={}|encoding={:?}|algorithms={}|issuer={}|audience={}",
        keys.current.fingerprint,
        a.jwt_secret_encoding,
        a.algorithms.join(","),
        a.issuer.as_deref().unwrap_or(""),
        a.audience.as_deref().unwrap_or(""),
    );
    fingerprint(material.as_bytes())
}
