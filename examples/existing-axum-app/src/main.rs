//! An existing axum app (a public page and a JSON API) that gains an OAuth-protected MCP
//! endpoint with one `.merge(...)`; its API routes are protected by the same Clerk verifier, so
//! the OAuth token an MCP client holds works on the API too.
//!
//! Run it (embedded Clerk-compatible issuer on port 3001, app on port 3000):
//!
//! ```sh
//! cargo run -p existing-axum-app
//! # or with your Clerk instance (no local issuer is started):
//! CLERK_SECRET_KEY=sk_test_… CLERK_PUBLISHABLE_KEY=pk_test_… cargo run -p existing-axum-app
//! # GET /api/machine accepts only M2M tokens granted to this service's machine when set:
//! CLERK_MACHINE_ID=mch_… CLERK_MACHINE_SECRET_KEY=ak_… cargo run -p existing-axum-app
//! ```
//!
//! Then, with the embedded issuer (the app prints the secret key to export):
//!
//! ```sh
//! curl -i http://127.0.0.1:3000/                 # 200, public
//! curl -i http://127.0.0.1:3000/api/me           # 401, WWW-Authenticate: Bearer resource_metadata="…"
//! curl -s http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp
//! TOKEN=$(curl -s -X POST http://127.0.0.1:3001/admin/tokens/access \
//!   -H "Authorization: Bearer $ISSUER_SECRET_KEY" -H 'content-type: application/json' \
//!   -d '{"user_id":"user_2aliceQx7Vn3Kp9Lm2Rt8Wz4Yb6","scopes":["profile","email"],"resource":"http://127.0.0.1:3000/mcp"}' \
//!   | sed 's/.*"token":"\([^"]*\)".*/\1/')
//! curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/api/me
//! curl -s -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
//!   -d '{"text":"hello"}' http://127.0.0.1:3000/api/notes
//! M2M=$(curl -s -X POST http://127.0.0.1:3001/admin/m2m_tokens \
//!   -H "Authorization: Bearer $ISSUER_SECRET_KEY" -H 'content-type: application/json' \
//!   -d '{"subject":"mch_worker","scopes":["mch_api"],"format":"jwt"}' \
//!   | sed 's/.*"token":"\([^"]*\)".*/\1/')
//! curl -s -H "Authorization: Bearer $M2M" http://127.0.0.1:3000/api/machine
//! curl -s -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
//!   -H 'accept: application/json, text/event-stream' \
//!   -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list-notes","arguments":{}}}' \
//!   http://127.0.0.1:3000/mcp
//! ```
//!
//! MCP clients (Cursor, Claude Code, the Inspector) connect to `http://127.0.0.1:3000/mcp` by
//! URL and go through the OAuth flow themselves.

use clap::Parser;
use existing_axum_app::{ClerkEnv, MachineEnv, Options, Running};

/// Without `RUST_LOG`: the startup lines and one access line per MCP request
/// (`mcp_auth::access`); no library chatter (rmcp logs each stateless request's set-up at
/// `info`) and no per-request lines from the embedded issuer.
const DEFAULT_LOG_FILTER: &str = "info,rmcp=warn,mcp_auth_issuer=warn";

#[derive(Parser, Debug)]
#[command(about = "An existing axum app with an OAuth-protected MCP endpoint merged in")]
struct Args {
    /// Port of the app (MCP at http://127.0.0.1:PORT/mcp). 0 picks a free port.
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Port of the embedded authorization server (ignored when Clerk keys are set).
    #[arg(long, default_value_t = 3001)]
    issuer_port: u16,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One access line per request, written from a background thread (`mcp_auth::logging`).
    let _log_guard = mcp_auth::logging::init(DEFAULT_LOG_FILTER)?;
    let args = Args::parse();
    let running = Running::start(Options {
        port: args.port,
        issuer_port: args.issuer_port,
        clerk: ClerkEnv::from_env(|name| std::env::var(name).ok()),
        machine: MachineEnv::from_env(|name| std::env::var(name).ok())?,
    })
    .await?;
    println!("existing-axum-app on {}", running.base_url());
    println!("  public:    GET {}/", running.base_url());
    println!(
        "  protected: GET {0}/api/me, GET|POST {0}/api/notes",
        running.base_url()
    );
    println!(
        "  machines:  GET {}/api/machine (Clerk M2M tokens only)",
        running.base_url()
    );
    println!("  MCP:       {}", running.mcp_url());
    if let Some(issuer) = running.issuer() {
        println!(
            "  embedded authorization server (development only): {}",
            issuer.base_url()
        );
        println!("  export ISSUER_SECRET_KEY={}", issuer.secret_key());
    }
    let _ = tokio::signal::ctrl_c().await;
    running.shutdown().await;
    Ok(())
}
