//! Step-up for a client that holds a refresh token (as Claude and Cursor do), with the
//! TypeScript SDK's v2 client, `@modelcontextprotocol/client` 2.4.0
//! (`tests/js/sdk-v2-refresh-step-up.mjs`, where its source is cited line by line).
//!
//! The client registers the `refresh_token` grant, so every token response carries a refresh
//! token. On the 403 `insufficient_scope` of `get-private-metadata` it computes what it asked
//! for before ∪ the held token's `scope` ∪ the challenged scope; that is a strict superset of
//! the held token's `scope` (which the issuer always returns), so it skips the refresh (a
//! refresh cannot widen a grant, RFC 6749 §6) and starts a new authorization request with the
//! union as `scope`. The issuer auto-approves, the SDK exchanges the new code, and the retried
//! call succeeds. SDK 1.x refreshes instead and gives up: `sdk_refresh_step_up.rs` pins that.
//!
//! Checked on both sides: the client's events (what it asked for), the issuer's /metrics (two
//! authorization codes, two code exchanges and no third token request: no refresh), and the MCP
//! server's view of the final token (`whoami` after the step-up: same client, wider scopes).

use std::collections::BTreeSet;
use std::time::Duration;

use mcp_auth_issuer::{Issuer, IssuerConfig};
use quickstart::{ClerkKeys, Options, Quickstart};
use serde_json::Value;

const REDIRECT: &str = "http://127.0.0.1:33420/callback";

fn scopes(value: &Value) -> BTreeSet<String> {
    value
        .as_str()
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_v2_client_with_a_refresh_token_re_authorizes_with_the_wider_scope() {
    let js = e2e::js_dir("@modelcontextprotocol/client");
    let user = mcp_auth_issuer::default_users()[0].id.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = Issuer::serve(
        listener,
        IssuerConfig {
            auto_approve_user: Some(user.clone()),
            ..IssuerConfig::default()
        },
    )
    .await
    .unwrap();
    let qs = Quickstart::start(Options {
        clerk: Some(ClerkKeys {
            secret_key: issuer.secret_key(),
            publishable_key: issuer.publishable_key(),
            api_url: Some(issuer.base_url()),
            frontend_api_url: Some(issuer.base_url()),
            machine: None,
        }),
        ..Options::default()
    })
    .await
    .unwrap();

    let mut cmd = tokio::process::Command::new("node");
    cmd.current_dir(&js)
        .arg("sdk-v2-refresh-step-up.mjs")
        .arg(qs.mcp_url())
        .arg(REDIRECT)
        .args(["whoami", "get-private-metadata", "whoami"]);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the SDK client hung")
        .expect("node could not be started");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let find =
        |name: &str| -> Vec<&Value> { events.iter().filter(|e| e["event"] == name).collect() };
    let metrics = issuer.metrics();
    let report = format!(
        "stdout:\n{stdout}\nstderr:\n{}\nmetrics:\n{metrics}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");

    // Two authorizations: the first on connect, the second for the step-up, and nothing else.
    let needed: Vec<&str> = find("authorization_needed")
        .iter()
        .map(|e| e["for"].as_str().unwrap())
        .collect();
    assert_eq!(needed, ["connect", "get-private-metadata"], "{report}");
    let tokens = find("tokens");
    assert_eq!(tokens.len(), 2, "{report}");
    assert_eq!(
        tokens[0]["refresh_token"], true,
        "a refresh token is held\n{report}"
    );
    let first = scopes(&tokens[0]["scope"]);
    assert!(!first.contains("private_metadata"), "{report}");

    // The step-up's authorization request asks for the union: everything held, plus the
    // challenged scope.
    let authorize = find("authorize");
    assert_eq!(authorize.len(), 2, "{report}");
    let asked = scopes(&authorize[1]["scope"]);
    assert!(asked.is_superset(&first), "{report}");
    assert!(asked.contains("private_metadata"), "{report}");
    assert_eq!(authorize[1]["resource"], qs.mcp_url(), "{report}");
    assert_eq!(authorize[1]["code_challenge_method"], "S256", "{report}");
    let second = scopes(&tokens[1]["scope"]);
    assert!(
        second.is_superset(&asked),
        "granted what was asked\n{report}"
    );
    assert_eq!(tokens[1]["refresh_token"], true, "{report}");

    // The calls: whoami, the scoped tool after the step-up, and whoami again, whose token the
    // MCP server verified: the same client, now with private_metadata.
    let calls = find("tool");
    let names: Vec<&str> = calls.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["whoami", "get-private-metadata", "whoami"],
        "{report}"
    );
    assert!(calls.iter().all(|c| c["isError"] == false), "{report}");
    assert_eq!(calls[1]["structured"]["user_id"], user.as_str(), "{report}");
    assert_eq!(
        calls[0]["structured"]["client_id"], calls[2]["structured"]["client_id"],
        "{report}"
    );
    let held: Vec<&str> = calls[2]["structured"]["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(held.contains(&"private_metadata"), "{report}");

    // The issuer's side: two authorization codes, each exchanged once; no refresh (a third
    // token request) and no failed token request; one registration.
    assert_eq!(
        e2e::requests_total(&metrics, "/oauth/authorize", "GET"),
        2,
        "{report}"
    );
    assert!(
        metrics.contains("mcp_auth_issuer_tokens_issued_total{kind=\"authorization_code\"} 2"),
        "{report}"
    );
    assert_eq!(
        e2e::requests_total(&metrics, "/oauth/token", "POST"),
        2,
        "code exchanges only, no refresh\n{report}"
    );
    assert!(
        metrics.contains(
            "mcp_auth_issuer_requests_total{path=\"/oauth/token\",method=\"POST\",status=\"200\"} 2"
        ),
        "{report}"
    );
    assert!(
        metrics.contains("mcp_auth_issuer_tokens_issued_total{kind=\"refresh_token\"} 2"),
        "{report}"
    );
    assert_eq!(
        e2e::requests_total(&metrics, "/oauth/register", "POST"),
        1,
        "{report}"
    );
    // The whole exchange, for `--nocapture`.
    println!("{report}");
    qs.shutdown().await;
    issuer.shutdown().await.unwrap();
}
