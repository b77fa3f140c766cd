#![doc = include_str!("../README.md")]
// docs.rs (and `RUSTDOCFLAGS="--cfg docsrs" cargo +nightly doc`) mark each feature-gated
// item with the feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]
// Everything a request touches before a tool runs is parsed here, from attacker-controlled
// bytes: no `unsafe` anywhere in this crate, checked by the compiler.
#![forbid(unsafe_code)]
//!
//! # Layout
//!
//! - [`auth_info`](AuthInfo): the verified identity handed to tools.
//! - `bearer`: RFC 6750 `Authorization` header parsing.
//! - `challenge`: [`AuthError`] and the 401/403/400/503 answers with `WWW-Authenticate`.
//! - `verify`: the [`TokenVerifier`] trait, [`JwtVerifier`], [`Jwks`], [`CachedVerifier`].
//! - [`clerk`]: the Clerk preset ([`clerk::ClerkConfig`], [`clerk::ClerkVerifier`]) and its
//!   Backend API client.
//! - `fleet`: [`FleetStore`] and the [`SharedStore`] trait: what the replicas of a fleet share
//!   (verification answers, Clerk's rate-limit backoff, per-user rate limits); `redis`
//!   implements it on Redis (feature `redis`).
//! - `rate_limit`: [`RateLimit`], per-user limits on MCP calls.
//! - `metadata`: RFC 9728 protected resource metadata and the legacy AS-metadata passthrough.
//! - `layer`: [`AuthLayer`], the tower middleware for any axum router.
//! - `tools`: the `AuthInfo` extractor for rmcp handlers, closure tools, per-tool scopes, and
//!   the `tools/list` wrapper that marks scoped tools (and optionally hides them).
//! - `scopes`: [`ScopeHierarchy`] and the `offline_access` rule.
//! - `step_up` / `session`: per-tool scope challenges and session-to-identity binding.
//! - `body`: reading a request body whole within a limit, for the steps that look at it before
//!   its handler (the form-body token check and the step-up guard).
//! - `pipeline`: the MCP endpoint as one service: CORS for browsers, then Origin, body size,
//!   auth, session binding, step-up, the access line (`access_log`).
//! - `server`: [`McpServer::builder`], which wires everything into one `Router`.
//! - [`health`]: `GET /healthz` and `GET /readyz` (opt-in on the builder).
//! - [`metrics`]: the metric names the library records, and (feature `metrics`) `GET /metrics`
//!   in the Prometheus text format.
//! - `logging` (feature `logging`): the binaries' log set-up, for a server of your own.

mod access_log;
mod auth_info;
pub mod bearer;
mod body;
mod challenge;
pub mod clerk;
mod fleet;
pub mod health;
mod layer;
#[cfg(feature = "logging")]
#[cfg_attr(docsrs, doc(cfg(feature = "logging")))]
pub mod logging;
pub mod metadata;
pub mod metrics;
mod pipeline;
mod rate_limit;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod resource_scopes;
mod scopes;
mod server;
mod session;
mod step_up;
mod tool_list;
mod tools;
pub mod verify;

/// Internals for the fuzz targets (`fuzz/`); not API. Only with the `fuzzing` feature.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::fuzzing::*;
}
#[cfg(feature = "fuzzing")]
mod fuzzing;

pub use auth_info::{AuthInfo, AuthInfoBuilder, TokenKind};
pub use challenge::{AuthError, Challenge};
pub use fleet::{DEFAULT_KEY_PREFIX, FleetStats, FleetStore, SharedStore, StoreError, StoreFuture};
pub use layer::{AuthLayer, AuthService, DEFAULT_MAX_FORM_BYTES};
pub use metadata::ProtectedResourceMetadata;
pub use rate_limit::RateLimit;
pub use scopes::{OFFLINE_ACCESS, ScopeHierarchy};
pub use server::{
    BuildError, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_SESSIONS, DEFAULT_MAX_SESSIONS_PER_USER,
    McpServer, McpServerBuilder,
};
pub use tools::{ClosureTools, ToolScopes, auth_from_context};
pub use verify::{
    Audience, CacheConfig, CachedVerifier, Jwks, JwksConfig, JwksKey, JwtVerifier, TokenVerifier,
    VerifyError,
};

/// Re-exported so users name the same versions the framework uses.
pub use rmcp;

/// The workspace README's Rust examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
mod root_readme {}
