//! Clerk's Backend API rate limit, emulated as a fixed window per instance: once `requests` calls
//! arrived inside the current window, further calls get 429 with `Retry-After` until it ends.

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::backend::clerk_error;
use crate::config::RateLimit;
use crate::state::Shared;

#[derive(Debug)]
pub(crate) struct FixedWindow {
    limit: u32,
    window_ms: u64,
    /// (start of the current window in ms, requests counted in it); `None` before the first call.
    state: Mutex<Option<(u64, u32)>>,
    /// Set by `POST /admin/backend/throttle`: every call is refused until this instant (ms),
    /// as when an instance's limit is spent by other services.
    throttled_until_ms: Mutex<Option<u64>>,
}

impl FixedWindow {
    pub(crate) fn new(config: RateLimit) -> Self {
        Self {
            limit: config.requests,
            window_ms: crate::clock::millis(config.window).max(1),
            state: Mutex::new(None),
            throttled_until_ms: Mutex::new(None),
        }
    }

    /// Refuses every call from `now_ms` for `duration_ms` (429 with `Retry-After`).
    pub(crate) fn throttle(&self, now_ms: u64, duration_ms: u64) -> u64 {
        let until = now_ms.saturating_add(duration_ms);
        *self
            .throttled_until_ms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(until);
        until
    }

    /// `Ok` when the call fits in the window, else the whole seconds until the window ends
    /// (at least 1, as `Retry-After` must be a positive integer to be useful).
    pub(crate) fn check(&self, now_ms: u64) -> Result<(), u64> {
        let throttled = *self
            .throttled_until_ms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(until) = throttled.filter(|until| *until > now_ms) {
            return Err((until - now_ms).div_ceil(1000).max(1));
        }
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let window_ms = self.window_ms;
        let (start, count) = match &mut *state {
            Some((start, count))
                if now_ms >= *start && now_ms < start.saturating_add(window_ms) =>
            {
                (start, count)
            }
            slot => {
                let (start, count) = slot.insert((now_ms, 0));
                (start, count)
            }
        };
        if *count >= self.limit {
            let remaining_ms = start.saturating_add(self.window_ms).saturating_sub(now_ms);
            return Err(remaining_ms.div_ceil(1000).max(1));
        }
        *count += 1;
        Ok(())
    }
}

/// Middleware for the Backend API routes.
pub(crate) async fn enforce(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    match shared.rate_limit.check(shared.clock.now_ms()) {
        Ok(()) => next.run(request).await,
        Err(retry_after) => {
            let mut response = clerk_error(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                &format!(
                    "Rate limit of {} requests per {} ms exceeded; retry after {retry_after} s",
                    shared.rate_limit.limit, shared.rate_limit.window_ms
                ),
                "too_many_requests",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_throttle_refuses_everything_until_it_ends() {
        let w = FixedWindow::new(RateLimit {
            requests: 100,
            window: Duration::from_secs(10),
        });
        w.check(1_000).unwrap();
        assert_eq!(w.throttle(1_000, 2_500), 3_500);
        assert_eq!(w.check(1_000), Err(3));
        assert_eq!(w.check(3_000), Err(1));
        w.check(3_500).unwrap();
    }

    #[test]
    fn window_allows_limit_then_refuses_until_it_ends() {
        let w = FixedWindow::new(RateLimit {
            requests: 3,
            window: Duration::from_secs(10),
        });
        for _ in 0..3 {
            w.check(1_000).unwrap();
        }
        assert_eq!(w.check(1_000), Err(10));
        assert_eq!(w.check(10_500), Err(1));
        w.check(11_000).unwrap();
    }
}
