//! `GET /metrics` (feature `metrics`): after a known sequence of requests against a Clerk-
//! protected server (local issuer, opaque tokens) and a JWT-protected one, the Prometheus text
//! counts exactly those requests by outcome (ok, 401 by reason, 403), the local verified-token
//! cache's hits and misses, the Backend API calls by status, and request durations.
//!
//! The recorder is global to the process: every figure is a difference between two scrapes.
//! Requests are counted per thread, and added up by the handle as it renders.
//! Needs the feature (`required-features` in Cargo.toml): `cargo test -p mcp-auth --features
//! metrics --test metrics`.

#[path = "common/clerk.rs"]
mod clerk_common;
mod common;

use clerk_common::*;
use common::*;
use mcp_auth_issuer::{IssuerConfig, MintRequest, TokenFormat};
use serde_json::json;

/// Sum of the samples of `name` whose labels include every `label="value"` in `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    let resp = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    resp.text().await.unwrap()
}

fn delta(before: &str, after: &str, name: &str, labels: &[&str]) -> f64 {
    sample(after, name, labels) - sample(before, name, labels)
}

#[tokio::test]
async fn metrics_count_outcomes_cache_and_backend_calls() {
    let handle = mcp_auth::metrics::install_recorder().unwrap();
    // Installing again gives the same registry, not an error.
    mcp_auth::metrics::install_recorder().unwrap();

    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk = clerk_config(&issuer);
    let mcp = start_mcp_with(&clerk, |b| b, |b| b.metrics(handle.clone())).await;
    let user = issuer.users()[0].id.clone();
    let token = issuer
        .mint_access_token(MintRequest {
            scopes: vec!["profile".into()],
            format: Some(TokenFormat::Opaque),
            resource: Some(mcp.url.clone()),
            ..MintRequest::new(user, "client_1")
        })
        .unwrap();

    let before = scrape(mcp.addr).await;
    // 2 × ok (one cache miss with one Backend API call, then one hit).
    assert_eq!(mcp.call_whoami(&token).await.status(), 200);
    assert_eq!(mcp.call_whoami(&token).await.status(), 200);
    // 401 without a token.
    let resp = mcp
        .client
        .post(&mcp.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // 401 invalid_token: an opaque token Clerk does not know (Backend API 404, cached as a
    // refusal: one miss).
    assert_eq!(mcp.call_whoami("oat_unknown").await.status(), 401);
    let after = scrape(mcp.addr).await;

    let m = |name: &str, labels: &[&str]| delta(&before, &after, name, labels);
    assert_eq!(
        m("mcp_auth_requests_total", &[r#"outcome="ok""#]),
        2.0,
        "{after}"
    );
    assert_eq!(
        m(
            "mcp_auth_requests_total",
            &[r#"outcome="unauthorized""#, r#"reason="missing_token""#]
        ),
        1.0
    );
    assert_eq!(
        m(
            "mcp_auth_requests_total",
            &[r#"outcome="unauthorized""#, r#"reason="invalid_token""#]
        ),
        1.0
    );
    assert_eq!(
        m(
            "mcp_auth_verify_cache_total",
            &[r#"layer="local""#, r#"result="miss""#]
        ),
        2.0
    );
    assert_eq!(
        m(
            "mcp_auth_verify_cache_total",
            &[r#"layer="local""#, r#"result="hit""#]
        ),
        1.0
    );
    assert_eq!(
        m("mcp_auth_backend_api_calls_total", &[r#"status="200""#]),
        1.0
    );
    assert_eq!(
        m("mcp_auth_backend_api_calls_total", &[r#"status="404""#]),
        1.0
    );
    assert_eq!(
        m(
            "mcp_auth_request_duration_seconds_count",
            &[r#"outcome="ok""#]
        ),
        2.0
    );
    assert!(after.contains("# TYPE mcp_auth_request_duration_seconds histogram"));
    assert!(
        after.contains("mcp_auth_request_duration_seconds_bucket{outcome=\"ok\",le=\"0.001\"}")
    );
    assert!(!after.contains(&token), "no token in the metrics");

    // 403: a JWT-protected server (its own `/metrics`, the same registry) with a scoped tool.
    let s = start_server_with(Options::default(), |b| b.metrics(handle.clone())).await;
    let admin_report_without_its_scope = || async {
        let resp = post(
            &s.mcp,
            Some(&s.token("user_alice", "openid")),
            &call("admin-report", json!({})),
            &[],
        )
        .await;
        assert_eq!(resp.status(), 403);
    };
    let before = scrape(s.addr).await;
    admin_report_without_its_scope().await;
    let after = scrape(s.addr).await;
    assert_eq!(
        delta(
            &before,
            &after,
            "mcp_auth_requests_total",
            &[r#"outcome="forbidden""#]
        ),
        1.0
    );

    // The handle rendered directly (as on a metrics port of the server's own) has the figures
    // counted per thread too.
    let before = handle.render();
    admin_report_without_its_scope().await;
    let after = handle.render();
    assert_eq!(
        delta(
            &before,
            &after,
            "mcp_auth_requests_total",
            &[r#"outcome="forbidden""#]
        ),
        1.0
    );
    assert_eq!(
        delta(
            &before,
            &after,
            "mcp_auth_request_duration_seconds_count",
            &[r#"outcome="forbidden""#]
        ),
        1.0
    );
}

/// Histogram samples are drained into their buckets without anyone scraping `/metrics`: the
/// recorder comes with an upkeep thread. Without it, every request's duration stayed in memory
/// until the next scrape (about 100 MiB per million requests for a server nobody scrapes).
#[test]
fn the_recorder_drains_histograms_without_a_scrape() {
    mcp_auth::metrics::install_recorder().unwrap();
    // Linux keeps the first 15 bytes of a thread's name in /proc/self/task/<tid>/comm. A new
    // thread names itself once it runs, so look until it has (or give up after 5 s).
    let upkeep_running = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
            .any(|name| name.trim_end() == "mcp-auth-metric")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !upkeep_running() && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert!(upkeep_running(), "no upkeep thread after install_recorder");
}

/// An MCP path that is the metrics path is refused when the server is built, not left to axum,
/// which panics on a path routed twice.
#[tokio::test]
async fn the_mcp_path_cannot_be_the_metrics_path() {
    let handle = mcp_auth::metrics::install_recorder().unwrap();
    let result = mcp_auth::McpServer::builder("http://127.0.0.1:8787/metrics")
        .metrics(handle)
        .authorization_server("https://issuer.example")
        .verifier(|_: &str| async {
            Err::<mcp_auth::AuthInfo, _>(mcp_auth::VerifyError::invalid_token("no"))
        })
        .build();
    assert!(
        matches!(result, Err(mcp_auth::BuildError::InvalidResource(ref m)) if m.contains("metrics path")),
        "{:?}",
        result.map(|_| ())
    );
}
