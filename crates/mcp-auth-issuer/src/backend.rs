//! Stand-in for the parts of Clerk's Backend API a resource server uses, served both under `/v1`
//! (as `https://api.clerk.com/v1/…`, how generated SDKs call it) and at the root (how
//! `@clerk/backend` calls the three verify endpoints): token verification, users, JWKS. Every call
//! needs the secret key as a Bearer token (`m2m_tokens/verify` also takes a machine secret key);
//! every call but `GET /jwks` counts against the rate limit, as at Clerk.

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
use crate::store::{CredentialKind, Machine, MachineCredential, StoreError};

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

/// The machine a machine secret key in `Authorization: Bearer …` belongs to.
fn machine_of_key(shared: &Shared, request: &Request) -> Result<Option<String>, StoreError> {
    let key = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim());
    let Some(key) = key else {
        return Ok(None);
    };
    shared
        .store
        .read(|tx| tx.machine_of_secret(&ids::hash(key)))
}

/// Who called `m2m_tokens/verify`: the instance (secret key) or a machine (its secret key).
#[derive(Clone, Debug)]
enum Caller {
    Instance,
    Machine(String),
}

/// Middleware for `m2m_tokens/verify`: the instance secret key or a machine secret key.
async fn require_secret_or_machine_key(
    State(shared): State<Arc<Shared>>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = if has_secret_key(&shared, &request) {
        Caller::Instance
    } else if let Some(machine) = match machine_of_key(&shared, &request) {
        Ok(machine) => machine,
        Err(e) => return state_failed(&e),
    } {
        Caller::Machine(machine)
    } else {
        return clerk_error(
            StatusCode::UNAUTHORIZED,
            "Invalid authentication",
            "Send the instance secret key (sk_…) or a machine secret key as `Authorization: Bearer …`",
            "authentication_invalid",
        )
        .into_response();
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn routes(shared: &Arc<Shared>) -> Router<Arc<Shared>> {
    let instance = Router::new()
        .route(
            "/oauth_applications/access_tokens/verify",
            post(verify_access_token),
        )
        .route("/api_keys/verify", post(verify_api_key))
        .route("/users/{id}", get(get_user))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            require_secret_key,
        ));
    let machine = Router::new()
        .route("/m2m_tokens/verify", post(verify_machine_token))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            require_secret_or_machine_key,
        ));
    instance.merge(machine)
}

/// The Backend API router: the same routes at the root and under `/v1`, rate limited (the
/// limit runs first, so unauthenticated calls count too, as at Clerk), except `GET /jwks`,
/// which Clerk does not rate-limit (Clerk docs, `guides/how-clerk-works/system-limits`).
pub(crate) fn router(shared: &Arc<Shared>) -> Router<Arc<Shared>> {
    let limited = Router::new()
        .merge(routes(shared))
        .nest("/v1", routes(shared))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            crate::rate_limit::enforce,
        ));
    let jwks = Router::new()
        .route("/jwks", get(jwks))
        .route("/v1/jwks", get(jwks))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            require_secret_key,
        ));
    limited.merge(jwks)
}

/// Read one string field from a JSON body (the first of `names` present).
fn body_field(body: &Bytes, names: &[&str]) -> Option<String> {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    names
        .iter()
        .find_map(|n| parsed.get(*n).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A missing token field: 400, as Clerk's spec lists for the verify endpoints
/// (`bapi/2026-05-12.yml`: `400 Bad Request`, no 422).
fn missing(name: &str) -> Response {
    clerk_error(
        StatusCode::BAD_REQUEST,
        "is missing",
        &format!("`{name}` is missing from the JSON body"),
        "form_param_missing",
    )
    .into_response()
}

/// A revoked or expired token: `@clerk/backend` documents that verification *throws* for them
/// (`api/endpoints/APIKeysApi.ts:159-163`) and never reads the `revoked`/`expired` flags of a
/// 200 answer (`tokens/authObjects.ts`), so Clerk refuses them with an error status; 404, which
/// the SDK maps to "token not found" (`tokens/verify.ts:176-178`).
fn refused(what: &str) -> Response {
    not_found(what)
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

/// `POST /oauth_applications/access_tokens/verify` `{"access_token": "…"}` (or the deprecated
/// `{"secret": "…"}`), opaque or JWT. The answer follows Clerk's spec (`bapi/2026-05-12.yml`):
/// its fields and no `type`, plus `aud` (an array) when the token was issued for a resource, as
/// `@clerk/backend` reads it (`api/resources/JSON.ts`, `IdPOAuthAccessTokenJSON.aud`). An
/// expired JWT gets `200 {"active": false}`, as the spec's second answer shape says.
async fn verify_access_token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Some(token) = body_field(&body, &["access_token", "secret"]) else {
        return missing("access_token");
    };
    let record = match shared.find_access_token(&token) {
        Ok(Some(record)) => record,
        Ok(None) => return not_found("OAuth access token"),
        Err(e) => return state_failed(&e),
    };
    let now = shared.clock.now_ms();
    let expired = record.expires_at_ms <= now;
    if expired && token.split('.').count() == 3 {
        return Json(json!({ "active": false })).into_response();
    }
    if expired || record.revoked_at_ms.is_some() {
        return refused("OAuth access token");
    }
    let mut out = json!({
        "object": "clerk_idp_oauth_access_token",
        "id": record.id,
        "client_id": record.client_id,
        "subject": record.subject,
        "scopes": record.scopes,
        "revoked": record.revoked_at_ms.is_some(),
        "revocation_reason": record.revocation_reason,
        "expired": expired,
        "expiration": record.expires_at_ms,
        "created_at": record.created_at_ms,
        "updated_at": record.revoked_at_ms.unwrap_or(record.created_at_ms),
    });
    if let Some(aud) = &record.resource {
        out["aud"] = json!([aud]);
    }
    Json(out).into_response()
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
        "last_used_at": record.last_used_at_ms,
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
    // A revoked or expired key is refused and not marked used.
    let found = shared.store.write(|tx| {
        let record = tx.credential(CredentialKind::ApiKey, &hash)?;
        if record.as_ref().is_some_and(|r| r.is_usable(now)) {
            tx.touch_credential(&hash, now)?;
        }
        Ok(record)
    });
    let mut record = match found {
        Ok(Some(record)) => record,
        Ok(None) => return not_found("API key"),
        Err(e) => return state_failed(&e),
    };
    if !record.is_usable(now) {
        return refused("API key");
    }
    record.last_used_at_ms = Some(now);
    let mut out = credential_json("api_key", &record, now);
    out["type"] = json!("api_key");
    out["name"] = json!(record.name);
    out["created_by"] = Value::Null;
    out["description"] = Value::Null;
    Json(out).into_response()
}

/// `POST /m2m_tokens/verify` `{"token": "mt_…"}` (`secret` accepted too, as older SDKs send it).
/// With a machine secret key, only a token granted to that machine (listed in its `scopes`)
/// verifies (`bapi/2026-05-12.yml`, `verifyM2MToken`); any other is answered 404, like an
/// unknown one, so a machine learns nothing about tokens not meant for it. Answers carry
/// `last_used_at` (required in the spec), updated by each verification.
async fn verify_machine_token(
    State(shared): State<Arc<Shared>>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Bytes,
) -> Response {
    let Some(token) = body_field(&body, &["token", "secret"]) else {
        return missing("token");
    };
    let now = shared.clock.now_ms();
    let hash = ids::hash(&token);
    // One transaction: the lookup and, for a token this caller may see and that is usable, its
    // `last_used_at`. The answer shows the previous use.
    let found = shared.store.write(|tx| {
        let Some(record) = tx.credential(CredentialKind::MachineToken, &hash)? else {
            return Ok(None);
        };
        if let Caller::Machine(machine) = &caller
            && !record.scopes.iter().any(|m| m == machine)
        {
            return Ok(None);
        }
        if record.is_usable(now) {
            tx.touch_credential(&hash, now)?;
        }
        Ok(Some(record))
    });
    let record = match found {
        Ok(Some(record)) => record,
        Ok(None) => return not_found("machine token"),
        Err(e) => return state_failed(&e),
    };
    if !record.is_usable(now) {
        return refused("machine token");
    }
    Json(credential_json("machine_to_machine_token", &record, now)).into_response()
}

impl Shared {
    /// Clerk's `Machine` object (`bapi/2026-05-12.yml`, `MachineWithoutScopedMachines` and
    /// `Machine`).
    pub(crate) fn machine_json(&self, machine: &Machine) -> Result<Value, StoreError> {
        let scoped = self.store.read(|tx| {
            let mut scoped = Vec::new();
            for id in &machine.scoped_machines {
                if let Some(m) = tx.machine(id)? {
                    scoped.push(self.machine_summary(&m));
                }
            }
            Ok(scoped)
        })?;
        let mut out = self.machine_summary(machine);
        out["scoped_machines"] = json!(scoped);
        Ok(out)
    }

    fn machine_summary(&self, machine: &Machine) -> Value {
        json!({
            "object": "machine",
            "id": machine.id,
            "name": machine.name,
            "instance_id": self.instance_id(),
            "created_at": machine.created_at_ms,
            "updated_at": machine.created_at_ms,
            "default_token_ttl": machine.default_token_ttl,
        })
    }

    /// A stable instance id (`ins_…`) derived from the secret key, for answers that carry one.
    pub(crate) fn instance_id(&self) -> String {
        format!("ins_{}", &ids::hash(&self.secret_key)[..27])
    }
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
