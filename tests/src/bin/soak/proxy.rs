//! The fault proxy: sits between the MCP servers and the issuer (as the Clerk Frontend API and
//! Backend API, and as the OIDC server's key endpoint), forwards what it is asked, and injects
//! the faults the schedule names: the key endpoint failing (500, hang, garbage), the Backend
//! API answering 429 with `Retry-After`, 5xx, or hanging. It also withdraws rotated-out keys
//! from the published set once their grace period is over (the issuer itself keeps them a day).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::Value;

/// What the key endpoint does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JwksFault {
    Normal,
    Status500,
    Hang,
    Garbage,
}

/// What the Backend API does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BackendFault {
    Normal,
    /// 429 with `Retry-After: 2`.
    RateLimited,
    /// 500, 502 and 503 in turn.
    ServerError,
    Hang,
}

/// Counters of what the proxy did, for the report.
#[derive(Default)]
pub(crate) struct ProxyCounts {
    pub(crate) jwks_forwarded: AtomicU64,
    pub(crate) jwks_faulted: AtomicU64,
    pub(crate) backend_forwarded: AtomicU64,
    pub(crate) backend_faulted: AtomicU64,
}

pub(crate) struct Proxy {
    issuer: String,
    client: reqwest::Client,
    pub(crate) jwks_fault: Mutex<JwksFault>,
    pub(crate) backend_fault: Mutex<BackendFault>,
    /// The signing key in use, and when each older key was rotated out.
    pub(crate) keys: Mutex<KeyState>,
    pub(crate) grace: Duration,
    pub(crate) counts: ProxyCounts,
    status_turn: AtomicU64,
}

#[derive(Default)]
pub(crate) struct KeyState {
    pub(crate) current: String,
    pub(crate) retired: HashMap<String, Instant>,
}

impl Proxy {
    pub(crate) fn new(issuer: String, grace: Duration) -> Arc<Self> {
        Arc::new(Self {
            issuer,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
            jwks_fault: Mutex::new(JwksFault::Normal),
            backend_fault: Mutex::new(BackendFault::Normal),
            keys: Mutex::new(KeyState::default()),
            grace,
            counts: ProxyCounts::default(),
            status_turn: AtomicU64::new(0),
        })
    }

    /// A new signing key is in use; the previous one stays published for the grace period.
    pub(crate) fn rotated(&self, new_kid: &str) {
        let mut keys = self.keys.lock().unwrap();
        let old = std::mem::replace(&mut keys.current, new_kid.to_owned());
        if !old.is_empty() {
            keys.retired.insert(old, Instant::now());
        }
    }

    pub(crate) fn router(self: &Arc<Self>) -> Router {
        Router::new().fallback(forward).with_state(self.clone())
    }

    /// The issuer's key set without the keys whose grace period is over.
    fn published(&self, body: &[u8]) -> Option<Vec<u8>> {
        let mut set: Value = serde_json::from_slice(body).ok()?;
        let keys = self.keys.lock().unwrap();
        let keep = |kid: &str| {
            kid == keys.current
                || keys
                    .retired
                    .get(kid)
                    .is_some_and(|at| at.elapsed() < self.grace)
        };
        set.get_mut("keys")?
            .as_array_mut()?
            .retain(|k| k.get("kid").and_then(Value::as_str).is_some_and(keep));
        serde_json::to_vec(&set).ok()
    }
}

fn is_jwks(path: &str) -> bool {
    path.ends_with("/jwks.json") || path == "/v1/jwks"
}

fn is_backend(path: &str) -> bool {
    path.ends_with("/verify") || path.starts_with("/v1/users/")
}

async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    if is_jwks(&path) {
        let fault = *proxy.jwks_fault.lock().unwrap();
        if fault != JwksFault::Normal {
            proxy.counts.jwks_faulted.fetch_add(1, Ordering::Relaxed);
        }
        match fault {
            JwksFault::Normal => proxy.counts.jwks_forwarded.fetch_add(1, Ordering::Relaxed),
            JwksFault::Status500 => {
                return (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response();
            }
            // Held until the caller gives up (its future is dropped with the connection).
            JwksFault::Hang => std::future::pending().await,
            JwksFault::Garbage => {
                return (
                    [(header::CONTENT_TYPE, "application/json")],
                    "{\"keys\": [{\"kty\": \"RSA\", \"n\": 12, <html>",
                )
                    .into_response();
            }
        };
    } else if is_backend(&path) {
        let fault = *proxy.backend_fault.lock().unwrap();
        if fault != BackendFault::Normal {
            proxy.counts.backend_faulted.fetch_add(1, Ordering::Relaxed);
        }
        match fault {
            BackendFault::Normal => proxy
                .counts
                .backend_forwarded
                .fetch_add(1, Ordering::Relaxed),
            BackendFault::RateLimited => {
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "2")],
                    r#"{"errors":[{"code":"too_many_requests","message":"Too many requests"}]}"#,
                )
                    .into_response();
            }
            BackendFault::ServerError => {
                let status = match proxy.status_turn.fetch_add(1, Ordering::Relaxed) % 3 {
                    0 => StatusCode::INTERNAL_SERVER_ERROR,
                    1 => StatusCode::BAD_GATEWAY,
                    _ => StatusCode::SERVICE_UNAVAILABLE,
                };
                return (status, "upstream trouble").into_response();
            }
            BackendFault::Hang => std::future::pending().await,
        };
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let url = format!(
        "{}{}",
        proxy.issuer,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut outgoing = proxy.client.request(parts.method, url).body(body);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(v) = parts.headers.get(&name) {
            outgoing = outgoing.header(name, v);
        }
    }
    if let Some(v) = parts.headers.get("clerk-api-version") {
        outgoing = outgoing.header("clerk-api-version", v);
    }
    let Ok(answer) = outgoing.send().await else {
        return (StatusCode::BAD_GATEWAY, "issuer unreachable").into_response();
    };
    let status = answer.status();
    let mut headers = HeaderMap::new();
    for name in [
        header::CONTENT_TYPE,
        header::CACHE_CONTROL,
        header::RETRY_AFTER,
        header::WWW_AUTHENTICATE,
    ] {
        if let Some(v) = answer.headers().get(&name) {
            headers.insert(name, v.clone());
        }
    }
    let Ok(bytes) = answer.bytes().await else {
        return (StatusCode::BAD_GATEWAY, "issuer answer cut").into_response();
    };
    let mut bytes: Vec<u8> = bytes.to_vec();
    if is_jwks(&path)
        && status.is_success()
        && let Some(filtered) = proxy.published(&bytes)
    {
        bytes = filtered;
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    (status, headers, bytes).into_response()
}
