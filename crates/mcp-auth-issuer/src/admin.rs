//! `/admin/*`: test and administration helpers over HTTP (for Node tests and tools that cannot
//! call the Rust handle): mint any kind of token, revoke, rotate keys, move the clock.
//! Authenticated with the secret key (`Authorization: Bearer sk_test_…`); not rate limited.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::backend::{clerk_error, require_secret_key};
use crate::config::TokenFormat;
use crate::oauth_error::OAuthError;
use crate::state::Shared;
use crate::tokens::{
    AccessGrant, ApiKeyRequest, MachineTokenRequest, OrganizationClaims, SessionTokenRequest,
};

/// Client id used when an admin access-token request names none.
pub(crate) const ADMIN_CLIENT_ID: &str = "client_admin";

pub(crate) fn router(shared: &Arc<Shared>) -> Router<Arc<Shared>> {
    Router::new()
        .route("/admin/tokens/access", post(mint_access))
        .route("/admin/tokens/session", post(mint_session))
        .route("/admin/api_keys", post(mint_api_key))
        .route("/admin/m2m_tokens", post(mint_machine_token))
        .route("/admin/machines", post(create_machine))
        .route("/admin/revoke", post(revoke))
        .route("/admin/rotate_keys", post(rotate_keys))
        .route("/admin/clock/advance", post(advance_clock))
        .route("/admin/clock/rewind", post(rewind_clock))
        .route("/admin/users", get(users))
        .route("/admin/clients", post(create_client))
        .route("/admin/backend/throttle", post(throttle_backend))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            require_secret_key,
        ))
}

/// `POST /admin/clients`: a pre-registered client for tests and tools (the conformance suite's
/// `--client-id`/`--client-secret`), made without dynamic registration. The body is RFC 7591
/// metadata; `client_name`, `redirect_uris` and `token_endpoint_auth_method` (`none`,
/// `client_secret_basic` — the default — or `client_secret_post`) are what a caller usually
/// sets. `grant_types` defaults to `authorization_code` and `refresh_token` (a registration's
/// default is `authorization_code` only). Answers 201 with `client_id` and, for a confidential
/// client, `client_secret` (shown once); bad metadata is a 400 in RFC 7591 form
/// (`invalid_client_metadata`, `invalid_redirect_uri`) saying what is wrong.
async fn create_client(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let mut metadata: Value = match serde_json::from_slice(&body) {
        Ok(Value::Object(map)) => Value::Object(map),
        Ok(_) => {
            return OAuthError::invalid_client_metadata("the body must be a JSON object")
                .into_response();
        }
        Err(e) => {
            return OAuthError::invalid_client_metadata(format!("the body is not valid JSON: {e}"))
                .into_response();
        }
    };
    if metadata.get("grant_types").is_none_or(Value::is_null) {
        metadata["grant_types"] = json!(["authorization_code", "refresh_token"]);
    }
    match crate::register::create_client(&shared, &metadata) {
        Ok(created) => (StatusCode::CREATED, Json(created)).into_response(),
        Err(e) => e.into_response(),
    }
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, String> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))
}

fn bad_request(message: &str) -> Response {
    clerk_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request",
        message,
        "form_param_invalid",
    )
    .into_response()
}

fn minted(kind: &str, result: Result<String, crate::Error>) -> Response {
    match result {
        Ok(token) => Json(json!({ "kind": kind, "token": token })).into_response(),
        Err(crate::Error::InvalidRequest(m)) => bad_request(&m),
        Err(e) => {
            tracing::error!(error = %e, "admin mint failed");
            clerk_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                "minting failed; see the issuer log",
                "internal_clerk_error",
            )
            .into_response()
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessBody {
    user_id: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    lifetime_secs: Option<u64>,
    #[serde(default)]
    format: Option<String>,
}

/// `POST /admin/tokens/access`.
async fn mint_access(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: AccessBody = match parse(&body) {
        Ok(r) => r,
        Err(m) => return bad_request(&m),
    };
    let format = match req.format.as_deref().map(str::parse::<TokenFormat>) {
        None => shared.config.token_format,
        Some(Ok(f)) => f,
        Some(Err(e)) => return bad_request(&e),
    };
    let grant = AccessGrant {
        subject: &req.user_id,
        client_id: req.client_id.as_deref().unwrap_or(ADMIN_CLIENT_ID),
        scopes: &req.scopes,
        resource: req.resource.as_deref(),
        lifetime: req
            .lifetime_secs
            .map_or(shared.config.access_token_lifetime, Duration::from_secs),
        format,
        grant_id: None,
    };
    minted("access_token", shared.issue_access_token(&grant))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrganizationBody {
    id: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    permissions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionBody {
    user_id: String,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    authorized_party: Option<String>,
    #[serde(default)]
    organization: Option<OrganizationBody>,
    #[serde(default)]
    lifetime_secs: Option<u64>,
    /// The `cat` header; default Clerk's session category.
    #[serde(default)]
    category: Option<String>,
}

/// `POST /admin/tokens/session`.
async fn mint_session(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: SessionBody = match parse(&body) {
        Ok(r) => r,
        Err(m) => return bad_request(&m),
    };
    let request = SessionTokenRequest {
        user_id: req.user_id,
        session_id: req.session_id,
        authorized_party: req.authorized_party,
        organization: req.organization.map(|o| OrganizationClaims {
            id: o.id,
            slug: o.slug,
            role: o.role,
            permissions: o.permissions,
        }),
        lifetime: req.lifetime_secs.map(Duration::from_secs),
        category: req.category,
    };
    minted("session_token", shared.mint_session_token(&request))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialBody {
    subject: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    claims: Option<Value>,
    #[serde(default)]
    lifetime_secs: Option<u64>,
}

/// `POST /admin/api_keys`.
async fn mint_api_key(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: CredentialBody = match parse(&body) {
        Ok(r) => r,
        Err(m) => return bad_request(&m),
    };
    let request = ApiKeyRequest {
        subject: req.subject,
        name: req.name,
        scopes: req.scopes,
        claims: req.claims,
        lifetime: req.lifetime_secs.map(Duration::from_secs),
    };
    minted("api_key", shared.mint_api_key(&request))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MachineTokenBody {
    subject: String,
    /// Machine ids the token is granted to.
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    claims: Option<Value>,
    #[serde(default)]
    lifetime_secs: Option<u64>,
    /// `"opaque"` (default, as Clerk's `token_format`) or `"jwt"`.
    #[serde(default)]
    format: Option<String>,
}

/// `POST /admin/m2m_tokens` `{"subject": "mch_…", "scopes": ["mch_…"], "format": "jwt"|"opaque"}`.
async fn mint_machine_token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: MachineTokenBody = match parse(&body) {
        Ok(r) => r,
        Err(m) => return bad_request(&m),
    };
    let format = match req.format.as_deref().map(str::parse::<TokenFormat>) {
        None => None,
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => return bad_request(&e),
    };
    let request = MachineTokenRequest {
        subject: req.subject,
        scopes: req.scopes,
        claims: req.claims,
        lifetime: req.lifetime_secs.map(Duration::from_secs),
        format,
    };
    minted("machine_token", shared.mint_machine_token(&request))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MachineBody {
    name: String,
    #[serde(default)]
    scoped_machines: Vec<String>,
}

/// `POST /admin/machines` `{"name": …}`: Clerk's `POST /machines` answer (`Machine.Created` in
/// the Backend API spec `bapi/2026-05-12.yml`), secret key included.
async fn create_machine(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: MachineBody = match parse(&body) {
        Ok(r) => r,
        Err(m) => return bad_request(&m),
    };
    let created = shared
        .create_machine(&req.name, &req.scoped_machines)
        .and_then(|(machine, secret_key)| {
            let mut out = shared.machine_json(&machine)?;
            out["secret_key"] = json!(secret_key);
            Ok(out)
        });
    match created {
        Ok(out) => Json(out).into_response(),
        Err(crate::Error::InvalidRequest(m)) => bad_request(&m),
        Err(e) => minted("machine", Err(e)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    token: String,
}

/// `POST /admin/revoke`.
async fn revoke(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: RevokeBody = match parse(&body) {
        Ok(r) => r,
        Err(m) => return bad_request(&m),
    };
    match shared.revoke_token(&req.token, None, "revoked by an administrator") {
        Ok(revoked) => Json(json!({ "revoked": revoked })).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "admin revoke failed");
            clerk_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                "the issuer's state database failed; see the issuer log",
                "internal_clerk_error",
            )
            .into_response()
        }
    }
}

/// `POST /admin/rotate_keys`.
async fn rotate_keys(State(shared): State<Arc<Shared>>) -> Response {
    let worker = shared.clone();
    let result = tokio::task::spawn_blocking(move || crate::server::rotate(&worker)).await;
    match result {
        Ok(Ok(kid)) => Json(json!({
            "kid": kid,
            "jwks": shared.keys().jwks(shared.clock.now_secs()),
        }))
        .into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "key rotation failed");
            clerk_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                "key rotation failed; see the issuer log",
                "internal_clerk_error",
            )
            .into_response()
        }
        Err(_) => clerk_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
            "key rotation task failed",
            "internal_clerk_error",
        )
        .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceBody {
    seconds: u64,
}

/// `POST /admin/clock/advance` `{"seconds": N}`.
async fn advance_clock(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: AdvanceBody = match parse(&body) {
        Ok(r) => r,
        Err(m) => return bad_request(&m),
    };
    shared.clock.advance(Duration::from_secs(req.seconds));
    Json(json!({ "now": shared.clock.now_secs() })).into_response()
}

/// `POST /admin/clock/rewind` `{"seconds": N}`: move the clock back, e.g. to mint a JWT that
/// is already expired by the wall clock (then advance by as much again).
async fn rewind_clock(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: AdvanceBody = match parse(&body) {
        Ok(r) => r,
        Err(m) => return bad_request(&m),
    };
    shared.clock.rewind(Duration::from_secs(req.seconds));
    Json(json!({ "now": shared.clock.now_secs() })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThrottleBody {
    seconds: u64,
}

/// `POST /admin/backend/throttle` `{"seconds": N}`: every Backend API call answers 429 with
/// `Retry-After` for the next N seconds (Clerk's answer once an instance's limit is spent).
/// Answers `{"until_ms": …}` on the issuer's clock.
async fn throttle_backend(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: ThrottleBody = match parse(&body) {
        Ok(r) => r,
        Err(m) => return bad_request(&m),
    };
    let until = shared
        .rate_limit
        .throttle(shared.clock.now_ms(), req.seconds.saturating_mul(1000));
    Json(json!({ "until_ms": until })).into_response()
}

/// `GET /admin/users`.
async fn users(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!(shared.users))
}
