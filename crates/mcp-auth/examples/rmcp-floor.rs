//! The benchmark floor: the same `whoami`-shaped tool served by plain rmcp (stateless JSON
//! Streamable HTTP) with no authentication at all. `scripts/bench.sh` measures every mcp-auth
//! stack as a ratio of this.
//!
//! It answers with the identity in the tokens `scripts/bench.sh` mints ([`BENCH_USER`], client
//! `bench`, scopes `profile email`), so its answer is byte for byte the body the authenticated
//! stacks' `whoami` sends: a ratio to it is the cost of authentication and of nothing else (the
//! script checks that the bodies match).
//!
//! Run with `cargo run --release -p mcp-auth --example rmcp-floor -- 8790`; add `--sessions`
//! for rmcp's session mode (the floor for opening sessions).

use std::sync::Arc;

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ListToolsResult,
        PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    },
    service::RequestContext,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use serde_json::json;

/// The user id in the tokens `scripts/bench.sh` mints.
const BENCH_USER: &str = "user_2aliceQx7Vn3Kp9Lm2Rt8Wz4Yb6";

#[derive(Clone)]
struct Floor;

impl ServerHandler for Floor {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let schema =
            Arc::new(serde_json::from_value(json!({"type": "object"})).unwrap_or_default());
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "whoami",
            "fixed user",
            schema,
        )]))
    }

    async fn call_tool(
        &self,
        _request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let mut result = CallToolResult::structured(json!({
            "user_id": BENCH_USER, "client_id": "bench", "scopes": ["profile", "email"],
        }));
        result.content = vec![rmcp::model::ContentBlock::text(BENCH_USER)];
        Ok(result.into())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args().nth(1).map_or(Ok(8790), |p| p.parse())?;
    let sessions = std::env::args().any(|a| a == "--sessions");
    // The same settings mcp-auth's builder uses: JSON answers when stateless, SSE with sessions.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(sessions)
        .with_json_response(!sessions);
    let mut session_manager = LocalSessionManager::default();
    session_manager.session_config.keep_alive = Some(std::time::Duration::from_secs(300));
    let service = StreamableHttpService::new(|| Ok(Floor), Arc::new(session_manager), config);
    let app = axum::Router::new().route_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("rmcp floor ready at http://127.0.0.1:{port}/mcp");
    axum::serve(listener, app).await?;
    Ok(())
}
