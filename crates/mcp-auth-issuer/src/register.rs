//! `POST /oauth/register`: RFC 7591 dynamic client registration. Public clients (`none`) get a
//! `client_id`; confidential ones also a `client_secret`, shown once and stored as a hash.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::clients::{Client, validate_registration};
use crate::ids;
use crate::oauth_error::OAuthError;
use crate::state::Shared;

pub(crate) async fn register(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match register_client(&shared, &body) {
        Ok(json) => (
            StatusCode::CREATED,
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::PRAGMA, "no-cache"),
            ],
            Json(json),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

fn register_client(shared: &Shared, body: &[u8]) -> Result<Value, OAuthError> {
    let parsed: Value = serde_json::from_slice(body).map_err(|e| {
        OAuthError::invalid_client_metadata(format!("the body is not valid JSON: {e}"))
    })?;
    create_client(shared, &parsed)
}

/// Validate RFC 7591 metadata and record the client: the registration response (with the
/// secret, shown once, for a confidential client). Shared with `POST /admin/clients`.
pub(crate) fn create_client(shared: &Shared, metadata: &Value) -> Result<Value, OAuthError> {
    let reg = validate_registration(metadata, &shared.config.scopes_supported)?;
    if !reg.auth_method.is_confidential() && !shared.config.public_clients {
        return Err(OAuthError::invalid_client_metadata(
            "this authorization server accepts confidential clients only: register with \
             token_endpoint_auth_method client_secret_basic or client_secret_post",
        ));
    }
    let client_id = ids::random_alnum(24);
    let secret = reg.auth_method.is_confidential().then(|| ids::secret(""));
    let mut response = reg.metadata;
    response.insert("client_id".into(), json!(client_id));
    response.insert("client_id_issued_at".into(), json!(shared.clock.now_secs()));
    if let Some(secret) = &secret {
        response.insert("client_secret".into(), json!(secret));
        response.insert("client_secret_expires_at".into(), json!(0));
    }
    let client = Client {
        client_id: client_id.clone(),
        secret_hash: secret.as_deref().map(ids::hash),
        auth_method: reg.auth_method,
        redirect_uris: reg.redirect_uris,
        grant_types: reg.grant_types,
        client_name: reg.client_name,
        logo_uri: reg.logo_uri,
        document: None,
    };
    let now_ms = shared.clock.now_ms();
    shared.store.write(|tx| tx.insert_client(&client, now_ms))?;
    Ok(Value::Object(response))
}
