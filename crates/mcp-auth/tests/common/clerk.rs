//! Test support for the Clerk preset: the local Clerk-compatible issuer on loopback, a Clerk
//! config pointed at it, an MCP server protected by a `ClerkVerifier`, and `/metrics` counting.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;

use mcp_auth::{
    AuthInfo,
    clerk::{ClerkConfig, ClerkVerifierBuilder},
};
use mcp_auth_issuer::{Issuer, IssuerConfig, IssuerHandle};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::common::{PROTOCOL, rpc_result};

/// Starts `mcp-auth-issuer` on 127.0.0.1 port 0.
pub async fn start_issuer(config: IssuerConfig) -> IssuerHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Issuer::serve(listener, config).await.unwrap()
}

/// A Clerk config for the issuer, built exactly as a binary would from the four env vars.
pub fn clerk_config(issuer: &IssuerHandle) -> ClerkConfig {
    let base = issuer.base_url();
    ClerkConfig::from_env_values(
        Some(&issuer.secret_key()),
        Some(&issuer.publishable_key()),
        Some(&base),
        Some(&base),
    )
    .unwrap()
}

/// An MCP server on loopback protected by the verifier `configure` builds, with a `whoami`
/// tool that returns the caller's user id, kind and scopes.
pub struct McpUnderTest {
    pub addr: SocketAddr,
    pub url: String,
    pub client: reqwest::Client,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct NoArgs {}

pub async fn start_mcp(
    clerk: &ClerkConfig,
    configure: impl FnOnce(ClerkVerifierBuilder) -> ClerkVerifierBuilder,
) -> McpUnderTest {
    start_mcp_with(clerk, configure, |b| b).await
}

/// [`start_mcp`], with `server` applied to the server builder too.
pub async fn start_mcp_with(
    clerk: &ClerkConfig,
    configure: impl FnOnce(ClerkVerifierBuilder) -> ClerkVerifierBuilder,
    server: impl FnOnce(mcp_auth::McpServerBuilder) -> mcp_auth::McpServerBuilder,
) -> McpUnderTest {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("http://{addr}/mcp");
    let router = server(
        configure(clerk.verifier(url.clone()))
            .mcp_server(["profile", "email"])
            .unwrap(),
    )
    .legacy_authorization_server_metadata(false)
    .tool(
        "whoami",
        "Who is calling",
        |_: NoArgs, auth: AuthInfo| async move {
            json!({
                "user_id": auth.user_id(),
                "subject": auth.subject(),
                "organization_id": auth.organization_id(),
                "machine_id": auth.machine_id(),
                "audience": auth.audience(),
                "kind": auth.kind().as_str(),
                "client_id": auth.client_id(),
                "scopes": auth.scopes(),
                "sid": auth.claim("sid"),
                "v": auth.claim("v"),
                "o": auth.claim("o"),
            })
            .to_string()
        },
    )
    .build()
    .unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    McpUnderTest {
        addr,
        url,
        client: reqwest::Client::new(),
    }
}

impl McpUnderTest {
    /// `tools/call whoami` with `token`; the raw response.
    pub async fn call_whoami(&self, token: &str) -> reqwest::Response {
        self.client
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", PROTOCOL)
            .bearer_auth(token)
            .json(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
                          "params":{"name":"whoami","arguments":{}}}))
            .send()
            .await
            .unwrap()
    }

    /// `whoami`'s answer as JSON, asserting HTTP 200.
    pub async fn whoami(&self, token: &str) -> Value {
        let resp = self.call_whoami(token).await;
        assert_eq!(resp.status(), 200, "whoami refused");
        let rpc = rpc_result(resp).await;
        let inner = rpc["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("no tool text in {rpc}"));
        serde_json::from_str(inner).unwrap()
    }
}

/// Sum of `mcp_auth_issuer_requests_total` samples whose labels contain every `needle`.
pub fn issuer_requests(issuer: &IssuerHandle, needles: &[&str]) -> u64 {
    metric_sum(&issuer.metrics(), needles)
}

/// Same, read over HTTP from the issuer's `GET /metrics`.
pub async fn issuer_requests_http(issuer: &IssuerHandle, needles: &[&str]) -> u64 {
    let text = reqwest::get(format!("{}/metrics", issuer.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metric_sum(&text, needles)
}

fn metric_sum(text: &str, needles: &[&str]) -> u64 {
    text.lines()
        .filter(|l| l.starts_with("mcp_auth_issuer_requests_total{"))
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

pub const VERIFY_OAT: &str = "access_tokens/verify";
pub const VERIFY_AK: &str = "api_keys/verify";
pub const VERIFY_MT: &str = "m2m_tokens/verify";
