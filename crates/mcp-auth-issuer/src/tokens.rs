//! Minting, finding and revoking tokens in Clerk's shapes: OAuth access tokens (JWT `at+jwt` or
//! opaque `oat_…`), refresh tokens, OIDC ID tokens, session tokens, API keys (`ak_…`) and machine
//! tokens (`mt_…`).

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::clock::millis;
use crate::config::TokenFormat;
use crate::ids;
use crate::state::Shared;
use crate::store::{
    AccessToken, CredentialKind, MachineCredential, RefreshStatus, RefreshToken, StoreError,
};
use crate::{Error, User};

/// Ask for an OAuth access token without going through the browser flow.
#[derive(Clone, Debug, Default)]
pub struct MintRequest {
    /// The token's subject (`sub`), normally a `user_…` id.
    pub user_id: String,
    /// The OAuth client the token is issued to (`client_id` claim).
    pub client_id: String,
    /// Granted scopes (any strings; not checked against `scopes_supported`).
    pub scopes: Vec<String>,
    /// Audience (`aud`), the RFC 8707 resource; `None` leaves `aud` out, as Clerk does.
    pub resource: Option<String>,
    /// Lifetime; `None` uses the configured access-token lifetime. Zero mints an expired token.
    pub lifetime: Option<Duration>,
    /// Token format; `None` uses the configured one.
    pub format: Option<TokenFormat>,
}

impl MintRequest {
    /// A request for `user_id` and `client_id` with no scopes and configured defaults.
    pub fn new(user_id: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            client_id: client_id.into(),
            ..Self::default()
        }
    }
}

/// Organization claims of a session token (Clerk session token v2 `o` claim).
#[derive(Clone, Debug, Default)]
pub struct OrganizationClaims {
    /// `org_…` id (`o.id`).
    pub id: String,
    /// Slug (`o.slg`).
    pub slug: String,
    /// Role without the `org:` prefix, e.g. `admin` (`o.rol`).
    pub role: String,
    /// Permissions, emitted comma-separated (`o.per`).
    pub permissions: Vec<String>,
}

/// Ask for a Clerk session token: an RS256 JWT with `sid`, `azp`, `v`, no `typ: at+jwt`.
#[derive(Clone, Debug, Default)]
pub struct SessionTokenRequest {
    /// The signed-in user (`sub`).
    pub user_id: String,
    /// Session id (`sid`); `None` generates `sess_…`.
    pub session_id: Option<String>,
    /// Authorized party (`azp`), the origin of the frontend; `None` uses the issuer's base URL.
    pub authorized_party: Option<String>,
    /// Active organization, if any.
    pub organization: Option<OrganizationClaims>,
    /// Lifetime; `None` uses the configured session-token lifetime (60 s).
    pub lifetime: Option<Duration>,
    /// The `cat` header; `None` is Clerk's session-token category. Set
    /// [`JWT_CATEGORY_TEMPLATE`] to mint what Clerk's JWT templates produce (a resource server
    /// must refuse it as a session token).
    pub category: Option<String>,
}

/// `cat` header of Clerk session tokens (`@clerk/backend` 3.25.0 `tokens/jwtCategories.ts:5`).
pub const JWT_CATEGORY_SESSION: &str = "cl_B7d4PD111AAA";
/// `cat` header of tokens from Clerk JWT templates (`tokens/jwtCategories.ts:6`).
pub const JWT_CATEGORY_TEMPLATE: &str = "cl_B7d4PD222AAA";
/// `cat` header of Clerk M2M JWTs (`tokens/jwtCategories.ts:7`).
pub const JWT_CATEGORY_M2M: &str = "cl_B7d4PD333AAA";

/// Ask for a Clerk API key (`ak_…`), verified with `POST /api_keys/verify`.
#[derive(Clone, Debug, Default)]
pub struct ApiKeyRequest {
    /// Owner: a `user_…`, `org_…` or `mch_…` id.
    pub subject: String,
    /// Display name; empty gives `"Test API key"`.
    pub name: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Custom claims returned by verify.
    pub claims: Option<Value>,
    /// Lifetime; `None` never expires.
    pub lifetime: Option<Duration>,
}

/// Ask for a Clerk machine-to-machine token: opaque (`mt_…`, verified with
/// `POST /m2m_tokens/verify`) or a JWT (verified locally).
#[derive(Clone, Debug, Default)]
pub struct MachineTokenRequest {
    /// The calling machine, `mch_…`.
    pub subject: String,
    /// The machines the token is granted to (`mch_…` ids): Clerk's `scopes`. Verifying with a
    /// machine's secret key passes only tokens granted to that machine.
    pub scopes: Vec<String>,
    /// Custom claims.
    pub claims: Option<Value>,
    /// Lifetime; `None` is one hour (Clerk's default `default_token_ttl`).
    pub lifetime: Option<Duration>,
    /// [`TokenFormat::Opaque`] (`None`, Clerk's default) or [`TokenFormat::Jwt`].
    pub format: Option<TokenFormat>,
}

/// A Clerk machine created by [`IssuerHandle::create_machine`](crate::IssuerHandle::create_machine).
#[derive(Clone, Debug)]
pub struct MachineCreated {
    /// The machine id, `mch_…`.
    pub id: String,
    /// Its machine secret key (`ak_…`), returned once, as Clerk does.
    pub secret_key: String,
}

/// What an access token is bound to; shared by the token endpoint and the admin helpers.
pub(crate) struct AccessGrant<'a> {
    pub(crate) subject: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) scopes: &'a [String],
    pub(crate) resource: Option<&'a str>,
    pub(crate) lifetime: Duration,
    pub(crate) format: TokenFormat,
    pub(crate) grant_id: Option<&'a str>,
}

/// An OAuth token (access or refresh) this issuer recognises, with its current record.
#[derive(Debug)]
pub(crate) enum Found {
    Access(AccessToken),
    Refresh(RefreshToken),
}

fn non_empty(value: &str, what: &str) -> Result<(), Error> {
    if value.trim().is_empty() {
        Err(Error::InvalidRequest(format!("{what} must not be empty")))
    } else {
        Ok(())
    }
}

fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// A freshly minted access token and the record to store for it.
pub(crate) struct MintedAccess {
    pub(crate) token: String,
    pub(crate) record: AccessToken,
    /// SHA-256 of an opaque token (JWTs are found by `jti`).
    pub(crate) hash: Option<String>,
}

impl Shared {
    /// Mint an access token in the requested format, without storing it (see
    /// [`Tx::insert_access`](crate::store::Tx::insert_access)).
    pub(crate) fn mint_access_token(&self, grant: &AccessGrant<'_>) -> Result<MintedAccess, Error> {
        non_empty(grant.subject, "user_id")?;
        non_empty(grant.client_id, "client_id")?;
        let now_ms = self.clock.now_ms();
        let record = AccessToken {
            id: ids::hex_id("oat_"),
            client_id: grant.client_id.to_owned(),
            subject: grant.subject.to_owned(),
            scopes: grant.scopes.to_vec(),
            resource: grant.resource.map(str::to_owned),
            created_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(millis(grant.lifetime)),
            revoked_at_ms: None,
            revocation_reason: None,
            grant_id: grant.grant_id.map(str::to_owned),
        };
        let token = match grant.format {
            TokenFormat::Jwt => {
                let iat = now_ms / 1000;
                let mut claims = json!({
                    "iss": self.base_url,
                    "sub": record.subject,
                    "client_id": record.client_id,
                    "scope": record.scopes.join(" "),
                    "jti": record.id,
                    "iat": iat,
                    "nbf": iat,
                    "exp": record.expires_at_ms / 1000,
                });
                if let Some(aud) = &record.resource {
                    claims["aud"] = json!(aud);
                }
                self.keys().sign("at+jwt", &claims)?
            }
            TokenFormat::Opaque => ids::secret("oat_"),
        };
        let hash = (grant.format == TokenFormat::Opaque).then(|| ids::hash(&token));
        self.metrics.token_issued("access_token");
        Ok(MintedAccess {
            token,
            record,
            hash,
        })
    }

    /// Issue an access token in the requested format and record it.
    pub(crate) fn issue_access_token(&self, grant: &AccessGrant<'_>) -> Result<String, Error> {
        let minted = self.mint_access_token(grant)?;
        self.store
            .write(|tx| tx.insert_access(&minted.record, minted.hash.as_deref()))?;
        Ok(minted.token)
    }

    /// Mint a refresh token (opaque) bound to the same grant; returns it, its hash and the
    /// record to store.
    pub(crate) fn mint_refresh_token(
        &self,
        grant: &AccessGrant<'_>,
        grant_id: &str,
    ) -> (String, String, RefreshToken) {
        let token = format!("rt_{}", ids::random_urlsafe());
        let record = RefreshToken {
            client_id: grant.client_id.to_owned(),
            subject: grant.subject.to_owned(),
            scopes: grant.scopes.to_vec(),
            resource: grant.resource.map(str::to_owned),
            created_at_ms: self.clock.now_ms(),
            expires_at_ms: self
                .clock
                .now_ms()
                .saturating_add(millis(self.config.refresh_token_lifetime)),
            status: RefreshStatus::Active,
            grant_id: grant_id.to_owned(),
        };
        self.metrics.token_issued("refresh_token");
        (ids::hash(&token), token, record)
    }

    /// OIDC ID token for the `openid` scope; profile and email claims follow the granted scopes.
    pub(crate) fn issue_id_token(
        &self,
        user: &User,
        client_id: &str,
        scopes: &[String],
        nonce: Option<&str>,
        auth_time: u64,
    ) -> Result<String, Error> {
        let now = self.clock.now_secs();
        let mut claims = json!({
            "iss": self.base_url,
            "sub": user.id,
            "aud": client_id,
            "azp": client_id,
            "iat": now,
            "exp": now + self.config.access_token_lifetime.as_secs(),
            "auth_time": auth_time,
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        if let Value::Object(map) = &mut claims {
            map.extend(self.user_claims(user, scopes));
        }
        let token = self.keys().sign("JWT", &claims)?;
        self.metrics.token_issued("id_token");
        Ok(token)
    }

    /// OIDC standard claims for the granted scopes (userinfo and ID tokens).
    pub(crate) fn user_claims(&self, user: &User, scopes: &[String]) -> Map<String, Value> {
        let has = |s: &str| scopes.iter().any(|x| x == s);
        let mut out = Map::new();
        if has("profile") {
            out.insert("name".into(), json!(user.full_name()));
            out.insert("given_name".into(), json!(user.first_name));
            out.insert("family_name".into(), json!(user.last_name));
            out.insert("preferred_username".into(), json!(user.username));
            out.insert("picture".into(), json!(user.picture(&self.base_url)));
        }
        if has("email") {
            out.insert("email".into(), json!(user.email));
            out.insert("email_verified".into(), json!(true));
        }
        if has("public_metadata") {
            out.insert("public_metadata".into(), user.public_metadata.clone());
        }
        if has("private_metadata") {
            out.insert("private_metadata".into(), json!({}));
        }
        out
    }

    /// A Clerk session token (v2 claims).
    pub(crate) fn mint_session_token(&self, req: &SessionTokenRequest) -> Result<String, Error> {
        non_empty(&req.user_id, "user_id")?;
        let now = self.clock.now_secs();
        let lifetime = req.lifetime.unwrap_or(self.config.session_token_lifetime);
        let jti = ids::random_alnum(20);
        let mut claims = json!({
            "azp": req.authorized_party.clone().unwrap_or_else(|| self.base_url.clone()),
            "exp": now + lifetime.as_secs(),
            "fva": [0, -1],
            "iat": now,
            "iss": self.base_url,
            "jti": jti,
            "nbf": now,
            "sid": req.session_id.clone().unwrap_or_else(|| ids::id("sess_")),
            "sub": req.user_id,
            "v": 2,
        });
        if let Some(org) = &req.organization {
            claims["o"] = json!({
                "id": org.id,
                "slg": org.slug,
                "rol": org.role,
                "per": org.permissions.join(","),
            });
        }
        let cat = req.category.as_deref().unwrap_or(JWT_CATEGORY_SESSION);
        let token = self.keys().sign_with_category("JWT", Some(cat), &claims)?;
        let expires_at_ms = (now + lifetime.as_secs()).saturating_mul(1000);
        self.store
            .write(|tx| tx.insert_session(&jti, expires_at_ms))?;
        self.metrics.token_issued("session_token");
        Ok(token)
    }

    fn machine_credential(
        &self,
        id_prefix: &str,
        name: &str,
        subject: &str,
        scopes: &[String],
        claims: Option<&Value>,
        lifetime: Option<Duration>,
    ) -> MachineCredential {
        let now_ms = self.clock.now_ms();
        MachineCredential {
            id: ids::hex_id(id_prefix),
            name: name.to_owned(),
            subject: subject.to_owned(),
            scopes: scopes.to_vec(),
            claims: claims.cloned(),
            created_at_ms: now_ms,
            expires_at_ms: lifetime.map(|l| now_ms.saturating_add(millis(l))),
            revoked_at_ms: None,
            revocation_reason: None,
            last_used_at_ms: None,
        }
    }

    /// A Clerk API key secret.
    pub(crate) fn mint_api_key(&self, req: &ApiKeyRequest) -> Result<String, Error> {
        non_empty(&req.subject, "subject")?;
        let name = if req.name.is_empty() {
            "Test API key"
        } else {
            &req.name
        };
        let record = self.machine_credential(
            "ak_",
            name,
            &req.subject,
            &req.scopes,
            req.claims.as_ref(),
            req.lifetime,
        );
        let secret = ids::secret("ak_");
        self.store.write(|tx| {
            tx.insert_credential(CredentialKind::ApiKey, &ids::hash(&secret), &record)
        })?;
        self.metrics.token_issued("api_key");
        Ok(secret)
    }

    /// A Clerk machine, with its secret key.
    pub(crate) fn create_machine(
        &self,
        name: &str,
        scoped_machines: &[String],
    ) -> Result<(crate::store::Machine, String), Error> {
        non_empty(name, "name")?;
        if name.len() > 255 {
            return Err(Error::InvalidRequest(
                "name must be at most 255 characters".into(),
            ));
        }
        // `^mch_\w{27}$` (Backend API spec, `subject` of an M2M token).
        let machine = crate::store::Machine {
            id: ids::id("mch_"),
            name: name.to_owned(),
            created_at_ms: self.clock.now_ms(),
            scoped_machines: scoped_machines.to_vec(),
            default_token_ttl: 3600,
        };
        // Machine secret keys are `ak_…` strings (`packages/backend/src/api/__tests__/
        // M2MTokenApi.test.ts` in `clerk/javascript`).
        let secret = ids::secret("ak_");
        self.store
            .write(|tx| tx.insert_machine(&machine, &ids::hash(&secret)))?;
        Ok((machine, secret))
    }

    /// A Clerk machine token, opaque or JWT.
    pub(crate) fn mint_machine_token(&self, req: &MachineTokenRequest) -> Result<String, Error> {
        non_empty(&req.subject, "subject")?;
        if !req.subject.starts_with("mch_") {
            return Err(Error::InvalidRequest(
                "subject must be a machine id (mch_…)".into(),
            ));
        }
        let lifetime = req.lifetime.unwrap_or(Duration::from_secs(3600));
        let record = self.machine_credential(
            "mt_",
            "",
            &req.subject,
            &req.scopes,
            req.claims.as_ref(),
            Some(lifetime),
        );
        if req.format == Some(TokenFormat::Jwt) {
            // Claims of Clerk's M2M JWTs (`packages/backend/src/fixtures/index.ts:48-58` in
            // `clerk/javascript`): the granted machines both as `aud` and as space-separated
            // `scopes`; custom claims alongside.
            let iat = record.created_at_ms / 1000;
            let mut claims = Map::new();
            if let Some(Value::Object(custom)) = &record.claims {
                claims.extend(custom.clone());
            }
            claims.extend([
                ("iss".to_owned(), json!(self.base_url)),
                ("sub".to_owned(), json!(record.subject)),
                ("aud".to_owned(), json!(record.scopes)),
                ("scopes".to_owned(), json!(record.scopes.join(" "))),
                ("jti".to_owned(), json!(record.id)),
                ("iat".to_owned(), json!(iat)),
                ("nbf".to_owned(), json!(iat)),
                (
                    "exp".to_owned(),
                    json!(record.expires_at_ms.unwrap_or_default() / 1000),
                ),
            ]);
            let token = self.keys().sign_with_category(
                "JWT",
                Some(JWT_CATEGORY_M2M),
                &Value::Object(claims),
            )?;
            self.metrics.token_issued("machine_token");
            return Ok(token);
        }
        let token = ids::secret("mt_");
        self.store.write(|tx| {
            tx.insert_credential(CredentialKind::MachineToken, &ids::hash(&token), &record)
        })?;
        self.metrics.token_issued("machine_token");
        Ok(token)
    }

    /// Find an access token (JWT issued here, or opaque). A JWT whose record is gone (pruned,
    /// or minted by an issuer that shared only its key file) is rebuilt from its claims.
    pub(crate) fn find_access_token(&self, token: &str) -> Result<Option<AccessToken>, StoreError> {
        if looks_like_jwt(token) {
            let Some((typ, claims)) = self.verify_own_jwt(token) else {
                return Ok(None);
            };
            if typ.as_deref() != Some("at+jwt") {
                return Ok(None);
            }
            let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
                return Ok(None);
            };
            if let Some(record) = self.store.read(|tx| tx.access_by_id(jti))? {
                return Ok(Some(record));
            }
            return Ok(access_from_claims(jti, &claims));
        }
        self.store.read(|tx| tx.access_by_hash(&ids::hash(token)))
    }

    /// Signature and issuer check of a JWT signed by this issuer.
    pub(crate) fn verify_own_jwt(&self, token: &str) -> Option<(Option<String>, Value)> {
        let (typ, claims) = self.keys().verify(token, self.clock.now_secs())?;
        (claims.get("iss").and_then(Value::as_str) == Some(self.base_url.as_str()))
            .then_some((typ, claims))
    }

    /// Find an OAuth access or refresh token by its string (introspection).
    pub(crate) fn find_token(&self, token: &str) -> Result<Option<Found>, StoreError> {
        if looks_like_jwt(token) {
            return Ok(self.find_access_token(token)?.map(Found::Access));
        }
        let hash = ids::hash(token);
        self.store.read(|tx| {
            if let Some(access) = tx.access_by_hash(&hash)? {
                return Ok(Some(Found::Access(access)));
            }
            Ok(tx.refresh(&hash)?.map(Found::Refresh))
        })
    }

    /// Revoke a token of any kind, in one transaction. With `client_id`, only a token issued to
    /// that client is touched (RFC 7009 §2.1). Returns whether something was revoked.
    pub(crate) fn revoke_token(
        &self,
        token: &str,
        client_id: Option<&str>,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let now_ms = self.clock.now_ms();
        let owned_by = |owner: &str| client_id.is_none_or(|c| c == owner);
        if looks_like_jwt(token) {
            let Some((typ, claims)) = self.verify_own_jwt(token) else {
                return Ok(false);
            };
            let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
                return Ok(false);
            };
            if typ.as_deref() == Some("at+jwt") {
                let owner = claims
                    .get("client_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !owned_by(owner) {
                    return Ok(false);
                }
                // A JWT whose record is gone is recorded now, so the revocation sticks.
                let rebuilt = access_from_claims(jti, &claims);
                return self.store.write(|tx| {
                    if let Some(record) = &rebuilt {
                        tx.insert_access(record, None)?;
                    }
                    tx.revoke_access(jti, now_ms, reason)?;
                    Ok(true)
                });
            }
            if client_id.is_some() {
                return Ok(false);
            }
            return self.store.write(|tx| tx.revoke_session(jti));
        }
        let hash = ids::hash(token);
        self.store.write(|tx| {
            if let Some(record) = tx.access_by_hash(&hash)? {
                if !owned_by(&record.client_id) {
                    return Ok(false);
                }
                tx.revoke_access(&record.id, now_ms, reason)?;
                return Ok(true);
            }
            if let Some(record) = tx.refresh(&hash)? {
                if !owned_by(&record.client_id) {
                    return Ok(false);
                }
                // RFC 7009 §2.1: revoking a refresh token also invalidates its access tokens.
                tx.revoke_grant(&record.grant_id, now_ms, reason)?;
                return Ok(true);
            }
            if client_id.is_some() {
                return Ok(false);
            }
            tx.revoke_credential(&hash, now_ms, reason)
        })
    }
}

/// The record of a JWT access token, rebuilt from its verified claims.
fn access_from_claims(jti: &str, claims: &Value) -> Option<AccessToken> {
    Some(AccessToken {
        id: jti.to_owned(),
        client_id: claims.get("client_id")?.as_str()?.to_owned(),
        subject: claims.get("sub")?.as_str()?.to_owned(),
        scopes: claims
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        resource: claims.get("aud").and_then(Value::as_str).map(str::to_owned),
        created_at_ms: claims.get("iat")?.as_u64()?.saturating_mul(1000),
        expires_at_ms: claims.get("exp")?.as_u64()?.saturating_mul(1000),
        revoked_at_ms: None,
        revocation_reason: None,
        grant_id: None,
    })
}
