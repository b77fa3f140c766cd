//! `GET /healthz` and `GET /readyz` for load balancers and orchestrators.
//!
//! - `/healthz` (liveness): 200 whenever the process serves HTTP at all.
//! - `/readyz` (readiness): 200 when the verifier can verify tokens now
//!   ([`TokenVerifier::ready`]: signing keys loaded, or the Backend API / introspection endpoint
//!   answering), else 503 with `Retry-After`, so a load balancer sends no traffic to a replica
//!   that could only answer 503.
//!
//! Both are unauthenticated (probes carry no token) and say nothing an attacker could use: a
//! fixed word, no version, no upstream names, no reason. A probe never triggers more than one
//! upstream check per [`RECHECK_INTERVAL`] however often it is called, so `/readyz` cannot be
//! used to flood the key endpoint or the Backend API.

use std::{sync::Arc, time::Duration};

use axum::{Router, extract::State, response::IntoResponse, routing::get};
use http::{HeaderValue, StatusCode, header};
// Tokio's clock, so tests can move it.
use tokio::time::Instant;

use crate::verify::TokenVerifier;

/// The liveness path.
pub const HEALTHZ_PATH: &str = "/healthz";
/// The readiness path.
pub const READYZ_PATH: &str = "/readyz";

/// Shortest time between two readiness checks of the verifier.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

struct Readiness {
    verifier: Arc<dyn TokenVerifier>,
    /// The last answer and when it was found; one check at a time (others wait for it).
    last: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

impl Readiness {
    async fn ready(&self) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, ready)) = *last
            && at.elapsed() < RECHECK_INTERVAL
        {
            return ready;
        }
        let ready = self.verifier.ready().await;
        *last = Some((Instant::now(), ready));
        ready
    }
}

/// The two routes, for `verifier`.
pub(crate) fn routes(verifier: Arc<dyn TokenVerifier>) -> Router {
    let state = Arc::new(Readiness {
        verifier,
        last: tokio::sync::Mutex::new(None),
    });
    Router::new()
        .route(HEALTHZ_PATH, get(healthz))
        .route(READYZ_PATH, get(readyz))
        .with_state(state)
}

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, [(header::CACHE_CONTROL, NO_STORE)], "ok\n")
}

async fn readyz(State(state): State<Arc<Readiness>>) -> impl IntoResponse {
    if state.ready().await {
        (
            StatusCode::OK,
            [(header::CACHE_CONTROL, NO_STORE)],
            "ready\n",
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (header::CACHE_CONTROL, NO_STORE),
                (header::RETRY_AFTER, HeaderValue::from_static("1")),
            ],
            "not ready\n",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use axum::body::Body;
    use http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::{AuthInfo, VerifyError, verify::ReadyFuture, verify::VerifyFuture};

    struct Switch {
        ready: AtomicBool,
        checks: AtomicUsize,
    }

    impl TokenVerifier for Switch {
        fn verify<'a>(&'a self, _: &'a str) -> VerifyFuture<'a> {
            Box::pin(async { Err::<AuthInfo, _>(VerifyError::invalid_token("no")) })
        }
        fn ready(&self) -> ReadyFuture<'_> {
            self.checks.fetch_add(1, Ordering::SeqCst);
            let ready = self.ready.load(Ordering::SeqCst);
            Box::pin(async move { ready })
        }
    }

    async fn get(router: &Router, path: &str) -> (StatusCode, http::HeaderMap, String) {
        let response = router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    /// Not ready: 503 with `Retry-After` and a fixed word; liveness is 200 regardless.
    #[tokio::test]
    async fn readyz_follows_the_verifier_and_healthz_does_not() {
        let switch = Arc::new(Switch {
            ready: AtomicBool::new(false),
            checks: AtomicUsize::new(0),
        });
        let router = routes(switch.clone());
        let (status, headers, body) = get(&router, READYZ_PATH).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert_eq!(body, "not ready\n");
        let (status, _, body) = get(&router, HEALTHZ_PATH).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
    }

    /// However many probes arrive, the verifier is asked at most once per interval.
    #[tokio::test(start_paused = true)]
    async fn probes_are_rate_limited() {
        let switch = Arc::new(Switch {
            ready: AtomicBool::new(false),
            checks: AtomicUsize::new(0),
        });
        let router = routes(switch.clone());
        for _ in 0..50 {
            assert_eq!(
                get(&router, READYZ_PATH).await.0,
                StatusCode::SERVICE_UNAVAILABLE
            );
        }
        assert_eq!(switch.checks.load(Ordering::SeqCst), 1);
        switch.ready.store(true, Ordering::SeqCst);
        tokio::time::advance(RECHECK_INTERVAL).await;
        assert_eq!(get(&router, READYZ_PATH).await.0, StatusCode::OK);
        assert_eq!(switch.checks.load(Ordering::SeqCst), 2);
    }
}
