//! `GET /healthz` and `GET /readyz` (`McpServerBuilder::health_checks`): liveness always, and
//! readiness that follows the verifier: signing keys loaded (JWT verifiers), or signing keys
//! or the Backend API (the Clerk preset).

#[path = "common/clerk.rs"]
mod clerk_common;
mod common;

use clerk_common::*;
use common::*;
use mcp_auth::{Jwks, JwtVerifier, McpServer};
use mcp_auth_issuer::IssuerConfig;

async fn get(url: &str) -> (u16, String) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// A loopback address nothing listens on (bound, then closed).
fn closed_port_url(path: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}{path}")
}

fn jwt_server(jwks_url: &str, health: bool) -> impl FnOnce(std::net::SocketAddr) -> axum::Router {
    let jwks_url = jwks_url.to_owned();
    move |addr| {
        let resource = format!("http://{addr}/mcp");
        let verifier = JwtVerifier::builder(ISSUER, Jwks::from_url(jwks_url.parse().unwrap()))
            .resource(&resource)
            .build()
            .unwrap();
        McpServer::builder(&resource)
            .authorization_server(ISSUER)
            .legacy_authorization_server_metadata(false)
            .verifier(verifier)
            .health_checks(health)
            .build()
            .unwrap()
    }
}

/// Keys reachable: ready. The answers are a fixed word: nothing about the upstream.
#[tokio::test]
async fn ready_when_the_signing_keys_load() {
    let jwks = JwksServer::start(vec![TestKey::rsa("k1").jwk]).await;
    let addr = spawn_with(jwt_server(&jwks.url, true)).await;
    assert_eq!(
        get(&format!("http://{addr}/healthz")).await,
        (200, "ok\n".into())
    );
    assert_eq!(
        get(&format!("http://{addr}/readyz")).await,
        (200, "ready\n".into())
    );
}

/// Keys unreachable: live but not ready (503 with `Retry-After`), so a load balancer sends
/// nothing to a replica that could only answer 503.
#[tokio::test]
async fn not_ready_while_the_signing_keys_cannot_load() {
    let addr = spawn_with(jwt_server(&closed_port_url("/jwks.json"), true)).await;
    assert_eq!(get(&format!("http://{addr}/healthz")).await.0, 200);
    let resp = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(resp.text().await.unwrap(), "not ready\n");
}

/// Off unless asked for.
#[tokio::test]
async fn health_routes_are_opt_in() {
    let jwks = JwksServer::start(vec![TestKey::rsa("k1").jwk]).await;
    let addr = spawn_with(jwt_server(&jwks.url, false)).await;
    assert_eq!(get(&format!("http://{addr}/healthz")).await.0, 404);
    assert_eq!(get(&format!("http://{addr}/readyz")).await.0, 404);
}

/// The Clerk preset is ready against a live Backend API / Frontend API, and not ready when
/// both point at nothing.
#[tokio::test]
async fn clerk_readiness_follows_clerk() {
    let issuer = start_issuer(IssuerConfig::default()).await;
    let live = clerk_config(&issuer);
    let mcp = start_mcp_with(&live, |b| b, |b| b.health_checks(true)).await;
    assert_eq!(get(&format!("http://{}/readyz", mcp.addr)).await.0, 200);

    let dead = closed_port_url("");
    let down = mcp_auth::clerk::ClerkConfig::from_env_values(
        Some(&issuer.secret_key()),
        Some(&issuer.publishable_key()),
        Some(&dead),
        Some(&dead),
    )
    .unwrap();
    let mcp = start_mcp_with(&down, |b| b, |b| b.health_checks(true)).await;
    assert_eq!(get(&format!("http://{}/readyz", mcp.addr)).await.0, 503);
}
