//! Discovery: RFC 8414 authorization server metadata, the OpenID configuration, the public JWKS,
//! and the generated avatars the user JSON points at.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::state::Shared;

/// The RFC 8414 document (`/.well-known/oauth-authorization-server`). Its fields are the ones
/// Clerk's Frontend API lists (`WellKnown.OAuth2AuthorizationServerMetadata` in
/// `fapi/2026-05-12.yml`, `additionalProperties: false`): no introspection or userinfo endpoint,
/// which Clerk only names in the OpenID configuration. Two fields go beyond Clerk's list, for
/// what the MCP revisions ask of an authorization server:
/// - `client_id_metadata_document_supported` (MCP 2025-11-25 `basic/authorization.mdx` lines
///   305-309; 2026-07-28 `basic/authorization/client-registration.mdx` lines 116-120);
/// - `authorization_response_iss_parameter_supported`: every authorization response carries
///   `iss` (RFC 9207 §2.3; MCP 2026-07-28 `basic/authorization/index.mdx` line 194 makes
///   advertising it a MUST for a server that sends `iss`).
pub(crate) fn document(shared: &Shared) -> Value {
    json!({
        "issuer": shared.base_url,
        "authorization_endpoint": shared.url("/oauth/authorize"),
        "token_endpoint": shared.url("/oauth/token"),
        "revocation_endpoint": shared.url("/oauth/token/revoke"),
        "jwks_uri": shared.url("/.well-known/jwks.json"),
        "registration_endpoint": shared.url("/oauth/register"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": auth_methods(shared),
        "scopes_supported": shared.config.scopes_supported,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": CLAIMS,
        "code_challenge_methods_supported": ["S256"],
        "client_id_metadata_document_supported": shared.config.accepts_metadata_documents(),
        "authorization_response_iss_parameter_supported": true,
    })
}

/// The OpenID configuration (`/.well-known/openid-configuration`), with the fields Clerk lists
/// (`WellKnown.OpenIDConfiguration` in `fapi/2026-05-12.yml`, `additionalProperties: false`):
/// introspection and userinfo endpoints, no registration endpoint.
pub(crate) fn openid_document(shared: &Shared) -> Value {
    json!({
        "issuer": shared.base_url,
        "authorization_endpoint": shared.url("/oauth/authorize"),
        "token_endpoint": shared.url("/oauth/token"),
        "revocation_endpoint": shared.url("/oauth/token/revoke"),
        "introspection_endpoint": shared.url("/oauth/token_info"),
        "userinfo_endpoint": shared.url("/oauth/userinfo"),
        "jwks_uri": shared.url("/.well-known/jwks.json"),
        "scopes_supported": shared.config.scopes_supported,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": auth_methods(shared),
        "claims_supported": CLAIMS,
        "code_challenge_methods_supported": ["S256"],
        "backchannel_logout_supported": false,
        "frontchannel_logout_supported": false,
        "client_id_metadata_document_supported": shared.config.accepts_metadata_documents(),
        "authorization_response_iss_parameter_supported": true,
    })
}

/// The token endpoint's client authentication methods: `none` (public clients) only when
/// they are admitted ([`IssuerConfig::public_clients`](crate::IssuerConfig::public_clients)).
fn auth_methods(shared: &Shared) -> &'static [&'static str] {
    const ALL: [&str; 3] = ["none", "client_secret_basic", "client_secret_post"];
    if shared.config.public_clients {
        &ALL
    } else {
        &ALL[1..]
    }
}

const CLAIMS: [&str; 14] = [
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "picture",
    "email",
    "email_verified",
];

/// `GET /.well-known/oauth-authorization-server`.
pub(crate) async fn serve_document(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(document(&shared))
}

/// `GET /.well-known/openid-configuration`.
pub(crate) async fn serve_openid_document(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(openid_document(&shared))
}

/// `GET /.well-known/jwks.json`.
pub(crate) async fn serve_jwks(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        Json(shared.keys().jwks(shared.clock.now_secs())),
    )
        .into_response()
}

/// `GET /avatars/{user_id}.svg`.
pub(crate) async fn serve_avatar(
    State(shared): State<Arc<Shared>>,
    Path(file): Path<String>,
) -> Response {
    let user = file.strip_suffix(".svg").and_then(|id| shared.user(id));
    match user {
        Some(user) => (
            [(header::CONTENT_TYPE, "image/svg+xml")],
            crate::users::avatar_svg(user),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
