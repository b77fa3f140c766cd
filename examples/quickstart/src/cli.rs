//! The `quickstart` command line: the binary's `main`, here so the fleet tests
//! (`tests/src/fleet.rs`) run exactly this program as separate processes.

use std::{net::IpAddr, process::ExitCode};

use clap::Parser;

use crate::{ClerkKeys, Options, Quickstart};

/// Without `RUST_LOG`: the startup lines and one access line per MCP request
/// (`mcp_auth::access`); no library chatter (rmcp logs each stateless request's set-up at
/// `info`) and no per-request lines from the embedded issuer.
const DEFAULT_LOG_FILTER: &str = "info,rmcp=warn,mcp_auth_issuer=warn";

/// The command-line options.
#[derive(Parser, Debug)]
#[command(
    name = "quickstart",
    about = "An OAuth-protected MCP server with a local Clerk-compatible authorization server"
)]
pub struct Args {
    /// Address the MCP server listens on. `0.0.0.0` (or `::`) for every interface, e.g. as a
    /// replica behind a load balancer; then set `--public-url` too.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port of the MCP server (its URL is http://HOST:PORT/mcp). 0 picks a free port.
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    /// The URL clients connect to, when it is not http://HOST:PORT/mcp: behind a load balancer
    /// or a TLS proxy, e.g. `https://mcp.example.com/mcp`. It becomes the resource URL in the
    /// metadata and the challenges, and the audience tokens must name.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Keep MCP sessions (`Mcp-Session-Id`, for clients of revisions before 2026-07-28) instead
    /// of serving every request statelessly. Behind a load balancer, sessions need sticky
    /// routing on `Mcp-Session-Id` (see deploy/haproxy.cfg).
    #[arg(long)]
    pub sessions: bool,
    /// With `--sessions`: most sessions one user may hold open at once; opening another gets
    /// 429 with `Retry-After` (closing one with `DELETE` frees its slot at once).
    #[arg(long, value_name = "N", default_value_t = mcp_auth::DEFAULT_MAX_SESSIONS_PER_USER)]
    pub max_sessions_per_user: u64,
    /// Port of the embedded authorization server (ignored when Clerk keys are set). 0 picks a
    /// free port.
    #[arg(long, default_value_t = 8788)]
    pub issuer_port: u16,
    /// Have the embedded issuer hand out opaque `oat_…` access tokens instead of JWTs; the MCP
    /// server then verifies each new token through the Backend API (cached).
    #[arg(long)]
    pub opaque_tokens: bool,
    /// Where the embedded issuer keeps its state (signing keys, registered clients, consents,
    /// tokens as hashes), so clients stay connected when you restart. Delete it to start afresh.
    #[arg(long, value_name = "DIR", default_value = ".mcp-auth")]
    pub state_dir: std::path::PathBuf,
    /// Keep the embedded issuer's state in memory: every restart forgets clients and tokens.
    #[arg(long, conflicts_with = "state_dir")]
    pub ephemeral: bool,
    /// Redis shared by every replica (`redis://host:port`): verification results of opaque
    /// tokens, Clerk's rate-limit backoff and per-user rate limits become fleet-wide. Without
    /// it, each process keeps its own. Redis being down never fails a request.
    #[arg(
        long,
        value_name = "URL",
        env = "MCP_AUTH_REDIS_URL",
        hide_env_values = true
    )]
    pub redis_url: Option<String>,
    /// At most N MCP requests per user (per machine for machine tokens) per window; the next
    /// ones get 429 with Retry-After. Off unless given.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_per_user: Option<u32>,
    /// Length of the rate-limit window, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate_limit_window: u64,
    /// Let the embedded issuer fetch Client ID Metadata Documents from loopback addresses (a
    /// client served on this machine). For development and tests only: refused on a
    /// non-loopback address, and the embedded issuer listens on 127.0.0.1 only. Private,
    /// link-local and other special-purpose addresses stay refused. Ignored when Clerk keys are
    /// set.
    #[arg(long)]
    pub cimd_allow_loopback: bool,
    /// PEM file of root certificates the embedded issuer trusts for Client ID Metadata Document
    /// fetches, besides the system's (a local CA for documents served over HTTPS on loopback).
    /// Ignored when Clerk keys are set.
    #[arg(long, value_name = "FILE")]
    pub cimd_root_ca: Option<std::path::PathBuf>,
}

impl Args {
    /// The [`Options`] these arguments ask for, with Clerk keys from the environment.
    fn options(self, clerk: Option<ClerkKeys>, cimd_root_certificates_pem: Vec<u8>) -> Options {
        Options {
            host: self.host,
            port: self.port,
            public_url: self.public_url,
            sessions: self.sessions,
            max_sessions_per_user: self.max_sessions_per_user,
            issuer_port: self.issuer_port,
            opaque_tokens: self.opaque_tokens,
            clerk,
            access_token_lifetime: None,
            // Absolute, so the banner and any error say exactly which directory.
            state_dir: (!self.ephemeral)
                .then(|| std::path::absolute(&self.state_dir).unwrap_or(self.state_dir)),
            redis_url: self.redis_url,
            rate_limit: self
                .rate_limit_per_user
                .map(|n| (n, std::time::Duration::from_secs(self.rate_limit_window))),
            auto_approve_user: None,
            cimd_allow_loopback: self.cimd_allow_loopback,
            cimd_root_certificates_pem,
        }
    }
}

/// The binary: parses the command line and the environment, starts, prints the banner, runs
/// until Ctrl-C (or SIGTERM), then shuts down gracefully.
pub async fn main() -> ExitCode {
    // One access line per request, written from a background thread (`mcp_auth::logging`).
    let _log_guard = match mcp_auth::logging::init(DEFAULT_LOG_FILTER) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("quickstart: {error}");
            return ExitCode::FAILURE;
        }
    };
    let args = Args::parse();
    let clerk = match ClerkKeys::from_env(|name| std::env::var(name).ok()) {
        Ok(clerk) => clerk,
        Err(error) => {
            eprintln!("quickstart: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Read here, as `mcp-auth-issuer --cimd-root-ca` does, so a wrong path fails at start with
    // the flag's name rather than at the first document fetch.
    let cimd_root_certificates_pem = match &args.cimd_root_ca {
        Some(path) => match std::fs::read(path) {
            Ok(pem) => pem,
            Err(error) => {
                eprintln!(
                    "quickstart: cannot read --cimd-root-ca {}: {error}",
                    path.display()
                );
                return ExitCode::FAILURE;
            }
        },
        None => Vec::new(),
    };
    let running = match Quickstart::start(args.options(clerk, cimd_root_certificates_pem)).await {
        Ok(running) => running,
        Err(error) => {
            eprintln!("quickstart: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", running.banner());
    shutdown_signal().await;
    println!("shutting down (finishing in-flight requests)…");
    running.shutdown().await;
    ExitCode::SUCCESS
}

/// Ctrl-C, or SIGTERM (what orchestrators and `kill` send) on Unix.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
