//! Per-identity rate limits on MCP calls: at most N requests per window for each verified
//! caller (the user; the machine for machine tokens; the organization for an organization's API
//! key), checked after authentication and before anything else runs. A refused call gets 429
//! with `Retry-After` and a JSON body, and the tool does not run.
//!
//! The window is fixed and starts at a caller's first request. In one process the counts live
//! in memory; with a [`FleetStore`] they live in the shared store (one atomic increment per
//! request), so the limit holds across every replica. If the store fails, each replica counts
//! on its own until it is back: a request is never refused because the store is down.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use moka::sync::Cache;
use tokio::time::Instant;

use crate::{AuthInfo, FleetStore};

/// A per-identity rate limit: at most [`requests`](Self::requests) MCP requests per
/// [`window`](Self::window) for each verified caller. Off unless configured on the builder
/// ([`McpServerBuilder::rate_limit_per_user`](crate::McpServerBuilder::rate_limit_per_user)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimit {
    /// Requests allowed per window (at least 1).
    pub requests: u32,
    /// Length of the window (at least one millisecond).
    pub window: Duration,
}

impl RateLimit {
    /// `requests` per `window`; zero values are raised to the smallest meaningful ones.
    #[must_use]
    pub fn new(requests: u32, window: Duration) -> Self {
        Self {
            requests: requests.max(1),
            window: window.max(Duration::from_millis(1)),
        }
    }
}

/// Most callers whose local window is remembered at once; older ones are forgotten (which can
/// only let a forgotten caller start a fresh window early).
const MAX_LOCAL_CALLERS: u64 = 100_000;

struct Window {
    started: Instant,
    count: u32,
}

/// The limiter the pipeline calls.
pub(crate) struct RateLimiter {
    limit: RateLimit,
    local: Cache<String, Arc<Mutex<Window>>>,
    fleet: Option<FleetStore>,
}

impl RateLimiter {
    pub(crate) fn new(limit: RateLimit, fleet: Option<FleetStore>) -> Self {
        Self {
            limit,
            local: Cache::builder()
                .max_capacity(MAX_LOCAL_CALLERS)
                .time_to_idle(limit.window)
                .build(),
            fleet,
        }
    }

    /// `Err(retry_after)` when `caller` has used up its window.
    pub(crate) async fn check(&self, caller: &AuthInfo) -> Result<(), Duration> {
        let id = identity(caller);
        if let Some(fleet) = &self.fleet {
            let key = fleet.key(&[
                "ratelimit",
                &crate::fleet::hash_hex(&[id.0.as_bytes(), id.1.as_bytes()]),
            ]);
            if let Some((count, left)) = fleet
                .run(fleet.store().count(&key, self.limit.window))
                .await
            {
                return if count > u64::from(self.limit.requests) {
                    Err(left)
                } else {
                    Ok(())
                };
            }
        }
        self.check_local(format!("{}\0{}", id.0, id.1))
    }

    fn check_local(&self, key: String) -> Result<(), Duration> {
        let window = self.local.get_with(key, || {
            Arc::new(Mutex::new(Window {
                started: Instant::now(),
                count: 0,
            }))
        });
        let mut w = window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if now >= w.started + self.limit.window {
            w.started = now;
            w.count = 0;
        }
        if w.count >= self.limit.requests {
            return Err((w.started + self.limit.window).saturating_duration_since(now));
        }
        w.count += 1;
        Ok(())
    }
}

/// Whom a request counts against: (issuer, the caller's id).
fn identity(caller: &AuthInfo) -> (&str, &str) {
    let id = if !caller.user_id().is_empty() {
        caller.user_id()
    } else if let Some(machine) = caller.machine_id() {
        machine
    } else if let Some(org) = caller.organization_id() {
        org
    } else {
        caller.subject()
    };
    (caller.issuer().unwrap_or(""), id)
}

/// 429 with `Retry-After` (whole seconds, rounded up, at least 1) and a JSON body.
pub(crate) fn too_many_requests(retry_after: Duration) -> Response {
    let secs = (retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1);
    let body = serde_json::json!({
        "error": "rate_limited",
        "error_description": "too many requests for this caller; retry later",
        "retry_after": secs,
    });
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::{TokenKind, fleet::memory::MemoryStore};

    fn user(id: &str) -> AuthInfo {
        AuthInfo::builder(id, TokenKind::OAuthAccessToken)
            .issuer("https://issuer.example")
            .build()
    }

    #[tokio::test]
    async fn each_user_gets_n_per_window() {
        let limiter = RateLimiter::new(RateLimit::new(3, Duration::from_secs(60)), None);
        for _ in 0..3 {
            limiter.check(&user("user_a")).await.unwrap();
        }
        let wait = limiter.check(&user("user_a")).await.unwrap_err();
        assert!(wait > Duration::from_secs(58) && wait <= Duration::from_secs(60));
        limiter.check(&user("user_b")).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_ends() {
        let limiter = RateLimiter::new(RateLimit::new(1, Duration::from_secs(10)), None);
        limiter.check(&user("u")).await.unwrap();
        limiter.check(&user("u")).await.unwrap_err();
        tokio::time::advance(Duration::from_secs(10)).await;
        limiter.check(&user("u")).await.unwrap();
    }

    /// Machines count as themselves, not as one anonymous "no user".
    #[tokio::test]
    async fn machines_are_limited_per_machine() {
        let limiter = RateLimiter::new(RateLimit::new(1, Duration::from_secs(60)), None);
        let machine = |id: &str| {
            AuthInfo::builder(id, TokenKind::MachineToken)
                .subject_is_machine()
                .build()
        };
        limiter.check(&machine("mch_1")).await.unwrap();
        limiter.check(&machine("mch_2")).await.unwrap();
        limiter.check(&machine("mch_1")).await.unwrap_err();
    }

    /// Two "replicas" on one store share the count; with the store down each counts alone.
    #[tokio::test]
    async fn the_count_is_shared_and_falls_back_locally() {
        let store = Arc::new(MemoryStore::default());
        let limit = RateLimit::new(4, Duration::from_secs(60));
        let a = RateLimiter::new(limit, Some(FleetStore::new(store.clone())));
        let b = RateLimiter::new(limit, Some(FleetStore::new(store.clone())));
        for i in 0..4 {
            let r = if i % 2 == 0 { &a } else { &b };
            r.check(&user("u")).await.unwrap();
        }
        a.check(&user("u")).await.unwrap_err();
        b.check(&user("u")).await.unwrap_err();
        store.down.store(true, Ordering::SeqCst);
        // Never refused because the store is down: the local window starts from zero.
        a.check(&user("u")).await.unwrap();
    }

    #[test]
    fn the_refusal_says_when_to_retry() {
        let r = too_many_requests(Duration::from_millis(1500));
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }
}
