//! `POST /oauth/token_info` (RFC 7662 introspection) and `POST /oauth/revoke` (RFC 7009).
//!
//! Introspection is open to the secret key (as a Bearer token, for resource servers), to any
//! authenticated confidential client, and to a public client for its own tokens. Revocation
//! needs client authentication and only touches the caller's own tokens.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::backend::has_secret_key;
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
    let secret_key = has_secret_key(&shared, &request);
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => b,
        Err(_) => return OAuthError::invalid_request("the body is too large").into_response(),
    };
    match introspection(&shared, &parts.headers, &body, secret_key) {
        Ok(json) => ([(header::CACHE_CONTROL, "no-store")], Json(json)).into_response(),
        Err(e) => e.into_response(),
    }
}

fn introspection(
    shared: &Shared,
    headers: &HeaderMap,
    body: &Bytes,
    secret_key: bool,
) -> Result<Value, OAuthError> {
    let params = form_params(headers, body)?;
    // Which client's tokens the caller may see: `None` = all.
    let restrict_to = if secret_key {
        None
    } else {
        let client = authenticate(shared, headers, &params)?;
        (!client.auth_method.is_confidential()).then_some(client.client_id)
    };
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
            let mut out = json!({
                "active": true,
                "token_type": "access_token",
                "iss": shared.base_url,
                "sub": t.subject,
                "client_id": t.client_id,
                "scope": t.scopes.join(" "),
                "jti": t.id,
                "iat": t.created_at_ms / 1000,
                "exp": t.expires_at_ms / 1000,
            });
            if let Some(aud) = t.resource {
                out["aud"] = json!(aud);
            }
            out
        }
        Some(Found::Refresh(t))
            if t.status == crate::store::RefreshStatus::Active
                && t.expires_at_ms > now_ms
                && visible(&t.client_id) =>
        {
            json!({
                "active": true,
                "token_type": "refresh_token",
                "iss": shared.base_url,
                "sub": t.subject,
                "client_id": t.client_id,
                "scope": t.scopes.join(" "),
                "exp": t.expires_at_ms / 1000,
            })
        }
        _ => inactive,
    };
    Ok(answer)
}

/// `POST /oauth/revoke`: always 200 for a well-formed request, known token or not (RFC 7009 §2.2).
pub(crate) async fn revoke(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = form_params(&headers, &body).and_then(|params| {
        let client = authenticate(&shared, &headers, &params)?;
        let token = params
            .one("token", OAuthError::invalid_request)?
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        shared.revoke_token(token, Some(&client.client_id), "revoked by the client")?;
        Ok(())
    });
    match result {
        Ok(()) => (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response(),
        Err(e) => e.into_response(),
    }
}
