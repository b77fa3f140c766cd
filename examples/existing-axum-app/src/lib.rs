//! An existing axum application that gains an OAuth-protected MCP endpoint with one
//! `.merge(...)`, as a library so its tests start exactly what `cargo run -p existing-axum-app`
//! starts (on free ports).
//!
//! The app has its own routes: `GET /` (public), `GET /api/me` and `GET|POST /api/notes`
//! (protected). One Clerk verifier, built once and shared as an `Arc<dyn TokenVerifier>`,
//! protects both the API routes (through [`AuthLayer`]) and the MCP endpoint (through
//! [`McpServerBuilder::shared_verifier`](mcp_auth::McpServerBuilder::shared_verifier)): the
//! OAuth token an MCP client obtained is accepted by the API too, the Rust twin of a Next.js API
//! route that calls `auth({ acceptsToken: 'oauth_token' })`. The MCP tools and the API read and
//! write the same per-user notes.
//!
//! Service-to-service: `GET /api/machine` accepts only Clerk M2M tokens (opaque `mt_…` or JWT)
//! and answers the calling machine and the machines its token is granted to. With this
//! service's own machine configured ([`MachineEnv`], from `CLERK_MACHINE_ID` and
//! `CLERK_MACHINE_SECRET_KEY`), only tokens granted to this machine pass; without it, any M2M
//! token of the Clerk instance does.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{Extension, Json, Router, extract::State, http::StatusCode, routing::get};
use mcp_auth::{
    AuthInfo, AuthLayer, Challenge, McpServer, TokenKind, TokenVerifier,
    clerk::{ClerkConfig, ClerkConfigError},
    metadata,
};
use mcp_auth_issuer::{Issuer, IssuerConfig, IssuerHandle};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::oneshot};

/// The scopes advertised in the protected resource metadata and asked for in challenges.
pub const SCOPES: [&str; 2] = ["profile", "email"];

/// Clerk's keys and URL overrides (`CLERK_SECRET_KEY`, `CLERK_PUBLISHABLE_KEY`,
/// `CLERK_API_URL`, `CLERK_FRONTEND_API_URL`).
#[derive(Clone)]
pub struct ClerkEnv {
    /// `sk_test_…` / `sk_live_…`.
    pub secret_key: String,
    /// `pk_test_…` / `pk_live_…`.
    pub publishable_key: String,
    /// Backend API base URL override.
    pub api_url: Option<String>,
    /// Frontend API URL override.
    pub frontend_api_url: Option<String>,
}

impl std::fmt::Debug for ClerkEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClerkEnv")
            .field("secret_key", &"[redacted]")
            .field("publishable_key", &self.publishable_key)
            .field("api_url", &self.api_url)
            .field("frontend_api_url", &self.frontend_api_url)
            .finish()
    }
}

impl ClerkEnv {
    /// The keys from the environment (through `get`), when both are set and non-empty.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let non_empty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        Some(Self {
            secret_key: non_empty("CLERK_SECRET_KEY")?,
            publishable_key: non_empty("CLERK_PUBLISHABLE_KEY")?,
            api_url: non_empty("CLERK_API_URL"),
            frontend_api_url: non_empty("CLERK_FRONTEND_API_URL"),
        })
    }

    fn config(&self) -> Result<ClerkConfig, ClerkConfigError> {
        ClerkConfig::from_env_values(
            Some(&self.secret_key),
            Some(&self.publishable_key),
            self.api_url.as_deref(),
            self.frontend_api_url.as_deref(),
        )
    }
}

/// This service's own Clerk machine (`CLERK_MACHINE_ID`, `CLERK_MACHINE_SECRET_KEY`): with it,
/// `GET /api/machine` accepts only M2M tokens granted to this machine.
#[derive(Clone)]
pub struct MachineEnv {
    /// `mch_…`, from the Clerk Dashboard (Machines).
    pub id: String,
    /// The machine secret key (`ak_…`).
    pub secret_key: String,
}

impl std::fmt::Debug for MachineEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachineEnv")
            .field("id", &self.id)
            .field("secret_key", &"[redacted]")
            .finish()
    }
}

impl MachineEnv {
    /// From `CLERK_MACHINE_SECRET_KEY` and `CLERK_MACHINE_ID` (through `get`): `Ok(None)` when
    /// the secret key is unset, an error when it is set without the id (the key alone does not
    /// say which machine it belongs to, and the JWT check needs the id).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, StartError> {
        let non_empty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let Some(secret_key) = non_empty("CLERK_MACHINE_SECRET_KEY") else {
            return Ok(None);
        };
        let id = non_empty("CLERK_MACHINE_ID").ok_or_else(|| {
            StartError::Config(
                "CLERK_MACHINE_SECRET_KEY is set: set CLERK_MACHINE_ID (mch_…) to the id of the \
                 same machine"
                    .into(),
            )
        })?;
        Ok(Some(Self { id, secret_key }))
    }
}

/// What to start.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Port of the app on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// Port of the embedded issuer on 127.0.0.1 (0: any free port). Unused with Clerk keys.
    pub issuer_port: u16,
    /// Real Clerk keys: when set, no issuer is started.
    pub clerk: Option<ClerkEnv>,
    /// This service's own machine, for `GET /api/machine`.
    pub machine: Option<MachineEnv>,
}

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The embedded issuer failed to start.
    #[error("the embedded authorization server failed to start: {0}")]
    Issuer(String),
    /// The Clerk keys or the MCP server are misconfigured.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Each user's notes, shared by the API routes and the MCP tools.
#[derive(Clone, Debug, Default)]
pub struct Notes(Arc<Mutex<HashMap<String, Vec<String>>>>);

impl Notes {
    /// `user_id`'s notes.
    #[must_use]
    pub fn list(&self, user_id: &str) -> Vec<String> {
        let notes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        notes.get(user_id).cloned().unwrap_or_default()
    }

    /// Adds a note for `user_id`; returns how many they have.
    pub fn add(&self, user_id: &str, text: String) -> usize {
        let mut notes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let list = notes.entry(user_id.to_owned()).or_default();
        list.push(text);
        list.len()
    }
}

/// The application as it was before MCP: a public page and a protected JSON API. `auth` is
/// whatever protects the API; with MCP it is the same verifier the MCP endpoint uses.
/// `machine_auth` protects the service-to-service route `GET /api/machine`.
pub fn existing_app(notes: Notes, auth: AuthLayer, machine_auth: AuthLayer) -> Router {
    let api = Router::new()
        .route("/api/me", get(me))
        .route("/api/notes", get(list_notes).post(add_note))
        .layer(auth);
    let services = Router::new()
        .route("/api/machine", get(machine))
        .layer(machine_auth);
    Router::new()
        .route("/", get(home))
        .merge(api)
        .merge(services)
        .with_state(notes)
}

async fn home() -> &'static str {
    "existing-axum-app: public page. Protected: GET /api/me, GET|POST /api/notes, \
     GET /api/machine (M2M tokens), MCP at /mcp.\n"
}

/// `GET /api/machine`: the calling machine and the machines its token is granted to.
async fn machine(Extension(auth): Extension<AuthInfo>) -> Json<Value> {
    Json(json!({ "machine_id": auth.machine_id(), "scopes": auth.scopes() }))
}

async fn me(Extension(auth): Extension<AuthInfo>) -> Json<Value> {
    Json(json!({
        "user_id": auth.user_id(),
        "client_id": auth.client_id(),
        "scopes": auth.scopes(),
        "token_kind": format!("{:?}", auth.kind()),
    }))
}

async fn list_notes(
    State(notes): State<Notes>,
    Extension(auth): Extension<AuthInfo>,
) -> Json<Value> {
    Json(json!({ "user_id": auth.user_id(), "notes": notes.list(auth.user_id()) }))
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct NewNote {
    /// The note's text.
    text: String,
}

async fn add_note(
    State(notes): State<Notes>,
    Extension(auth): Extension<AuthInfo>,
    Json(note): Json<NewNote>,
) -> (StatusCode, Json<Value>) {
    let count = notes.add(auth.user_id(), note.text);
    (StatusCode::CREATED, Json(json!({ "count": count })))
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct NoArgs {}

/// The existing app plus the MCP endpoint at `mcp_url`'s path (its canonical URL, the audience
/// tokens must name), everything verified by one Clerk verifier; `GET /api/machine` by a second
/// one that accepts M2M tokens only (granted to `machine` when given).
pub fn app(
    clerk: &ClerkConfig,
    mcp_url: &str,
    machine: Option<&MachineEnv>,
) -> Result<Router, StartError> {
    let config = |e: &dyn std::fmt::Display| StartError::Config(e.to_string());
    // One verifier (and one verification cache) for the whole app.
    let verifier: Arc<dyn TokenVerifier> =
        Arc::new(clerk.verifier(mcp_url).build().map_err(|e| config(&e))?);
    // Machine tokens only: OAuth tokens, session tokens and API keys are refused here.
    let mut machines = clerk
        .verifier(mcp_url)
        .accept_kinds([TokenKind::MachineToken]);
    if let Some(m) = machine {
        machines = machines.receiving_machine(m.id.clone(), m.secret_key.clone());
    }
    let machine_verifier: Arc<dyn TokenVerifier> =
        Arc::new(machines.build().map_err(|e| config(&e))?);
    // API challenges point at the same protected resource metadata the MCP endpoint serves,
    // so a client refused by /api/* discovers the same authorization server.
    let resource = url::Url::parse(mcp_url).map_err(|e| config(&e))?;
    let challenge = Challenge::new(&metadata::metadata_url(&resource)).with_default_scope(SCOPES);
    let notes = Notes::default();
    let api_auth = AuthLayer::with_challenge(verifier.clone(), challenge.clone());
    let machine_auth = AuthLayer::with_challenge(machine_verifier, challenge);

    let (list, add) = (notes.clone(), notes.clone());
    let mcp = McpServer::builder(mcp_url)
        .authorization_server(clerk.frontend_api_url())
        .scopes_supported(SCOPES)
        .resource_name("existing-axum-app")
        .shared_verifier(verifier)
        .tool(
            "whoami",
            "Your user id and the client you connected with.",
            |_: NoArgs, auth: AuthInfo| async move {
                json!({ "user_id": auth.user_id(), "client_id": auth.client_id() }).to_string()
            },
        )
        .tool(
            "list-notes",
            "Your notes (the same ones GET /api/notes returns).",
            move |_: NoArgs, auth: AuthInfo| {
                let notes = list.clone();
                async move { json!(notes.list(auth.user_id())).to_string() }
            },
        )
        .tool(
            "add-note",
            "Adds a note for you (visible in GET /api/notes).",
            move |args: NewNote, auth: AuthInfo| {
                let notes = add.clone();
                async move { format!("{} notes", notes.add(auth.user_id(), args.text)) }
            },
        )
        .build()
        .map_err(|e| config(&e))?;

    // The one line that adds MCP to the existing app.
    Ok(existing_app(notes, api_auth, machine_auth).merge(mcp))
}

/// A running app (and its embedded issuer, when one was started).
#[derive(Debug)]
pub struct Running {
    base_url: String,
    issuer: Option<IssuerHandle>,
    shutdown: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts the embedded issuer (unless Clerk keys are given) and the app.
    pub async fn start(options: Options) -> Result<Self, StartError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], options.port));
        let bind = |addr| move |source| StartError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind(addr))?;
        let port = listener.local_addr().map_err(bind(addr))?.port();
        let base_url = format!("http://127.0.0.1:{port}");

        let (issuer, keys) = match options.clerk {
            Some(keys) => (None, keys),
            None => {
                let addr = SocketAddr::from(([127, 0, 0, 1], options.issuer_port));
                let issuer_listener = TcpListener::bind(addr).await.map_err(bind(addr))?;
                let handle = Issuer::serve(issuer_listener, IssuerConfig::default())
                    .await
                    .map_err(|e| StartError::Issuer(e.to_string()))?;
                // Wired exactly as with real Clerk: the two keys, plus the two URL overrides
                // (CLERK_API_URL / CLERK_FRONTEND_API_URL) pointing at the local issuer.
                let keys = ClerkEnv {
                    secret_key: handle.secret_key(),
                    publishable_key: handle.publishable_key(),
                    api_url: Some(handle.base_url()),
                    frontend_api_url: Some(handle.base_url()),
                };
                (Some(handle), keys)
            }
        };
        let clerk = keys
            .config()
            .map_err(|e| StartError::Config(e.to_string()))?;
        let router = app(&clerk, &format!("{base_url}/mcp"), options.machine.as_ref())?;

        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let result = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
            if let Err(error) = result {
                tracing::error!(%error, "server stopped");
            }
        });
        Ok(Self {
            base_url,
            issuer,
            shutdown: Some(tx),
            server,
        })
    }

    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The MCP URL (`{base_url}/mcp`).
    #[must_use]
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base_url)
    }

    /// The embedded issuer, when one was started.
    #[must_use]
    pub fn issuer(&self) -> Option<&IssuerHandle> {
        self.issuer.as_ref()
    }

    /// Stops the app (in-flight requests finish) and the issuer.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.server).await;
        if let Some(issuer) = self.issuer.take() {
            let _ = issuer.shutdown().await;
        }
    }
}
