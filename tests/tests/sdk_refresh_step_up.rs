//! Step-up for a TypeScript SDK client that holds a refresh token (as Claude and Cursor do):
//! what `@modelcontextprotocol/sdk` 1.32.2 does, pinned, so the day it changes is noticed.
//!
//! On a 403 `insufficient_scope` the SDK's Streamable HTTP transport calls `auth()` with the
//! challenge's scope (`dist/esm/client/streamableHttp.js` lines 350-375). `auth()` refreshes
//! first whenever it holds a refresh token (`dist/esm/client/auth.js` lines 351-377), and
//! `refreshAuthorization` sends `grant_type=refresh_token`, `refresh_token` and `resource`, but
//! never `scope` (lines 907-922). The issuer therefore sees an ordinary refresh: it cannot know
//! that the client wants more, and answers with the scopes granted, as RFC 6749 §6 says (a
//! refresh that *does* name more scope gets `invalid_scope`: `token_endpoint_errors` in
//! `crates/mcp-auth-issuer/tests/oauth_flow.rs`). Even that answer would not help 1.32.2: after
//! a failed refresh, `auth()` re-authorizes only on `invalid_grant`, `invalid_client` or
//! `unauthorized_client` (lines 186-203) and rethrows `invalid_scope`. So the retried call gets
//! the same 403 and the transport gives up with "Server returned 403 after trying upscoping";
//! the step-up never reaches the consent page.
//!
//! The SDK's v2 line (`@modelcontextprotocol/client`, from 2.0.0) fixed this: on the 403 it
//! skips the refresh when the challenge asks for more than the held token's `scope` and
//! re-authorizes with the union. The full step-up with a refresh-token-holding client is
//! `sdk_v2_refresh_step_up.rs`; this test stays to document the 1.x limitation (the README's
//! step-up table says which line works), and fails as soon as a 1.x version re-authorizes
//! instead (then make it a copy of the v2 test).

use std::time::Duration;

use quickstart::{Options, Quickstart};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_client_with_a_refresh_token_refreshes_instead_of_stepping_up() {
    let js = e2e::js_dir("@modelcontextprotocol/sdk");
    let qs = Quickstart::start(Options::default()).await.unwrap();
    let issuer = qs.issuer().unwrap();
    let user = issuer.users()[0].id.clone();
    let mut cmd = tokio::process::Command::new("node");
    cmd.current_dir(&js)
        .env("SDK_CLIENT_GRANT_TYPES", "authorization_code,refresh_token")
        .arg("sdk-client.mjs")
        .arg(qs.mcp_url())
        .arg(&user)
        .args(["whoami", "get-private-metadata"]);
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

    // The first authorization and whoami worked, with a refresh token held.
    let whoami = find("tool");
    assert_eq!(whoami.len(), 1, "{report}");
    assert_eq!(whoami[0]["name"], "whoami");
    assert_eq!(whoami[0]["structured"]["user_id"], user.as_str());
    assert!(
        metrics.contains("mcp_auth_issuer_tokens_issued_total{kind=\"refresh_token\"}"),
        "{report}"
    );
    // The 403 made the SDK refresh (one more successful token request), not re-authorize (one
    // authorization only), and then give up.
    assert_eq!(
        e2e::requests_total(&metrics, "/oauth/authorize", "GET"),
        1,
        "the SDK now re-authorizes on step-up: make this test a copy of sdk_v2_refresh_step_up.rs\n{report}"
    );
    assert!(
        metrics.contains(
            "mcp_auth_issuer_requests_total{path=\"/oauth/token\",method=\"POST\",status=\"200\"} 2"
        ),
        "code exchange + one refresh\n{report}"
    );
    assert!(!out.status.success(), "{report}");
    let error = find("error");
    assert_eq!(error.len(), 1, "{report}");
    assert!(
        error[0]["message"]
            .as_str()
            .unwrap()
            .contains("Server returned 403 after trying upscoping"),
        "{report}"
    );
    qs.shutdown().await;
}
