//! Starting the issuer: configuration checks, router assembly, the background server task, and the
//! [`IssuerHandle`] that tests and binaries hold on to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
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
use crate::users::default_users;
use crate::users::{User, validate_users};
use crate::{
    Error, admin, authorize, backend, csrf, ids, introspection, metadata, metrics, register, token,
    userinfo,
};

/// Entry point: start an issuer on a listener you bound.
#[derive(Debug, Clone, Copy)]
pub struct Issuer;

impl Issuer {
    /// Check `config`, open the state (in `config.state_dir`, else in memory), load or generate
    /// the signing keys, spawn the server on `listener` and return at once. Bind port 0 in
    /// tests. Fails (without serving) on an inconsistent configuration, a state directory in
    /// use by another issuer or written by a newer one, an unreadable key file, or auto-approve
    /// on a non-loopback address.
    pub async fn serve(listener: TcpListener, config: IssuerConfig) -> Result<IssuerHandle, Error> {
        let (app, mut handle) = Self::router(config, listener.local_addr()?).await?;
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = shutdown_rx.await;
                })
                .await
        });
        tracing::info!(
            base_url = %handle.shared.base_url,
            state = %handle.shared.store.dir().map_or_else(|| "in memory".to_owned(), |d| d.display().to_string()),
            "mcp-auth-issuer listening (development server)"
        );
        handle.shutdown = Some(shutdown_tx);
        handle.task = Some(task);
        Ok(handle)
    }

    /// The issuer without a listener: its router, to drive in-process (tower's `oneshot`), and a
    /// handle to its state. `local_addr` stands for the address it would listen on (the base URL
    /// and the loopback rule of `auto_approve_user` follow from it). Same checks as
    /// [`Issuer::serve`]; [`IssuerHandle::shutdown`] on this handle returns at once.
    ///
    /// For the fuzz targets in `fuzz/`; not meant for anything else.
    #[doc(hidden)]
    pub async fn router(
        config: IssuerConfig,
        local_addr: SocketAddr,
    ) -> Result<(Router, IssuerHandle), Error> {
        validate_config(&config, local_addr)?;
        let base_url = base_url(&config, local_addr)?;

        let clock = Clock::default();
        let now = clock.now_secs();
        let state_dir = config.state_dir.clone();
        let key_file = config.key_file.clone();
        let grace = config.key_rotation_grace;
        // Opening the state (file I/O, fsync) and generating a key (RSA) block: off the runtime.
        let opened =
            tokio::task::spawn_blocking(move || open_state(state_dir, key_file, grace, now))
                .await
                .map_err(|e| {
                    Error::Io(std::io::Error::other(format!("state task failed: {e}")))
                })??;
        let OpenedState {
            store,
            keys,
            remembered_secret,
        } = opened;

        let users = match &config.users {
            Some(given) => {
                store.write(|tx| tx.replace_users(given))?;
                given.clone()
            }
            None => {
                let saved = store.read(|tx| tx.users())?;
                if saved.is_empty() {
                    default_users()
                } else {
                    saved
                }
            }
        };
        validate_users(&users).map_err(Error::Config)?;
        if let Some(user) = &config.auto_approve_user
            && !users.iter().any(|u| &u.id == user)
        {
            return Err(Error::Config(format!(
                "auto_approve_user `{user}` is not one of the configured users"
            )));
        }

        let (secret_key, remembered_secret) = match (&config.secret_key, remembered_secret) {
            (Some(given), remembered) => (given.clone(), remembered),
            (None, Some(remembered)) => (remembered.clone(), Some(remembered)),
            (None, None) => {
                let generated = ids::secret("sk_test_");
                store.write(|tx| tx.set_meta(META_SECRET_KEY, &generated))?;
                (generated.clone(), Some(generated))
            }
        };
        let csrf_key = store.write(|tx| {
            let bytes = match tx.meta(META_CSRF_KEY)? {
                Some(hex) => csrf::decode_key(&hex),
                None => None,
            };
            Ok(match bytes {
                Some(bytes) => bytes,
                None => {
                    let bytes = csrf::random_key_bytes();
                    tx.set_meta(META_CSRF_KEY, &csrf::encode_key(&bytes))?;
                    bytes
                }
            })
        })?;
        let publishable_key = publishable_key(&base_url, &secret_key);
        let cimd = crate::cimd::Fetcher::new(
            config.cimd_allow_loopback,
            &config.cimd_root_certificates_pem,
            config.cimd_fetch_timeout,
            config.cimd_max_document_bytes,
        )
        .map_err(Error::Config)?;

        let shared = Arc::new(Shared {
            rate_limit: FixedWindow::new(config.rate_limit),
            cimd,
            key_file: config.key_file.clone(),
            remembered_secret,
            config,
            base_url,
            secret_key,
            publishable_key,
            users,
            keys: RwLock::new(keys),
            store,
            clock,
            metrics: Metrics::default(),
            csrf_key: csrf::key_from_bytes(&csrf_key),
        });
        {
            let keys = shared.keys();
            shared.persist_keys(&keys)?;
        }
        prune_in_background(&shared);
        let app = router(&shared);
        Ok((
            app,
            IssuerHandle {
                shared,
                local_addr,
                shutdown: None,
                task: None,
            },
        ))
    }
}

/// `meta` key of the generated secret key.
const META_SECRET_KEY: &str = "secret_key";
/// `meta` key of the consent forms' HMAC key.
const META_CSRF_KEY: &str = "csrf_key";

struct OpenedState {
    store: Store,
    keys: KeyRing,
    /// The generated secret key of an earlier run (key file first, then the state).
    remembered_secret: Option<String>,
}

/// Open the store and load (or generate) the key ring: from the key file when it exists, else
/// from the state, else a new key. Blocking.
fn open_state(
    state_dir: Option<PathBuf>,
    key_file: Option<PathBuf>,
    grace: Duration,
    now: u64,
) -> Result<OpenedState, Error> {
    let store = match &state_dir {
        Some(dir) => Store::open(dir)?,
        None => Store::in_memory()?,
    };
    let from_file = match &key_file {
        Some(path) => crate::keys::read_key_file(path)?,
        None => None,
    };
    let stored_secret = store.read(|tx| tx.meta(META_SECRET_KEY))?;
    let (stored_keys, remembered_secret, origin) = match from_file {
        Some((keys, secret)) => (keys, secret.or(stored_secret), "key file"),
        None => (store.read(|tx| tx.signing_keys())?, stored_secret, "state"),
    };
    let keys = match KeyRing::from_stored(stored_keys, grace, now) {
        Ok(Some(ring)) => ring,
        Ok(None) => KeyRing::generate(grace, now)?,
        Err(message) => {
            return Err(match (origin, &key_file) {
                ("key file", Some(path)) => Error::KeyFile {
                    path: path.clone(),
                    message,
                },
                _ => Error::State(format!("the stored signing keys are unusable: {message}")),
            });
        }
    };
    Ok(OpenedState {
        store,
        keys,
        remembered_secret,
    })
}

/// Delete expired codes and tokens once, after start, without delaying it.
fn prune_in_background(shared: &Arc<Shared>) {
    let shared = shared.clone();
    let now = shared.clock.now_ms();
    tokio::task::spawn_blocking(
        move || match shared.store.write(|tx| tx.prune_expired(now)) {
            Ok(0) | Err(crate::store::StoreError::Closed) => {}
            Ok(removed) => tracing::debug!(removed, "pruned expired records from the state"),
            Err(e) => tracing::warn!(error = %e, "pruning the state failed"),
        },
    );
}

fn validate_config(config: &IssuerConfig, addr: SocketAddr) -> Result<(), Error> {
    if let Some(users) = &config.users {
        validate_users(users).map_err(Error::Config)?;
    }
    if config.auto_approve_user.is_some() && !addr.ip().is_loopback() {
        return Err(Error::AutoApproveOnNonLoopback(addr));
    }
    if config.cimd_allow_loopback && !addr.ip().is_loopback() {
        return Err(Error::Config(format!(
            "cimd_allow_loopback (--cimd-allow-loopback) is refused on non-loopback address {}: \
             it is for local development and tests only",
            addr.ip()
        )));
    }
    if config.cimd_fetch_timeout.is_zero() || config.cimd_max_document_bytes == 0 {
        return Err(Error::Config(
            "cimd_fetch_timeout and cimd_max_document_bytes must not be zero".into(),
        ));
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
    let mut keys = shared.keys_mut();
    let kid = keys.rotate(now)?;
    shared.persist_keys(&keys)?;
    drop(keys);
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
        .route(crate::oauth_error::REGISTER_PATH, post(register::register))
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
        .layer(middleware::map_response(
            crate::oauth_error::oversized_body_as_oauth_error,
        ))
        .layer(DefaultBodyLimit::max(crate::oauth_error::MAX_BODY_BYTES))
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
        self.shared.users.clone()
    }

    /// The state directory, or `None` when the state lives in memory.
    pub fn state_dir(&self) -> Option<PathBuf> {
        self.shared.store.dir().map(PathBuf::from)
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
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "revoke failed");
                false
            })
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

    /// Every Backend API call answers 429 with `Retry-After` for the next `duration` on the
    /// issuer's clock (as `POST /admin/backend/throttle`).
    pub fn throttle_backend(&self, duration: Duration) {
        self.shared
            .rate_limit
            .throttle(self.shared.clock.now_ms(), crate::clock::millis(duration));
    }

    /// Stop accepting connections, finish in-flight requests, wait for the server to end, and
    /// close the state (releasing its directory for the next issuer).
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let served = match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))
                .and_then(|r| r.map_err(Error::Io)),
            None => Ok(()),
        };
        self.shared.store.close();
        served
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
