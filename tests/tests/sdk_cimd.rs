//! The official TypeScript SDK client identifying itself with a Client ID Metadata Document
//! (`clientMetadataUrl`), served over HTTPS on loopback by this test with a CA generated for the
//! run: discovery → the issuer's `client_id_metadata_document_supported` → the URL as
//! `client_id` → the issuer fetches and validates the document → consent (auto-approved) →
//! PKCE code exchange with `resource` → `tools/call whoami` against the quickstart. No dynamic
//! registration is made (checked on the issuer's /metrics).

#[path = "../../crates/mcp-auth-issuer/tests/common/https.rs"]
mod https;

use std::time::Duration;

use https::DocumentServer;
use mcp_auth_issuer::{Issuer, IssuerConfig};
use quickstart::{ClerkKeys, Options, Quickstart};
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1:33419/callback";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_client_with_a_client_metadata_document() {
    let js = e2e::js_dir("@modelcontextprotocol/sdk");
    let documents = DocumentServer::start().await;
    let client_id = documents.document(
        &documents.base,
        "/mcp-client/metadata.json",
        json!({
            "client_name": "TypeScript SDK (CIMD)",
            "client_uri": "https://sdk.example",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }),
        Some("max-age=300"),
    );
    let user = mcp_auth_issuer::default_users()[1].id.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = Issuer::serve(
        listener,
        IssuerConfig {
            auto_approve_user: Some(user.clone()),
            cimd_allow_loopback: true,
            cimd_root_certificates_pem: documents.ca_pem.clone().into_bytes(),
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

    // The SDK never fetches the document itself; trusting the run's CA keeps it working if a
    // later version checks the URL before using it.
    let ca = e2e::TempDir::new("cimd-ca");
    let ca_file = ca.0.join("ca.pem");
    std::fs::write(&ca_file, &documents.ca_pem).unwrap();
    let mut cmd = tokio::process::Command::new("node");
    cmd.current_dir(&js)
        .env("NODE_EXTRA_CA_CERTS", &ca_file)
        .arg("sdk-cimd-client.mjs")
        .arg(qs.mcp_url())
        .arg(&client_id)
        .arg(REDIRECT)
        .arg("whoami");
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
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let find =
        |name: &str| -> Vec<&Value> { events.iter().filter(|e| e["event"] == name).collect() };

    let clients = find("client");
    assert_eq!(clients.len(), 1, "{events:#?}");
    assert_eq!(clients[0]["client_id"], client_id.as_str());
    assert_eq!(clients[0]["registered"], false);
    let authorize = find("authorize");
    assert_eq!(authorize[0]["client_id"], client_id.as_str());
    assert_eq!(authorize[0]["code_challenge_method"], "S256");
    assert_eq!(authorize[0]["resource"], qs.mcp_url());
    assert_eq!(find("approved")[0]["iss"], issuer.base_url().as_str());
    let whoami = find("tool");
    assert_eq!(whoami[0]["name"], "whoami");
    assert_eq!(whoami[0]["structured"]["user_id"], user.as_str());
    assert_eq!(
        whoami[0]["structured"]["client_id"],
        client_id.as_str(),
        "{whoami:?}"
    );

    // The issuer fetched the document, and no registration call was made.
    let metrics = issuer.metrics();
    assert_eq!(
        e2e::requests_total(&metrics, "/oauth/register", "POST"),
        0,
        "{metrics}"
    );
    assert!(
        metrics.contains("mcp_auth_issuer_client_metadata_documents_total{outcome=\"fetched\"} 1"),
        "{metrics}"
    );
    assert!(documents.hits("/mcp-client/metadata.json") >= 1);
    qs.shutdown().await;
    issuer.shutdown().await.unwrap();
}
