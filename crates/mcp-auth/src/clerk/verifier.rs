//! [`ClerkVerifier`]: every Clerk token kind, dispatched by shape.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use url::Url;

use super::{
    ClerkConfig, ClerkConfigError,
    backend::{BackendApi, BackendError},
};
use crate::{
    Audience, AuthInfo, CacheConfig, CachedVerifier, Jwks, JwksConfig, JwtVerifier, McpServer,
    McpServerBuilder, TokenKind, TokenVerifier, VerifyError, auth_info::split_scopes,
    verify::VerifyFuture,
};

/// Where the JWT signing keys come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum JwksSource {
    /// `{frontend_api}/.well-known/jwks.json`: public, no secret key sent. The default.
    #[default]
    FrontendApi,
    /// `{api}/v1/jwks` with the secret key; counts against the Backend API rate limit (rarely:
    /// key sets are cached).
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

    /// Also accepts Clerk API keys (`ak_…`), checked with `POST /v1/api_keys/verify`.
    pub fn accept_api_keys(self) -> Self {
        self.add_kind(TokenKind::ApiKey)
    }

    /// Also accepts Clerk machine-to-machine tokens (`mt_…`), checked with
    /// `POST /v1/m2m_tokens/verify`.
    pub fn accept_machine_tokens(self) -> Self {
        self.add_kind(TokenKind::MachineToken)
    }

    /// **Weakens the audience check**: accepts JWT OAuth access tokens that carry no `aud` (a
    /// present `aud` must still name this resource). Needed when your Clerk instance issues
    /// tokens without `aud`; the cost is that any Clerk OAuth token of your instance without `aud`,
    /// whichever resource it was obtained for, is accepted here. Default: off (`aud` required).
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
        let dispatch = Dispatch {
            oauth_jwt,
            session_jwt,
            backend: self.config.backend_api(),
            kinds: self.kinds,
            issuer,
            resource: self.resource.clone(),
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
/// | JWT with `typ: at+jwt` | [`TokenKind::OAuthAccessToken`] | signature (JWKS), `iss`, `aud`, `exp`/`nbf`/`iat` |
/// | other JWT (`sid`, `azp`, `v`) | [`TokenKind::SessionToken`] | signature, `iss`, `azp` in the authorized parties |
/// | `oat_…` | [`TokenKind::OAuthAccessToken`] | `POST /v1/oauth_applications/access_tokens/verify` |
/// | `ak_…` | [`TokenKind::ApiKey`] | `POST /v1/api_keys/verify` |
/// | `mt_…` | [`TokenKind::MachineToken`] | `POST /v1/m2m_tokens/verify` |
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

    /// The resource URL JWT access tokens' `aud` must name.
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
}

/// The uncached dispatcher.
struct Dispatch {
    oauth_jwt: Option<JwtVerifier>,
    session_jwt: Option<JwtVerifier>,
    backend: BackendApi,
    kinds: Vec<TokenKind>,
    issuer: String,
    resource: String,
}

/// What a token looks like, before any check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    AccessJwt,
    OtherJwt,
    Opaque(TokenKind),
    Unknown,
}

fn shape(token: &str) -> Shape {
    if token.split('.').count() == 3 {
        return match jsonwebtoken::decode_header(token) {
            Ok(h)
                if h.typ.as_deref().is_some_and(|t| {
                    let t = t.to_ascii_lowercase();
                    t == "at+jwt" || t == "application/at+jwt"
                }) =>
            {
                Shape::AccessJwt
            }
            Ok(_) => Shape::OtherJwt,
            Err(_) => Shape::Unknown,
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
            Shape::AccessJwt => match &self.oauth_jwt {
                Some(v) => v.verify_jwt(token).await,
                None => Err(not_accepted(TokenKind::OAuthAccessToken)),
            },
            Shape::OtherJwt => match &self.session_jwt {
                Some(v) => {
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
        let (path, body): (&[&str], Value) = match kind {
            TokenKind::ApiKey => (&["api_keys", "verify"], json!({ "secret": token })),
            TokenKind::MachineToken => (&["m2m_tokens", "verify"], json!({ "token": token })),
            _ => (
                &["oauth_applications", "access_tokens", "verify"],
                json!({ "access_token": token }),
            ),
        };
        let answer = match self.backend.post_json(path, &body).await {
            Ok(answer) => answer,
            Err(BackendError::NotFound | BackendError::Rejected { .. }) => {
                return Err(VerifyError::invalid_token("token not recognised by Clerk"));
            }
            Err(BackendError::Unauthorized { status }) => {
                tracing::error!(
                    status,
                    "the Clerk Backend API refused the secret key: check CLERK_SECRET_KEY"
                );
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
        identity_from_answer(kind, answer, &self.issuer, &self.resource, now_unix())
    }
}

impl TokenVerifier for Dispatch {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        Box::pin(self.verify_token(token))
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Clerk timestamps are milliseconds; accept seconds too, in case.
fn to_unix_secs(v: &Value) -> Option<u64> {
    let n = v.as_u64().or_else(|| v.as_f64().map(|f| f as u64))?;
    Some(if n > 100_000_000_000 { n / 1000 } else { n })
}

/// Turns a Backend API verify answer into an identity.
fn identity_from_answer(
    kind: TokenKind,
    answer: Value,
    issuer: &str,
    resource: &str,
    now: u64,
) -> Result<AuthInfo, VerifyError> {
    let Value::Object(map) = answer else {
        return Err(VerifyError::invalid_token("token not recognised by Clerk"));
    };
    let flag = |name: &str| map.get(name).and_then(Value::as_bool).unwrap_or(false);
    if flag("revoked") {
        return Err(VerifyError::invalid_token("token revoked"));
    }
    let expires_at = map.get("expiration").and_then(to_unix_secs);
    if flag("expired") || expires_at.is_some_and(|exp| exp <= now) {
        return Err(VerifyError::invalid_token("token expired"));
    }
    let subject = map
        .get("subject")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| VerifyError::invalid_token("missing subject"))?
        .to_owned();
    // Clerk's answer has no audience today; should one appear, a wrong one is refused.
    if let Some(aud) = map.get("aud").or_else(|| map.get("audience")) {
        let auds: Vec<&str> = match aud {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !auds.is_empty() && !auds.contains(&resource) {
            return Err(VerifyError::invalid_token("audience mismatch"));
        }
    }
    let scopes: Vec<String> = match map.get("scopes").or_else(|| map.get("scope")) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(s)) => split_scopes(s),
        _ => Vec::new(),
    };
    let mut builder = AuthInfo::builder(subject, kind)
        .scopes(scopes)
        .issuer(issuer);
    if let Some(client) = map.get("client_id").and_then(Value::as_str) {
        builder = builder.client_id(client);
    }
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
        // {"alg":"RS256","typ":"at+jwt"} / {"alg":"RS256","typ":"JWT"}
        assert_eq!(
            shape("eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCJ9.e30.sig"),
            Shape::AccessJwt
        );
        assert_eq!(
            shape("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.e30.sig"),
            Shape::OtherJwt
        );
    }

    #[test]
    fn verify_answers_become_identities() {
        let now = 1_700_000_000;
        let answer = json!({
            "object": "clerk_idp_oauth_access_token", "id": "oat_1", "client_id": "cl_1",
            "subject": "user_1", "scopes": ["profile", "email"], "revoked": false,
            "expired": false, "expiration": (now + 60) * 1000,
        });
        let info =
            identity_from_answer(TokenKind::OAuthAccessToken, answer, ISS, RES, now).unwrap();
        assert_eq!(info.user_id(), "user_1");
        assert_eq!(info.client_id(), Some("cl_1"));
        assert_eq!(info.scopes(), ["profile", "email"]);
        assert_eq!(info.expires_at_unix(), Some(now + 60));
        assert_eq!(info.issuer(), Some(ISS));
        assert_eq!(info.claim("jti"), Some(&json!("oat_1")));

        for (field, value, why) in [
            ("revoked", json!(true), "token revoked"),
            ("expired", json!(true), "token expired"),
            ("expiration", json!((now - 1) * 1000), "token expired"),
            ("subject", json!(""), "missing subject"),
            (
                "aud",
                json!("https://other.example/mcp"),
                "audience mismatch",
            ),
        ] {
            let mut answer = json!({"subject": "user_1", "scopes": []});
            answer[field] = value;
            let err = identity_from_answer(TokenKind::ApiKey, answer, ISS, RES, now).unwrap_err();
            assert_eq!(err, VerifyError::invalid_token(why), "{field}");
        }
    }
}
