//! Token verification: the [`TokenVerifier`] trait and the verifiers that ship with the crate.
//!
//! - [`JwtVerifier`]: JWT access tokens checked against a JWKS ([`Jwks`]).
//! - [`CachedVerifier`]: wraps any verifier with a bounded cache of verified tokens, keyed by a
//!   hash of the token, with single-flight for concurrent first requests.

mod cache;
mod jwks;
pub(crate) mod jwt;
pub(crate) mod memo;
pub(crate) mod shared;

use std::{borrow::Cow, future::Future, pin::Pin, sync::Arc, time::Duration};

pub use cache::{CacheConfig, CachedVerifier};
pub use jwks::JwksError;
pub use jwks::{Jwks, JwksConfig, JwksKey};
pub use jwt::{Audience, DEFAULT_ALGORITHMS, JwtConfigError, JwtVerifier, JwtVerifierBuilder};

use crate::AuthInfo;

/// A boxed, `Send` future, the return type of [`TokenVerifier::verify`].
pub type VerifyFuture<'a> =
    Pin<Box<dyn Future<Output = Result<AuthInfo, VerifyError>> + Send + 'a>>;

/// A boxed, `Send` future, the return type of [`TokenVerifier::ready`].
pub type ReadyFuture<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// Turns a bearer token into the caller's identity.
///
/// Implementations decide what a valid token is (signature, issuer, audience, expiry, kind, …)
/// and must never log or echo the token. The framework calls `verify` once per request that
/// carries a token; wrap an expensive verifier in [`CachedVerifier`] so a repeated token costs
/// a byte compare (on the thread that served it last) or a hash and a map look-up.
///
/// A closure `Fn(&str) -> Future<Output = Result<AuthInfo, VerifyError>>` is a verifier too:
///
/// ```
/// use mcp_auth::{AuthInfo, TokenKind, TokenVerifier, VerifyError};
///
/// let verifier = |token: &str| {
///     let ok = token == "let-me-in";
///     async move {
///         if ok {
///             Ok(AuthInfo::builder("user_1", TokenKind::OAuthAccessToken).build())
///         } else {
///             Err(VerifyError::invalid_token("unknown token"))
///         }
///     }
/// };
/// # fn assert_verifier(_: impl TokenVerifier) {}
/// assert_verifier(verifier);
/// ```
pub trait TokenVerifier: Send + Sync + 'static {
    /// Verifies `token` and returns who it speaks for.
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a>;

    /// The identity `token` speaks for, if this verifier knows it without waiting: the
    /// framework asks this first and calls [`verify`](Self::verify) only on `None`.
    /// [`CachedVerifier`] answers here for a token the same thread served a moment ago, which
    /// spares every repeated request a boxed future. Must only return what `verify` would
    /// return for the same token now. Default: `None`.
    fn verify_now(&self, token: &str) -> Option<AuthInfo> {
        let _ = token;
        None
    }

    /// Whether this verifier can verify tokens now: what `GET /readyz` reports (see
    /// [`McpServerBuilder::health_checks`](crate::McpServerBuilder::health_checks)). A verifier
    /// that needs remote keys is ready once it holds them; one that calls an introspection or
    /// Backend API is ready while that API answers. May do network I/O; the server calls it
    /// at most about once a second, whatever the probe rate. Default: always ready.
    fn ready(&self) -> ReadyFuture<'_> {
        Box::pin(std::future::ready(true))
    }
}

impl<F, Fut> TokenVerifier for F
where
    F: Fn(&str) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<AuthInfo, VerifyError>> + Send + 'static,
{
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        Box::pin(self(token))
    }
}

impl<V: TokenVerifier + ?Sized> TokenVerifier for Arc<V> {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        (**self).verify(token)
    }

    fn verify_now(&self, token: &str) -> Option<AuthInfo> {
        (**self).verify_now(token)
    }

    fn ready(&self) -> ReadyFuture<'_> {
        (**self).ready()
    }
}

/// Why a token was not accepted. Each variant maps to exactly one HTTP answer (see
/// [`AuthError`](crate::AuthError)).
///
/// Descriptions are short fixed phrases meant for developers ("token expired", "audience
/// mismatch"); they never contain the token or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token is not valid: malformed, expired, revoked, wrong issuer or audience, bad
    /// signature, or a kind this server does not accept. Answered 401 `invalid_token`.
    #[error("invalid token: {0}")]
    InvalidToken(Cow<'static, str>),
    /// The token is valid but lacks scopes. Answered 403 `insufficient_scope`.
    #[error("insufficient scope: requires {}", .0.join(" "))]
    InsufficientScope(Vec<String>),
    /// The token could not be checked right now (key set or introspection endpoint unreachable,
    /// rate limited) and nothing cached can answer. Answered 503 with `Retry-After`, never 401,
    /// so clients do not throw away a good token and send the user back to the consent screen.
    #[error("token verification temporarily unavailable")]
    Unavailable {
        /// How long the client should wait before trying again.
        retry_after: Duration,
    },
}

impl VerifyError {
    /// An [`VerifyError::InvalidToken`] with a fixed description.
    #[must_use]
    pub fn invalid_token(description: impl Into<Cow<'static, str>>) -> Self {
        Self::InvalidToken(description.into())
    }

    /// An [`VerifyError::Unavailable`].
    #[must_use]
    pub fn unavailable(retry_after: Duration) -> Self {
        Self::Unavailable { retry_after }
    }
}
