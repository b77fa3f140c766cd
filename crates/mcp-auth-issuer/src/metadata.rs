//! Discovery: RFC 8414 authorization server metadata, the OpenID configuration, the public JWKS,
//! and the generated avatars the user JSON points at.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::state::Shared;

/// The metadata document; served at both well-known paths so OAuth and OIDC clients agree.
pub(crate) fn document(shared: &Shared) -> Value {
    let auth_methods = ["none", "client_secret_basic", "client_secret_post"];
    json!({
        "issuer": shared.base_url,
        "authorization_endpoint": shared.url("/oauth/authorize"),
        "token_endpoint": shared.url("/oauth/token"),
        "registration_endpoint": shared.url("/oauth/register"),
        "jwks_uri": shared.url("/.well-known/jwks.json"),
        "userinfo_endpoint": shared.url("/oauth/userinfo"),
        "introspection_endpoint": shared.url("/oauth/token_info"),
        "revocation_endpoint": shared.url("/oauth/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "scopes_supported": shared.config.scopes_supported,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "name", "given_name",
            "family_name", "preferred_username", "picture", "email", "email_verified",
        ],
        "authorization_response_iss_parameter_supported": true,
    })
}

/// `GET /.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.
pub(crate) async fn serve_document(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(document(&shared))
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
