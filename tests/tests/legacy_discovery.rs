//! A client that follows only the MCP 2025-03-26 authorization rules
//! (`tests/js/legacy-2025-03-26-client.mjs`) against the running quickstart: no protected
//! resource metadata; it looks for `/.well-known/oauth-authorization-server` at the MCP server's
//! origin (which mcp-auth serves by passing the issuer's RFC 8414 document through), registers,
//! consents, exchanges the code with PKCE, and calls `whoami` with protocol version 2025-03-26.
//!
//! The script logs every HTTP request it makes and refuses to request
//! `/.well-known/oauth-protected-resource*`; the test checks that log (the quickstart has no
//! request counter of its own to observe from the server side).

use std::{path::PathBuf, time::Duration};

use quickstart::{Options, Quickstart};
use serde_json::Value;

fn js_dir() -> PathBuf {
    e2e::js_dir("@modelcontextprotocol/sdk")
}

async fn run_legacy_client(mcp_url: &str, user: &str, send_resource: bool) -> (bool, Vec<Value>) {
    let mut cmd = tokio::process::Command::new("node");
    cmd.current_dir(js_dir())
        .arg("legacy-2025-03-26-client.mjs")
        .arg(mcp_url)
        .arg(user)
        .kill_on_drop(true);
    if send_resource {
        cmd.arg("--resource");
    }
    let out = tokio::time::timeout(Duration::from_secs(25), cmd.output())
        .await
        .expect("the legacy client hung")
        .expect("node could not be started");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        eprintln!(
            "stdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let events = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (out.status.success(), events)
}

fn find<'a>(events: &'a [Value], event: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == event).collect()
}

/// What every run shares: 401 first, discovery only at the MCP origin's RFC 8414 URL, never
/// protected resource metadata, registration and PKCE at the issuer the document names.
fn assert_legacy_discovery(events: &[Value], mcp_url: &str, issuer_url: &str) {
    let origin = mcp_url.trim_end_matches("/mcp");
    let requests: Vec<String> = find(events, "http")
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e["method"].as_str().unwrap(),
                e["url"].as_str().unwrap(),
                e["status"]
            )
        })
        .collect();
    assert_eq!(
        requests.first().map(String::as_str),
        Some(format!("POST {mcp_url} 401").as_str()),
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .all(|r| !r.contains("oauth-protected-resource")),
        "a 2025-03-26 client asked for protected resource metadata: {requests:#?}"
    );
    let well_known: Vec<&String> = requests
        .iter()
        .filter(|r| r.contains("/.well-known/"))
        .collect();
    assert_eq!(
        well_known,
        [&format!(
            "GET {origin}/.well-known/oauth-authorization-server 200"
        )],
        "discovery is one RFC 8414 request at the MCP origin: {requests:#?}"
    );
    // The unauthorized answer still carries the newer clients' hint; this client ignores it.
    let challenge = find(events, "unauthorized")[0]["www_authenticate"]
        .as_str()
        .unwrap();
    assert!(challenge.contains("resource_metadata="), "{challenge}");

    // The document served at the MCP origin is the issuer's own.
    let metadata = find(events, "metadata")[0];
    assert_eq!(metadata["issuer"], issuer_url);
    assert_eq!(
        metadata["registration_endpoint"],
        format!("{issuer_url}/oauth/register").as_str(),
        "{metadata}"
    );
    assert!(
        requests.contains(&format!("POST {issuer_url}/oauth/register 201")),
        "{requests:#?}"
    );
    assert!(
        requests.iter().any(|r| r.starts_with(&format!(
            "POST {}",
            metadata["token_endpoint"].as_str().unwrap()
        )) && r.ends_with(" 200")),
        "{requests:#?}"
    );
    let authorize = find(events, "authorize")[0];
    assert_eq!(authorize["code_challenge_method"], "S256");
    assert_eq!(authorize["has_code_challenge"], true);
    assert_eq!(
        authorize["url"], metadata["authorization_endpoint"],
        "{authorize}"
    );
}

async fn start(opaque_tokens: bool) -> Quickstart {
    Quickstart::start(Options {
        opaque_tokens,
        ..Options::default()
    })
    .await
    .unwrap()
}

async fn completes_flow(opaque_tokens: bool, send_resource: bool) {
    let qs = start(opaque_tokens).await;
    let issuer_url = qs.issuer().unwrap().base_url();
    let user = qs.issuer().unwrap().users()[2].id.clone();
    let (ok, events) = run_legacy_client(qs.mcp_url(), &user, send_resource).await;
    assert!(ok, "the 2025-03-26 client failed: {events:#?}");
    assert_legacy_discovery(&events, qs.mcp_url(), &issuer_url);

    let authorize = find(&events, "authorize")[0];
    if send_resource {
        assert_eq!(authorize["resource"], qs.mcp_url());
    } else {
        assert_eq!(authorize["resource"], Value::Null);
    }
    assert_eq!(
        find(&events, "initialized")[0]["protocol_version"],
        "2025-03-26",
        "the server speaks the client's version"
    );
    let client_id = find(&events, "registered")[0]["client_id"].clone();
    let tool = find(&events, "tool")[0];
    assert_eq!(tool["text"], user.as_str(), "{tool}");
    assert_eq!(tool["structured"]["user_id"], user.as_str(), "{tool}");
    assert_eq!(tool["structured"]["client_id"], client_id, "{tool}");
    qs.shutdown().await;
}

/// JWT tokens; the client sends the RFC 8707 `resource` (the MCP URL), so the token's `aud`
/// names this server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_client_with_resource_indicator_and_jwt_tokens() {
    completes_flow(false, true).await;
}

/// Opaque tokens and no `resource` at all, as 2025-03-26-era clients behave: opaque tokens are
/// checked by the instance's Backend API and carry no audience, so the flow completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_client_without_resource_indicator_and_opaque_tokens() {
    completes_flow(true, false).await;
}

/// JWT tokens and no `resource`: the quickstart's issuer gives such tokens the MCP URL as
/// default audience, so the strict audience check (which refuses a JWT without `aud`) passes and
/// a 2025-03-26 client completes the flow in the default mode too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_client_without_resource_indicator_and_jwt_tokens() {
    completes_flow(false, false).await;
}
