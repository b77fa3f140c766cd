//! Stand-in for the parts of Clerk's Backend API a resource server uses, served both under `/v1`
//! (as `https://api.clerk.com/v1/…`) and at the root: token verification, users, JWKS. Every call
//! needs the secret key as a Bearer token and counts against the rate limit.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::ids;
use crate::state::Shared;
use crate::store::{CredentialKind, MachineCredential, StoreError};

/// Clerk's error envelope: `{"errors":[{"message","long_message","code"}],"clerk_trace_id"}`.
pub(crate) fn clerk_error(
    status: StatusCode,
    message: &str,
    long_message: &str,
    code: &str,
) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({
            "errors": [{ "message": message, "long_message": long_message, "code": code }],
            "clerk_trace_id": ids::random_alnum(32).to_lowercase(),
        })),
    )
}

/// True when `Authorization: Bearer <secret key>` is present and right.
pub(crate) fn has_secret_key(shared: &Shared, request: &Request) -> bool {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, key)| {
            scheme.eq_ignore_ascii_case("bearer")
                && ids::constant_time_eq(key.trim().as_bytes(), shared.secret_key.as_bytes())
        })
}

/// Middleware: refuse calls without the secret key, in Clerk's words.
pub(crate) async fn require_secret_key(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    if has_secret_key(&shared, &request) {
        return next.run(request).await;
    }
    let missing = !request.headers().contains_key(header::AUTHORIZATION);
    let long = if missing {
        "Authorization header missing: send `Authorization: Bearer <secret key>` (sk_test_…)"
    } else {
        "The secret key in the Authorization header is not valid for this instance"
    };
    clerk_error(
        StatusCode::UNAUTHORIZED,
        "Invalid authentication",
        long,
        "authentication_invalid",
    )
    .into_response()
}

fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/oauth_applications/access_tokens/verify",
            post(verify_access_token),
        )
        .route("/api_keys/verify", post(verify_api_key))
        .route("/m2m_tokens/verify", post(verify_machine_token))
        .route("/users/{id}", get(get_user))
        .route("/jwks", get(jwks))
}

/// The Backend API router: the same routes at the root and under `/v1`, secret key required,
/// rate limited (the limit runs first, so unauthenticated calls count too, as at Clerk).
pub(crate) fn router(shared: &Arc<Shared>) -> Router<Arc<Shared>> {
    Router::new()
        .merge(routes())
        .nest("/v1", routes())
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            require_secret_key,
        ))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            crate::rate_limit::enforce,
        ))
}

/// Read one string field from a JSON body; Clerk answers a missing one with 422.
fn body_field(body: &Bytes, names: &[&str]) -> Option<String> {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    names
        .iter()
        .find_map(|n| parsed.get(*n).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn missing(name: &str) -> Response {
    clerk_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "is missing",
        &format!("`{name}` is missing from the JSON body"),
        "form_param_missing",
    )
    .into_response()
}

fn not_found(what: &str) -> Response {
    clerk_error(
        StatusCode::NOT_FOUND,
        "not found",
        &format!("No {what} was found for the given value"),
        "resource_not_found",
    )
    .into_response()
}

/// `POST /oauth_applications/access_tokens/verify` `{"access_token": "…"}` (opaque or JWT).
async fn verify_access_token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Some(token) = body_field(&body, &["access_token"]) else {
        return missing("access_token");
    };
    let record = match shared.find_access_token(&token) {
        Ok(Some(record)) => record,
        Ok(None) => return not_found("OAuth access token"),
        Err(e) => return state_failed(&e),
    };
    let now = shared.clock.now_ms();
    Json(json!({
        "object": "clerk_idp_oauth_access_token",
        "id": record.id,
        "type": "oauth:access_token",
        "client_id": record.client_id,
        "subject": record.subject,
        "scopes": record.scopes,
        "revoked": record.revoked_at_ms.is_some(),
        "revocation_reason": record.revocation_reason,
        "expired": record.expires_at_ms <= now,
        "expiration": record.expires_at_ms,
        "created_at": record.created_at_ms,
        "updated_at": record.revoked_at_ms.unwrap_or(record.created_at_ms),
    }))
    .into_response()
}

/// A state failure: 500 in Clerk's envelope (never a 404 that would read as "token unknown").
fn state_failed(error: &StoreError) -> Response {
    tracing::error!(%error, "the issuer state failed while handling a Backend API call");
    clerk_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error",
        "the issuer's state database failed; see the issuer log",
        "internal_clerk_error",
    )
    .into_response()
}

fn credential_json(object: &str, record: &MachineCredential, now: u64) -> Value {
    json!({
        "object": object,
        "id": record.id,
        "subject": record.subject,
        "scopes": record.scopes,
        "claims": record.claims,
        "revoked": record.revoked_at_ms.is_some(),
        "revocation_reason": record.revocation_reason,
        "expired": record.expires_at_ms.is_some_and(|e| e <= now),
        "expiration": record.expires_at_ms,
        "created_at": record.created_at_ms,
        "updated_at": record.revoked_at_ms.unwrap_or(record.created_at_ms),
    })
}

/// `POST /api_keys/verify` `{"secret": "ak_…"}`.
async fn verify_api_key(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Some(secret) = body_field(&body, &["secret"]) else {
        return missing("secret");
    };
    let now = shared.clock.now_ms();
    let hash = ids::hash(&secret);
    let found = shared.store.write(|tx| {
        let record = tx.credential(CredentialKind::ApiKey, &hash)?;
        if record.is_some() {
            tx.touch_credential(&hash, now)?;
        }
        Ok(record)
    });
    let mut record = match found {
        Ok(Some(record)) => record,
        Ok(None) => return not_found("API key"),
        Err(e) => return state_failed(&e),
    };
    let mut out = credential_json("api_key", &record, now);
    record.last_used_at_ms = Some(now);
    out["type"] = json!("api_key");
    out["name"] = json!(record.name);
    out["created_by"] = Value::Null;
    out["description"] = Value::Null;
    out["last_used_at"] = json!(record.last_used_at_ms);
    Json(out).into_response()
}

/// `POST /m2m_tokens/verify` `{"token": "mt_…"}` (`secret` accepted too, as older SDKs send it).
async fn verify_machine_token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Some(token) = body_field(&body, &["token", "secret"]) else {
        return missing("token");
    };
    let now = shared.clock.now_ms();
    let record = match shared
        .store
        .read(|tx| tx.credential(CredentialKind::MachineToken, &ids::hash(&token)))
    {
        Ok(Some(record)) => record,
        Ok(None) => return not_found("machine token"),
        Err(e) => return state_failed(&e),
    };
    Json(credential_json("machine_to_machine_token", &record, now)).into_response()
}

/// `GET /users/{id}`.
async fn get_user(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    match shared.user(&id) {
        Some(user) => Json(user.clerk_json(&shared.base_url)).into_response(),
        None => not_found("user"),
    }
}

/// `GET /jwks`.
async fn jwks(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(shared.keys().jwks(shared.clock.now_secs()))
}
