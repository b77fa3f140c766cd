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
//!
//! Behind a load balancer (README: "Running more than one replica"): `--host ADDR` to listen
//! elsewhere than 127.0.0.1, `--public-url URL` for the URL clients use, `--sessions` and
//! `--max-sessions-per-user N` for session mode. `/healthz`, `/readyz` and `/metrics` are
//! served. The command line itself is `quickstart::cli`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    quickstart::cli::main().await
}
