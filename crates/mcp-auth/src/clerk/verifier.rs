//! [`ClerkVerifier`]: every Clerk token kind, dispatched by shape.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use url::Url;

use super::{
    ClerkConfig, ClerkConfigError,
    backend::{BackendApi, BackendError},
    machine::{M2mJwtVerifier, Peek, ReceivingMachine},
};
use crate::{
    Audience, AuthInfo, CacheConfig, CachedVerifier, FleetStore, Jwks, JwksConfig, JwtVerifier,
    McpServer, McpServerBuilder, TokenKind, TokenVerifier, VerifyError,
    auth_info::split_scopes,
    verify::{
        ReadyFuture, VerifyFuture,
        shared::{SharedAnswers, SharedPolicy},
    },
};

/// Where the JWT signing keys come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum JwksSource {
    /// `{frontend_api}/.well-known/jwks.json`: public, no secret key sent. The default.
    #[default]
    FrontendApi,
    /// `{api}/v1/jwks` with the secret key (not rate-limited by Clerk; key sets are cached
    /// anyway).
    BackendApi,
}

/// Configures a [`ClerkVerifier`]; from [`ClerkConfig::verifier`]. Every setter documents its
/// default; the defaults are the strict ones.
#[derive(Debug)]
#[must_use]
pub struct ClerkVerifierBuilder {
    config: ClerkConfig,
    resource: String,
    kinds: Vec<TokenKind>,
    allow_missing_audience: bool,
    authorized_parties: Vec<String>,
    jwks_source: JwksSource,
    jwks_config: JwksConfig,
    cache: CacheConfig,
    leeway: Duration,
    /// The receiving machine, or why its values were refused (reported by `build`). Its
    /// `Debug` redacts the secret key.
    machine: Option<Result<ReceivingMachine, ClerkConfigError>>,
    shared: Option<FleetStore>,
    shared_wait: Duration,
}

impl ClerkVerifierBuilder {
    pub(crate) fn new(config: ClerkConfig, resource: String) -> Self {
        Self {
            config,
            resource,
            kinds: vec![TokenKind::OAuthAccessToken],
            allow_missing_audience: false,
            authorized_parties: Vec::new(),
            jwks_source: JwksSource::FrontendApi,
            jwks_config: JwksConfig::default(),
            cache: ClerkVerifier::default_cache(),
            leeway: Duration::from_secs(5),
            machine: None,
            shared: None,
            shared_wait: Duration::from_secs(2),
        }
    }

    /// Replaces the accepted token kinds (Clerk's `acceptsToken`). Default:
    /// `[TokenKind::OAuthAccessToken]`. Accepting [`TokenKind::SessionToken`] also needs
    /// [`authorized_parties`](Self::authorized_parties).
    pub fn accept_kinds(mut self, kinds: impl IntoIterator<Item = TokenKind>) -> Self {
        self.kinds = kinds.into_iter().collect();
        self
    }

    fn add_kind(mut self, kind: TokenKind) -> Self {
        if !self.kinds.contains(&kind) {
            self.kinds.push(kind);
        }
        self
    }

    /// Also accepts Clerk session tokens (first-party browser sessions) whose `azp` is one of
    /// `parties` (your frontends' origins, e.g. `https://app.example.com`). A session token
    /// without `azp`, or with another one, is refused.
    pub fn accept_session_tokens<I, S>(self, parties: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.authorized_parties(parties)
            .add_kind(TokenKind::SessionToken)
    }

    /// The origins allowed in a session token's `azp` (Clerk's `authorizedParties`).
    pub fn authorized_parties<I, S>(mut self, parties: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.authorized_parties = parties.into_iter().map(Into::into).collect();
        self
    }

    /// Also accepts Clerk API keys (`ak_…`), checked with `POST /api_keys/verify`. The
    /// identity's [`user_id`](AuthInfo::user_id) is the key's subject only when that is a user
    /// (`user_…`); an organization's key sets [`organization_id`](AuthInfo::organization_id)
    /// and a machine's key [`machine_id`](AuthInfo::machine_id) instead.
    pub fn accept_api_keys(self) -> Self {
        self.add_kind(TokenKind::ApiKey)
    }

    /// Also accepts Clerk machine-to-machine tokens: opaque `mt_…` tokens, checked with
    /// `POST /m2m_tokens/verify`, and M2M JWTs (`sub` starting with `mch_`, whatever their
    /// `typ`), verified locally against the instance's keys. The identity has
    /// [`machine_id`](AuthInfo::machine_id) set, no user id, and as scopes the machines the
    /// token is granted to.
    ///
    /// Without [`receiving_machine`](Self::receiving_machine), **any** M2M token of your Clerk
    /// instance is accepted, whichever machine it was created for.
    pub fn accept_machine_tokens(self) -> Self {
        self.add_kind(TokenKind::MachineToken)
    }

    /// This service's own Clerk machine (Clerk Dashboard → Machines: its id `mch_…` and its
    /// machine secret key, `CLERK_MACHINE_SECRET_KEY` in the examples). With it, only M2M tokens
    /// *granted to this machine* are accepted, as Clerk documents the pattern:
    ///
    /// - opaque `mt_…` tokens are verified with the machine secret key instead of the instance
    ///   secret key; Clerk's Backend API then verifies only tokens granted to this machine
    ///   (`POST /m2m_tokens/verify`, Backend API spec `2026-05-12`);
    /// - M2M JWTs are accepted only when this machine id is among the machines the token is
    ///   granted to (its `scopes` claim, else its `aud`, as `@clerk/backend` reads them). The id
    ///   is needed because a machine secret key is an opaque `ak_…` string that says nothing
    ///   about its machine, and Clerk's SDK has no call that maps one to the other.
    ///
    /// Default: none (any M2M token of the instance passes). Malformed values are refused by
    /// [`build`](Self::build).
    pub fn receiving_machine(
        mut self,
        machine_id: impl Into<String>,
        machine_secret_key: impl Into<String>,
    ) -> Self {
        self.machine = Some(ReceivingMachine::new(
            &machine_id.into(),
            &machine_secret_key.into(),
        ));
        self
    }

    /// **Weakens the audience check**: accepts OAuth access tokens that carry no audience, JWT
    /// (`aud` claim) and opaque (`aud` of Clerk's verify answer) alike; a present audience must
    /// still name this resource. Needed when clients obtain tokens without RFC 8707 `resource`
    /// (Clerk then sets no `aud`); the cost is that any OAuth token of your instance without an
    /// audience, whichever resource it was obtained for, is accepted here. Default: off (an
    /// audience naming this resource is required).
    pub fn allow_missing_audience(mut self) -> Self {
        self.allow_missing_audience = true;
        self
    }

    /// Where signing keys are fetched. Default: [`JwksSource::FrontendApi`].
    pub fn jwks_source(mut self, source: JwksSource) -> Self {
        self.jwks_source = source;
        self
    }

    /// Caching and refetch policy of the key set. Default: [`JwksConfig::default`].
    pub fn jwks_config(mut self, config: JwksConfig) -> Self {
        self.jwks_config = config;
        self
    }

    /// The verification cache. Default: 10,000 entries, identities cached at most 60 s (so a
    /// revoked opaque token, API key or machine token stops working within a minute), refusals
    /// for 5 s. An entry never outlives its token.
    pub fn cache(mut self, cache: CacheConfig) -> Self {
        self.cache = cache;
        self
    }

    /// Shares Backend API verification results (opaque OAuth tokens, API keys, opaque M2M
    /// tokens) and Clerk's rate-limit backoff with the other replicas through `fleet` (Redis
    /// with the `redis` feature: `mcp_auth::redis::RedisStore`). Default: none, each
    /// replica on its own.
    ///
    /// - The local cache is consulted first; the shared store only on a local miss. JWTs are
    ///   verified locally and never touch the store.
    /// - Entries are keyed by the SHA-256 of the token under the store's key prefix, kept no
    ///   longer than the local cache keeps them ([`cache`](Self::cache)'s `max_ttl`; refusals
    ///   its `negative_ttl`) and never past the token's expiry.
    /// - Fleet-wide single flight: when several replicas meet a new token at once, one calls
    ///   Clerk and the others wait for its answer, at most
    ///   [`shared_wait`](Self::shared_wait), then call Clerk themselves.
    /// - A `429` seen by one replica holds back every replica until its `Retry-After` passes.
    /// - With the store down, slow or flapping, each replica verifies as if alone (see
    ///   [`FleetStore`]); a request never fails because of the store.
    pub fn shared_cache(mut self, fleet: FleetStore) -> Self {
        self.shared = Some(fleet);
        self
    }

    /// Longest a replica waits for another replica's Backend API call on the same token before
    /// calling itself (with [`shared_cache`](Self::shared_cache)). Default: 2 seconds.
    pub fn shared_wait(mut self, wait: Duration) -> Self {
        self.shared_wait = wait;
        self
    }

    /// Clock-skew allowance for `exp`/`nbf`/`iat`. Default: 5 seconds.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Builds the verifier.
    pub fn build(self) -> Result<ClerkVerifier, ClerkConfigError> {
        if self.kinds.is_empty() {
            return Err(ClerkConfigError::NoTokenKinds);
        }
        Url::parse(&self.resource)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or(ClerkConfigError::InvalidResource)?;
        let accepts = |k| self.kinds.contains(&k);
        if accepts(TokenKind::SessionToken) && self.authorized_parties.is_empty() {
            return Err(ClerkConfigError::SessionTokensNeedAuthorizedParties);
        }
        let machine = self.machine.clone().transpose()?;
        let issuer = self.config.frontend_api_url().to_owned();
        let jwks = match self.jwks_source {
            JwksSource::FrontendApi => {
                let url = Url::parse(&format!("{issuer}/.well-known/jwks.json"))
                    .map_err(|_| ClerkConfigError::InvalidUrl("frontend API URL"))?;
                Jwks::from_url_config(url, self.jwks_config.clone())
            }
            JwksSource::BackendApi => {
                let url = self
                    .config
                    .backend_api()
                    .base_url()
                    .join("jwks")
                    .map_err(|_| ClerkConfigError::InvalidUrl("Backend API URL"))?;
                let mut headers = http::HeaderMap::new();
                let mut value = http::HeaderValue::try_from(format!(
                    "Bearer {}",
                    self.config.secret_key().expose()
                ))
                .map_err(|_| ClerkConfigError::InvalidSecretKey)?;
                value.set_sensitive(true);
                headers.insert(http::header::AUTHORIZATION, value);
                let client = reqwest::Client::builder()
                    .timeout(self.jwks_config.fetch_timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .default_headers(headers)
                    .build()
                    .unwrap_or_default();
                Jwks::from_url_with(url, client, self.jwks_config.clone())
            }
        };
        let oauth_jwt = if accepts(TokenKind::OAuthAccessToken) {
            let audience = if self.allow_missing_audience {
                Audience::RequiredIfPresent(vec![self.resource.clone()])
            } else {
                Audience::Required(vec![self.resource.clone()])
            };
            Some(
                JwtVerifier::builder(issuer.clone(), jwks.clone())
                    .audience(audience)
                    .require_typ(["at+jwt"])
                    .accept_kinds([TokenKind::OAuthAccessToken])
                    .leeway(self.leeway)
                    .build()
                    .map_err(ClerkConfigError::Verifier)?,
            )
        } else {
            None
        };
        let m2m_jwt = accepts(TokenKind::MachineToken).then(|| M2mJwtVerifier {
            jwks: jwks.clone(),
            issuer: issuer.clone(),
            leeway: self.leeway,
            machine: machine.clone(),
        });
        let session_jwt = if accepts(TokenKind::SessionToken) {
            Some(
                JwtVerifier::builder(issuer.clone(), jwks)
                    // Session tokens carry no `aud` unless a custom template adds one; a present
                    // one must still name this resource.
                    .audience(Audience::RequiredIfPresent(vec![self.resource.clone()]))
                    .accept_kinds([TokenKind::SessionToken])
                    .authorized_parties(self.authorized_parties.clone())
                    .leeway(self.leeway)
                    .build()
                    .map_err(ClerkConfigError::Verifier)?,
            )
        } else {
            None
        };
        let backend = match &self.shared {
            Some(fleet) => self.config.backend_api().with_fleet(fleet.clone()),
            None => self.config.backend_api(),
        };
        let shared = self.shared.map(|fleet| SharedAnswers {
            policy: SharedPolicy {
                max_ttl: self.cache.max_ttl,
                negative_ttl: self.cache.negative_ttl,
                wait: self.shared_wait,
                // Outlives the slowest call the holder can make, so a dead holder frees it.
                lock_ttl: backend.settings().deadline + Duration::from_secs(1),
                poll: Duration::from_millis(20),
            },
            fleet,
        });
        let dispatch = Dispatch {
            oauth_jwt,
            session_jwt,
            m2m_jwt,
            shared,
            backend,
            kinds: self.kinds,
            issuer,
            resource: self.resource.clone(),
            allow_missing_audience: self.allow_missing_audience,
            machine,
        };
        Ok(ClerkVerifier {
            cached: CachedVerifier::with_config(dispatch, self.cache),
            frontend_api_url: self.config.frontend_api_url().to_owned(),
            resource: self.resource,
        })
    }

    /// Builds the verifier and starts an [`McpServerBuilder`] for the same resource URL, with the
    /// Frontend API as authorization server (as Clerk's own MCP helpers advertise it) and
    /// `scopes_supported` in the protected resource metadata. Add tools and call `build()`.
    ///
    /// ```no_run
    /// use mcp_auth::{AuthInfo, clerk::ClerkConfig};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct NoArgs {}
    /// let clerk = ClerkConfig::from_env_values(
    ///     std::env::var("CLERK_SECRET_KEY").ok().as_deref(),
    ///     std::env::var("CLERK_PUBLISHABLE_KEY").ok().as_deref(),
    ///     std::env::var("CLERK_API_URL").ok().as_deref(),
    ///     std::env::var("CLERK_FRONTEND_API_URL").ok().as_deref(),
    /// )?;
    /// let router = clerk
    ///     .verifier("https://mcp.example.com/mcp")
    ///     .mcp_server(["profile", "email"])?
    ///     .tool("whoami", "Who is calling", |_: NoArgs, auth: AuthInfo| async move {
    ///         auth.user_id().to_owned()
    ///     })
    ///     .build()?;
    /// # let _ = router; Ok(()) }
    /// ```
    pub fn mcp_server<I, S>(self, scopes_supported: I) -> Result<McpServerBuilder, ClerkConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let verifier = self.build()?;
        Ok(verifier.mcp_server(scopes_supported))
    }
}

/// Verifies every kind of Clerk token an MCP server may receive, by its shape:
///
/// | Token | Kind | How |
/// | --- | --- | --- |
/// | JWT whose `sub` starts with `mch_` (any `typ`) | [`TokenKind::MachineToken`] | signature (JWKS), `cat` absent or M2M, `iss`, `exp`/`nbf`/`iat`, granted to the receiving machine if one is set |
/// | JWT with `typ: at+jwt` | [`TokenKind::OAuthAccessToken`] | signature (JWKS), `iss`, `aud`, `exp`/`nbf`/`iat` |
/// | other JWT (`sid`, `azp`, `v`) | [`TokenKind::SessionToken`] | `cat` absent or session, signature, `iss`, `azp` in the authorized parties |
/// | `oat_…` | [`TokenKind::OAuthAccessToken`] | `POST /oauth_applications/access_tokens/verify`, answer's `aud` |
/// | `ak_…` | [`TokenKind::ApiKey`] | `POST /api_keys/verify` |
/// | `mt_…` | [`TokenKind::MachineToken`] | `POST /m2m_tokens/verify` (with the machine secret key if set) |
///
/// The order is Clerk's: `sub` first, then `typ` (`@clerk/backend` 3.25.0
/// `tokens/verify.ts:291-297`). The three verify endpoints are called without `/v1` and with
/// the `Clerk-API-Version` header, as Clerk's SDK calls them (see
/// [`CLERK_API_VERSION`](super::CLERK_API_VERSION)).
///
/// A kind that is not accepted is refused (401 `invalid_token`) before any network call.
/// Results are cached by token hash with single-flight (see [`ClerkVerifierBuilder::cache`]);
/// Backend API trouble with nothing cached is answered 503 with `Retry-After`, never 401.
pub struct ClerkVerifier {
    cached: CachedVerifier<Dispatch>,
    frontend_api_url: String,
    resource: String,
}

impl std::fmt::Debug for ClerkVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClerkVerifier")
            .field("frontend_api_url", &self.frontend_api_url)
            .field("resource", &self.resource)
            .field("kinds", &self.cached.inner().kinds)
            .finish_non_exhaustive()
    }
}

impl ClerkVerifier {
    fn default_cache() -> CacheConfig {
        CacheConfig::default()
            .max_ttl(Duration::from_secs(60))
            .negative_ttl(Duration::from_secs(5))
    }

    /// The token kinds accepted.
    #[must_use]
    pub fn accepted_kinds(&self) -> &[TokenKind] {
        &self.cached.inner().kinds
    }

    /// The Frontend API URL: tokens' issuer and the authorization server to advertise.
    #[must_use]
    pub fn frontend_api_url(&self) -> &str {
        &self.frontend_api_url
    }

    /// The resource URL OAuth access tokens' audience must name.
    #[must_use]
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The Backend API client verification uses (share it with tools, so the rate-limit
    /// backoff is shared too).
    #[must_use]
    pub fn backend_api(&self) -> &BackendApi {
        &self.cached.inner().backend
    }

    /// Number of cached verification results (approximate).
    #[must_use]
    pub fn cached_entries(&self) -> u64 {
        self.cached.entry_count()
    }

    /// An [`McpServerBuilder`] for [`resource`](Self::resource), naming the Frontend API as
    /// authorization server, listing `scopes_supported`, and verifying with `self`.
    pub fn mcp_server<I, S>(self, scopes_supported: I) -> McpServerBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        McpServer::builder(&self.resource.clone())
            .authorization_server(self.frontend_api_url.clone())
            .scopes_supported(scopes_supported)
            .verifier(self)
    }
}

impl TokenVerifier for ClerkVerifier {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        self.cached.verify(token)
    }

    fn verify_now(&self, token: &str) -> Option<AuthInfo> {
        self.cached.verify_now(token)
    }

    /// Ready when the signing keys are loaded (JWTs verify locally) or the Backend API
    /// answers (opaque tokens, API keys and M2M tokens verify there).
    fn ready(&self) -> ReadyFuture<'_> {
        self.cached.ready()
    }
}

/// The uncached dispatcher.
struct Dispatch {
    oauth_jwt: Option<JwtVerifier>,
    session_jwt: Option<JwtVerifier>,
    m2m_jwt: Option<M2mJwtVerifier>,
    backend: BackendApi,
    kinds: Vec<TokenKind>,
    issuer: String,
    resource: String,
    allow_missing_audience: bool,
    machine: Option<ReceivingMachine>,
    /// Backend API answers shared with the other replicas, when configured.
    shared: Option<SharedAnswers>,
}

/// What a token looks like, before any check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    M2mJwt,
    AccessJwt,
    OtherJwt,
    Opaque(TokenKind),
    Unknown,
}

/// Clerk's order (`tokens/verify.ts:270-323`): a JWT is M2M when its `sub` starts with `mch_`,
/// else OAuth when `typ` is `at+jwt`; opaque tokens go by prefix.
fn shape(token: &str) -> Shape {
    if token.split('.').count() == 3 {
        return match Peek::of(token) {
            Some(p) if p.is_m2m() => Shape::M2mJwt,
            Some(p) if p.is_oauth() => Shape::AccessJwt,
            Some(_) => Shape::OtherJwt,
            None => Shape::Unknown,
        };
    }
    if token.starts_with("oat_") {
        Shape::Opaque(TokenKind::OAuthAccessToken)
    } else if token.starts_with("ak_") {
        Shape::Opaque(TokenKind::ApiKey)
    } else if token.starts_with("mt_") {
        Shape::Opaque(TokenKind::MachineToken)
    } else {
        Shape::Unknown
    }
}

fn not_accepted(kind: TokenKind) -> VerifyError {
    VerifyError::invalid_token(match kind {
        TokenKind::OAuthAccessToken => "OAuth access tokens are not accepted here",
        TokenKind::SessionToken => "session tokens are not accepted here",
        TokenKind::ApiKey => "API keys are not accepted here",
        TokenKind::MachineToken => "machine tokens are not accepted here",
    })
}

impl Dispatch {
    async fn verify_token(&self, token: &str) -> Result<AuthInfo, VerifyError> {
        match shape(token) {
            Shape::M2mJwt => match (&self.m2m_jwt, Peek::of(token)) {
                (Some(v), Some(peek)) => v.verify(token, &peek).await,
                (None, _) => Err(not_accepted(TokenKind::MachineToken)),
                (_, None) => Err(VerifyError::invalid_token("malformed token")),
            },
            Shape::AccessJwt => match &self.oauth_jwt {
                Some(v) => v.verify_jwt(token).await.map(clerk_oauth_identity),
                None => Err(not_accepted(TokenKind::OAuthAccessToken)),
            },
            Shape::OtherJwt => match &self.session_jwt {
                Some(v) => {
                    // A JWT-template or M2M JWT signed by the same instance key is not a
                    // session token (`tokens/request.ts:428,868`; `tokens/verify.ts:125`).
                    if Peek::of(token).is_some_and(|p| p.has_non_session_cat()) {
                        return Err(VerifyError::invalid_token(
                            "not a session token (JWT category)",
                        ));
                    }
                    let info = v.verify_jwt(token).await?;
                    // Clerk only checks `azp` when present; an MCP server has no reason to
                    // accept a session token that names no frontend at all.
                    if info.claim("azp").and_then(Value::as_str).is_none() {
                        return Err(VerifyError::invalid_token("session token without azp"));
                    }
                    Ok(info)
                }
                None => Err(not_accepted(TokenKind::SessionToken)),
            },
            Shape::Opaque(kind) => {
                if !self.kinds.contains(&kind) {
                    return Err(not_accepted(kind));
                }
                self.verify_opaque(kind, token).await
            }
            Shape::Unknown => Err(VerifyError::invalid_token("not a Clerk token")),
        }
    }

    async fn verify_opaque(&self, kind: TokenKind, token: &str) -> Result<AuthInfo, VerifyError> {
        let (answer, cache_until) = match &self.shared {
            // Only reached on a local miss (the local cache wraps this dispatcher).
            Some(shared) => {
                let scope = match (kind, &self.machine) {
                    (TokenKind::ApiKey, _) => "ak".to_owned(),
                    // Answers obtained with a machine secret key are that machine's view: keep
                    // them apart from another service's sharing the same store.
                    (TokenKind::MachineToken, Some(m)) => format!("mt:{}", m.id),
                    (TokenKind::MachineToken, None) => "mt".to_owned(),
                    _ => "oat".to_owned(),
                };
                let hash = crate::fleet::hash_hex(&[token.as_bytes()]);
                shared
                    .get_or_fetch(
                        &scope,
                        &hash,
                        |answer| expiration(answer.get("expiration")).ok().flatten(),
                        || self.fetch_answer(kind, token),
                    )
                    .await?
            }
            None => (self.fetch_answer(kind, token).await?, None),
        };
        let Some(answer) = answer else {
            return Err(VerifyError::invalid_token("token not recognised by Clerk"));
        };
        let policy = AudiencePolicy {
            resource: &self.resource,
            allow_missing: self.allow_missing_audience,
        };
        let info = identity_from_answer(kind, answer, &self.issuer, policy, now_unix())?;
        // From the store: kept locally no longer than the store keeps it.
        Ok(match cache_until {
            Some(until_ms) => info.with_cache_until_ms(until_ms),
            None => info,
        })
    }

    /// The Backend API's answer for an opaque token; `None` when Clerk does not recognise it.
    async fn fetch_answer(
        &self,
        kind: TokenKind,
        token: &str,
    ) -> Result<Option<Value>, VerifyError> {
        // Paths and bodies as `@clerk/backend` 3.25.0 sends them: `api/endpoints/APIKeysApi.ts`,
        // `M2MTokenApi.ts:201-218` (machine secret key as Bearer when given),
        // `IdPOAuthAccessTokenApi.ts:27-31`; without `/v1` (`api/factory.ts:60-99`).
        let (path, body, key): (&[&str], Value, _) = match kind {
            TokenKind::ApiKey => (&["api_keys", "verify"], json!({ "secret": token }), None),
            TokenKind::MachineToken => (
                &["m2m_tokens", "verify"],
                json!({ "token": token }),
                self.machine.as_ref().map(|m| &m.secret_key),
            ),
            _ => (
                &["oauth_applications", "access_tokens", "verify"],
                json!({ "access_token": token }),
                None,
            ),
        };
        let answer = match self.backend.post_json_unversioned(path, &body, key).await {
            Ok(answer) => answer,
            Err(BackendError::NotFound | BackendError::Rejected { .. }) => return Ok(None),
            Err(BackendError::Unauthorized { status }) => {
                if key.is_some() {
                    tracing::error!(
                        status,
                        "the Clerk Backend API refused the machine secret key: check CLERK_MACHINE_SECRET_KEY"
                    );
                } else {
                    tracing::error!(
                        status,
                        "the Clerk Backend API refused the secret key: check CLERK_SECRET_KEY"
                    );
                }
                return Err(VerifyError::unavailable(
                    self.backend.settings().unavailable_retry_after,
                ));
            }
            Err(e) => {
                let retry_after = e
                    .retry_after()
                    .unwrap_or(self.backend.settings().unavailable_retry_after);
                return Err(VerifyError::unavailable(super::backend::round_up(
                    retry_after,
                )));
            }
        };
        Ok(Some(answer))
    }
}

impl TokenVerifier for Dispatch {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        Box::pin(self.verify_token(token))
    }

    fn ready(&self) -> ReadyFuture<'_> {
        Box::pin(async move {
            let jwks = self
                .oauth_jwt
                .as_ref()
                .or(self.session_jwt.as_ref())
                .map(JwtVerifier::jwks)
                .or(self.m2m_jwt.as_ref().map(|m| &m.jwks));
            if let Some(jwks) = jwks
                && jwks.ready().await
            {
                return true;
            }
            self.backend.reachable().await
        })
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The audience rule for OAuth access tokens, shared by the JWT and the opaque path.
#[derive(Clone, Copy)]
struct AudiencePolicy<'a> {
    resource: &'a str,
    allow_missing: bool,
}

/// A string or an array of strings (`aud` comes in both forms).
fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// An OAuth access token JWT mapped as Clerk maps it (`api/resources/IdPOAuthAccessToken.ts:81-84`):
/// scopes from `scp` (array) before `scope` (space-separated), and the client from `client_id`
/// only: a Clerk JWT's `azp` is the Frontend API origin, not an OAuth client.
fn clerk_oauth_identity(info: AuthInfo) -> AuthInfo {
    let claims = info.claims();
    let scopes = match claims.get("scp") {
        Some(Value::Array(_)) => string_list(claims.get("scp")),
        Some(Value::String(s)) => split_scopes(s),
        _ => claims
            .get("scope")
            .and_then(Value::as_str)
            .map(split_scopes)
            .unwrap_or_default(),
    };
    let mut builder = AuthInfo::builder(info.subject(), info.kind())
        .scopes(scopes)
        .audience(info.audience().iter().cloned());
    if let Some(client) = claims.get("client_id").and_then(Value::as_str) {
        builder = builder.client_id(client);
    }
    if let Some(iss) = info.issuer() {
        builder = builder.issuer(iss);
    }
    if let Some(exp) = info.expires_at_unix() {
        builder = builder.expires_at_unix(exp);
    }
    builder.claims(claims.clone()).build()
}

/// [`identity_from_answer`] for the fuzz targets: the answer of the verify endpoint for `kind`,
/// under the audience policy `(resource, allow_missing)`, at `now` (Unix seconds).
#[cfg(feature = "fuzzing")]
pub(crate) fn verify_answer(
    kind: TokenKind,
    answer: Value,
    issuer: &str,
    resource: &str,
    allow_missing_audience: bool,
    now: u64,
) -> Result<AuthInfo, VerifyError> {
    let policy = AudiencePolicy {
        resource,
        allow_missing: allow_missing_audience,
    };
    identity_from_answer(kind, answer, issuer, policy, now)
}

/// What Clerk's schema says each verify endpoint answers (Backend API spec
/// `bapi/2026-05-12.yml`; `@clerk/backend` 3.25.0 `api/resources/JSON.ts`): the `object`
/// naming the answer's type, the prefix of its `id`, and the prefixes its `subject` may have
/// (`None`: any user id).
fn answer_schema(
    kind: TokenKind,
) -> Option<(&'static str, &'static str, Option<&'static [&'static str]>)> {
    match kind {
        TokenKind::OAuthAccessToken => Some(("clerk_idp_oauth_access_token", "oat_", None)),
        TokenKind::ApiKey => Some(("api_key", "ak_", Some(&["user_", "org_", "mch_"]))),
        TokenKind::MachineToken => Some(("machine_to_machine_token", "mt_", Some(&["mch_"]))),
        TokenKind::SessionToken => None,
    }
}

/// Clerk timestamps are milliseconds (`null` when there is none); values below 10^11 are read
/// as seconds, as the spec's examples look (a millisecond time that small is before 1973).
/// Anything else (a string, a fraction, a negative number) is not a Clerk timestamp.
fn expiration(value: Option<&Value>) -> Result<Option<u64>, VerifyError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let n = v
                .as_u64()
                .ok_or_else(|| unexpected_answer("expiration is not a timestamp"))?;
            Ok(Some(if n > 100_000_000_000 { n / 1000 } else { n }))
        }
    }
}

/// An array of strings, or `None` when the value is anything else.
fn string_array(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// An answer that does not follow Clerk's schema. Refused like an unknown token: no identity is
/// ever built from an answer Clerk would not send (the reason is logged, never the token).
fn unexpected_answer(why: &'static str) -> VerifyError {
    tracing::warn!(
        why,
        "unexpected answer from the Clerk Backend API; token refused"
    );
    VerifyError::invalid_token("token not recognised by Clerk")
}

/// Turns a Backend API verify answer into an identity, or refuses it. An identity comes only
/// from an answer that follows Clerk's schema for the endpoint called (`answer_schema`):
/// its `object` and `id` prefix, a `subject` of the right kind, `scopes` an array of strings,
/// `revoked` and `expired` present and false, `expiration` absent, `null` or a timestamp in
/// the future; for OAuth tokens a `client_id` and an `aud` (an array) that passes the audience
/// policy. The fuzz target `fuzz/fuzz_targets/clerk_answers.rs` checks this against a
/// reference written from the schema.
fn identity_from_answer(
    kind: TokenKind,
    answer: Value,
    issuer: &str,
    audience: AudiencePolicy<'_>,
    now: u64,
) -> Result<AuthInfo, VerifyError> {
    let Value::Object(map) = answer else {
        return Err(VerifyError::invalid_token("token not recognised by Clerk"));
    };
    let (object, id_prefix, subject_prefixes) =
        answer_schema(kind).ok_or_else(|| unexpected_answer("no verify endpoint for this kind"))?;
    // `{"active": false}` (an expired JWT sent to the OAuth endpoint) and Clerk's error
    // envelope land here too: neither is the object asked for.
    if map.get("object").and_then(Value::as_str) != Some(object) {
        return Err(unexpected_answer(
            "not the object type the endpoint answers",
        ));
    }
    if !map
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(|id| id.starts_with(id_prefix))
    {
        return Err(unexpected_answer("id missing or of another kind"));
    }
    let flag = |name: &str| {
        map.get(name)
            .and_then(Value::as_bool)
            .ok_or_else(|| unexpected_answer("revoked/expired flag missing"))
    };
    // Clerk's SDK never reads these two flags (`tokens/authObjects.ts`); Clerk's docs say a
    // revoked or expired token fails verification, so they are refused here whatever the
    // status code.
    if flag("revoked")? {
        return Err(VerifyError::invalid_token("token revoked"));
    }
    let expires_at = expiration(map.get("expiration"))?;
    if flag("expired")? || expires_at.is_some_and(|exp| exp <= now) {
        return Err(VerifyError::invalid_token("token expired"));
    }
    let subject = match map.get("subject").and_then(Value::as_str) {
        Some("") | None => return Err(VerifyError::invalid_token("missing subject")),
        Some(s) => s.to_owned(),
    };
    if subject_prefixes.is_some_and(|prefixes| !prefixes.iter().any(|p| subject.starts_with(p))) {
        return Err(unexpected_answer("subject of another kind"));
    }
    let scopes = map
        .get("scopes")
        .and_then(string_array)
        .ok_or_else(|| unexpected_answer("scopes is not an array of strings"))?;
    let mut builder = AuthInfo::builder(subject.as_str(), kind)
        .scopes(scopes)
        .issuer(issuer);
    if kind == TokenKind::OAuthAccessToken {
        let client = map
            .get("client_id")
            .and_then(Value::as_str)
            .ok_or_else(|| unexpected_answer("client_id missing"))?;
        let auds = match map.get("aud") {
            None | Some(Value::Null) => Vec::new(),
            Some(aud) => {
                string_array(aud).ok_or_else(|| unexpected_answer("aud is not an array"))?
            }
        };
        // The same policy as for JWTs (`aud` is an array in Clerk's answer, read by
        // `api/resources/IdPOAuthAccessToken.ts:65`): strict by default, missing refused too.
        if auds.is_empty() {
            if !audience.allow_missing {
                return Err(VerifyError::invalid_token(
                    "token has no audience (obtain it with the RFC 8707 resource parameter)",
                ));
            }
        } else if !auds.iter().any(|a| a == audience.resource) {
            return Err(VerifyError::invalid_token("audience mismatch"));
        }
        builder = builder.client_id(client).audience(auds);
    }
    // Clerk's auth objects (`tokens/authObjects.ts:283-312`): an API key has a user only for a
    // `user_…` subject and an organization only for `org_…`; an M2M token is a machine.
    builder = match kind {
        TokenKind::MachineToken => builder.subject_is_machine(),
        TokenKind::ApiKey if subject.starts_with("org_") => builder.subject_is_organization(),
        TokenKind::ApiKey if subject.starts_with("mch_") => builder.subject_is_machine(),
        _ => builder,
    };
    if let Some(exp) = expires_at {
        builder = builder.expires_at_unix(exp);
    }
    let mut claims: Map<String, Value> = map;
    if let Some(id) = claims.get("id").cloned() {
        claims.entry("jti").or_insert(id);
    }
    Ok(builder.claims(claims).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://clerk.example.com";
    const RES: &str = "https://mcp.example.com/mcp";

    #[test]
    fn shapes() {
        assert_eq!(shape("oat_abc"), Shape::Opaque(TokenKind::OAuthAccessToken));
        assert_eq!(shape("ak_abc"), Shape::Opaque(TokenKind::ApiKey));
        assert_eq!(shape("mt_abc"), Shape::Opaque(TokenKind::MachineToken));
        assert_eq!(shape("random"), Shape::Unknown);
        assert_eq!(shape("a.b.c"), Shape::Unknown);
        // {"alg":"RS256","typ":"at+jwt"} / {"sub":"mch_1"}: M2M wins over `typ`.
        assert_eq!(
            shape("eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJtY2hfMSJ9.sig"),
            Shape::M2mJwt
        );
        // {"alg":"RS256","typ":"at+jwt"} / {"alg":"RS256","typ":"JWT"}
        assert_eq!(
            shape("eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCJ9.e30.sig"),
            Shape::AccessJwt
        );
        assert_eq!(
            shape("eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCJ9.e30"),
            Shape::Unknown
        );
        assert_eq!(
            shape("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.e30.sig"),
            Shape::OtherJwt
        );
    }

    /// Clerk's mapping of an OAuth JWT (`api/resources/IdPOAuthAccessToken.ts:81-84`): `scp`
    /// before `scope`, the client from `client_id` only (a Clerk JWT's `azp` is the Frontend
    /// API origin).
    #[test]
    fn oauth_jwts_map_as_clerk_maps_them() {
        let claims = json!({
            "sub": "user_1", "scp": ["a", "b"], "scope": "c", "azp": "https://app.example.com",
        });
        let Value::Object(claims) = claims else {
            unreachable!()
        };
        let generic = AuthInfo::builder("user_1", TokenKind::OAuthAccessToken)
            .client_id("https://app.example.com")
            .scopes(["c"])
            .claims(claims.clone())
            .build();
        let info = clerk_oauth_identity(generic);
        assert_eq!(info.scopes(), ["a", "b"]);
        assert_eq!(info.client_id(), None, "azp is not a client");
        let mut with_client = claims;
        with_client.insert("client_id".into(), json!("client_1"));
        with_client.remove("scp");
        let info = clerk_oauth_identity(
            AuthInfo::builder("user_1", TokenKind::OAuthAccessToken)
                .claims(with_client)
                .build(),
        );
        assert_eq!(info.client_id(), Some("client_1"));
        assert_eq!(info.scopes(), ["c"]);
    }

    #[test]
    fn verify_answers_become_identities() {
        let now = 1_700_000_000;
        let answer = json!({
            "object": "clerk_idp_oauth_access_token", "id": "oat_1", "client_id": "cl_1",
            "subject": "user_1", "scopes": ["profile", "email"], "revoked": false,
            "expired": false, "expiration": (now + 60) * 1000,
        });
        let strict = AudiencePolicy {
            resource: RES,
            allow_missing: false,
        };
        let mut with_aud = answer.clone();
        with_aud["aud"] = json!([RES]);
        let info =
            identity_from_answer(TokenKind::OAuthAccessToken, with_aud, ISS, strict, now).unwrap();
        assert_eq!(info.user_id(), "user_1");
        assert_eq!(info.client_id(), Some("cl_1"));
        assert_eq!(info.scopes(), ["profile", "email"]);
        assert_eq!(info.expires_at_unix(), Some(now + 60));
        assert_eq!(info.issuer(), Some(ISS));
        assert_eq!(info.claim("jti"), Some(&json!("oat_1")));
        assert_eq!(info.audience(), [RES]);

        // Without `aud`: refused under the strict default, accepted when relaxed.
        let err = identity_from_answer(
            TokenKind::OAuthAccessToken,
            answer.clone(),
            ISS,
            strict,
            now,
        )
        .unwrap_err();
        assert!(matches!(err, VerifyError::InvalidToken(_)), "{err:?}");
        let relaxed = AudiencePolicy {
            resource: RES,
            allow_missing: true,
        };
        identity_from_answer(TokenKind::OAuthAccessToken, answer, ISS, relaxed, now).unwrap();
        let mut wrong = answer_of(TokenKind::OAuthAccessToken, "user_1");
        wrong["aud"] = json!(["https://other.example/mcp"]);
        let err = identity_from_answer(TokenKind::OAuthAccessToken, wrong, ISS, relaxed, now)
            .unwrap_err();
        assert_eq!(err, VerifyError::invalid_token("audience mismatch"));

        // API keys: a user only for `user_…`.
        for (subject, user, org, machine) in [
            ("user_1", "user_1", None, None),
            ("org_1", "", Some("org_1"), None),
            ("mch_1", "", None, Some("mch_1")),
        ] {
            let answer = answer_of(TokenKind::ApiKey, subject);
            let info = identity_from_answer(TokenKind::ApiKey, answer, ISS, strict, now).unwrap();
            assert_eq!(info.user_id(), user, "{subject}");
            assert_eq!(info.organization_id(), org, "{subject}");
            assert_eq!(info.machine_id(), machine, "{subject}");
            assert_eq!(info.client_id(), None, "{subject}");
        }

        for (field, value, why) in [
            ("revoked", json!(true), "token revoked"),
            ("expired", json!(true), "token expired"),
            ("expiration", json!((now - 1) * 1000), "token expired"),
            ("subject", json!(""), "missing subject"),
        ] {
            let mut answer = answer_of(TokenKind::ApiKey, "user_1");
            answer[field] = value;
            let err =
                identity_from_answer(TokenKind::ApiKey, answer, ISS, strict, now).unwrap_err();
            assert_eq!(err, VerifyError::invalid_token(why), "{field}");
        }
    }

    /// A valid answer of each verify endpoint, as Clerk's schema describes it.
    fn answer_of(kind: TokenKind, subject: &str) -> Value {
        let (object, id) = match kind {
            TokenKind::OAuthAccessToken => ("clerk_idp_oauth_access_token", "oat_1"),
            TokenKind::ApiKey => ("api_key", "ak_1"),
            _ => ("machine_to_machine_token", "mt_1"),
        };
        let mut answer = json!({
            "object": object, "id": id, "subject": subject, "scopes": ["a"],
            "revoked": false, "expired": false, "expiration": null,
        });
        if kind == TokenKind::OAuthAccessToken {
            answer["client_id"] = json!("client_1");
        }
        answer
    }

    /// Answers Clerk's schema refuses that the parser used to turn into identities: each is a
    /// disagreement with the reference of the `clerk_answers` fuzz target
    /// (`fuzz/fuzz_targets/clerk_answers.rs`). Every one is refused now.
    #[test]
    fn answers_clerks_schema_refuses_yield_no_identity() {
        let now = 1_700_000_000;
        let relaxed = AudiencePolicy {
            resource: RES,
            allow_missing: true,
        };
        let accepts =
            |kind, answer: Value| identity_from_answer(kind, answer, ISS, relaxed, now).is_ok();
        use TokenKind::{ApiKey, MachineToken, OAuthAccessToken};
        for kind in [OAuthAccessToken, ApiKey, MachineToken] {
            let subject = if kind == MachineToken {
                "mch_1"
            } else {
                "user_1"
            };
            let valid = answer_of(kind, subject);
            assert!(accepts(kind, valid.clone()), "{kind:?}: the valid answer");
            let mutate = |f: &dyn Fn(&mut Value)| {
                let mut a = valid.clone();
                f(&mut a);
                a
            };
            let refused: Vec<(&str, Value)> = vec![
                // Another endpoint's answer (an API key's answer on the OAuth endpoint, …),
                // or no type at all.
                (
                    "object of another kind",
                    mutate(&|a| a["object"] = json!("api_key_x")),
                ),
                (
                    "no object",
                    mutate(&|a| {
                        a.as_object_mut().unwrap().remove("object");
                    }),
                ),
                ("id of another kind", mutate(&|a| a["id"] = json!("xx_1"))),
                (
                    "no id",
                    mutate(&|a| {
                        a.as_object_mut().unwrap().remove("id");
                    }),
                ),
                // A string timestamp used to read as "never expires".
                (
                    "expiration as a string",
                    mutate(&|a| a["expiration"] = json!("1")),
                ),
                (
                    "expiration as a fraction",
                    mutate(&|a| a["expiration"] = json!(1.7e12)),
                ),
                // The flags are booleans; `"true"` used to read as false.
                (
                    "revoked as a string",
                    mutate(&|a| a["revoked"] = json!("true")),
                ),
                (
                    "expired as a string",
                    mutate(&|a| a["expired"] = json!("true")),
                ),
                (
                    "no revoked flag",
                    mutate(&|a| {
                        a.as_object_mut().unwrap().remove("revoked");
                    }),
                ),
                (
                    "no expired flag",
                    mutate(&|a| {
                        a.as_object_mut().unwrap().remove("expired");
                    }),
                ),
                // `scopes` is an array of strings (a `scope` string is not Clerk's answer).
                (
                    "scope string instead",
                    mutate(&|a| {
                        let m = a.as_object_mut().unwrap();
                        m.remove("scopes");
                        m.insert("scope".into(), json!("a b"));
                    }),
                ),
                (
                    "a scope that is not a string",
                    mutate(&|a| a["scopes"] = json!(["a", 1])),
                ),
            ];
            for (what, answer) in refused {
                assert!(!accepts(kind, answer.clone()), "{kind:?}, {what}: {answer}");
            }
        }
        // Subjects of another kind: an M2M token is a machine's, an API key a user's, an
        // organization's or a machine's.
        assert!(!accepts(MachineToken, answer_of(MachineToken, "user_1")));
        assert!(!accepts(ApiKey, answer_of(ApiKey, "sess_1")));
        // OAuth answers name their client, and `aud` is an array of strings.
        let mut no_client = answer_of(OAuthAccessToken, "user_1");
        no_client.as_object_mut().unwrap().remove("client_id");
        assert!(!accepts(OAuthAccessToken, no_client));
        let mut odd_aud = answer_of(OAuthAccessToken, "user_1");
        odd_aud["aud"] = json!([RES, 7]);
        assert!(!accepts(OAuthAccessToken, odd_aud));
        // `client_id` and `aud` mean something only in OAuth answers: an API key's answer
        // carrying them does not give the key a client or an audience.
        let mut key = answer_of(ApiKey, "user_1");
        key["client_id"] = json!("client_x");
        key["aud"] = json!([RES]);
        let info = identity_from_answer(ApiKey, key, ISS, relaxed, now).unwrap();
        assert_eq!(info.client_id(), None);
        assert!(info.audience().is_empty());
    }
}
