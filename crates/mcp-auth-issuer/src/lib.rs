//! # mcp-auth-issuer
//!
//! A local, Clerk-compatible OAuth 2.1 authorization server for **developing and testing** MCP
//! servers. It is not for production: users are fictional and anyone who can reach the consent
//! page can sign in as any of them. Its state lives in memory, or with
//! [`IssuerConfig::state_dir`] in an embedded SQLite database that survives restarts (keys,
//! clients, consents, tokens as hashes), so clients stay connected while a developer restarts.
//!
//! It speaks the endpoints and JSON shapes of Clerk's Frontend API (discovery, dynamic client
//! registration, authorization code + PKCE, refresh with rotation, JWKS, userinfo, introspection,
//! revocation) and of the parts of Clerk's Backend API a resource server uses (token, API key and
//! machine token verification, users, JWKS), so the Clerk code path of a resource server runs
//! against it unchanged.
//!
//! ```no_run
//! use mcp_auth_issuer::{Issuer, IssuerConfig, MintRequest};
//!
//! # async fn run() -> Result<(), mcp_auth_issuer::Error> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let issuer = Issuer::serve(listener, IssuerConfig::default()).await?;
//! println!("issuer at {}", issuer.base_url());
//! let alice = &issuer.users()[0];
//! let token = issuer.mint_access_token(MintRequest {
//!     scopes: vec!["profile".into()],
//!     resource: Some("http://127.0.0.1:3000/mcp".into()),
//!     ..MintRequest::new(alice.id.clone(), "my-client")
//! })?;
//! # let _ = token;
//! issuer.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! Run it as a program with `cargo run -p mcp-auth-issuer -- --port 8788` (see `--help`).
//!
//! ## Endpoints
//!
//! | Path | What |
//! | --- | --- |
//! | `GET /.well-known/oauth-authorization-server`, `/.well-known/openid-configuration` | RFC 8414 metadata and the OpenID configuration, with Clerk's fields |
//! | `GET /.well-known/jwks.json` | public signing keys |
//! | `POST /oauth/register` | RFC 7591 dynamic client registration |
//! | `GET/POST /oauth/authorize` | consent page / consent form; `iss` on every response (RFC 9207); a `client_id` that is an `https` URL is a Client ID Metadata Document, fetched and cached |
//! | `POST /oauth/token` | `authorization_code`, `refresh_token` |
//! | `GET /oauth/userinfo`, `POST /oauth/token_info`, `POST /oauth/token/revoke` (alias `/oauth/revoke`) | OIDC UserInfo, RFC 7662 (client credentials), RFC 7009 |
//! | `[/v1]/oauth_applications/access_tokens/verify`, `[/v1]/api_keys/verify`, `[/v1]/m2m_tokens/verify`, `[/v1]/users/{id}`, `[/v1]/jwks` | Backend API stand-in (secret key, or a machine secret key for `m2m_tokens/verify`; rate limited but for `jwks`) |
//! | `/admin/*` | test helpers over HTTP (secret key): mint every token kind, create machines and pre-registered clients (`POST /admin/clients`), revoke, rotate keys, advance the clock |
//! | `GET /metrics` | Prometheus counters |
//!
//! ## Layout
//!
//! - `config`: [`IssuerConfig`], [`TokenFormat`], [`RateLimit`].
//! - `server`: [`Issuer::serve`], the router, [`IssuerHandle`].
//! - `state`, `clock`: shared state, the advanceable clock.
//! - `store`: the persistent (or in-memory) SQLite state: schema and migrations, one method per
//!   operation, the single-owner lock.
//! - `keys`: RSA key generation (aws-lc-rs), JWKS, rotation with grace, the key file.
//! - `ids`: random ids and secrets in Clerk's `prefix_…` style, hashing.
//! - `users`: [`User`], the default users, Clerk's User JSON, avatars.
//! - `clients`: RFC 7591 metadata validation, redirect URI rules (RFC 8252 loopback ports).
//! - `cimd`: Client ID Metadata Documents: the SSRF-safe fetch, the document's validation, the
//!   cache.
//! - `client_auth`: client authentication at the token, revocation and introspection endpoints.
//! - `authorize`, `consent`, `csrf`: the authorization endpoint, its HTML pages, the signed form.
//! - `token`, `tokens`: the token endpoint, and minting/finding/revoking every token kind.
//! - `register`, `metadata`, `userinfo`, `introspection`: the other Frontend API endpoints.
//! - `backend`, `rate_limit`: the Backend API stand-in and its rate limit.
//! - `admin`: `/admin/*`.
//! - `metrics`: `/metrics`.
//! - `form`, `oauth_error`: form parameters with RFC 6749 rules; RFC 6749 error responses.

// Clerk's User object has more fields than `json!`'s default recursion limit allows.
#![recursion_limit = "256"]
// Every endpoint parses attacker-controlled forms and JSON: no `unsafe` in this crate, checked
// by the compiler.
#![forbid(unsafe_code)]

mod admin;
mod authorize;
mod backend;
mod cimd;
mod client_auth;
mod clients;
mod clock;
mod config;
mod consent;
mod csrf;
mod error;
mod form;
mod ids;
mod introspection;
mod keys;
mod metadata;
mod metrics;
mod oauth_error;
mod rate_limit;
mod register;
mod server;
mod state;
mod store;
mod token;
mod tokens;
mod userinfo;
mod users;

pub use config::{IssuerConfig, RateLimit, TokenFormat};
pub use error::Error;
pub use server::{Issuer, IssuerHandle};
pub use tokens::{
    ApiKeyRequest, JWT_CATEGORY_M2M, JWT_CATEGORY_SESSION, JWT_CATEGORY_TEMPLATE, MachineCreated,
    MachineTokenRequest, MintRequest, OrganizationClaims, SessionTokenRequest,
};
pub use users::{User, default_users, load_users};
