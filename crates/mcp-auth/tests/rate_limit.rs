//! Per-user rate limits over HTTP, in one process (no shared store): over the limit, 429 with
//! `Retry-After` and a JSON body, and the tool does not run; users are counted apart; without
//! the builder setting there is no limit at all.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{call, post, spawn_with};
use mcp_auth::{AuthInfo, McpServer, McpServerBuilder, TokenKind, VerifyError};
use serde_json::{Value, json};

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct NoArgs {}

/// A server whose verifier takes the token as the user id, with a `count` tool that records
/// each run.
async fn server(
    configure: impl FnOnce(McpServerBuilder) -> McpServerBuilder,
) -> (String, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let addr = spawn_with(move |addr| {
        let verifier = |token: &str| {
            let user = token.to_owned();
            async move {
                if user.starts_with("user_") {
                    Ok(AuthInfo::builder(user, TokenKind::OAuthAccessToken).build())
                } else {
                    Err(VerifyError::invalid_token("unknown"))
                }
            }
        };
        configure(
            McpServer::builder(&format!("http://{addr}/mcp"))
                .authorization_server("https://issuer.test")
                .verifier(verifier),
        )
        .tool("count", "Counts its runs", move |_: NoArgs, _: AuthInfo| {
            let counter = counter.clone();
            async move { counter.fetch_add(1, Ordering::SeqCst).to_string() }
        })
        .build()
        .unwrap()
    })
    .await;
    (format!("http://{addr}/mcp"), runs)
}

#[tokio::test]
async fn over_the_limit_is_429_before_the_tool_runs() {
    let (url, runs) = server(|b| b.rate_limit_per_user(3, Duration::from_secs(60))).await;
    for _ in 0..3 {
        let r = post(&url, Some("user_a"), &call("count", json!({})), &[]).await;
        assert_eq!(r.status(), 200);
    }
    let r = post(&url, Some("user_a"), &call("count", json!({})), &[]).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((59..=60).contains(&retry), "{retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(body["retry_after"], retry);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "the refused call ran no tool"
    );

    // Another user has a window of their own.
    let r = post(&url, Some("user_b"), &call("count", json!({})), &[]).await;
    assert_eq!(r.status(), 200);
    // A bad token is still a 401, not a 429.
    let r = post(&url, Some("nobody"), &call("count", json!({})), &[]).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn off_unless_configured() {
    let (url, runs) = server(|b| b).await;
    for _ in 0..50 {
        let r = post(&url, Some("user_a"), &call("count", json!({})), &[]).await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 50);
}
