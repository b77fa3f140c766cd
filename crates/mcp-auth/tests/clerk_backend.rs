//! The Clerk preset against a scripted fake Backend API: 429 with Retry-After, 5xx, a hanging
//! API, the shared backoff, cached identities during an outage, and where the secret key goes.

#[path = "common/clerk.rs"]
mod clerk_common;
mod common;

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use clerk_common::start_mcp;
use mcp_auth::{
    TokenVerifier, VerifyError,
    clerk::{BackendError, BackendSettings, ClerkConfig},
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const SECRET: &str = "sk_test_fake_backend_secret";

/// One scripted answer.
#[derive(Clone)]
enum Step {
    Ok(Value),
    Status(u16, Option<&'static str>),
    Hang,
}

struct Fake {
    script: Mutex<VecDeque<Step>>,
    fallback: Mutex<Step>,
    hits: AtomicUsize,
    auth_headers: Mutex<Vec<Option<String>>>,
    api_versions: Mutex<Vec<Option<String>>>,
}

impl Fake {
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
    fn set_fallback(&self, step: Step) {
        *self.fallback.lock().unwrap() = step;
    }
}

async fn answer(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    fake.hits.fetch_add(1, Ordering::SeqCst);
    fake.auth_headers.lock().unwrap().push(
        headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned()),
    );
    fake.api_versions.lock().unwrap().push(
        headers
            .get("clerk-api-version")
            .map(|v| v.to_str().unwrap().to_owned()),
    );
    let step = {
        let next = fake.script.lock().unwrap().pop_front();
        next.unwrap_or_else(|| fake.fallback.lock().unwrap().clone())
    };
    match step {
        Step::Ok(v) => Json(v).into_response(),
        Step::Status(code, retry_after) => {
            let mut resp = (
                StatusCode::from_u16(code).unwrap(),
                Json(json!({"errors":[{"code":"x","message":"scripted"}]})),
            )
                .into_response();
            if let Some(ra) = retry_after {
                resp.headers_mut()
                    .insert("retry-after", ra.parse().unwrap());
            }
            resp
        }
        Step::Hang => std::future::pending().await,
    }
}

/// A fake Backend API (and, on the same listener, a Frontend API JWKS route) on port 0.
async fn start_fake(script: Vec<Step>, fallback: Step) -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake {
        script: Mutex::new(script.into()),
        fallback: Mutex::new(fallback),
        hits: AtomicUsize::new(0),
        auth_headers: Mutex::new(Vec::new()),
        api_versions: Mutex::new(Vec::new()),
    });
    // Clerk's SDK calls the verify endpoints without `/v1` (`@clerk/backend` 3.25.0
    // `api/factory.ts:60-99`), users with it: only those paths exist here.
    let app = Router::new()
        .route("/oauth_applications/access_tokens/verify", post(answer))
        .route("/v1/users/{id}", get(answer))
        .route("/.well-known/jwks.json", get(answer))
        .with_state(fake.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), fake)
}

fn token_answer(user: &str) -> Step {
    let exp_ms = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600)
        * 1000;
    Step::Ok(json!({
        "object": "clerk_idp_oauth_access_token", "id": "oat_id", "client_id": "client_1",
        "subject": user, "scopes": ["profile"], "revoked": false, "expired": false,
        "expiration": exp_ms,
    }))
}

fn config(api: &str, frontend: &str, settings: BackendSettings) -> ClerkConfig {
    ClerkConfig::from_env_values(Some(SECRET), None, Some(api), Some(frontend))
        .unwrap()
        .with_backend_settings(settings)
}

fn fast_settings() -> BackendSettings {
    BackendSettings::default()
        .request_timeout(Duration::from_millis(300))
        .deadline(Duration::from_millis(1500))
        .retry_backoff(Duration::from_millis(50))
        .max_attempts(3)
}

/// 429 with `Retry-After: 1`, then 200: the MCP request succeeds after about a second, with
/// exactly two Backend API calls.
#[tokio::test]
async fn rate_limited_then_ok_succeeds_after_retry_after() {
    let (api, fake) = start_fake(
        vec![Step::Status(429, Some("1")), token_answer("user_1")],
        Step::Status(500, None),
    )
    .await;
    let clerk = config(&api, &api, BackendSettings::default());
    // The scripted answers carry no `aud` (the MCP server's port is not known in advance).
    let mcp = start_mcp(&clerk, |b| b.allow_missing_audience()).await;
    let started = Instant::now();
    let me = mcp.whoami("oat_new_token").await;
    let elapsed = started.elapsed();
    assert_eq!(me["user_id"], "user_1");
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(fake.hits(), 2);
    // Every call pins the Backend API version, as Clerk's SDK does.
    let versions = fake.api_versions.lock().unwrap().clone();
    assert!(
        versions
            .iter()
            .all(|v| v.as_deref() == Some(mcp_auth::clerk::CLERK_API_VERSION)),
        "{versions:?}"
    );
    assert_eq!(mcp_auth::clerk::CLERK_API_VERSION, "2026-05-12");
}

/// A Backend API answering 500s: 503 with Retry-After within the deadline, a bounded number of
/// attempts, never 401.
#[tokio::test]
async fn server_errors_become_503_within_the_deadline() {
    let (api, fake) = start_fake(vec![], Step::Status(500, None)).await;
    let clerk = config(&api, &api, fast_settings());
    // The scripted answers carry no `aud` (the MCP server's port is not known in advance).
    let mcp = start_mcp(&clerk, |b| b.allow_missing_audience()).await;
    let started = Instant::now();
    let resp = mcp.call_whoami("oat_any").await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    assert!(started.elapsed() < Duration::from_millis(1500 + 500));
    assert!((1..=3).contains(&fake.hits()), "{} attempts", fake.hits());
}

/// A hanging Backend API: 503 within the configured timeout/deadline.
#[tokio::test]
async fn hanging_backend_becomes_503_within_the_timeout() {
    let (api, _fake) = start_fake(vec![], Step::Hang).await;
    let settings = fast_settings().deadline(Duration::from_millis(800));
    let clerk = config(&api, &api, settings);
    // The scripted answers carry no `aud` (the MCP server's port is not known in advance).
    let mcp = start_mcp(&clerk, |b| b.allow_missing_audience()).await;
    let started = Instant::now();
    let resp = mcp.call_whoami("oat_any").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(800 + 500), "{elapsed:?}");
}

/// A 429 whose Retry-After exceeds the deadline is answered 503 at once, and the shared backoff
/// keeps every other request (other tokens too) off the API until it ends: no retry storm.
#[tokio::test]
async fn rate_limit_backoff_is_shared() {
    let (api, fake) = start_fake(vec![], Step::Status(429, Some("30"))).await;
    let clerk = config(&api, &api, fast_settings());
    let verifier = Arc::new(clerk.verifier("http://127.0.0.1:1/mcp").build().unwrap());
    let started = Instant::now();
    let first = verifier.verify("oat_first").await.unwrap_err();
    assert!(
        matches!(first, VerifyError::Unavailable { retry_after } if retry_after >= Duration::from_secs(29)),
        "{first:?}"
    );
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let v = verifier.clone();
            tokio::spawn(async move { v.verify(&format!("oat_other_{i}")).await })
        })
        .collect();
    for t in tasks {
        assert!(matches!(
            t.await.unwrap(),
            Err(VerifyError::Unavailable { .. })
        ));
    }
    assert_eq!(
        fake.hits(),
        1,
        "requests during the backoff reached the API"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    // Tools share the backoff: users().get fails fast too.
    let err = clerk.users().get("user_1").await.unwrap_err();
    assert!(matches!(err, BackendError::RateLimited { .. }), "{err:?}");
    assert_eq!(fake.hits(), 1);
}

/// During an outage, a cached identity keeps working while an uncached token gets 503.
#[tokio::test]
async fn cached_identities_survive_an_outage() {
    let (api, fake) = start_fake(vec![token_answer("user_cached")], Step::Status(503, None)).await;
    let clerk = config(&api, &api, fast_settings());
    // The scripted answers carry no `aud` (the MCP server's port is not known in advance).
    let mcp = start_mcp(&clerk, |b| b.allow_missing_audience()).await;
    assert_eq!(mcp.whoami("oat_cached").await["user_id"], "user_cached");
    fake.set_fallback(Step::Hang);
    assert_eq!(mcp.whoami("oat_cached").await["user_id"], "user_cached");
    assert_eq!(mcp.call_whoami("oat_uncached").await.status(), 503);
}

/// `users().get` honours 429 + Retry-After too, and authenticates with the secret key.
#[tokio::test]
async fn users_get_retries_after_429() {
    let user = json!({"object":"user","id":"user_1","first_name":"Ada","last_name":"L",
        "email_addresses":[],"public_metadata":{},"created_at":1,"updated_at":2,"brand_new":1});
    let (api, fake) = start_fake(
        vec![Step::Status(429, Some("1")), Step::Ok(user)],
        Step::Status(404, None),
    )
    .await;
    let clerk = config(&api, &api, BackendSettings::default());
    let got = clerk.users().get("user_1").await.unwrap();
    assert_eq!(got.full_name().as_deref(), Some("Ada L"));
    assert_eq!(got.extra["brand_new"], 1);
    assert_eq!(fake.hits(), 2);
    let err = clerk.users().get("user_2").await.unwrap_err();
    assert_eq!(err, BackendError::NotFound);
    let seen = fake.auth_headers.lock().unwrap().clone();
    assert!(
        seen.iter()
            .all(|h| h.as_deref() == Some(&format!("Bearer {SECRET}")))
    );
}

/// The secret key goes to the Backend API only: the Frontend API (JWKS) never sees it, and it
/// appears in no Debug output or error.
#[tokio::test]
async fn secret_key_goes_only_to_the_backend_api() {
    let (backend, backend_fake) = start_fake(vec![], Step::Status(500, None)).await;
    let (frontend, frontend_fake) = start_fake(vec![], Step::Status(500, None)).await;
    let clerk = config(&backend, &frontend, fast_settings());
    let verifier = clerk.verifier("http://127.0.0.1:1/mcp").build().unwrap();
    // {"alg":"RS256","typ":"at+jwt","kid":"k"} . {} . sig: makes the verifier fetch the JWKS.
    let jwt = "eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImsifQ.e30.c2ln";
    let err = verifier.verify(jwt).await.unwrap_err();
    assert!(matches!(err, VerifyError::Unavailable { .. }), "{err:?}");
    let err = verifier.verify("oat_x").await.unwrap_err();
    assert!(!format!("{err:?} {err}").contains(SECRET));
    let err = clerk.users().get("user_x").await.unwrap_err();
    assert!(!format!("{err:?} {err}").contains(SECRET));
    assert!(!format!("{clerk:?} {verifier:?}").contains(SECRET));

    assert!(frontend_fake.hits() >= 1);
    assert!(
        frontend_fake
            .auth_headers
            .lock()
            .unwrap()
            .iter()
            .all(Option::is_none)
    );
    assert!(backend_fake.hits() >= 1);
    assert!(
        backend_fake
            .auth_headers
            .lock()
            .unwrap()
            .iter()
            .all(|h| h.as_deref() == Some(&format!("Bearer {SECRET}")))
    );
}
