//! An MCP server whose tools are protected by JWT access tokens from any standards-compliant
//! issuer (Auth0, Keycloak, Okta, Entra ID, Clerk, `mcp-auth-issuer`, …).
//!
//! Run with
//!
//! ```sh
//! cargo run -p oidc-resource-server -- --issuer https://your-tenant.example.com
//! ```
//!
//! then try
//!
//! ```sh
//! curl -i -X POST http://127.0.0.1:8787/mcp                     # 401 + WWW-Authenticate
//! curl http://127.0.0.1:8787/.well-known/oauth-protected-resource/mcp
//! curl -X POST http://127.0.0.1:8787/mcp -H "Authorization: Bearer $TOKEN" \
//!   -H 'Accept: application/json, text/event-stream' -H 'Content-Type: application/json' \
//!   -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}'
//! ```
//!
//! Tokens must name this server in `aud` (its `--resource` URL) unless `--audience-optional`.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use clap::Parser;
use mcp_auth::{
    Audience, AuthInfo, CachedVerifier, FleetStore, Jwks, JwtVerifier, McpServer, redis::RedisStore,
};
use rmcp::model::CallToolResult;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use url::Url;

#[derive(Parser, Debug)]
#[command(about = "An MCP server protected by tokens from any OAuth 2.x / OIDC issuer")]
struct Args {
    /// The issuer URL, exactly as it appears in the tokens' `iss` claim.
    #[arg(long)]
    issuer: String,
    /// Where the signing keys are. Default: `jwks_uri` from the issuer's metadata, else
    /// `{issuer}/.well-known/jwks.json`.
    #[arg(long)]
    jwks_url: Option<Url>,
    /// The canonical MCP URL, which tokens must name in `aud`. Default: `http://127.0.0.1:{port}/mcp`.
    #[arg(long)]
    resource: Option<Url>,
    /// Address to listen on. `0.0.0.0` (or `::`) for every interface, e.g. as a replica behind
    /// a load balancer; then set `--resource` to the URL clients connect to.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = 8787)]
    port: u16,
    /// Accept tokens without an `aud` claim (a present `aud` must still name this server).
    /// For issuers that do not support RFC 8707 resource indicators. Weaker: see the README.
    #[arg(long)]
    audience_optional: bool,
    /// Keep MCP sessions (`Mcp-Session-Id`, for clients of revisions before 2026-07-28 that
    /// want them) instead of serving every request statelessly. Each session is bound to the
    /// identity that opened it.
    #[arg(long)]
    sessions: bool,
    /// With `--sessions`: most sessions open at once; beyond it, opening one gets 503.
    #[arg(long, default_value_t = mcp_auth::DEFAULT_MAX_SESSIONS)]
    max_sessions: u64,
    /// Redis shared by every replica (`redis://host:port`): per-user rate limits become
    /// fleet-wide (JWTs are verified locally on each replica, never through Redis). Redis being
    /// down never fails a request.
    #[arg(
        long,
        value_name = "URL",
        env = "MCP_AUTH_REDIS_URL",
        hide_env_values = true
    )]
    redis_url: Option<String>,
    /// At most N MCP requests per user (per machine for machine tokens) per window; the next
    /// ones get 429 with Retry-After. Off unless given.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    rate_limit_per_user: Option<u32>,
    /// Length of the rate-limit window, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    rate_limit_window: u64,
    /// With `--sessions`: most sessions one user may hold open at once; opening another gets
    /// 429 with `Retry-After` (closing one with `DELETE` frees its slot at once).
    #[arg(long, value_name = "N", default_value_t = mcp_auth::DEFAULT_MAX_SESSIONS_PER_USER)]
    max_sessions_per_user: u64,
}

/// Without `RUST_LOG`: the startup lines and one access line per request (`mcp_auth::access`),
/// and no library chatter (rmcp logs each stateless request's set-up at `info`).
const DEFAULT_LOG_FILTER: &str = "info,rmcp=warn";

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct NoArgs {}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One access line per request, written from a background thread (`mcp_auth::logging`).
    let _log_guard = mcp_auth::logging::init(DEFAULT_LOG_FILTER)?;
    let args = Args::parse();
    // `iss` is compared exactly, so keep the issuer as given.
    let issuer = args.issuer.clone();
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.host, args.port)).await?;
    let local = listener.local_addr()?;
    let resource = args.resource.map(|u| u.to_string()).unwrap_or_else(|| {
        // An unspecified address accepts on every interface but is no address to connect to.
        let ip = if local.ip().is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            local.ip()
        };
        format!("http://{}/mcp", SocketAddr::new(ip, local.port()))
    });
    let jwks_url = match args.jwks_url {
        Some(u) => u,
        None => discover_jwks(&issuer).await?,
    };
    let jwks = Jwks::from_url(jwks_url.clone());
    if let Err(error) = jwks.refresh().await {
        tracing::warn!(%error, url = %jwks_url, "could not load signing keys yet; will retry on first request");
    }
    let verifier = JwtVerifier::builder(&issuer, jwks);
    let verifier = if args.audience_optional {
        verifier.audience(Audience::RequiredIfPresent(vec![resource.clone()]))
    } else {
        verifier.resource(&resource)
    };
    let verifier = CachedVerifier::new(verifier.build()?);

    let shutdown = CancellationToken::new();
    let mut builder = McpServer::builder(&resource);
    if let Some(url) = &args.redis_url {
        // Never log the URL: it may carry a password.
        builder = builder.shared_store(FleetStore::new(RedisStore::open(url)?));
        tracing::info!("sharing rate limits through Redis");
    }
    if let Some(n) = args.rate_limit_per_user {
        builder = builder.rate_limit_per_user(n, Duration::from_secs(args.rate_limit_window));
    }
    let app = builder
        .authorization_server(&issuer)
        .scopes_supported(["openid", "profile", "email", "admin:read"])
        .challenge_scopes(["openid", "profile"])
        .resource_name("oidc-resource-server example")
        .verifier(verifier)
        .sessions(args.sessions)
        .max_sessions(args.max_sessions)
        .max_sessions_per_user(args.max_sessions_per_user)
        .health_checks(true)
        .metrics(mcp_auth::metrics::install_recorder()?)
        .cancellation_token(shutdown.clone())
        .tool(
            "whoami",
            "Returns the caller's user id, client id and scopes",
            |_: NoArgs, auth: AuthInfo| async move { whoami(&auth) },
        )
        .scoped_tool(
            "admin-report",
            "An administrative report; requires the admin:read scope",
            ["admin:read"],
            |_: NoArgs, auth: AuthInfo| async move {
                format!("Admin report prepared for {}", auth.user_id())
            },
        )
        .build()?;

    tracing::info!(mcp_url = %resource, listening = %local, issuer = %issuer, jwks = %jwks_url, "MCP server ready");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
        })
        .await?;
    Ok(())
}

/// Text content with the user id (for clients that only show text) and structured content
/// with the whole identity.
fn whoami(auth: &AuthInfo) -> CallToolResult {
    let mut result = CallToolResult::structured(json!({
        "user_id": auth.user_id(),
        "client_id": auth.client_id(),
        "scopes": auth.scopes(),
    }));
    result.content = vec![rmcp::model::ContentBlock::text(auth.user_id().to_owned())];
    result
}

/// `jwks_uri` from the issuer's RFC 8414 / OIDC metadata, else the conventional path.
async fn discover_jwks(issuer: &str) -> Result<Url, Box<dyn std::error::Error>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let base = issuer.trim_end_matches('/');
    for doc in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let Ok(resp) = client.get(format!("{base}{doc}")).send().await else {
            continue;
        };
        if !resp.status().is_success() {
            continue;
        }
        if let Ok(meta) = resp.json::<serde_json::Value>().await
            && let Some(uri) = meta.get("jwks_uri").and_then(|v| v.as_str())
        {
            return Ok(Url::parse(uri)?);
        }
    }
    Ok(Url::parse(&format!("{base}/.well-known/jwks.json"))?)
}
