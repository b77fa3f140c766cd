//! Clerk, first class: a preset that verifies every kind of Clerk token an MCP server can
//! receive, and a small Backend API client for tools.
//!
//! ```no_run
//! use mcp_auth::{AuthInfo, clerk::ClerkConfig};
//!
//! # #[derive(serde::Deserialize, schemars::JsonSchema)] struct NoArgs {}
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Binaries read the environment; the library only takes values.
//! let clerk = ClerkConfig::from_env_values(
//!     std::env::var("CLERK_SECRET_KEY").ok().as_deref(),
//!     std::env::var("CLERK_PUBLISHABLE_KEY").ok().as_deref(),
//!     std::env::var("CLERK_API_URL").ok().as_deref(),
//!     std::env::var("CLERK_FRONTEND_API_URL").ok().as_deref(),
//! )?;
//! let users = clerk.backend_api();
//! let router = clerk
//!     .verifier("https://mcp.example.com/mcp") // this server's URL: the audience
//!     .mcp_server(["profile", "email"])?       // scopes_supported in the metadata
//!     .tool("get-clerk-user-data", "The caller's Clerk profile", move |_: NoArgs, auth: AuthInfo| {
//!         let users = users.clone();
//!         async move {
//!             match users.users().get(auth.user_id()).await {
//!                 Ok(user) => serde_json::to_string(&user).unwrap_or_default(),
//!                 Err(e) => format!("could not load the user: {e}"),
//!             }
//!         }
//!     })
//!     .build()?;
//! # let _ = router; Ok(()) }
//! ```
//!
//! # Configuration
//!
//! [`ClerkConfig`] takes the **secret key** (Backend API calls) and the **publishable key**
//! (`pk_test_…`/`pk_live_…`: base64 of the Frontend API host followed by `$`). The Frontend API
//! URL is `https://` + that host; it is the issuer (`iss`) of the instance's tokens, serves the
//! JWKS at `/.well-known/jwks.json`, and is the authorization server the protected resource
//! metadata names. Both base URLs can be overridden (`CLERK_API_URL`,
//! `CLERK_FRONTEND_API_URL`), which is how tests point at the local `mcp-auth-issuer`. Plain
//! `http://` is accepted only for loopback hosts.
//!
//! # Token kinds
//!
//! Accepted kinds are explicit, like Clerk's `acceptsToken`; the default is OAuth access tokens
//! only. Any other kind is refused with 401 `invalid_token`, before any network call. Tokens are
//! told apart as `@clerk/backend` 3.25.0 tells them apart (`tokens/verify.ts:270-323`): a JWT
//! whose `sub` starts with `mch_` is an M2M token whatever its `typ`; else `typ: at+jwt` makes
//! an OAuth access token; any other JWT is a session token; opaque tokens go by prefix.
//!
//! - **OAuth access tokens** ([`TokenKind::OAuthAccessToken`](crate::TokenKind)): what MCP
//!   clients (Claude, Cursor, VS Code, the Inspector) obtain through Clerk's OAuth flow (dynamic
//!   client registration, consent, PKCE). Either JWTs (`typ: at+jwt`, RS256, verified locally
//!   against the JWKS: signature, `iss` = Frontend API URL, `aud`, `exp`/`nbf`/`iat` with 5 s
//!   leeway; scopes from `scp` (array) before `scope` (string), the client from `client_id` only,
//!   never `azp`, which in a Clerk JWT is the Frontend API origin), or opaque `oat_…` strings
//!   checked with `POST /oauth_applications/access_tokens/verify` (`revoked` or `expired`
//!   → 401).
//! - **Session tokens** ([`accept_session_tokens`](ClerkVerifierBuilder::accept_session_tokens)):
//!   the short-lived JWTs a Clerk frontend holds for a signed-in browser session (`sid`, `azp`,
//!   `v`, organization claims `o`/`org_*`). Only useful when your own web app calls the MCP
//!   endpoint. `azp` must be one of the configured authorized parties. A JWT whose `cat` header
//!   names another category (a JWT-template or M2M token signed by the same keys) is refused, as
//!   Clerk refuses it (`tokens/request.ts:428,868`). `sid`, `v` and the organization claims are
//!   available through [`AuthInfo::claims`](crate::AuthInfo::claims).
//! - **API keys** ([`accept_api_keys`](ClerkVerifierBuilder::accept_api_keys)): long-lived `ak_…`
//!   secrets that users, organizations or machines create for scripts; checked with
//!   `POST /api_keys/verify`. As in Clerk's auth object, the key has a
//!   [`user_id`](crate::AuthInfo::user_id) only when its subject is a user (`user_…`); an
//!   organization's key sets [`organization_id`](crate::AuthInfo::organization_id), a machine's
//!   [`machine_id`](crate::AuthInfo::machine_id), and `user_id()` is then empty, so a tool never
//!   looks up an organization or a machine as a user.
//! - **Machine tokens** ([`accept_machine_tokens`](ClerkVerifierBuilder::accept_machine_tokens)):
//!   machine-to-machine tokens, opaque `mt_…` (checked with `POST /m2m_tokens/verify`) or JWTs
//!   (verified locally; a `cat` header, when present, must be Clerk's M2M category). The caller
//!   is [`machine_id`](crate::AuthInfo::machine_id); the scopes are the machines the token is
//!   granted to. Without a [receiving machine](ClerkVerifierBuilder::receiving_machine) any M2M
//!   token of the instance passes; with one (its id and machine secret key), only tokens
//!   granted to it.
//!
//! The three verify endpoints are called as Clerk's SDK calls them: without `/v1`, with the
//! [`CLERK_API_VERSION`] header. Users and JWKS are under `/v1`.
//!
//! # Audience policy
//!
//! MCP servers must only accept tokens issued for them (RFC 8707). For **OAuth access tokens**
//! the default is strict: the audience must be present and name the resource URL given to
//! [`ClerkConfig::verifier`]: the `aud` claim of a JWT, the `aud` array of Clerk's verify answer
//! for an opaque token. A present but different audience is always refused. Clerk sets no `aud`
//! when the client sent no RFC 8707 `resource`; accepting those needs the explicit, documented
//! opt-out [`allow_missing_audience`](ClerkVerifierBuilder::allow_missing_audience), which
//! relaxes both forms alike. **Session tokens** carry no `aud` by design; they are bound to your
//! frontends by `azp` instead (a present `aud` must still match). **API keys and M2M tokens** have
//! no audience: they are accepted as belonging to your instance (M2M tokens: to your machine,
//! when one is configured).
//!
//! # Staying under the Backend API rate limit
//!
//! Clerk allows 1000 Backend API requests per 10 s on production instances and 100 on
//! development ones (`GET /v1/jwks` is not rate-limited). Verification results are cached by SHA-256 of the token (bounded; an
//! entry never outlives its token, and lives at most 60 s by default so a revocation is noticed
//! within a minute); refusals are remembered for 5 s; concurrent first requests with one token
//! share one call. A `429` is honoured through a *shared* backoff (see [`BackendApi`]); when the
//! wait does not fit in the request's deadline the answer is 503 with `Retry-After`, never 401.
//! Clerk down or slow (timeouts in [`BackendSettings`]) with nothing cached → 503; cached
//! identities keep being served.
//!
//! # Secrets
//!
//! The secret key is sent only to the Backend API base URL (no redirects followed), and is
//! redacted in every `Debug`/`Display`. The MCP client's token is never forwarded to the Backend
//! API's user endpoints: [`Users::get`] authenticates with the secret key.

mod backend;
mod keys;
mod machine;
mod users;
mod verifier;

use url::{Host, Url};

pub use backend::{BackendApi, BackendError, BackendSettings, CLERK_API_VERSION};
pub use keys::{PublishableKey, SecretKey};
pub use users::{ClerkUser, EmailAddress, Users};
pub use verifier::{ClerkVerifier, ClerkVerifierBuilder, JwksSource};
#[cfg(feature = "fuzzing")]
pub(crate) use {backend::parse_answer, users::user_from_answer, verifier::verify_answer};

use crate::verify::JwtConfigError;

/// The default Backend API base URL.
pub const DEFAULT_API_URL: &str = "https://api.clerk.com";

/// Why a Clerk configuration was refused. Messages never contain a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClerkConfigError {
    /// No secret key: set `CLERK_SECRET_KEY` (Clerk Dashboard → API keys).
    #[error("no Clerk secret key: set CLERK_SECRET_KEY (Clerk Dashboard → API keys)")]
    MissingSecretKey,
    /// The secret key has characters that cannot be sent in an HTTP header.
    #[error("the Clerk secret key is malformed")]
    InvalidSecretKey,
    /// No publishable key and no Frontend API URL override.
    #[error("no Clerk publishable key: set CLERK_PUBLISHABLE_KEY (or CLERK_FRONTEND_API_URL)")]
    MissingPublishableKey,
    /// The publishable key could not be decoded.
    #[error("invalid Clerk publishable key: {0}")]
    InvalidPublishableKey(&'static str),
    /// Secret key and publishable key belong to different environments (live vs test).
    #[error(
        "the secret key and the publishable key belong to different environments (live vs test)"
    )]
    KeyMismatch,
    /// A base URL is not an absolute `https://` URL (or `http://` on a loopback host).
    #[error("invalid {0}: use an absolute https:// URL (http:// only on loopback)")]
    InvalidUrl(&'static str),
    /// The resource URL is not an absolute http(s) URL.
    #[error("invalid resource URL: use the absolute URL clients connect to")]
    InvalidResource,
    /// Session tokens were enabled without authorized parties.
    #[error(
        "session tokens need authorized parties: call .accept_session_tokens([\"https://app.example.com\"])"
    )]
    SessionTokensNeedAuthorizedParties,
    /// No token kind is accepted.
    #[error("at least one token kind must be accepted")]
    NoTokenKinds,
    /// The receiving machine's id is not a Clerk machine id (`mch_…`).
    #[error("invalid Clerk machine id: use the machine's id (mch_…) from the Clerk Dashboard")]
    InvalidMachineId,
    /// The machine secret key is empty or cannot be sent in an HTTP header.
    #[error("invalid Clerk machine secret key: check CLERK_MACHINE_SECRET_KEY")]
    InvalidMachineSecretKey,
    /// The underlying JWT verifier refused its configuration.
    #[error(transparent)]
    Verifier(#[from] JwtConfigError),
}

/// A Clerk instance: keys, base URLs and the Backend API client. Cheap to clone; clones share
/// the Backend API client (connection pool and rate-limit backoff).
///
/// ```
/// use mcp_auth::clerk::ClerkConfig;
///
/// // Development instance; base URLs pointed at a local Clerk-compatible issuer.
/// let clerk = ClerkConfig::new("sk_test_123", "pk_test_Y2xlcmsuZXhhbXBsZS5jb20k")?
///     .with_api_url("http://127.0.0.1:8788")?
///     .with_frontend_api_url("http://127.0.0.1:8788")?;
/// assert_eq!(clerk.frontend_api_url(), "http://127.0.0.1:8788");
/// assert!(!format!("{clerk:?}").contains("sk_test_123"));
/// # Ok::<(), mcp_auth::clerk::ClerkConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ClerkConfig {
    secret_key: SecretKey,
    frontend_api_url: String,
    api_url: Url,
    settings: BackendSettings,
    backend: BackendApi,
}

impl ClerkConfig {
    /// From a secret key and a publishable key; the Frontend API URL is decoded from the
    /// publishable key and the Backend API is [`DEFAULT_API_URL`].
    pub fn new(
        secret_key: impl Into<String>,
        publishable_key: &str,
    ) -> Result<Self, ClerkConfigError> {
        let secret_key = SecretKey::new(secret_key)?;
        let pk = PublishableKey::parse(publishable_key)?;
        if is_env_mismatch(&secret_key, &pk) {
            return Err(ClerkConfigError::KeyMismatch);
        }
        Ok(Self::assemble(
            secret_key,
            pk.frontend_api_url,
            Url::parse(DEFAULT_API_URL).expect("constant URL"),
            BackendSettings::default(),
        ))
    }

    /// From the values of `CLERK_SECRET_KEY`, `CLERK_PUBLISHABLE_KEY`, `CLERK_API_URL` and
    /// `CLERK_FRONTEND_API_URL` (read by the binary, not by this library). Empty values count
    /// as unset. The publishable key may be omitted when the Frontend API URL is given.
    ///
    /// ```
    /// use mcp_auth::clerk::{ClerkConfig, ClerkConfigError};
    ///
    /// let err = ClerkConfig::from_env_values(None, None, None, None).unwrap_err();
    /// assert_eq!(err, ClerkConfigError::MissingSecretKey);
    /// let clerk = ClerkConfig::from_env_values(
    ///     Some("sk_test_123"), None, Some("http://127.0.0.1:8788"), Some("http://127.0.0.1:8788"),
    /// )?;
    /// assert_eq!(clerk.api_url().as_str(), "http://127.0.0.1:8788/");
    /// # Ok::<(), ClerkConfigError>(())
    /// ```
    pub fn from_env_values(
        secret_key: Option<&str>,
        publishable_key: Option<&str>,
        api_url: Option<&str>,
        frontend_api_url: Option<&str>,
    ) -> Result<Self, ClerkConfigError> {
        fn set(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|s| !s.is_empty())
        }
        let secret_key =
            SecretKey::new(set(secret_key).ok_or(ClerkConfigError::MissingSecretKey)?)?;
        let frontend = match (set(publishable_key), set(frontend_api_url)) {
            (_, Some(url)) => {
                if let Some(pk) = set(publishable_key) {
                    // Still validate it, so a typo is caught even when overridden.
                    PublishableKey::parse(pk)?;
                }
                parse_base_url(url, "Frontend API URL")?
            }
            (Some(pk), None) => {
                let pk = PublishableKey::parse(pk)?;
                if is_env_mismatch(&secret_key, &pk) {
                    return Err(ClerkConfigError::KeyMismatch);
                }
                pk.frontend_api_url
            }
            (None, None) => return Err(ClerkConfigError::MissingPublishableKey),
        };
        let api = match set(api_url) {
            Some(url) => Url::parse(&parse_base_url(url, "Backend API URL")?)
                .map_err(|_| ClerkConfigError::InvalidUrl("Backend API URL"))?,
            None => Url::parse(DEFAULT_API_URL).expect("constant URL"),
        };
        Ok(Self::assemble(
            secret_key,
            frontend,
            api,
            BackendSettings::default(),
        ))
    }

    fn assemble(
        secret_key: SecretKey,
        frontend_api_url: String,
        api_url: Url,
        settings: BackendSettings,
    ) -> Self {
        let backend = BackendApi::new(&api_url, secret_key.clone(), settings.clone());
        Self {
            secret_key,
            frontend_api_url,
            api_url,
            settings,
            backend,
        }
    }

    /// Overrides the Backend API base URL (`CLERK_API_URL`), e.g. `http://127.0.0.1:8788` for a
    /// local issuer. `/v1/` is appended.
    pub fn with_api_url(self, url: &str) -> Result<Self, ClerkConfigError> {
        let api = Url::parse(&parse_base_url(url, "Backend API URL")?)
            .map_err(|_| ClerkConfigError::InvalidUrl("Backend API URL"))?;
        Ok(Self::assemble(
            self.secret_key,
            self.frontend_api_url,
            api,
            self.settings,
        ))
    }

    /// Overrides the Frontend API URL (`CLERK_FRONTEND_API_URL`): the tokens' issuer and the
    /// advertised authorization server.
    pub fn with_frontend_api_url(mut self, url: &str) -> Result<Self, ClerkConfigError> {
        self.frontend_api_url = parse_base_url(url, "Frontend API URL")?;
        Ok(self)
    }

    /// Timeouts and retry policy of Backend API calls. Default: [`BackendSettings::default`].
    #[must_use]
    pub fn with_backend_settings(self, settings: BackendSettings) -> Self {
        Self::assemble(
            self.secret_key,
            self.frontend_api_url,
            self.api_url,
            settings,
        )
    }

    /// The Frontend API URL, without a trailing slash (the `iss` of the instance's tokens).
    #[must_use]
    pub fn frontend_api_url(&self) -> &str {
        &self.frontend_api_url
    }

    /// The Backend API base URL.
    #[must_use]
    pub fn api_url(&self) -> &Url {
        &self.api_url
    }

    /// The Backend API client (shared: clones use one connection pool and one backoff).
    #[must_use]
    pub fn backend_api(&self) -> BackendApi {
        self.backend.clone()
    }

    /// Shortcut for `backend_api().users()`.
    #[must_use]
    pub fn users(&self) -> Users<'_> {
        self.backend.users()
    }

    pub(crate) fn secret_key(&self) -> &SecretKey {
        &self.secret_key
    }

    /// Starts a [`ClerkVerifier`] for an MCP server whose canonical URL is `resource` (the
    /// audience JWT access tokens must name).
    pub fn verifier(&self, resource: impl Into<String>) -> ClerkVerifierBuilder {
        ClerkVerifierBuilder::new(self.clone(), resource.into())
    }
}

fn is_env_mismatch(secret: &SecretKey, pk: &PublishableKey) -> bool {
    let sk_live = secret.is_live();
    let sk_known = sk_live || secret.expose().starts_with("sk_test_");
    sk_known && sk_live != pk.live
}

/// An absolute https URL (http on loopback), returned without a trailing slash.
fn parse_base_url(url: &str, what: &'static str) -> Result<String, ClerkConfigError> {
    let parsed = Url::parse(url.trim()).map_err(|_| ClerkConfigError::InvalidUrl(what))?;
    let loopback = match parsed.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    let ok_scheme = parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback);
    if !ok_scheme
        || parsed.host().is_none()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(ClerkConfigError::InvalidUrl(what));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_must_be_https_or_loopback_http() {
        assert_eq!(
            parse_base_url("https://clerk.example.com/", "x").unwrap(),
            "https://clerk.example.com"
        );
        assert!(parse_base_url("http://127.0.0.1:1234", "x").is_ok());
        assert!(parse_base_url("http://localhost:1234", "x").is_ok());
        assert!(parse_base_url("http://[::1]:1234", "x").is_ok());
        assert!(parse_base_url("http://clerk.example.com", "x").is_err());
        assert!(parse_base_url("https://u:p@clerk.example.com", "x").is_err());
        assert!(parse_base_url("clerk.example.com", "x").is_err());
    }

    #[test]
    fn live_and_test_keys_do_not_mix() {
        // base64("clerk.example.com$")
        let err = ClerkConfig::new("sk_live_1", "pk_test_Y2xlcmsuZXhhbXBsZS5jb20k").unwrap_err();
        assert_eq!(err, ClerkConfigError::KeyMismatch);
        let ok = ClerkConfig::new("sk_live_1", "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k").unwrap();
        assert_eq!(ok.frontend_api_url(), "https://clerk.example.com");
        assert_eq!(
            ok.backend_api().base_url().as_str(),
            "https://api.clerk.com/v1/"
        );
    }
}
