//! The development loop survives restarts: a client connected to the quickstart keeps working
//! when the quickstart restarts on the same state directory. The official TypeScript SDK client
//! keeps its registration and tokens in a file (as a desktop client does); after the restart it
//! calls `whoami` again with **zero** new registrations and **zero** consent pages (counted on
//! the restarted issuer's `/metrics`), first with the access token it holds, then through a
//! refresh. For JWT access tokens (the keys are the same) and opaque ones (their hashes are in
//! the state).

use std::{path::Path, time::Duration};

use e2e::{TempDir, requests_total};
use quickstart::{Options, Quickstart};
use serde_json::Value;

async fn run_client(mcp_url: &str, user: &str, state: &Path, drop_access: bool) -> Vec<Value> {
    let mut cmd = tokio::process::Command::new("node");
    cmd.current_dir(e2e::js_dir("@modelcontextprotocol/sdk"))
        .arg("sdk-persistent-client.mjs")
        .arg(mcp_url)
        .arg(user)
        .arg(state);
    if drop_access {
        cmd.arg("--drop-access-token");
    }
    cmd.arg("whoami").kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the SDK client hung")
        .expect("node could not be started");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        out.status.success(),
        "SDK client failed:\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    events
}

fn count(events: &[Value], event: &str) -> usize {
    events.iter().filter(|e| e["event"] == event).count()
}

fn whoami(events: &[Value]) -> String {
    events
        .iter()
        .find(|e| e["event"] == "tool" && e["name"] == "whoami")
        .and_then(|e| e["text"].as_str())
        .unwrap_or_default()
        .to_owned()
}

async fn start(state: &Path, opaque_tokens: bool, port: u16, issuer_port: u16) -> Quickstart {
    Quickstart::start(Options {
        port,
        issuer_port,
        opaque_tokens,
        state_dir: Some(state.to_path_buf()),
        ..Options::default()
    })
    .await
    .expect("the quickstart starts")
}

async fn survives_a_restart(opaque_tokens: bool) {
    let state = TempDir::new("restart-state");
    let client_state = TempDir::new("restart-client");
    let client_file = client_state.0.join("client.json");

    let qs = start(&state.0, opaque_tokens, 0, 0).await;
    let user = qs.issuer().unwrap().users()[1].id.clone();
    let first = run_client(qs.mcp_url(), &user, &client_file, false).await;
    assert_eq!(count(&first, "registered"), 1, "{first:?}");
    assert_eq!(count(&first, "authorize"), 1, "{first:?}");
    assert_eq!(whoami(&first), user);

    // Restart on the same ports (the URLs clients hold) and the same state directory.
    let mcp_url = qs.mcp_url().to_owned();
    let port: u16 = mcp_url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/mcp")
        .parse()
        .unwrap();
    let issuer_port = qs.issuer().unwrap().local_addr().port();
    qs.shutdown().await;
    let qs = start(&state.0, opaque_tokens, port, issuer_port).await;
    assert_eq!(qs.mcp_url(), mcp_url);
    let issuer = qs.issuer().unwrap();

    // The access token it holds still works.
    let again = run_client(&mcp_url, &user, &client_file, false).await;
    assert_eq!(whoami(&again), user, "{again:?}");
    assert_eq!(count(&again, "registered"), 0, "{again:?}");
    assert_eq!(count(&again, "authorize"), 0, "{again:?}");
    assert_eq!(count(&again, "tokens"), 0, "no new token needed: {again:?}");

    // Without a usable access token, its refresh token (and registration) still work.
    let refreshed = run_client(&mcp_url, &user, &client_file, true).await;
    assert_eq!(whoami(&refreshed), user, "{refreshed:?}");
    assert_eq!(count(&refreshed, "registered"), 0, "{refreshed:?}");
    assert_eq!(count(&refreshed, "authorize"), 0, "{refreshed:?}");
    assert_eq!(count(&refreshed, "tokens"), 1, "one refresh: {refreshed:?}");

    // Counted on the issuer: since the restart, no registration and no consent page.
    let metrics = issuer.metrics();
    assert_eq!(
        requests_total(&metrics, "/oauth/register", "POST"),
        0,
        "{metrics}"
    );
    assert_eq!(
        requests_total(&metrics, "/oauth/authorize", "GET"),
        0,
        "{metrics}"
    );
    assert_eq!(
        requests_total(&metrics, "/oauth/token", "POST"),
        1,
        "{metrics}"
    );
    qs.shutdown().await;
}

/// JWT access tokens: the restarted issuer signs with the same keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_client_survives_a_restart_with_jwt_tokens() {
    survives_a_restart(false).await;
}

/// Opaque `oat_…` access tokens (`--opaque-tokens`): their hashes are in the state, so the
/// Backend API still verifies them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_client_survives_a_restart_with_opaque_tokens() {
    survives_a_restart(true).await;
}
