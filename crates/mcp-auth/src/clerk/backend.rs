//! The Clerk Backend API client: secret-key authentication, timeouts, and a rate-limit policy
//! that never turns Clerk's 429 into a retry storm.
//!
//! Every call has a **deadline** ([`BackendSettings::deadline`]); each attempt has its own
//! **timeout** ([`BackendSettings::request_timeout`]). A `429` sets a *shared* "back off until"
//! instant from its `Retry-After`: calls made meanwhile (for any token) wait for it when it ends
//! within their deadline and otherwise fail at once with [`BackendError::RateLimited`], without
//! touching the API. Server errors, connection failures and timeouts are retried with a short
//! backoff, at most [`BackendSettings::max_attempts`] attempts in all.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use http::{HeaderMap, StatusCode, header};
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use super::{SecretKey, users::Users};
use crate::FleetStore;

/// The Backend API version pinned in the `Clerk-API-Version` header of every call, the value
/// Clerk's own SDK sends: `@clerk/backend` 3.25.0 `src/constants.ts:6`
/// (`SUPPORTED_BAPI_VERSION`), set on every request in `src/api/request.ts:138`. Change it only
/// together with the answer shapes this crate reads.
pub const CLERK_API_VERSION: &str = "2026-05-12";

/// Timeouts and retry policy of the Backend API client. Defaults suit an MCP server answering
/// interactive clients.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BackendSettings {
    /// Longest a single HTTP attempt may take (connect + answer). Default: 3 seconds.
    pub request_timeout: Duration,
    /// Longest one call may take, retries and `Retry-After` waits included. Past it the call
    /// fails ([`BackendError::Unavailable`] or [`BackendError::RateLimited`], answered 503).
    /// Default: 8 seconds.
    pub deadline: Duration,
    /// Attempts per call, the first included. Default: 3.
    pub max_attempts: u32,
    /// Pause before retrying after a 5xx, a connection failure or a timeout; doubled each time.
    /// Default: 200 ms.
    pub retry_backoff: Duration,
    /// `Retry-After` a 429 without a usable header is assumed to carry. Default: 1 second.
    pub default_retry_after: Duration,
    /// `Retry-After` suggested to MCP clients when Clerk is down or slow. Default: 5 seconds.
    pub unavailable_retry_after: Duration,
    /// Largest answer body accepted, in bytes. Default: 1 MiB.
    pub max_body_bytes: usize,
}

impl Default for BackendSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(3),
            deadline: Duration::from_secs(8),
            max_attempts: 3,
            retry_backoff: Duration::from_millis(200),
            default_retry_after: Duration::from_secs(1),
            unavailable_retry_after: Duration::from_secs(5),
            max_body_bytes: 1024 * 1024,
        }
    }
}

impl BackendSettings {
    /// Sets [`BackendSettings::request_timeout`].
    #[must_use]
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }
    /// Sets [`BackendSettings::deadline`].
    #[must_use]
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }
    /// Sets [`BackendSettings::max_attempts`] (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }
    /// Sets [`BackendSettings::retry_backoff`].
    #[must_use]
    pub fn retry_backoff(mut self, d: Duration) -> Self {
        self.retry_backoff = d;
        self
    }
    /// Sets [`BackendSettings::unavailable_retry_after`].
    #[must_use]
    pub fn unavailable_retry_after(mut self, d: Duration) -> Self {
        self.unavailable_retry_after = d;
        self
    }
}

/// Why a Backend API call failed. Messages never contain the secret key or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The object does not exist (HTTP 404): an unknown user, token, API key, …
    #[error("not found in Clerk")]
    NotFound,
    /// Clerk refused the secret key (HTTP 401/403): check `CLERK_SECRET_KEY`.
    #[error("Clerk refused the secret key (HTTP {status}); check CLERK_SECRET_KEY")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
    },
    /// Clerk refused the request itself (another 4xx), with Clerk's error `code` if any.
    #[error("Clerk refused the request (HTTP {status}{})", code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The first `errors[].code` of Clerk's answer.
        code: Option<String>,
    },
    /// Rate limited (HTTP 429) and the wait does not fit in the call's deadline.
    #[error("Clerk rate limit reached; retry after {} s", retry_after.as_secs())]
    RateLimited {
        /// How long until Clerk accepts calls again.
        retry_after: Duration,
    },
    /// Clerk is down, slow or unreachable (5xx, timeout, connection failure) past every retry.
    #[error("Clerk Backend API unavailable; retry after {} s", retry_after.as_secs())]
    Unavailable {
        /// Suggested wait.
        retry_after: Duration,
    },
    /// The answer was not the JSON expected.
    #[error("unexpected answer from the Clerk Backend API: {0}")]
    InvalidResponse(String),
}

impl BackendError {
    /// How long to wait before retrying, for the transient errors.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } | Self::Unavailable { retry_after } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }
}

/// A client for Clerk's Backend API (`https://api.clerk.com/v1/…`), authenticated with the
/// secret key. Cheap to clone; clones share the HTTP connection pool and the rate-limit state.
///
/// The secret key is sent only to the configured Backend API base URL (redirects are never
/// followed), and never appears in `Debug` output, logs or errors. MCP clients' tokens are never
/// forwarded: the client authenticates as the application.
///
/// ```no_run
/// use mcp_auth::clerk::ClerkConfig;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let clerk = ClerkConfig::new("sk_test_…", "pk_test_Y2xlcmsuZXhhbXBsZS5jb20k")?;
/// let user = clerk.backend_api().users().get("user_2abc").await?;
/// println!("{:?} <{:?}>", user.full_name(), user.primary_email());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BackendApi {
    inner: Arc<Inner>,
}

struct Inner {
    /// Base with a trailing slash, e.g. `https://api.clerk.com/v1/`.
    base: Url,
    /// The same without the version segment, e.g. `https://api.clerk.com/`: Clerk's SDK calls
    /// the three token-verify endpoints there (`skipApiVersionInUrl`, `@clerk/backend` 3.25.0
    /// `src/api/factory.ts:60-99`).
    root: Url,
    secret_key: SecretKey,
    client: reqwest::Client,
    settings: BackendSettings,
    /// Shared across every call: no call is sent before this instant (set by a 429).
    backoff_until: Mutex<Option<Instant>>,
    /// The same backoff shared with the other replicas, and its key (per secret key, as Clerk
    /// counts its limit per instance).
    fleet: Option<(FleetStore, String)>,
}

impl std::fmt::Debug for BackendApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendApi")
            .field("base", &self.inner.base.as_str())
            .field("secret_key", &self.inner.secret_key)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl BackendApi {
    /// A client for the Backend API at `api_url` (e.g. `https://api.clerk.com`; `/v1/` is
    /// appended unless the URL already ends with it).
    pub fn new(api_url: &Url, secret_key: SecretKey, settings: BackendSettings) -> Self {
        let mut base = api_url.clone();
        let mut root = api_url.clone();
        let path = base.path().trim_end_matches('/').to_owned();
        if let Some(unversioned) = path.strip_suffix("/v1") {
            base.set_path(&format!("{path}/"));
            root.set_path(&format!("{unversioned}/"));
        } else {
            base.set_path(&format!("{path}/v1/"));
            root.set_path(&format!("{path}/"));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(settings.request_timeout)
            // Never follow a redirect: the secret key must reach the Backend API and nothing else.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                base,
                root,
                secret_key,
                client,
                settings,
                backoff_until: Mutex::new(None),
                fleet: None,
            }),
        }
    }

    /// The same client whose `429` backoff is shared with every replica through `fleet`: a
    /// `Retry-After` seen by one replica holds back all of them until it passes. The copy has
    /// its own connection pool and local backoff state.
    #[must_use]
    pub fn with_fleet(&self, fleet: FleetStore) -> Self {
        let i = &self.inner;
        let key = fleet.key(&[
            "clerk-backoff",
            &crate::fleet::hash_hex(&[i.secret_key.expose().as_bytes()])[..16],
        ]);
        Self {
            inner: Arc::new(Inner {
                base: i.base.clone(),
                root: i.root.clone(),
                secret_key: i.secret_key.clone(),
                client: i.client.clone(),
                settings: i.settings.clone(),
                backoff_until: Mutex::new(None),
                fleet: Some((fleet, key)),
            }),
        }
    }

    /// The base URL calls go to (ends with `/v1/`).
    #[must_use]
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// The settings in use.
    #[must_use]
    pub fn settings(&self) -> &BackendSettings {
        &self.inner.settings
    }

    /// The users endpoints: `users().get(user_id)`.
    #[must_use]
    pub fn users(&self) -> Users<'_> {
        Users::new(self)
    }

    /// `GET {base}/{segments…}` (each segment percent-encoded), returning the JSON answer.
    pub async fn get_json(&self, segments: &[&str]) -> Result<Value, BackendError> {
        let url = self.url(segments);
        self.call(reqwest::Method::GET, url, None, None).await
    }

    /// `POST {base}/{segments…}` with a JSON body, returning the JSON answer.
    pub async fn post_json(&self, segments: &[&str], body: &Value) -> Result<Value, BackendError> {
        let url = self.url(segments);
        self.call(reqwest::Method::POST, url, Some(body), None)
            .await
    }

    /// `POST {api}/{segments…}` *without* the `/v1` segment, as Clerk's SDK calls the token
    /// verify endpoints, authenticated with `key` instead of the instance secret key when given
    /// (a machine secret key for `m2m_tokens/verify`).
    pub(crate) async fn post_json_unversioned(
        &self,
        segments: &[&str],
        body: &Value,
        key: Option<&SecretKey>,
    ) -> Result<Value, BackendError> {
        let mut url = self.inner.root.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        self.call(reqwest::Method::POST, url, Some(body), key).await
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn backoff_remaining(&self, now: Instant) -> Option<Duration> {
        let until = *self
            .inner
            .backoff_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        until.filter(|u| *u > now).map(|u| u - now)
    }

    fn back_off_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut slot = self
            .inner
            .backoff_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none_or(|current| current < until) {
            *slot = Some(until);
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: Url,
        body: Option<&Value>,
        key: Option<&SecretKey>,
    ) -> Result<Value, BackendError> {
        let s = &self.inner.settings;
        let key = key.unwrap_or(&self.inner.secret_key);
        let deadline = Instant::now() + s.deadline;
        let mut attempts = 0u32;
        let mut backoff = s.retry_backoff;
        loop {
            // Another replica's 429: adopt its backoff before calling (only calls that reach
            // the network pay this look-up; cached tokens never get here).
            if let Some((fleet, key)) = &self.inner.fleet
                && let Some(Some(wait)) = fleet.run(fleet.store().hold_remaining(key)).await
            {
                self.back_off_for(wait);
            }
            // The shared backoff: wait only if it ends in time, else fail without calling.
            let now = Instant::now();
            if let Some(wait) = self.backoff_remaining(now) {
                if now + wait > deadline || attempts >= s.max_attempts {
                    return Err(BackendError::RateLimited {
                        retry_after: round_up(wait),
                    });
                }
                tokio::time::sleep(wait).await;
                continue;
            }
            if attempts >= s.max_attempts {
                return Err(self.unavailable());
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(self.unavailable());
            }
            attempts += 1;
            let mut request = self
                .inner
                .client
                .request(method.clone(), url.clone())
                .bearer_auth(key.expose())
                .header(header::ACCEPT, "application/json")
                .header("Clerk-API-Version", CLERK_API_VERSION);
            if let Some(body) = body {
                request = request.json(body);
            }
            let attempt = async {
                let response = request.send().await?;
                let status = response.status();
                let headers = response.headers().clone();
                let bytes = read_limited(response, s.max_body_bytes).await?;
                Ok::<_, reqwest::Error>((status, headers, bytes))
            };
            let transient =
                match tokio::time::timeout(s.request_timeout.min(remaining), attempt).await {
                    Ok(Ok((status, headers, bytes))) => {
                        crate::metrics::backend_api_call(Some(status.as_u16()));
                        if status.is_success() {
                            return parse_answer(&bytes);
                        }
                        if status == StatusCode::TOO_MANY_REQUESTS {
                            let wait = retry_after(&headers).unwrap_or(s.default_retry_after);
                            tracing::warn!(
                                retry_after_ms = wait.as_millis() as u64,
                                "Clerk Backend API rate limit reached; backing off"
                            );
                            self.back_off_for(wait);
                            if let Some((fleet, key)) = &self.inner.fleet {
                                let _ = fleet.run(fleet.store().hold(key, wait)).await;
                            }
                            continue;
                        }
                        if status.is_server_error() {
                            format!("HTTP {}", status.as_u16())
                        } else {
                            return Err(client_error(status, &bytes));
                        }
                    }
                    Ok(Err(e)) => {
                        crate::metrics::backend_api_call(None);
                        // reqwest errors name the URL, never headers; keep only the kind.
                        if e.is_connect() {
                            "connection failed".to_owned()
                        } else {
                            "request failed".to_owned()
                        }
                    }
                    Err(_) => {
                        crate::metrics::backend_api_call(None);
                        "timed out".to_owned()
                    }
                };
            tracing::warn!(
                attempt = attempts,
                reason = %transient,
                "Clerk Backend API call failed"
            );
            let retry_at = Instant::now() + backoff;
            if attempts >= s.max_attempts || retry_at >= deadline {
                return Err(self.unavailable());
            }
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
        }
    }

    /// Whether the Backend API answers with this secret key now: one `GET /v1/jwks` (not rate
    /// limited by Clerk), no retry, at most the request timeout. A 429 backoff in force counts
    /// as reachable (Clerk answered). For readiness probes.
    pub(crate) async fn reachable(&self) -> bool {
        if self.backoff_remaining(Instant::now()).is_some() {
            return true;
        }
        let request = self
            .inner
            .client
            .get(self.url(&["jwks"]))
            .bearer_auth(self.inner.secret_key.expose())
            .header(header::ACCEPT, "application/json")
            .header("Clerk-API-Version", CLERK_API_VERSION)
            .send();
        match tokio::time::timeout(self.inner.settings.request_timeout, request).await {
            Ok(Ok(response)) => response.status().is_success(),
            _ => false,
        }
    }

    fn unavailable(&self) -> BackendError {
        BackendError::Unavailable {
            retry_after: self.inner.settings.unavailable_retry_after,
        }
    }
}

/// A 2xx answer's body as JSON.
pub(crate) fn parse_answer(bytes: &[u8]) -> Result<Value, BackendError> {
    serde_json::from_slice(bytes).map_err(|_| BackendError::InvalidResponse("not JSON".into()))
}

async fn read_limited(mut response: reqwest::Response, max: usize) -> reqwest::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if out.len() + chunk.len() > max {
            // Too large to be a Clerk object; what was read is enough to fail on parsing.
            break;
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn client_error(status: StatusCode, body: &[u8]) -> BackendError {
    match status {
        StatusCode::NOT_FOUND => BackendError::NotFound,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => BackendError::Unauthorized {
            status: status.as_u16(),
        },
        _ => {
            let code = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
                v.pointer("/errors/0/code")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
            BackendError::Rejected {
                status: status.as_u16(),
                code,
            }
        }
    }
}

/// `Retry-After` as delta-seconds or an HTTP date, capped at 10 minutes.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate(value)?;
        at.duration_since(SystemTime::now()).unwrap_or_default()
    };
    Some(wait.min(Duration::from_secs(600)))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only form servers may send.
fn httpdate(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_ascii_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: i64 = year.parse().ok()?;
    let mut hms = time.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + sec;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Whole seconds, rounded up, so a `Retry-After` header never says 0 for a pending wait.
pub(crate) fn round_up(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            header::RETRY_AFTER,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        // In the past: no wait.
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        assert_eq!(
            httpdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        h.insert(header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn base_url_gets_v1_once() {
        let key = SecretKey::new("sk_test_x").unwrap();
        let api = BackendApi::new(
            &"https://api.clerk.com".parse().unwrap(),
            key.clone(),
            BackendSettings::default(),
        );
        assert_eq!(api.base_url().as_str(), "https://api.clerk.com/v1/");
        let api = BackendApi::new(
            &"http://127.0.0.1:9/v1/".parse().unwrap(),
            key,
            BackendSettings::default(),
        );
        assert_eq!(api.base_url().as_str(), "http://127.0.0.1:9/v1/");
        assert_eq!(api.inner.root.as_str(), "http://127.0.0.1:9/");
        let proxied = BackendApi::new(
            &"https://proxy.example/clerk".parse().unwrap(),
            SecretKey::new("sk_test_x").unwrap(),
            BackendSettings::default(),
        );
        assert_eq!(
            proxied.base_url().as_str(),
            "https://proxy.example/clerk/v1/"
        );
        assert_eq!(proxied.inner.root.as_str(), "https://proxy.example/clerk/");
        assert_eq!(
            api.url(&["users", "user_1/../x?y"]).as_str(),
            "http://127.0.0.1:9/v1/users/user_1%2F..%2Fx%3Fy"
        );
    }

    #[test]
    fn debug_and_errors_hide_the_secret() {
        let api = BackendApi::new(
            &"https://api.clerk.com".parse().unwrap(),
            SecretKey::new("sk_test_hunter2").unwrap(),
            BackendSettings::default(),
        );
        assert!(!format!("{api:?}").contains("hunter2"));
        assert_eq!(
            round_up(Duration::from_millis(1200)),
            Duration::from_secs(2)
        );
        assert_eq!(round_up(Duration::ZERO), Duration::from_secs(1));
    }
}
