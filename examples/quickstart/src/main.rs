//! The quickstart: an OAuth-protected MCP server and, unless Clerk keys are set, the embedded
//! Clerk-compatible authorization server, in one process.
//!
//! Run with
//!
//! ```sh
//! cargo run --release -p quickstart
//! ```
//!
//! then paste the printed MCP URL into Cursor, Claude, VS Code or the MCP Inspector, consent in
//! the browser, and call `whoami`, `get-clerk-user-data` or (step-up) `get-private-metadata`.
//! With `CLERK_SECRET_KEY` and `CLERK_PUBLISHABLE_KEY` set, your real Clerk instance is used and
//! no local issuer starts (`CLERK_API_URL` / `CLERK_FRONTEND_API_URL` override its URLs). With
//! `CLERK_MACHINE_ID` and `CLERK_MACHINE_SECRET_KEY` (this service's Clerk machine) set too,
//! Clerk M2M tokens granted to that machine are accepted as well.
//!
//! The embedded issuer keeps its state in `.mcp-auth/` under the working directory, so a restart
//! (every time you change a tool) keeps connected clients connected: same keys, same
//! registrations, same refresh tokens. Delete that directory, or pass `--ephemeral`, to start
//! afresh.

use clap::Parser;
use quickstart::{ClerkKeys, Options, Quickstart};

/// Without `RUST_LOG`: the startup lines and one access line per MCP request
/// (`mcp_auth::access`); no library chatter (rmcp logs each stateless request's set-up at
/// `info`) and no per-request lines from the embedded issuer.
const DEFAULT_LOG_FILTER: &str = "info,rmcp=warn,mcp_auth_issuer=warn";

#[derive(Parser, Debug)]
#[command(
    about = "An OAuth-protected MCP server with a local Clerk-compatible authorization server"
)]
struct Args {
    /// Port of the MCP server (its URL is http://127.0.0.1:PORT/mcp). 0 picks a free port.
    #[arg(long, default_value_t = 8787)]
    port: u16,
    /// Port of the embedded authorization server (ignored when Clerk keys are set). 0 picks a
    /// free port.
    #[arg(long, default_value_t = 8788)]
    issuer_port: u16,
    /// Have the embedded issuer hand out opaque `oat_…` access tokens instead of JWTs; the MCP
    /// server then verifies each new token through the Backend API (cached).
    #[arg(long)]
    opaque_tokens: bool,
    /// Where the embedded issuer keeps its state (signing keys, registered clients, consents,
    /// tokens as hashes), so clients stay connected when you restart. Delete it to start afresh.
    #[arg(long, value_name = "DIR", default_value = ".mcp-auth")]
    state_dir: std::path::PathBuf,
    /// Keep the embedded issuer's state in memory: every restart forgets clients and tokens.
    #[arg(long, conflicts_with = "state_dir")]
    ephemeral: bool,
    /// Let the embedded issuer fetch Client ID Metadata Documents from loopback addresses (a
    /// client served on this machine). For development and tests only: refused on a
    /// non-loopback address, and the quickstart listens on 127.0.0.1 only. Private, link-local
    /// and other special-purpose addresses stay refused. Ignored when Clerk keys are set.
    #[arg(long)]
    cimd_allow_loopback: bool,
    /// PEM file of root certificates the embedded issuer trusts for Client ID Metadata Document
    /// fetches, besides the system's (a local CA for documents served over HTTPS on loopback).
    /// Ignored when Clerk keys are set.
    #[arg(long, value_name = "FILE")]
    cimd_root_ca: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Written by a background thread: a slow terminal or disk never holds up a request (under
    // a flood the writer drops lines rather than stall). Flushed when the guard drops at exit.
    let (log_writer, _log_guard) =
        tracing_appender::non_blocking(std::io::BufWriter::new(std::io::stdout()));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| DEFAULT_LOG_FILTER.into()),
        )
        // Colour codes only for a terminal: not in a log file, and they cost several times
        // the formatting of the line itself.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_writer(log_writer)
        .init();
    let args = Args::parse();
    let clerk = match ClerkKeys::from_env(|name| std::env::var(name).ok()) {
        Ok(clerk) => clerk,
        Err(error) => {
            eprintln!("quickstart: {error}");
            return std::process::ExitCode::FAILURE;
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
                return std::process::ExitCode::FAILURE;
            }
        },
        None => Vec::new(),
    };
    let running = Quickstart::start(Options {
        port: args.port,
        issuer_port: args.issuer_port,
        opaque_tokens: args.opaque_tokens,
        clerk,
        access_token_lifetime: None,
        // Absolute, so the banner and any error say exactly which directory.
        state_dir: (!args.ephemeral)
            .then(|| std::path::absolute(&args.state_dir).unwrap_or(args.state_dir)),
        cimd_allow_loopback: args.cimd_allow_loopback,
        cimd_root_certificates_pem,
    })
    .await;
    let running = match running {
        Ok(running) => running,
        Err(error) => {
            eprintln!("quickstart: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("{}", running.banner());
    let _ = tokio::signal::ctrl_c().await;
    println!("shutting down (finishing in-flight requests)…");
    running.shutdown().await;
    std::process::ExitCode::SUCCESS
}
