//! Prometheus metrics: what the library records, under which names, and `GET /metrics`.
//!
//! The library records through the [`metrics`](https://docs.rs/metrics) facade, so they go to
//! whatever recorder the application installed (none: recording costs nothing). With the cargo
//! feature `metrics`, [`install_recorder`] installs the Prometheus one and
//! [`McpServerBuilder::metrics`](crate::McpServerBuilder::metrics) serves it at `GET /metrics`
//! in the Prometheus text format.
//!
//! | name | type | labels | what |
//! | --- | --- | --- | --- |
//! | `mcp_auth_requests_total` | counter | `outcome`: `ok`, `unauthorized`, `forbidden`, `rate_limited`, `unavailable`, `rejected` (other 4xx: bad request, body too large, unknown session); `reason` (for `unauthorized`): `missing_token`, `invalid_token` | every request to the MCP endpoint, by how it ended |
//! | `mcp_auth_request_duration_seconds` | histogram | `outcome` | time from receiving the request to the response head, by outcome |
//! | `mcp_auth_verify_cache_total` | counter | `layer`: `local`, `shared`; `result`: `hit`, `miss` | verified-token cache look-ups ([`CachedVerifier`](crate::CachedVerifier) is `local`; the Redis-shared cache is `shared`). A miss goes to the verifier (JWT check, Backend API) or to the next layer. |
//! | `mcp_auth_backend_api_calls_total` | counter | `status`: the HTTP status (`200`, `404`, `429`, ...), or `error` (no answer: connection failure, timeout) | calls to Clerk's Backend API, each attempt counted |
//! | `mcp_auth_redis_fallbacks_total` | counter | | shared-store (Redis) operations not done because the store failed, timed out or was out, the replica using its own cache, backoff and rate limit instead (feature `redis`; [`FleetStats::fallbacks`](crate::FleetStats)) |
//!
//! All names start with `mcp_auth_`.
//!
//! Under the recorder [`install_recorder`] installs, the figures every request moves (the first
//! three above) are counted by each runtime thread on its own, rather than in the recorder's
//! counters that every thread would write, and [`MetricsHandle::render`] adds them up. The
//! other two, and anything the application records through the facade, go to the recorder.

#[cfg(feature = "metrics")]
mod exposition;
#[cfg(feature = "metrics")]
mod tally;

/// Where [`McpServerBuilder::metrics`](crate::McpServerBuilder::metrics) serves the metrics.
pub const METRICS_PATH: &str = "/metrics";

/// `mcp_auth_requests_total`.
pub const REQUESTS_TOTAL: &str = "mcp_auth_requests_total";
/// `mcp_auth_request_duration_seconds`.
pub const REQUEST_DURATION_SECONDS: &str = "mcp_auth_request_duration_seconds";
/// `mcp_auth_verify_cache_total`.
pub const VERIFY_CACHE_TOTAL: &str = "mcp_auth_verify_cache_total";
/// `mcp_auth_backend_api_calls_total`.
pub const BACKEND_API_CALLS_TOTAL: &str = "mcp_auth_backend_api_calls_total";
/// `mcp_auth_redis_fallbacks_total`.
pub const REDIS_FALLBACKS_TOTAL: &str = "mcp_auth_redis_fallbacks_total";

/// Buckets of [`REQUEST_DURATION_SECONDS`], in seconds: from a cached verification (well under a
/// millisecond) to a slow Backend API call or tool.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Which verified-token cache a look-up went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheLayer {
    /// This process's cache ([`CachedVerifier`](crate::CachedVerifier)).
    Local,
    /// The cache shared by the fleet ([`FleetStore`](crate::FleetStore), e.g. Redis).
    Shared,
}

/// Counts one look-up in a verified-token cache: the hook for every cache layer.
#[inline]
pub(crate) fn verify_cache(layer: CacheLayer, hit: bool) {
    #[cfg(feature = "metrics")]
    {
        let kind = match layer {
            CacheLayer::Local => 0,
            CacheLayer::Shared => 2,
        } + usize::from(hit);
        if tallying() {
            tally::verify_cache(kind);
        } else {
            verify_cache_counter(kind).increment(1);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (layer, hit);
}

/// `mcp_auth_verify_cache_total`'s series for a look-up of kind `kind` (local miss, local hit,
/// shared miss, shared hit), from the recorder in use.
#[cfg(feature = "metrics")]
fn verify_cache_counter(kind: usize) -> ::metrics::Counter {
    let (layer, result) = exposition::verify_cache_labels(kind);
    ::metrics::counter!(VERIFY_CACHE_TOTAL, "layer" => layer, "result" => result)
}

/// Counts one shared-store operation not done (store failed, timed out or out): the replica used
/// its own state instead.
#[inline]
pub(crate) fn redis_fallback() {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(REDIS_FALLBACKS_TOTAL).increment(1);
}

/// Counts one Backend API attempt: `status` is the HTTP status, `None` when no answer came.
#[inline]
pub(crate) fn backend_api_call(status: Option<u16>) {
    #[cfg(feature = "metrics")]
    {
        let status: std::borrow::Cow<'static, str> = match status {
            Some(s) => s.to_string().into(),
            None => "error".into(),
        };
        ::metrics::counter!(BACKEND_API_CALLS_TOTAL, "status" => status).increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = status;
}

/// How many ways a request can end ([`OUTCOMES`]).
#[cfg(feature = "metrics")]
const OUTCOME_COUNT: usize = 8;

/// How a request to the MCP endpoint can end: the `outcome` label, with its `reason` where it
/// has one. The index of an entry is its place in the tallies ([`tally`]).
#[cfg(feature = "metrics")]
const OUTCOMES: [(&str, Option<&str>); OUTCOME_COUNT] = [
    ("ok", None),
    ("unauthorized", Some("missing_token")),
    ("unauthorized", Some("invalid_token")),
    ("forbidden", None),
    ("rate_limited", None),
    ("unavailable", None),
    ("rejected", None),
    ("error", None),
];

/// How a request to the MCP endpoint ended, from its response: an index into [`OUTCOMES`].
#[cfg(feature = "metrics")]
fn outcome(response: &http::Response<axum::body::Body>) -> usize {
    use http::StatusCode;
    let status = response.status();
    match status {
        s if s.is_success() || s.is_informational() || s.is_redirection() => 0,
        StatusCode::UNAUTHORIZED => {
            let invalid = response
                .headers()
                .get(http::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("error=\"invalid_token\""));
            if invalid { 2 } else { 1 }
        }
        StatusCode::FORBIDDEN => 3,
        StatusCode::TOO_MANY_REQUESTS => 4,
        StatusCode::SERVICE_UNAVAILABLE => 5,
        s if s.is_client_error() => 6,
        _ => 7,
    }
}

/// Counts a finished request and its duration.
#[cfg(feature = "metrics")]
pub(crate) fn request(response: &http::Response<axum::body::Body>, started: std::time::Instant) {
    let index = outcome(response);
    // Both `unauthorized` reasons share one histogram (it has no `reason` label).
    let histogram = if index == 2 { 1 } else { index };
    let elapsed = started.elapsed();
    if tallying() {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        tally::request(index, histogram, nanos);
    } else {
        requests_counter(index).increment(1);
        durations_histogram(histogram).record(elapsed.as_secs_f64());
    }
}

/// `mcp_auth_requests_total`'s series for outcome `index`, from the recorder in use.
#[cfg(feature = "metrics")]
fn requests_counter(index: usize) -> ::metrics::Counter {
    match OUTCOMES[index] {
        (outcome, Some(reason)) => {
            ::metrics::counter!(REQUESTS_TOTAL, "outcome" => outcome, "reason" => reason)
        }
        (outcome, None) => ::metrics::counter!(REQUESTS_TOTAL, "outcome" => outcome),
    }
}

/// `mcp_auth_request_duration_seconds`'s series for outcome `index`, from the recorder in use.
#[cfg(feature = "metrics")]
fn durations_histogram(index: usize) -> ::metrics::Histogram {
    ::metrics::histogram!(REQUEST_DURATION_SECONDS, "outcome" => OUTCOMES[index].0)
}

/// Whether the figures every request moves are tallied ([`tally`]) rather than recorded through
/// the `metrics` facade: once [`install_recorder`] makes the Prometheus recorder the process's
/// global recorder, which can never be replaced afterwards, so its [`MetricsHandle`] is the one
/// that renders them. With any other global recorder (or none) they go through the facade.
#[cfg(feature = "metrics")]
static TALLYING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(feature = "metrics")]
#[inline]
fn tallying() -> bool {
    TALLYING.load(std::sync::atomic::Ordering::Relaxed)
}

/// Renders the metrics in the Prometheus text format: the Prometheus recorder's, and the
/// figures this crate counts per thread. From [`install_recorder`]; give it to
/// [`McpServerBuilder::metrics`](crate::McpServerBuilder::metrics) to serve it at
/// `GET /metrics`, or render it yourself (on a port of your own, say).
///
/// Render this handle, not the [`PrometheusHandle`] inside it: that one lacks
/// `mcp_auth_requests_total`, `mcp_auth_request_duration_seconds` and
/// `mcp_auth_verify_cache_total`.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
#[derive(Debug, Clone)]
pub struct MetricsHandle {
    prometheus: PrometheusHandle,
}

#[cfg(feature = "metrics")]
impl MetricsHandle {
    /// Every metric, in the Prometheus text format (version 0.0.4).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let handle = mcp_auth::metrics::install_recorder()?;
    /// let text = handle.render();
    /// # let _ = text; Ok(()) }
    /// ```
    pub fn render(&self) -> String {
        let mut text = self.prometheus.render();
        exposition::write(&tally::Totals::now(), &mut text);
        text
    }

    /// The Prometheus recorder's own handle (for what only it offers; see above for rendering).
    pub fn prometheus(&self) -> &PrometheusHandle {
        &self.prometheus
    }
}

/// Installs the Prometheus recorder as the process's global `metrics` recorder, with this
/// crate's descriptions, and returns the handle that renders it with this crate's per-thread
/// figures (give it to [`McpServerBuilder::metrics`](crate::McpServerBuilder::metrics)). A
/// process has one global recorder: the first call installs it, later calls return the same
/// handle (so every server in the process reports into one registry). Upkeep (draining the
/// samples of histograms recorded through the facade into their buckets) runs every 5 s on a
/// thread of its own, and each time the handle renders.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let handle = mcp_auth::metrics::install_recorder()?;
/// let builder = mcp_auth::McpServer::builder("http://127.0.0.1:8787/mcp").metrics(handle);
/// # let _ = builder; Ok(()) }
/// ```
///
/// # Errors
/// When another global recorder was installed first.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn install_recorder() -> Result<MetricsHandle, InstallError> {
    static INSTALLED: std::sync::Mutex<Option<MetricsHandle>> = std::sync::Mutex::new(None);
    let mut installed = INSTALLED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    // Tallying from before the recorder is in place: a figure recorded through the facade in
    // between would make the recorder write a family of the same name as the tallies'.
    TALLYING.store(true, std::sync::atomic::Ordering::Relaxed);
    let prometheus = match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()
    {
        Ok(prometheus) => prometheus,
        Err(e) => {
            // Another recorder is the process's: the figures go to it.
            TALLYING.store(false, std::sync::atomic::Ordering::Relaxed);
            return Err(InstallError(e.to_string()));
        }
    };
    describe();
    // The exporter keeps every histogram sample until upkeep drains it into the histogram's
    // buckets. `install_recorder` (unlike the exporter's own `install`) starts no upkeep, so
    // with upkeep only at scrape time a server nobody scrapes grew by every sample recorded
    // (about 100 MiB per million requests in scripts/bench.sh, when the request durations were
    // such samples). This crate's durations are tallied now, but an application's own
    // histograms go to this recorder. Drained every 5 s, the exporter's own default period, by
    // a thread: this function may run outside a runtime.
    let upkeep = prometheus.clone();
    std::thread::Builder::new()
        .name("mcp-auth-metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            }
        })
        .map_err(|e| InstallError(format!("cannot start the upkeep thread: {e}")))?;
    let handle = MetricsHandle { prometheus };
    *installed = Some(handle.clone());
    Ok(handle)
}

/// How often histogram samples are drained into their buckets without a scrape.
#[cfg(feature = "metrics")]
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the recorder could not be installed.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
#[derive(Debug, thiserror::Error)]
#[error("cannot install the Prometheus recorder: {0}")]
pub struct InstallError(String);

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use metrics_exporter_prometheus::PrometheusHandle;

/// The `# HELP` lines of the figures recorded through the recorder (the tallied ones have
/// theirs in [`exposition`]).
#[cfg(feature = "metrics")]
fn describe() {
    use ::metrics::describe_counter;
    describe_counter!(
        BACKEND_API_CALLS_TOTAL,
        "Clerk Backend API calls (each attempt), by HTTP status or error."
    );
    describe_counter!(
        REDIS_FALLBACKS_TOTAL,
        "Requests served from the local cache only because Redis was unreachable."
    );
}

/// `GET /metrics` rendering `handle`.
#[cfg(feature = "metrics")]
pub(crate) fn routes(handle: MetricsHandle) -> axum::Router {
    use axum::{response::IntoResponse, routing::get};
    axum::Router::new().route(
        METRICS_PATH,
        get(move || {
            let handle = handle.clone();
            async move {
                (
                    [
                        (http::header::CONTENT_TYPE, "text/plain; version=0.0.4"),
                        (http::header::CACHE_CONTROL, "no-store"),
                    ],
                    handle.render(),
                )
                    .into_response()
            }
        }),
    )
}
