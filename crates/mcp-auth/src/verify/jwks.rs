//! JSON Web Key Sets: fetched, cached, refreshed without blocking requests.
//!
//! The request path never waits on the network once keys are cached: a stale set keeps
//! serving while one background task refreshes it, a failing endpoint leaves the last good
//! keys in place, and an unknown `kid` (key rotation, or an attacker sending random ones)
//! causes at most one fetch per [`JwksConfig::min_refetch_interval`]; when that fetch fails
//! (or the last one failed and the next is not due yet) the token is answered "unavailable",
//! not "invalid": the cached set cannot say whether its key is real. While no set has been
//! loaded yet (the endpoint was down or hanging when the server started), requests are
//! answered "unavailable" and a fetch is started at most once per
//! [`JwksConfig::cold_refetch_interval`], each in the background: one that hangs never holds
//! requests or later fetches, so the server recovers within that interval of the endpoint
//! answering again. Refetches of a loaded set are single flight: callers that need one while
//! it runs wait for its result.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse},
};
use url::Url;

use super::VerifyError;

/// How a remote key set is cached and refetched. Every default is safe for production.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JwksConfig {
    /// How long a fetched set is fresh when the response has no usable `Cache-Control: max-age`.
    /// Default: 10 minutes.
    pub default_ttl: Duration,
    /// Lower bound for a `max-age` from the server, so a `max-age=0` cannot turn every request
    /// into a fetch. Default: 1 minute.
    pub min_ttl: Duration,
    /// Upper bound for a `max-age`, so rotated-out keys are dropped eventually. Default: 24 hours.
    pub max_ttl: Duration,
    /// Minimum time between two fetches triggered by an unknown `kid` or a failed fetch while
    /// a set is cached. Bounds the fetch rate an attacker can cause with random `kid`s.
    /// Default: 10 seconds.
    pub min_refetch_interval: Duration,
    /// Minimum time between two fetches while no set has ever been loaded, when every request
    /// is answered "unavailable" until one is. Short, so the server serves again within this
    /// long of the endpoint coming back; still a bound, so requests arriving during an outage
    /// cause at most one fetch per interval between them. Default: 500 ms.
    pub cold_refetch_interval: Duration,
    /// Timeout for one fetch. Default: 5 seconds.
    pub fetch_timeout: Duration,
    /// Largest key set accepted, in bytes. Default: 256 KiB.
    pub max_body_bytes: usize,
    /// `Retry-After` sent when no keys could ever be fetched. At least
    /// [`cold_refetch_interval`](Self::cold_refetch_interval), so a client that waits as told
    /// finds the next fetch allowed. Default: 1 second (the smallest `Retry-After` can say).
    pub retry_after: Duration,
}

impl JwksConfig {
    /// Sets [`JwksConfig::min_refetch_interval`].
    #[must_use]
    pub fn min_refetch_interval(mut self, d: Duration) -> Self {
        self.min_refetch_interval = d;
        self
    }
    /// Sets [`JwksConfig::cold_refetch_interval`].
    #[must_use]
    pub fn cold_refetch_interval(mut self, d: Duration) -> Self {
        self.cold_refetch_interval = d;
        self
    }
    /// Sets the TTL bounds and default ([`JwksConfig::default_ttl`], `min_ttl`, `max_ttl`).
    #[must_use]
    pub fn ttl(mut self, default: Duration, min: Duration, max: Duration) -> Self {
        self.default_ttl = default;
        self.min_ttl = min;
        self.max_ttl = max;
        self
    }
    /// Sets [`JwksConfig::fetch_timeout`].
    #[must_use]
    pub fn fetch_timeout(mut self, d: Duration) -> Self {
        self.fetch_timeout = d;
        self
    }
}

impl Default for JwksConfig {
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_secs(600),
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            min_refetch_interval: Duration::from_secs(10),
            cold_refetch_interval: Duration::from_millis(500),
            fetch_timeout: Duration::from_secs(5),
            max_body_bytes: 256 * 1024,
            retry_after: Duration::from_secs(1),
        }
    }
}

/// A JSON Web Key Set: a static set, or one fetched from a URL and cached.
///
/// Cloning shares the cache.
#[derive(Clone)]
pub struct Jwks {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.snapshot();
        f.debug_struct("Jwks")
            .field("url", &self.url().map(Url::as_str))
            .field("kids", &keys.by_kid.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

struct Inner {
    remote: Option<Remote>,
    config: JwksConfig,
    keys: RwLock<Arc<KeySet>>,
    /// Serialises fetches of a loaded set and remembers when the last one started.
    fetch: tokio::sync::Mutex<FetchState>,
    /// When the last cold fetch (nothing loaded yet) started. Cold fetches run in the
    /// background, several at once if earlier ones hang; this spaces their starts.
    cold_last_start: std::sync::Mutex<Option<Instant>>,
    /// Bumped each time a fetch ends, whatever its outcome: what cold callers wait on.
    fetch_done: tokio::sync::watch::Sender<u64>,
}

struct Remote {
    url: Url,
    client: reqwest::Client,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    /// Whether the last attempt failed: then the cached set may be stale and an unknown `kid`
    /// may be a new key, so it is answered "unavailable" until a fetch succeeds.
    last_failed: bool,
    /// When the cached set was last fetched successfully (Unix seconds).
    fetched_at_unix: Option<u64>,
}

/// A token issued more than this long before the cached set was fetched names a key that set
/// would hold if it were real (the slack covers clock skew between issuer and server).
const ISSUED_BEFORE_FETCH_SLACK: u64 = 60;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<JwksKey>>,
    /// Keys without a `kid`; used only when the set holds exactly one key.
    all: Vec<Arc<JwksKey>>,
    loaded: bool,
    fresh_until: Option<Instant>,
}

/// One public key of a [`Jwks`], usable for signature checks.
pub struct JwksKey {
    pub(crate) key: DecodingKey,
    /// The algorithms this key may verify: its `alg` if the JWK names one, else every
    /// asymmetric algorithm of its key type.
    pub(crate) algorithms: &'static [Algorithm],
}

impl JwksKey {
    /// The key, for `jsonwebtoken::decode`.
    #[must_use]
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }

    /// The algorithms this key may verify: the JWK's `alg` if it names one, else every
    /// asymmetric algorithm of its key type. Never a symmetric (`HS*`) algorithm.
    #[must_use]
    pub fn algorithms(&self) -> &'static [Algorithm] {
        self.algorithms
    }
}

impl std::fmt::Debug for JwksKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksKey")
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// Why a key set could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The endpoint could not be reached or answered with an error status.
    #[error("fetching the key set failed: {0}")]
    Fetch(String),
    /// The document is not a JWK Set, is too large, or holds no usable signing key.
    #[error("the key set is invalid: {0}")]
    Invalid(String),
}

impl Jwks {
    /// A key set fetched from `url` (for example `https://clerk.example.com/.well-known/jwks.json`)
    /// with the default [`JwksConfig`]. Nothing is fetched until the first token arrives or
    /// [`Jwks::refresh`] is called.
    #[must_use]
    pub fn from_url(url: Url) -> Self {
        Self::from_url_with(
            url,
            default_client(JwksConfig::default().fetch_timeout),
            JwksConfig::default(),
        )
    }

    /// Like [`Jwks::from_url`] with an explicit configuration.
    #[must_use]
    pub fn from_url_config(url: Url, config: JwksConfig) -> Self {
        let client = default_client(config.fetch_timeout);
        Self::from_url_with(url, client, config)
    }

    /// Like [`Jwks::from_url`] with an explicit HTTP client and configuration.
    #[must_use]
    pub fn from_url_with(url: Url, client: reqwest::Client, config: JwksConfig) -> Self {
        Self::new(Some(Remote { url, client }), config, KeySet::default())
    }

    /// A fixed key set that is never refetched.
    pub fn from_set(set: &JwkSet) -> Result<Self, JwksError> {
        let keys = KeySet::from_jwks(set.keys.iter(), None)?;
        Ok(Self::new(None, JwksConfig::default(), keys))
    }

    /// A fixed key set parsed from a JWK Set JSON document.
    pub fn from_json(json: &[u8]) -> Result<Self, JwksError> {
        let keys = parse_set(json)?;
        Ok(Self::new(
            None,
            JwksConfig::default(),
            KeySet::from_jwks(keys.iter(), None)?,
        ))
    }

    fn new(remote: Option<Remote>, config: JwksConfig, keys: KeySet) -> Self {
        Self {
            inner: Arc::new(Inner {
                remote,
                config,
                keys: RwLock::new(Arc::new(keys)),
                fetch: tokio::sync::Mutex::new(FetchState::default()),
                cold_last_start: std::sync::Mutex::new(None),
                fetch_done: tokio::sync::watch::channel(0).0,
            }),
        }
    }

    /// The URL keys are fetched from, for a remote set.
    #[must_use]
    pub fn url(&self) -> Option<&Url> {
        self.inner.remote.as_ref().map(|r| &r.url)
    }

    /// The key ids currently cached.
    #[must_use]
    pub fn key_ids(&self) -> Vec<String> {
        self.snapshot().by_kid.keys().cloned().collect()
    }

    /// Fetches the set now (at start-up, say, so the first request does not wait).
    /// A static set returns `Ok(())` at once.
    pub async fn refresh(&self) -> Result<(), JwksError> {
        let mut state = self.inner.fetch.lock().await;
        self.fetch_locked(&mut state).await
    }

    /// Whether signing keys are loaded: a static set always is; a remote one once a fetch has
    /// succeeded (a failed refresh later keeps the keys it had).
    #[must_use]
    pub fn is_loaded(&self) -> bool {
        self.inner.remote.is_none() || self.snapshot().loaded
    }

    /// Ready to check signatures: keys loaded, or loaded now by a fetch (at most one at a
    /// time, and none within [`JwksConfig::cold_refetch_interval`] of the last attempt, so
    /// readiness probes cannot flood the key endpoint).
    pub(crate) async fn ready(&self) -> bool {
        if self.is_loaded() {
            return true;
        }
        let Ok(mut state) = self.inner.fetch.try_lock() else {
            // A fetch is under way; report what we hold now.
            return self.is_loaded();
        };
        let recently = state
            .last_attempt
            .is_some_and(|t| t.elapsed() < self.inner.config.cold_refetch_interval);
        if !recently && let Err(error) = self.fetch_locked(&mut state).await {
            tracing::debug!(%error, "JWKS not loaded yet");
        }
        self.is_loaded()
    }

    fn snapshot(&self) -> Arc<KeySet> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc; the Arc is whole.
        self.inner
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The key for a token whose header names `kid` (`None`: the token names no key, which is
    /// unambiguous only when the set holds exactly one key).
    ///
    /// This is the lookup [`JwtVerifier`](crate::JwtVerifier) does for every signature check,
    /// public so other JWTs from the same issuer can be checked with the same rotation handling:
    /// a cached key is returned at once (and a stale set is refreshed in the background); an
    /// unknown `kid` fetches the set again, at most once per
    /// [`JwksConfig::min_refetch_interval`], shared by every caller waiting for it.
    ///
    /// # Errors
    /// `invalid_token` when no key matches `kid` in a set fetched successfully; `unavailable`
    /// (with a retry delay) when the set could not be fetched at all, or when `kid` is unknown
    /// and the last fetch failed (the key may be a new one the endpoint could not tell us about).
    pub async fn key(&self, kid: Option<&str>) -> Result<Arc<JwksKey>, VerifyError> {
        self.key_for_token(kid, None).await
    }

    /// [`Jwks::key`] for a token that says it was issued at `issued_at` (Unix seconds, its
    /// unverified `iat`). That only decides how an unknown `kid` is refused when no fetch is
    /// due: `invalid_token` when the token is older than the cached set (by more than a minute
    /// of clock slack), since its key would be in that set; otherwise `unavailable` until the
    /// next fetch may run, since the key may have been published after the set was fetched (a
    /// rotation that signs with the new key at once).
    pub(crate) async fn key_for_token(
        &self,
        kid: Option<&str>,
        issued_at: Option<u64>,
    ) -> Result<Arc<JwksKey>, VerifyError> {
        let keys = self.snapshot();
        if keys.loaded
            && let Some(key) = keys.find(kid)
        {
            if keys.fresh_until.is_some_and(|t| Instant::now() >= t) {
                self.refresh_in_background();
            }
            return Ok(key);
        }
        if self.inner.remote.is_none() {
            return Err(VerifyError::invalid_token("unknown signing key"));
        }
        if !keys.loaded {
            self.cold_load().await?;
            let keys = self.snapshot();
            if let Some(key) = keys.find(kid) {
                return Ok(key);
            }
        }
        // Unknown kid: at most one fetch per interval (an attacker can make up `kid`s at will),
        // shared by everyone waiting here.
        let mut state = self.inner.fetch.lock().await;
        if let Some(key) = self.snapshot().find(kid) {
            return Ok(key);
        }
        let interval = self.inner.config.min_refetch_interval;
        let since_last = state.last_attempt.map(|t| t.elapsed());
        let fetched_now = since_last.is_none_or(|e| e >= interval);
        if fetched_now {
            if let Err(error) = self.fetch_locked(&mut state).await {
                tracing::warn!(%error, "JWKS fetch failed");
            }
            if let Some(key) = self.snapshot().find(kid) {
                return Ok(key);
            }
        }
        // A set fetched just now without the key settles it; so does a token older than the
        // cached set. Otherwise the key may be newer than what we hold (or the set could not
        // be refreshed): a valid token must not be refused for good, which would send its
        // client back through sign-in. It is "unavailable" until the next fetch may run.
        let older_than_set = issued_at
            .zip(state.fetched_at_unix)
            .is_some_and(|(iat, at)| iat.saturating_add(ISSUED_BEFORE_FETCH_SLACK) < at);
        if !state.last_failed && (fetched_now || older_than_set) {
            return Err(VerifyError::invalid_token("unknown signing key"));
        }
        let next = state
            .last_attempt
            .map(|t| interval.saturating_sub(t.elapsed()))
            .unwrap_or_default();
        // Whole seconds, rounded up: `Retry-After` must not invite a retry before the fetch.
        let next = Duration::from_secs(next.as_secs() + u64::from(next.subsec_nanos() > 0));
        Err(VerifyError::unavailable(
            next.max(self.inner.config.retry_after),
        ))
    }

    /// Nothing loaded yet: starts a background fetch when one is due (at most one start per
    /// `cold_refetch_interval`, whatever earlier ones are doing), and waits for a fetch to end
    /// for at most `retry_after`, starting another when the interval passes meanwhile (a hung
    /// endpoint). `Ok` once a set is loaded; `unavailable` when the fetch waited for failed or
    /// the wait is over.
    async fn cold_load(&self) -> Result<(), VerifyError> {
        let config = &self.inner.config;
        let unavailable = || VerifyError::unavailable(config.retry_after);
        let mut done = self.inner.fetch_done.subscribe();
        let give_up = Instant::now() + config.retry_after.max(config.cold_refetch_interval);
        loop {
            if self.snapshot().loaded {
                return Ok(());
            }
            let next_start = self.start_cold_fetch_if_due();
            let now = Instant::now();
            if now >= give_up {
                return Err(unavailable());
            }
            let wake = next_start.min(give_up).max(now + Duration::from_millis(1));
            match tokio::time::timeout_at(wake.into(), done.changed()).await {
                // A fetch ended: loaded, or that fetch failed (the endpoint answers, wrongly).
                Ok(Ok(())) => {
                    return if self.snapshot().loaded {
                        Ok(())
                    } else {
                        Err(unavailable())
                    };
                }
                Ok(Err(_)) => return Err(unavailable()),
                // Still waiting (a hung fetch): loop, maybe starting the next one.
                Err(_) => {}
            }
        }
    }

    /// Starts a cold fetch in the background if none started within `cold_refetch_interval`;
    /// returns when the next one may start.
    fn start_cold_fetch_if_due(&self) -> Instant {
        let interval = self
            .inner
            .config
            .cold_refetch_interval
            .max(Duration::from_millis(1));
        let mut last = self
            .inner
            .cold_last_start
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if let Some(t) = *last
            && now < t + interval
        {
            return t + interval;
        }
        *last = Some(now);
        let this = self.clone();
        tokio::spawn(async move {
            let result = this.fetch_and_install_inner().await;
            match &result {
                // Counts as the last fetch for unknown `kid`s too, so a burst of them right
                // after the first load does not fetch again. Skipped when a refresh holds the
                // state: at worst one fetch more.
                Ok(()) => {
                    if let Ok(mut state) = this.inner.fetch.try_lock()
                        && state.last_attempt.is_none_or(|t| t < now)
                    {
                        state.last_attempt = Some(now);
                        state.last_failed = false;
                        state.fetched_at_unix = Some(unix_now());
                    }
                }
                Err(error) => tracing::warn!(%error, "JWKS fetch failed"),
            }
            this.inner
                .fetch_done
                .send_modify(|n| *n = n.wrapping_add(1));
        });
        now + interval
    }

    fn refresh_in_background(&self) {
        let this = self.clone();
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        handle.spawn(async move {
            // Someone else is already fetching: nothing to do.
            let Ok(mut state) = this.inner.fetch.try_lock() else {
                return;
            };
            let recently = state
                .last_attempt
                .is_some_and(|t| t.elapsed() < this.inner.config.min_refetch_interval);
            if recently {
                return;
            }
            if let Err(error) = this.fetch_locked(&mut state).await {
                tracing::warn!(%error, "JWKS background refresh failed; keeping the cached keys");
            }
        });
    }

    async fn fetch_locked(&self, state: &mut FetchState) -> Result<(), JwksError> {
        if self.inner.remote.is_none() {
            return Ok(());
        }
        state.last_attempt = Some(Instant::now());
        let result = self.fetch_and_install().await;
        state.last_failed = result.is_err();
        if result.is_ok() {
            state.fetched_at_unix = Some(unix_now());
        }
        result
    }

    /// One fetch; on success the set replaces the cached one. Wakes cold waiters either way.
    async fn fetch_and_install(&self) -> Result<(), JwksError> {
        let result = self.fetch_and_install_inner().await;
        self.inner
            .fetch_done
            .send_modify(|n| *n = n.wrapping_add(1));
        result
    }

    async fn fetch_and_install_inner(&self) -> Result<(), JwksError> {
        let Some(remote) = &self.inner.remote else {
            return Ok(());
        };
        let config = &self.inner.config;
        let (body, max_age) = fetch(remote, config).await?;
        let jwks = parse_set(&body)?;
        let ttl = max_age
            .map(|age| age.clamp(config.min_ttl, config.max_ttl))
            .unwrap_or(config.default_ttl);
        let keys = KeySet::from_jwks(jwks.iter(), Some(Instant::now() + ttl))?;
        tracing::debug!(url = %remote.url, keys = keys.all.len(), ttl_secs = ttl.as_secs(), "JWKS fetched");
        *self
            .inner
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
        Ok(())
    }
}

fn default_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        // Key sets are never behind a redirect we should follow to another host.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

async fn fetch(
    remote: &Remote,
    config: &JwksConfig,
) -> Result<(Vec<u8>, Option<Duration>), JwksError> {
    let mut response = remote
        .client
        .get(remote.url.clone())
        .header(http::header::ACCEPT, "application/json")
        .timeout(config.fetch_timeout)
        .send()
        .await
        .map_err(|e| JwksError::Fetch(e.without_url().to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(JwksError::Fetch(format!("HTTP {status}")));
    }
    let max_age = response
        .headers()
        .get(http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_max_age);
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| JwksError::Fetch(e.without_url().to_string()))?
    {
        if body.len() + chunk.len() > config.max_body_bytes {
            return Err(JwksError::Invalid(
                "larger than the configured limit".into(),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, max_age))
}

/// `max-age=N` from a `Cache-Control` value; `no-store`/`no-cache` count as zero (and are then
/// raised to the configured minimum).
fn parse_max_age(value: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in value.split(',') {
        let directive = directive.trim();
        if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("no-cache")
        {
            return Some(Duration::ZERO);
        }
        if let Some((name, v)) = directive.split_once('=')
            && name.trim().eq_ignore_ascii_case("max-age")
        {
            max_age = v
                .trim()
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    max_age
}

/// Parses a JWK Set leniently: keys this crate cannot use (encryption keys, unknown key types
/// or algorithms) are skipped instead of failing the whole set.
fn parse_set(json: &[u8]) -> Result<Vec<Jwk>, JwksError> {
    #[derive(serde::Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let raw: RawSet = serde_json::from_slice(json)
        .map_err(|_| JwksError::Invalid("not a JWK Set document".into()))?;
    Ok(raw
        .keys
        .into_iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
        .collect())
}

const RSA_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

impl KeySet {
    fn from_jwks<'a>(
        jwks: impl Iterator<Item = &'a Jwk>,
        fresh_until: Option<Instant>,
    ) -> Result<Self, JwksError> {
        let mut set = KeySet {
            loaded: true,
            fresh_until,
            ..KeySet::default()
        };
        for jwk in jwks {
            let Some(key) = verify_key(jwk) else { continue };
            let key = Arc::new(key);
            if let Some(kid) = &jwk.common.key_id {
                set.by_kid.insert(kid.clone(), key.clone());
            }
            set.all.push(key);
        }
        if set.all.is_empty() {
            return Err(JwksError::Invalid("no usable signing key".into()));
        }
        Ok(set)
    }

    fn find(&self, kid: Option<&str>) -> Option<Arc<JwksKey>> {
        match kid {
            Some(kid) => self.by_kid.get(kid).cloned(),
            // No `kid` in the token: unambiguous only when the set has one key.
            None if self.all.len() == 1 => self.all.first().cloned(),
            None => None,
        }
    }
}

/// Turns one JWK into a verification key, or `None` for keys that must never verify a token:
/// symmetric keys, encryption keys, keys whose `alg` does not fit their type.
fn verify_key(jwk: &Jwk) -> Option<JwksKey> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption) | Some(PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let family: &'static [Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => RSA_ALGS,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            jsonwebtoken::jwk::EllipticCurve::P256 => &[Algorithm::ES256],
            jsonwebtoken::jwk::EllipticCurve::P384 => &[Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            jsonwebtoken::jwk::EllipticCurve::Ed25519 => &[Algorithm::EdDSA],
            _ => return None,
        },
        // `oct` keys are shared secrets: accepting them would let anyone holding the public
        // set forge tokens (the HS256-with-public-key attack).
        AlgorithmParameters::OctetKey(_) => return None,
        _ => return None,
    };
    let algorithms = match jwk.common.key_algorithm {
        None => family,
        Some(alg) => {
            let alg = key_algorithm(alg)?;
            let pos = family.iter().position(|a| *a == alg)?;
            &family[pos..=pos]
        }
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(JwksKey { key, algorithms })
}

fn key_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_parsing() {
        assert_eq!(
            parse_max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(parse_max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(parse_max_age("public"), None);
        assert_eq!(parse_max_age("max-age=abc"), None);
    }

    #[test]
    fn symmetric_and_encryption_keys_are_skipped() {
        let json = br#"{"keys":[
            {"kty":"oct","k":"c2VjcmV0","kid":"hmac"},
            {"kty":"RSA","use":"enc","kid":"enc","n":"sXch","e":"AQAB"},
            {"kty":"EC","crv":"P-256","kid":"ec","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty":"weird","kid":"w"}
        ]}"#;
        let set = Jwks::from_json(json).unwrap();
        let mut kids = set.key_ids();
        kids.sort();
        assert_eq!(kids, vec!["ec"]);
    }

    #[test]
    fn alg_must_fit_the_key_type() {
        // An RSA key that claims ES256 is unusable.
        let jwk: Jwk =
            serde_json::from_str(r#"{"kty":"RSA","alg":"ES256","kid":"x","n":"sXch","e":"AQAB"}"#)
                .unwrap();
        assert!(verify_key(&jwk).is_none());
    }

    const EC_KEY: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0""#;

    #[tokio::test]
    async fn key_finds_by_kid_and_refuses_unknown_or_ambiguous_ids() {
        let json =
            format!(r#"{{"keys":[{EC_KEY},"kid":"a","alg":"ES256"}},{EC_KEY},"kid":"b"}}]}}"#);
        let set = Jwks::from_json(json.as_bytes()).unwrap();
        let a = set.key(Some("a")).await.unwrap();
        assert_eq!(a.algorithms(), &[Algorithm::ES256]);
        // No `alg` in the JWK: every algorithm of its key type, and never HS*.
        let b = set.key(Some("b")).await.unwrap();
        assert!(b.algorithms().contains(&Algorithm::ES256));
        assert!(!b.algorithms().contains(&Algorithm::HS256));

        let unknown = set.key(Some("c")).await.unwrap_err();
        assert_eq!(
            unknown.to_string(),
            VerifyError::invalid_token("unknown signing key").to_string()
        );
        // Two keys and a token that names none: ambiguous, refused.
        assert!(set.key(None).await.is_err());
        let single = Jwks::from_json(format!(r#"{{"keys":[{EC_KEY}}}]}}"#).as_bytes()).unwrap();
        assert!(single.key(None).await.is_ok());
    }

    #[test]
    fn empty_or_garbage_sets_are_refused() {
        assert!(Jwks::from_json(b"{\"keys\":[]}").is_err());
        assert!(Jwks::from_json(b"[]").is_err());
    }
}
