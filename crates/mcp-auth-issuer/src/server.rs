//! Starting the issuer: configuration checks, router assembly, the background server task, and the
//! [`IssuerHandle`] that tests and binaries hold on to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, header};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_http::cors::{Any, CorsLayer};

use crate::clock::Clock;
use crate::config::IssuerConfig;
use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::rate_limit::FixedWindow;
use crate::state::Shared;
use crate::store::Store;
use crate::tokens::{
    AccessGrant, ApiKeyRequest, MachineCreated, MachineTokenRequest, MintRequest,
    SessionTokenRequest,
};
use crate::users::{User, validate_users};
use crate::{
    Error, admin, authorize, backend, csrf, ids, introspection, metadata, metrics, register, token,
    userinfo,
};

/// Entry point: start an issuer on a listener you bound.
#[derive(Debug, Clone, Copy)]
pub struct Issuer;

impl Issuer {
    /// Check `config`, load or generate the signing keys, spawn the server on `listener` and
    /// return at once. Bind port 0 in tests. Fails (without serving) on an inconsistent
    /// configuration, an unreadable key file, or auto-approve on a non-loopback address.
    pub async fn serve(listener: TcpListener, config: IssuerConfig) -> Result<IssuerHandle, Error> {
        let local_addr = listener.local_addr()?;
        validate_config(&config, local_addr)?;
        let base_url = base_url(&config, local_addr)?;

        let clock = Clock::default();
        let now = clock.now_secs();
        let key_file = config.key_file.clone();
        let grace = config.key_rotation_grace;
        let mut keys = tokio::task::spawn_blocking(move || {
            KeyRing::load_or_generate(key_file.as_deref(), grace, now)
        })
        .await
        .map_err(|e| Error::Crypto(format!("key generation task failed: {e}")))??;
        let secret_key = match (&config.secret_key, keys.stored_secret()) {
            (Some(given), _) => given.clone(),
            (None, Some(stored)) => stored.to_owned(),
            (None, None) => {
                let generated = ids::secret("sk_test_");
                keys.remember_secret(&generated);
                generated
            }
        };
        keys.save()?;
        let publishable_key = publishable_key(&base_url, &secret_key);

        let shared = Arc::new(Shared {
            rate_limit: FixedWindow::new(config.rate_limit),
            config,
            base_url,
            secret_key,
            publishable_key,
            keys: RwLock::new(keys),
            store: Mutex::new(Store::default()),
            clock,
            metrics: Metrics::default(),
            csrf_key: csrf::new_key(),
        });
        let app = router(&shared);
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = shutdown_rx.await;
                })
                .await
        });
        tracing::info!(base_url = %shared.base_url, "mcp-auth-issuer listening (development server)");
        Ok(IssuerHandle {
            shared,
            local_addr,
            shutdown: Some(shutdown_tx),
            task: Some(task),
        })
    }
}

fn validate_config(config: &IssuerConfig, addr: SocketAddr) -> Result<(), Error> {
    validate_users(&config.users).map_err(Error::Config)?;
    if let Some(user) = &config.auto_approve_user {
        if !addr.ip().is_loopback() {
            return Err(Error::AutoApproveOnNonLoopback(addr));
        }
        if !config.users.iter().any(|u| &u.id == user) {
            return Err(Error::Config(format!(
                "auto_approve_user `{user}` is not one of the configured users"
            )));
        }
    }
    if config.scopes_supported.is_empty() {
        return Err(Error::Config("scopes_supported must not be empty".into()));
    }
    if let Some(bad) = config
        .scopes_supported
        .iter()
        .find(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        return Err(Error::Config(format!(
            "scope `{bad}` must be one non-empty word"
        )));
    }
    if let Some(bad) = config
        .default_scopes
        .iter()
        .find(|s| !config.scopes_supported.contains(s))
    {
        return Err(Error::Config(format!(
            "default scope `{bad}` is not in scopes_supported"
        )));
    }
    if config.rate_limit.requests == 0 || config.rate_limit.window.is_zero() {
        return Err(Error::Config(
            "the rate limit needs at least 1 request per non-zero window".into(),
        ));
    }
    if let Some(key) = &config.secret_key
        && !(key.starts_with("sk_test_") || key.starts_with("sk_live_"))
    {
        return Err(Error::Config(
            "secret_key must start with sk_test_ (or sk_live_)".into(),
        ));
    }
    Ok(())
}

fn base_url(config: &IssuerConfig, addr: SocketAddr) -> Result<String, Error> {
    if let Some(public) = &config.public_url {
        let url = url::Url::parse(public)
            .map_err(|e| Error::Config(format!("public_url `{public}` is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https")
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(Error::Config(format!(
                "public_url `{public}` must be an http(s) URL without query or fragment"
            )));
        }
        return Ok(public.trim_end_matches('/').to_owned());
    }
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(format!("http://{}", SocketAddr::new(ip, addr.port())))
}

/// `pk_test_` + unpadded base64(Frontend API host + `$`), as Clerk builds publishable keys
/// (`buildPublishableKey` strips the `=` padding: `packages/shared/src/keys.ts:38-44` in
/// `clerk/javascript`).
fn publishable_key(base_url: &str, secret_key: &str) -> String {
    let host = base_url
        .split_once("://")
        .map_or(base_url, |(_, rest)| rest)
        .trim_end_matches('/');
    let prefix = if secret_key.starts_with("sk_live_") {
        "pk_live_"
    } else {
        "pk_test_"
    };
    format!("{prefix}{}", STANDARD_NO_PAD.encode(format!("{host}$")))
}

pub(crate) fn rotate(shared: &Shared) -> Result<String, Error> {
    let now = shared.clock.now_secs();
    let kid = shared.keys_mut().rotate(now)?;
    tracing::info!(%kid, "signing key rotated; the previous key stays published for the grace period");
    Ok(kid)
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({
            "error": "not_found",
            "error_description": "no such endpoint on mcp-auth-issuer; see /.well-known/oauth-authorization-server",
        })),
    )
}

fn router(shared: &Arc<Shared>) -> Router {
    // Browser-based clients (the MCP Inspector) run discovery, registration and the token call
    // from a web page: allow any origin, no credentials.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers([header::WWW_AUTHENTICATE])
        .max_age(Duration::from_secs(600));
    let frontend = Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(metadata::serve_document),
        )
        .route(
            "/.well-known/openid-configuration",
            get(metadata::serve_openid_document),
        )
        .route("/.well-known/jwks.json", get(metadata::serve_jwks))
        .route("/oauth/register", post(register::register))
        .route("/oauth/token", post(token::token))
        .route(
            "/oauth/userinfo",
            get(userinfo::userinfo).post(userinfo::userinfo),
        )
        .route("/oauth/token_info", post(introspection::introspect))
        // Clerk serves revocation at `/oauth/token/revoke`; `/oauth/revoke` stays as an alias.
        .route("/oauth/token/revoke", post(introspection::revoke))
        .route("/oauth/revoke", post(introspection::revoke))
        .layer(cors);
    let pages = Router::new()
        .route(
            "/oauth/authorize",
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route("/avatars/{file}", get(metadata::serve_avatar))
        .route("/metrics", get(metrics::serve_metrics));
    Router::new()
        .merge(frontend)
        .merge(pages)
        .merge(backend::router(shared))
        .merge(admin::router(shared))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            metrics::count_requests,
        ))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(shared.clone())
}

/// A running issuer. Dropping it stops the server (gracefully, in the background);
/// [`IssuerHandle::shutdown`] stops it and waits.
pub struct IssuerHandle {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for IssuerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerHandle")
            .field("base_url", &self.shared.base_url)
            .field("secret_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl IssuerHandle {
    /// Issuer identifier, Frontend API URL and Backend API base (`http://127.0.0.1:PORT`, no
    /// trailing slash). The Backend API is at `{base_url}/v1/…`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The secret key (`sk_test_…`) for Backend API and admin calls.
    pub fn secret_key(&self) -> String {
        self.shared.secret_key.clone()
    }

    /// The publishable key: `pk_test_` + base64(`host:port$`).
    pub fn publishable_key(&self) -> String {
        self.shared.publishable_key.clone()
    }

    /// The local users.
    pub fn users(&self) -> Vec<User> {
        self.shared.config.users.clone()
    }

    /// The currently published JWKS (active key first).
    pub fn jwks(&self) -> serde_json::Value {
        self.shared.keys().jwks(self.shared.clock.now_secs())
    }

    /// The Prometheus text the `/metrics` endpoint serves.
    pub fn metrics(&self) -> String {
        self.shared.metrics.render()
    }

    /// Mint an OAuth access token without the browser flow, in the configured format (or
    /// `request.format`). Returns the token string (JWT, or opaque `oat_…`).
    pub fn mint_access_token(&self, request: MintRequest) -> Result<String, Error> {
        let grant = AccessGrant {
            subject: &request.user_id,
            client_id: &request.client_id,
            scopes: &request.scopes,
            resource: request.resource.as_deref(),
            lifetime: request
                .lifetime
                .unwrap_or(self.shared.config.access_token_lifetime),
            format: request.format.unwrap_or(self.shared.config.token_format),
            grant_id: None,
        };
        self.shared.issue_access_token(&grant)
    }

    /// Mint a Clerk session token (RS256 JWT with `sid`, `azp`, `v`; header `typ: JWT`).
    pub fn mint_session_token(&self, request: SessionTokenRequest) -> Result<String, Error> {
        self.shared.mint_session_token(&request)
    }

    /// Mint a Clerk API key; returns its secret (`ak_…`).
    pub fn mint_api_key(&self, request: ApiKeyRequest) -> Result<String, Error> {
        self.shared.mint_api_key(&request)
    }

    /// Mint a Clerk machine-to-machine token: opaque `mt_…` (default) or a JWT
    /// (`request.format`), granted to the machines in `request.scopes`.
    pub fn mint_machine_token(&self, request: MachineTokenRequest) -> Result<String, Error> {
        self.shared.mint_machine_token(&request)
    }

    /// Create a Clerk machine named `name`; returns its id and machine secret key.
    pub fn create_machine(&self, name: &str) -> Result<MachineCreated, Error> {
        let (machine, secret_key) = self.shared.create_machine(name, &[])?;
        Ok(MachineCreated {
            id: machine.id,
            secret_key,
        })
    }

    /// Revoke any token this issuer minted (access, refresh, session, API key, machine token).
    /// Returns `false` when the token is unknown.
    pub fn revoke(&self, token: &str) -> bool {
        self.shared
            .revoke_token(token, None, "revoked by an administrator")
    }

    /// Generate a new signing key and make it active; the old key stays in the JWKS for
    /// `key_rotation_grace`. Returns the new `kid`.
    pub async fn rotate_keys(&self) -> Result<String, Error> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || rotate(&shared))
            .await
            .map_err(|e| Error::Crypto(format!("key rotation task failed: {e}")))?
    }

    /// Move the issuer's clock forward (expiry, grace periods, rate-limit windows), so tests
    /// never sleep.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// Stop accepting connections, finish in-flight requests, and wait for the server to end.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))??;
        }
        Ok(())
    }
}

impl Drop for IssuerHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishable_key_is_clerk_shaped() {
        let pk = publishable_key("http://127.0.0.1:8788", "sk_test_x");
        assert_eq!(pk, "pk_test_MTI3LjAuMC4xOjg3ODgk");
        // base64("127.0.0.1:878$") ends in `=` when padded; Clerk drops it.
        assert_eq!(
            publishable_key("http://127.0.0.1:878", "sk_test_x"),
            "pk_test_MTI3LjAuMC4xOjg3OCQ"
        );
        assert!(publishable_key("https://a.example", "sk_live_x").starts_with("pk_live_"));
    }

    #[test]
    fn base_url_has_no_trailing_slash_and_brackets_ipv6() {
        let config = IssuerConfig::default();
        let v6: SocketAddr = "[::1]:9000".parse().unwrap();
        assert_eq!(base_url(&config, v6).unwrap(), "http://[::1]:9000");
        let any: SocketAddr = "0.0.0.0:9000".parse().unwrap();
        assert_eq!(base_url(&config, any).unwrap(), "http://127.0.0.1:9000");
        let config = IssuerConfig {
            public_url: Some("https://auth.example/".into()),
            ..IssuerConfig::default()
        };
        assert_eq!(base_url(&config, v6).unwrap(), "https://auth.example");
    }
}
