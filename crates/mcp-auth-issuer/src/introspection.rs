//! `POST /oauth/token_info` (RFC 7662 introspection) and `POST /oauth/token/revoke` (RFC 7009;
//! `/oauth/revoke` is an alias).
//!
//! Introspection needs client credentials, as Clerk's `/oauth/token_info` does (Clerk's docs,
//! `how-clerk-implements-oauth`): any authenticated confidential client, or a public client for
//! its own tokens. Its answer has the fields of Clerk's `OAuth.TokenInfo` (`fapi/2026-05-12.yml`,
//! `additionalProperties: false`): `active`, `client_id`, `iat`, `scope`, `sub`. Resource
//! servers verify tokens through the Backend API instead. Revocation needs client
//! authentication and only touches the caller's own tokens.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::client_auth::authenticate;
use crate::form::{Params, is_form};
use crate::oauth_error::OAuthError;
use crate::state::Shared;
use crate::tokens::Found;

fn form_params(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
    if !is_form(headers) {
        return Err(OAuthError::invalid_request(
            "the request must be application/x-www-form-urlencoded",
        ));
    }
    Ok(Params::parse(&String::from_utf8_lossy(body)))
}

/// `POST /oauth/token_info`.
pub(crate) async fn introspect(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => b,
        Err(_) => return OAuthError::invalid_request("the body is too large").into_response(),
    };
    match introspection(&shared, &parts.headers, &body).await {
        Ok(json) => ([(header::CACHE_CONTROL, "no-store")], Json(json)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn introspection(
    shared: &Shared,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Value, OAuthError> {
    let params = form_params(headers, body)?;
    // Which client's tokens the caller may see: `None` = all.
    let client = authenticate(shared, headers, &params).await?;
    let restrict_to = (!client.auth_method.is_confidential()).then_some(client.client_id);
    let token = params
        .one("token", OAuthError::invalid_request)?
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let inactive = json!({ "active": false });
    let now_ms = shared.clock.now_ms();
    let visible = |client_id: &str| restrict_to.as_deref().is_none_or(|c| c == client_id);
    let answer = match shared.find_token(token)? {
        Some(Found::Access(t))
            if t.revoked_at_ms.is_none() && t.expires_at_ms > now_ms && visible(&t.client_id) =>
        {
            json!({
                "active": true,
                "client_id": t.client_id,
                "iat": t.created_at_ms / 1000,
                "scope": t.scopes.join(" "),
                "sub": t.subject,
            })
        }
        Some(Found::Refresh(t))
            if t.status == crate::store::RefreshStatus::Active
                && t.expires_at_ms > now_ms
                && visible(&t.client_id) =>
        {
            json!({
                "active": true,
                "client_id": t.client_id,
                "iat": t.created_at_ms / 1000,
                "scope": t.scopes.join(" "),
                "sub": t.subject,
            })
        }
        _ => inactive,
    };
    Ok(answer)
}

/// `POST /oauth/token/revoke` (and `/oauth/revoke`): always 200 for a well-formed request, known token or not (RFC 7009 §2.2).
pub(crate) async fn revoke(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let params = form_params(&headers, &body)?;
        let client = authenticate(&shared, &headers, &params).await?;
        let token = params
            .one("token", OAuthError::invalid_request)?
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        shared.revoke_token(token, Some(&client.client_id), "revoked by the client")?;
        Ok::<(), OAuthError>(())
    }
    .await;
    match result {
        Ok(()) => (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response(),
        Err(e) => e.into_response(),
    }
}
