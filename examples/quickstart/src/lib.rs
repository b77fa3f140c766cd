//! The quickstart as a library, so the end-to-end tests start exactly what `cargo run -p
//! quickstart` starts (on free ports) and drive it with real MCP clients.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use mcp_auth::{AuthInfo, FleetStore, McpServerBuilder, clerk::BackendApi, redis::RedisStore};
use mcp_auth_issuer::{Issuer, IssuerConfig, IssuerHandle, TokenFormat};
use rmcp::model::CallToolResult;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub mod cli;
mod protect;

pub use protect::ClerkKeys;

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address the MCP server listens on. Default: 127.0.0.1 (loopback only).
    pub host: IpAddr,
    /// MCP server port on [`host`](Self::host) (0: any free port).
    pub port: u16,
    /// The URL clients connect to, when it is not `http://{host}:{port}/mcp` (behind a load
    /// balancer or a TLS proxy): it becomes the resource URL of the metadata and the
    /// challenges, and the audience tokens must name. `None`: the listening address.
    pub public_url: Option<String>,
    /// Keep MCP sessions (`Mcp-Session-Id`) instead of serving statelessly.
    pub sessions: bool,
    /// With [`sessions`](Self::sessions): most sessions one user may hold open at once.
    pub max_sessions_per_user: u64,
    /// Embedded issuer port on 127.0.0.1 (0: any free port). Unused with real Clerk keys.
    pub issuer_port: u16,
    /// Embedded issuer hands out opaque `oat_…` tokens instead of JWTs.
    pub opaque_tokens: bool,
    /// Real Clerk keys: when set, no issuer is started.
    pub clerk: Option<ClerkKeys>,
    /// Lifetime of the embedded issuer's access tokens (tests use short ones). `None`: the
    /// issuer's default, one day, as Clerk.
    pub access_token_lifetime: Option<Duration>,
    /// Directory of the embedded issuer's persistent state (keys, clients, consents, tokens),
    /// so connected clients keep working across restarts. `None`: in memory, lost at exit
    /// (the binary's `--ephemeral`; its default is `.mcp-auth` in the working directory).
    pub state_dir: Option<PathBuf>,
    /// Redis shared with the other replicas (`--redis-url`, `MCP_AUTH_REDIS_URL`): verification
    /// results, Clerk's 429 backoff and per-user rate limits are then fleet-wide. `None`: this
    /// process on its own.
    pub redis_url: Option<String>,
    /// Per-user rate limit on MCP requests, `(requests, window)` (`--rate-limit-per-user`,
    /// `--rate-limit-window`). `None`: no limit.
    pub rate_limit: Option<(u32, Duration)>,
    /// The embedded issuer approves every authorization request as this user, without showing
    /// the consent page (its `auto_approve_user`, loopback only). For automated tests driving
    /// a client that cannot fill in a form; `None` (the binary): the consent page is shown.
    pub auto_approve_user: Option<String>,
    /// Let the embedded issuer fetch Client ID Metadata Documents from loopback addresses (a
    /// client served on this machine): [`IssuerConfig::cimd_allow_loopback`], the binary's
    /// `--cimd-allow-loopback`. Development and tests only; the issuer refuses it on a
    /// non-loopback listen address, and the embedded issuer listens on 127.0.0.1 only. Unused with
    /// real Clerk keys.
    pub cimd_allow_loopback: bool,
    /// PEM root certificates the embedded issuer trusts for Client ID Metadata Document
    /// fetches, besides the system's: [`IssuerConfig::cimd_root_certificates_pem`], the
    /// binary's `--cimd-root-ca FILE`. Empty: the system's roots only. Unused with real Clerk
    /// keys.
    pub cimd_root_certificates_pem: Vec<u8>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            public_url: None,
            sessions: false,
            max_sessions_per_user: mcp_auth::DEFAULT_MAX_SESSIONS_PER_USER,
            issuer_port: 0,
            opaque_tokens: false,
            clerk: None,
            access_token_lifetime: None,
            state_dir: None,
            redis_url: None,
            rate_limit: None,
            auto_approve_user: None,
            cimd_allow_loopback: false,
            cimd_root_certificates_pem: Vec::new(),
        }
    }
}

/// `http://{addr}/mcp`, with a loopback address in place of an unspecified one (`0.0.0.0`
/// accepts connections on every interface but is no address to connect to).
fn local_mcp_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/mcp", SocketAddr::new(ip, addr.port()))
}

/// Why the quickstart could not start.
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
    /// The MCP server could not be configured.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// A running quickstart.
#[derive(Debug)]
pub struct Quickstart {
    mcp_url: String,
    local_addr: SocketAddr,
    issuer: Option<IssuerHandle>,
    authorization_server: String,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    clerk: ClerkKeys,
    extra_servers: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct NoArgs {}

/// The quickstart's tools, registered on `builder` (the authenticated endpoint and the
/// anonymous one of [`Quickstart::serve_without_auth`] serve exactly these).
fn register_tools(builder: McpServerBuilder, backend: BackendApi) -> McpServerBuilder {
    let backend_for_private = backend.clone();
    builder
        .tool("whoami", "Who am I? Returns your user id, the client you connected with, and the scopes you granted.", |_: NoArgs, auth: AuthInfo| async move {
            let mut result = CallToolResult::structured(json!({
                "user_id": auth.user_id(),
                "client_id": auth.client_id(),
                "scopes": auth.scopes(),
            }));
            result.content = vec![rmcp::model::ContentBlock::text(auth.user_id().to_owned())];
            result
        })
        .tool(
            "get-clerk-user-data",
            "Your Clerk user profile (name, email addresses, image, public metadata), fetched from Clerk's Backend API.",
            move |_: NoArgs, auth: AuthInfo| {
                let backend = backend.clone();
                async move { protect::user_json(&backend, auth.user_id()).await }
            },
        )
        .scoped_tool(
            "get-private-metadata",
            "Your Clerk private metadata. Needs the private_metadata scope: the client is asked to re-authorize (step-up).",
            ["private_metadata"],
            move |_: NoArgs, auth: AuthInfo| {
                let backend = backend_for_private.clone();
                async move { protect::private_metadata(&backend, auth.user_id()).await }
            },
        )
}

impl Quickstart {
    /// Starts the issuer (unless Clerk keys are given) and the MCP server.
    pub async fn start(options: Options) -> Result<Self, StartError> {
        let mcp_addr = SocketAddr::new(options.host, options.port);
        let listener = TcpListener::bind(mcp_addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: mcp_addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: mcp_addr,
            source,
        })?;
        let mcp_url = match options.public_url {
            Some(url) => url,
            None => local_mcp_url(local_addr),
        };

        let (issuer, clerk) = match options.clerk {
            Some(keys) => (None, keys),
            None => {
                let addr = SocketAddr::from(([127, 0, 0, 1], options.issuer_port));
                let issuer_listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?;
                let defaults = IssuerConfig::default();
                let config = IssuerConfig {
                    token_format: if options.opaque_tokens {
                        TokenFormat::Opaque
                    } else {
                        TokenFormat::Jwt
                    },
                    access_token_lifetime: options
                        .access_token_lifetime
                        .unwrap_or(defaults.access_token_lifetime),
                    // Clients written for MCP 2025-03-26 send no `resource`; their tokens get
                    // this server as audience, so the strict audience check still holds.
                    default_audience: Some(mcp_url.clone()),
                    state_dir: options.state_dir.clone(),
                    auto_approve_user: options.auto_approve_user.clone(),
                    cimd_allow_loopback: options.cimd_allow_loopback,
                    cimd_root_certificates_pem: options.cimd_root_certificates_pem.clone(),
                    ..defaults
                };
                let handle = Issuer::serve(issuer_listener, config)
                    .await
                    .map_err(|e| StartError::Issuer(e.to_string()))?;
                // Wired exactly as a Clerk user wires it: the two keys, plus the URL overrides
                // (CLERK_API_URL / CLERK_FRONTEND_API_URL) that point at the local issuer.
                let keys = ClerkKeys {
                    secret_key: handle.secret_key(),
                    publishable_key: handle.publishable_key(),
                    api_url: Some(handle.base_url()),
                    frontend_api_url: Some(handle.base_url()),
                    machine: None,
                };
                (Some(handle), keys)
            }
        };

        let shutdown = CancellationToken::new();
        let fleet = match &options.redis_url {
            Some(url) => {
                let store = RedisStore::open(url).map_err(|e| StartError::Config(e.to_string()))?;
                // Never the URL: it may carry a password.
                tracing::info!("sharing verification results and rate limits through Redis");
                Some(FleetStore::new(store))
            }
            None => None,
        };
        let protected =
            protect::clerk(&clerk, &mcp_url, fleet.as_ref()).map_err(StartError::Config)?;
        // One registry per process: a second quickstart in the same process (tests) reports
        // into the same one.
        let metrics =
            mcp_auth::metrics::install_recorder().map_err(|e| StartError::Config(e.to_string()))?;
        let authorization_server = protected.authorization_server.clone();
        let mut builder = protected.builder;
        if let Some((requests, window)) = options.rate_limit {
            builder = builder.rate_limit_per_user(requests, window);
        }
        let builder = register_tools(
            builder
                .resource_name("mcp-auth quickstart")
                .sessions(options.sessions)
                .max_sessions_per_user(options.max_sessions_per_user)
                .health_checks(true)
                .metrics(metrics)
                .cancellation_token(shutdown.clone()),
            protected.backend,
        );
        let app = builder
            .build()
            .map_err(|e| StartError::Config(e.to_string()))?;
        let token = shutdown.clone();
        let server = tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async move { token.cancelled().await })
                .await;
            if let Err(error) = result {
                tracing::error!(%error, "MCP server stopped");
            }
        });
        tracing::info!(mcp_url = %mcp_url, listening = %local_addr, authorization_server = %authorization_server, "quickstart ready");
        Ok(Self {
            mcp_url,
            local_addr,
            issuer,
            authorization_server,
            shutdown,
            server,
            clerk,
            extra_servers: Vec::new(),
        })
    }

    /// **For conformance testing only** (`tests/tests/conformance.rs`): serves the same tools on
    /// a second, separate loopback port with anonymous access. It is the same server stack as
    /// [`mcp_url`](Self::mcp_url) (Host and Origin checks, body limit, transport settings)
    /// built with `optional_auth(true)`: a request without a token reaches the MCP server
    /// anonymously, so protocol-level tests run without an OAuth flow. Tools that need the
    /// caller's identity (all three quickstart tools take `AuthInfo`) refuse anonymous calls
    /// with `invalid_request`; a presented token is still verified. The authenticated endpoint
    /// is not changed. Never expose this port: the binary does not start it.
    ///
    /// Returns the anonymous endpoint's MCP URL. Stopped by [`shutdown`](Self::shutdown).
    pub async fn serve_without_auth(&mut self, port: u16) -> Result<String, StartError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?
            .port();
        let url = format!("http://127.0.0.1:{port}/mcp");
        let protected = protect::clerk(&self.clerk, &url, None).map_err(StartError::Config)?;
        let app = register_tools(
            protected
                .builder
                .resource_name("mcp-auth quickstart (anonymous, conformance testing only)")
                .optional_auth(true)
                .cancellation_token(self.shutdown.clone()),
            protected.backend,
        )
        .build()
        .map_err(|e| StartError::Config(e.to_string()))?;
        let token = self.shutdown.clone();
        self.extra_servers.push(tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async move { token.cancelled().await })
                .await;
            if let Err(error) = result {
                tracing::error!(%error, "anonymous MCP server stopped");
            }
        }));
        tracing::warn!(mcp_url = %url, "anonymous MCP endpoint (conformance testing only)");
        Ok(url)
    }

    /// The MCP URL clients connect to.
    #[must_use]
    pub fn mcp_url(&self) -> &str {
        &self.mcp_url
    }

    /// The address the MCP server listens on (differs from [`mcp_url`](Self::mcp_url)'s behind
    /// a load balancer).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The embedded issuer, when one was started.
    #[must_use]
    pub fn issuer(&self) -> Option<&IssuerHandle> {
        self.issuer.as_ref()
    }

    /// What the binary prints at start: every line ready to paste.
    #[must_use]
    pub fn banner(&self) -> String {
        let url = &self.mcp_url;
        let mut out = String::new();
        out.push_str("\nmcp-auth quickstart is running\n\n");
        out.push_str(&format!("  MCP URL:               {url}\n"));
        out.push_str(&format!(
            "  Listening on:          {}  (health: /healthz, /readyz; Prometheus: /metrics)\n",
            self.local_addr
        ));
        out.push_str(&format!(
            "  Authorization server:  {}",
            self.authorization_server
        ));
        match &self.issuer {
            Some(issuer) => {
                out.push_str("  (embedded, for development only)\n");
                match issuer.state_dir() {
                    Some(dir) => out.push_str(&format!(
                        "  Issuer state:          {}  (clients stay connected across restarts; delete it, or run with --ephemeral, to start afresh)\n",
                        dir.display()
                    )),
                    None => out.push_str(
                        "  Issuer state:          in memory (--ephemeral): clients must register and consent again after a restart\n",
                    ),
                }
            }
            None => out.push_str("  (Clerk)\n"),
        }
        out.push_str("\nConnect a client:\n\n");
        out.push_str(&format!(
            "  Cursor (~/.cursor/mcp.json):\n    {{\"mcpServers\": {{\"mcp-auth-quickstart\": {{\"url\": \"{url}\"}}}}}}\n\n"
        ));
        out.push_str(&format!(
            "  Claude Code:\n    claude mcp add --transport http mcp-auth-quickstart {url}\n\n"
        ));
        out.push_str(&format!(
            "  stdio-only clients, through mcp-remote:\n    npx mcp-remote {url}\n\n"
        ));
        out.push_str(&format!(
            "  MCP Inspector:\n    npx @modelcontextprotocol/inspector  (then connect to {url}, transport: Streamable HTTP)\n\n"
        ));
        out.push_str("Tools: whoami, get-clerk-user-data, get-private-metadata (asks for the private_metadata scope).\n");
        out.push_str("Press Ctrl-C to stop.\n");
        out
    }

    /// Stops accepting connections, lets in-flight requests finish, stops the issuer.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        for server in self.extra_servers {
            let _ = server.await;
        }
        if let Some(issuer) = self.issuer {
            let _ = issuer.shutdown().await;
        }
    }
}
