//! The official TypeScript SDK client (`@modelcontextprotocol/sdk`) against the running
//! quickstart: 401 → protected resource metadata → authorization server metadata → dynamic
//! registration → consent form (allow, as a chosen user) → PKCE code exchange with `resource` →
//! `whoami` and `get-clerk-user-data` see that user → `get-private-metadata` gets 403
//! `insufficient_scope`, the client re-authorizes with the wider scope and succeeds.

use std::{path::PathBuf, time::Duration};

use quickstart::{Options, Quickstart};
use serde_json::Value;

fn js_dir() -> PathBuf {
    e2e::js_dir("@modelcontextprotocol/sdk")
}

async fn run_sdk_client(mcp_url: &str, user: &str, tools: &[&str]) -> (bool, Vec<Value>) {
    let mut cmd = tokio::process::Command::new("node");
    cmd.current_dir(js_dir())
        .arg("sdk-client.mjs")
        .arg(mcp_url)
        .arg(user)
        .args(tools);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the SDK client hung")
        .expect("node could not be started");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    if !out.status.success() {
        eprintln!(
            "stdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (out.status.success(), events)
}

fn find<'a>(events: &'a [Value], event: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == event).collect()
}

async fn full_flow(opaque_tokens: bool) {
    let qs = Quickstart::start(Options {
        opaque_tokens,
        ..Options::default()
    })
    .await
    .unwrap();
    let user = qs.issuer().unwrap().users()[1].id.clone();
    let (ok, events) = run_sdk_client(
        qs.mcp_url(),
        &user,
        &["whoami", "get-clerk-user-data", "get-private-metadata"],
    )
    .await;
    assert!(ok, "SDK client failed: {events:#?}");

    // The flow happened as the specification describes.
    let order: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    let first_401 = order
        .iter()
        .position(|e| *e == "unauthorized")
        .expect("a 401 first");
    let first_authorize = order.iter().position(|e| *e == "authorize").unwrap();
    assert!(first_401 < first_authorize, "{order:?}");
    assert_eq!(
        find(&events, "registered").len(),
        1,
        "one dynamic registration: {order:?}"
    );
    let authorize = find(&events, "authorize");
    assert!(
        authorize.len() >= 2,
        "initial authorization and step-up: {order:?}"
    );
    for a in &authorize {
        assert_eq!(a["code_challenge_method"], "S256");
        assert_eq!(a["has_code_challenge"], true);
        assert_eq!(a["resource"], qs.mcp_url(), "RFC 8707 resource sent");
    }
    assert_eq!(
        authorize[0]["scope"], "profile email",
        "scope from the 401 challenge"
    );

    // The tools saw the consenting user.
    let tools = find(&events, "tool");
    let whoami = tools.iter().find(|t| t["name"] == "whoami").unwrap();
    assert_eq!(whoami["text"], user.as_str());
    assert_eq!(whoami["structured"]["user_id"], user.as_str());
    let profile = tools
        .iter()
        .find(|t| t["name"] == "get-clerk-user-data")
        .unwrap();
    assert_eq!(profile["structured"]["id"], user.as_str(), "{profile}");

    // Step-up: 403 insufficient_scope named private_metadata; after re-consent the tool ran.
    let step_up = find(&events, "step_up");
    assert_eq!(step_up.len(), 1, "{order:?}");
    let scope = step_up[0]["scope"].as_str().unwrap();
    assert!(scope.split(' ').any(|s| s == "private_metadata"), "{scope}");
    let private = tools
        .iter()
        .find(|t| t["name"] == "get-private-metadata")
        .unwrap();
    assert_eq!(private["isError"], false);
    assert_eq!(private["structured"]["user_id"], user.as_str());
    qs.shutdown().await;
}

/// JWT access tokens (the issuer's default, as Clerk's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_client_with_jwt_tokens() {
    full_flow(false).await;
}

/// Opaque `oat_…` tokens, verified through the Backend API stand-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_client_with_opaque_tokens() {
    full_flow(true).await;
}
