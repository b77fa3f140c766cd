//! Run-time configuration of the issuer: a plain struct whose every field documents its default.

use std::path::PathBuf;
use std::time::Duration;

use crate::users::User;

/// The shape of the access tokens the issuer hands out, as Clerk offers both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenFormat {
    /// RS256 JWT with header `typ: at+jwt` and `jti` = `oat_…` (Clerk's default).
    #[default]
    Jwt,
    /// Opaque `oat_…` string that resource servers check with the Backend API verify endpoint.
    Opaque,
}

impl std::str::FromStr for TokenFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "jwt" => Ok(Self::Jwt),
            "opaque" => Ok(Self::Opaque),
            other => Err(format!(
                "unknown token format `{other}`: expected `jwt` or `opaque`"
            )),
        }
    }
}

impl std::fmt::Display for TokenFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Jwt => "jwt",
            Self::Opaque => "opaque",
        })
    }
}

/// Emulation of Clerk's Backend API rate limit (a fixed window per instance).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window. Default 100 (a Clerk development instance; production is 1000).
    pub requests: u32,
    /// Window length. Default 10 seconds.
    pub window: Duration,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            requests: 100,
            window: Duration::from_secs(10),
        }
    }
}

/// Everything [`Issuer::serve`](crate::Issuer::serve) needs to know. Start from
/// [`IssuerConfig::default`] and change what you need.
#[derive(Clone, Debug)]
pub struct IssuerConfig {
    /// Local users a person (or test) can sign in as. Must not be empty and ids must be unique.
    /// Given users are saved in the state, so a later run started without any (`None`) still
    /// knows them. Default `None`: the users a previous run saved in the state, else
    /// [`default_users`](crate::default_users) (three users with stable ids).
    pub users: Option<Vec<User>>,
    /// Directory of the persistent state (an embedded SQLite database): signing keys, the
    /// generated secret key, registered clients, consents, codes and tokens (as hashes),
    /// revocations and users, so clients keep working across restarts. Created (mode 0700) when
    /// missing; one issuer at a time may use it. Default `None`: the state lives in memory and
    /// dies with the issuer.
    pub state_dir: Option<PathBuf>,
    /// Format of OAuth access tokens. Default [`TokenFormat::Jwt`].
    pub token_format: TokenFormat,
    /// Lifetime of access tokens. Default one day, as Clerk.
    pub access_token_lifetime: Duration,
    /// Lifetime of refresh tokens. Default ten years: in effect never, as Clerk's refresh tokens
    /// do not expire (Clerk's docs, `how-clerk-implements-oauth`).
    pub refresh_token_lifetime: Duration,
    /// Lifetime of authorization codes. Default 10 minutes, as Clerk (and the most RFC 6749
    /// §4.1.2 recommends).
    pub authorization_code_lifetime: Duration,
    /// Lifetime of Clerk-style session tokens minted through the admin helpers. Default 60 s, as Clerk.
    pub session_token_lifetime: Duration,
    /// How long the consent form stays valid after it was rendered. Default 10 minutes.
    pub consent_lifetime: Duration,
    /// How long a key replaced by a rotation stays published in the JWKS. Default one day (the
    /// default access token lifetime), so tokens signed just before a rotation keep verifying.
    pub key_rotation_grace: Duration,
    /// Backend API rate limit. Default 100 requests per 10 seconds.
    pub rate_limit: RateLimit,
    /// Secret key (`sk_test_…`) that authenticates Backend API and admin calls. Default `None`:
    /// the one a previous run generated (from the key file, else the state), otherwise generated
    /// at start and saved.
    pub secret_key: Option<String>,
    /// Approve every authorization request as this user without showing the consent page. For
    /// automated tests only; default `None`. Refused unless the listener is on a loopback address.
    pub auto_approve_user: Option<String>,
    /// JSON file the signing keys (and the generated secret key) are loaded from at start and
    /// written to whenever they change, so several issuers (or runs without a state directory)
    /// can share one key set. When it exists it wins over the keys in the state. Default `None`:
    /// keys live in the state only.
    pub key_file: Option<PathBuf>,
    /// Scopes clients may request. Default `openid profile email offline_access public_metadata
    /// private_metadata`; anything else is refused with `invalid_scope`.
    pub scopes_supported: Vec<String>,
    /// Scopes granted when an authorization request names none. Default `profile email`.
    pub default_scopes: Vec<String>,
    /// Public base URL (issuer) when it differs from the listener address, e.g. behind a proxy or
    /// when listening on `0.0.0.0`. Default `None`: `http://<listener address>`.
    pub public_url: Option<String>,
    /// `aud` of access tokens whose client sent no RFC 8707 `resource` (clients written for the
    /// MCP 2025-03-26 revision never do). Like Auth0's tenant "default audience": an MCP server
    /// that requires its URL in `aud` then still accepts those clients' tokens. Default `None`:
    /// no `aud`, as Clerk.
    pub default_audience: Option<String>,
    /// Accept Client ID Metadata Documents (CIMD): a `client_id` that is an `https` URL is
    /// fetched and its document is the client's registration, and the metadata says
    /// `client_id_metadata_document_supported: true`. Default `true` (MCP 2025-11-25 and
    /// 2026-07-28 prefer it to dynamic registration). `false`: such a `client_id` is refused
    /// without any network access (the fuzz targets, which must stay offline).
    pub client_id_metadata_documents: bool,
    /// Accept public clients (`token_endpoint_auth_method: none`, PKCE only), as Clerk does.
    /// Default `true`. `false` admits confidential clients only, as an authorization server
    /// that requires every client to authenticate at the token endpoint (RFC 6749 §2.1 leaves
    /// the choice of client types to it): `none` is left out of
    /// `token_endpoint_auth_methods_supported`; registering a client with `none` (dynamic
    /// registration or `POST /admin/clients`) is refused with `invalid_client_metadata`; a
    /// public client already in the state is refused at the token endpoint with
    /// `invalid_client`; and Client ID Metadata Documents are not accepted (nor advertised),
    /// since the clients they describe here are public.
    pub public_clients: bool,
    /// Fetch Client ID Metadata Documents from loopback addresses (`127.0.0.0/8`, `::1`).
    /// For development and tests only; refused unless the listener is on a loopback address.
    /// Private, link-local, unique-local and other special-purpose addresses stay refused
    /// either way. Default `false`.
    pub cimd_allow_loopback: bool,
    /// PEM certificates trusted for Client ID Metadata Document fetches besides the system's
    /// roots (a test CA). Default empty.
    pub cimd_root_certificates_pem: Vec<u8>,
    /// Time allowed for a whole metadata document fetch (connect, TLS, headers, body).
    /// Default 5 seconds.
    pub cimd_fetch_timeout: Duration,
    /// Largest metadata document accepted, in bytes; the fetch stops as soon as the body
    /// passes it. Default 5 KiB.
    pub cimd_max_document_bytes: usize,
}

impl IssuerConfig {
    /// Whether Client ID Metadata Documents are accepted: they must be enabled, and the
    /// clients they describe (public ones) admitted.
    pub(crate) fn accepts_metadata_documents(&self) -> bool {
        self.client_id_metadata_documents && self.public_clients
    }
}

impl Default for IssuerConfig {
    fn default() -> Self {
        Self {
            users: None,
            state_dir: None,
            token_format: TokenFormat::Jwt,
            access_token_lifetime: Duration::from_secs(24 * 60 * 60),
            refresh_token_lifetime: Duration::from_secs(10 * 365 * 24 * 60 * 60),
            authorization_code_lifetime: Duration::from_secs(10 * 60),
            session_token_lifetime: Duration::from_secs(60),
            consent_lifetime: Duration::from_secs(10 * 60),
            key_rotation_grace: Duration::from_secs(24 * 60 * 60),
            rate_limit: RateLimit::default(),
            secret_key: None,
            auto_approve_user: None,
            key_file: None,
            scopes_supported: [
                "openid",
                "profile",
                "email",
                "offline_access",
                "public_metadata",
                "private_metadata",
            ]
            .map(String::from)
            .to_vec(),
            default_scopes: ["profile", "email"].map(String::from).to_vec(),
            public_url: None,
            default_audience: None,
            client_id_metadata_documents: true,
            public_clients: true,
            cimd_allow_loopback: false,
            cimd_root_certificates_pem: Vec::new(),
            cimd_fetch_timeout: Duration::from_secs(5),
            cimd_max_document_bytes: 5 * 1024,
        }
    }
}
