//! `mcp-auth-issuer`: run the local Clerk-compatible authorization server.
//!
//! ```text
//! cargo run -p mcp-auth-issuer -- --port 8788
//! curl http://127.0.0.1:8788/.well-known/oauth-authorization-server
//! ```

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mcp_auth_issuer::{Issuer, IssuerConfig, RateLimit, TokenFormat, load_users};

/// Without `RUST_LOG`: start-up and key rotation; the issuer and the libraries it links log
/// nothing per request at `info`.
const DEFAULT_LOG_FILTER: &str = "info";

/// A local, Clerk-compatible OAuth 2.1 authorization server for developing and testing MCP
/// servers. NOT FOR PRODUCTION.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on. Keep the default (loopback) unless you know why.
    #[arg(long, default_value = "127.0.0.1", env = "MCP_AUTH_ISSUER_HOST")]
    host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8788, env = "MCP_AUTH_ISSUER_PORT")]
    port: u16,
    /// Public base URL when it differs from http://HOST:PORT (proxy, 0.0.0.0).
    #[arg(long)]
    public_url: Option<String>,
    /// `aud` for access tokens whose client sent no `resource` (e.g. the MCP server's URL, so
    /// 2025-03-26 clients' tokens pass its audience check). Default: no `aud`.
    #[arg(long)]
    default_audience: Option<String>,
    /// Access token format: `jwt` (Clerk default) or `opaque` (`oat_…`).
    #[arg(long, default_value = "jwt")]
    token_format: TokenFormat,
    /// Secret key (sk_test_…) for the Backend API; generated (or read from the key file) if absent.
    #[arg(long, env = "MCP_AUTH_ISSUER_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// JSON file with the local users (array of {id, first_name, last_name, email, …}); saved in
    /// the state, so later runs without it keep them.
    #[arg(long)]
    users: Option<PathBuf>,
    /// Directory of the persistent state (signing keys, secret key, clients, consents, tokens as
    /// hashes, users), so clients keep working across restarts. Delete it to start afresh.
    #[arg(long, value_name = "DIR", default_value = ".mcp-auth")]
    state_dir: PathBuf,
    /// Keep the state in memory only: every restart forgets keys, clients and tokens.
    #[arg(long, conflicts_with = "state_dir")]
    ephemeral: bool,
    /// JSON file the signing keys (and generated secret key) are loaded from, and saved to
    /// whenever they change; it wins over the keys in the state.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Rotate the signing key at start (the old one stays published for the grace period).
    #[arg(long)]
    rotate_keys: bool,
    /// Approve every authorization request as this user, without the consent page. For automated
    /// tests only; refused on a non-loopback address.
    #[arg(long, value_name = "USER_ID")]
    auto_approve_user: Option<String>,
    /// Backend API requests allowed per window (100: Clerk development; 1000: production).
    #[arg(long, default_value_t = 100)]
    rate_limit: u32,
    /// Backend API rate-limit window in seconds.
    #[arg(long, default_value_t = 10)]
    rate_limit_window: u64,
    /// Access token lifetime in seconds (default one day).
    #[arg(long, default_value_t = 86_400)]
    access_token_ttl: u64,
    /// Refresh token lifetime in seconds (default ten years: in effect never, as Clerk's refresh
    /// tokens do not expire).
    #[arg(long, default_value_t = 315_360_000)]
    refresh_token_ttl: u64,
    /// Authorization code lifetime in seconds (default 10 minutes, as Clerk).
    #[arg(long, default_value_t = 600)]
    code_ttl: u64,
    /// Extra scopes clients may request, besides openid profile email offline_access
    /// public_metadata private_metadata (repeat or comma-separate).
    #[arg(long = "scope", value_delimiter = ',')]
    extra_scopes: Vec<String>,
    /// Admit confidential clients only: `none` is not advertised, registering a public client
    /// is refused, a public client is refused at the token endpoint, and Client ID Metadata
    /// Documents (public clients here) are not accepted.
    #[arg(long)]
    no_public_clients: bool,
    /// Fetch Client ID Metadata Documents from loopback addresses too (a client served on
    /// this machine). For development and tests only; refused on a non-loopback address.
    /// Private, link-local and other special-purpose addresses stay refused.
    #[arg(long)]
    cimd_allow_loopback: bool,
    /// PEM file of root certificates trusted for Client ID Metadata Document fetches, besides
    /// the system's (a local CA for documents served over HTTPS on loopback).
    #[arg(long, value_name = "FILE")]
    cimd_root_ca: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    // Written by a background thread, so a slow terminal or disk never holds up a request.
    // Flushed when the guard drops at exit.
    let (log_writer, _log_guard) =
        tracing_appender::non_blocking(std::io::BufWriter::new(std::io::stderr()));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        // Colour codes only for a terminal: not in a log file, and they cost several times
        // the formatting of the line itself.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(log_writer)
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mcp-auth-issuer: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let mut config = IssuerConfig {
        token_format: args.token_format,
        access_token_lifetime: Duration::from_secs(args.access_token_ttl),
        refresh_token_lifetime: Duration::from_secs(args.refresh_token_ttl),
        authorization_code_lifetime: Duration::from_secs(args.code_ttl),
        rate_limit: RateLimit {
            requests: args.rate_limit,
            window: Duration::from_secs(args.rate_limit_window),
        },
        secret_key: args.secret_key,
        auto_approve_user: args.auto_approve_user,
        key_file: args.key_file,
        // Absolute, so the banner and any error say exactly which directory.
        state_dir: (!args.ephemeral)
            .then(|| std::path::absolute(&args.state_dir).unwrap_or(args.state_dir)),
        public_url: args.public_url,
        default_audience: args.default_audience,
        cimd_allow_loopback: args.cimd_allow_loopback,
        public_clients: !args.no_public_clients,
        ..IssuerConfig::default()
    };
    if let Some(path) = &args.cimd_root_ca {
        config.cimd_root_certificates_pem = std::fs::read(path)
            .map_err(|e| format!("cannot read --cimd-root-ca {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.users {
        config.users = Some(load_users(path).map_err(|e| e.to_string())?);
    }
    for scope in args.extra_scopes {
        if !config.scopes_supported.contains(&scope) {
            config.scopes_supported.push(scope);
        }
    }
    if config.cimd_allow_loopback && !args.host.is_loopback() {
        return Err(format!(
            "--cimd-allow-loopback is refused on non-loopback address {}: it is for local development and tests only",
            args.host
        ));
    }
    if config.auto_approve_user.is_some() && !args.host.is_loopback() {
        return Err(format!(
            "--auto-approve-user is refused on non-loopback address {}: it is for local automated tests only",
            args.host
        ));
    }
    let listener = tokio::net::TcpListener::bind((args.host, args.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let auto_approve = config.auto_approve_user.clone();
    let issuer = Issuer::serve(listener, config)
        .await
        .map_err(|e| e.to_string())?;
    if args.rotate_keys {
        let kid = issuer.rotate_keys().await.map_err(|e| e.to_string())?;
        tracing::info!(%kid, "rotated signing key at start");
    }

    let base = issuer.base_url();
    println!("mcp-auth-issuer — local DEVELOPMENT/TEST authorization server. Not for production.");
    println!();
    println!("  Issuer / Frontend API   {base}");
    println!("  Backend API             {base}/v1");
    println!("  Metadata                {base}/.well-known/oauth-authorization-server");
    println!("  Publishable key         {}", issuer.publishable_key());
    println!("  Secret key              {}", issuer.secret_key());
    match issuer.state_dir() {
        Some(dir) => println!(
            "  State                   {} (delete it, or use --ephemeral, to start afresh)",
            dir.display()
        ),
        None => println!("  State                   in memory (--ephemeral): lost at exit"),
    }
    println!();
    println!("  Users:");
    for user in issuer.users() {
        println!("    {:<34} {} <{}>", user.id, user.full_name(), user.email);
    }
    if let Some(user) = auto_approve {
        println!();
        println!("  AUTO-APPROVE is on: every authorization request is approved as {user}.");
    }
    println!();
    println!("Press Ctrl-C to stop.");

    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    issuer.shutdown().await.map_err(|e| e.to_string())
}
