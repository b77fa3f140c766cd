//! A bounded cache in front of any verifier.
//!
//! Keys are SHA-256 hashes of the token, never the token. A verified identity lives no longer
//! than its token (nor than [`CacheConfig::max_ttl`], which bounds how late a revocation is
//! noticed for introspected tokens). Refusals are remembered briefly so a bad token sent in a
//! loop costs one verification per [`CacheConfig::negative_ttl`], and concurrent first requests
//! with the same token share one verification. In front of the cache, each runtime thread
//! keeps its last few identities with their tokens (`memo`), so a client sending the same
//! token again costs a byte compare instead of a hash and a look-up.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use moka::{Expiry, future::Cache};
use sha2::{Digest, Sha256};

use super::{TokenVerifier, VerifyError, VerifyFuture, memo};
use crate::AuthInfo;

/// Sizes and lifetimes of a [`CachedVerifier`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Most entries kept; the least recently used go first. Bounds memory whatever the number
    /// of distinct tokens seen. Default: 10,000.
    pub max_entries: u64,
    /// Longest an identity is cached, even when the token lives longer. Default: 5 minutes.
    pub max_ttl: Duration,
    /// How long a refused token is remembered as refused; zero disables it. Default: 5 seconds.
    pub negative_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(5),
        }
    }
}

impl CacheConfig {
    /// Sets [`CacheConfig::max_entries`].
    #[must_use]
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n;
        self
    }
    /// Sets [`CacheConfig::max_ttl`].
    #[must_use]
    pub fn max_ttl(mut self, ttl: Duration) -> Self {
        self.max_ttl = ttl;
        self
    }
    /// Sets [`CacheConfig::negative_ttl`].
    #[must_use]
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }
}

type TokenHash = [u8; 32];

#[derive(Clone)]
enum Entry {
    /// With the instant the entry expires, decided when it is created, so that the per-thread
    /// memo keeps an identity exactly as long as the cache does.
    Valid(AuthInfo, Instant),
    Refused(VerifyError),
}

struct EntryExpiry {
    negative_ttl: Duration,
}

impl Expiry<TokenHash, Entry> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &TokenHash,
        value: &Entry,
        now: Instant,
    ) -> Option<Duration> {
        Some(match value {
            Entry::Valid(_, until) => until.saturating_duration_since(now),
            Entry::Refused(_) => self.negative_ttl,
        })
    }
}

/// When a newly verified identity stops being served: the token's expiry, or sooner when a
/// shared store said so (in milliseconds, so a copy read from the store lives exactly as long as
/// the store's entry), and never later than `max_ttl` from now.
fn valid_until(info: &AuthInfo, max_ttl: Duration) -> Instant {
    let ttl = match bound(
        info.expires_at_unix().map(|s| s.saturating_mul(1000)),
        info.cache_until_ms(),
    ) {
        Some(exp_ms) => {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis();
            let now_ms = u64::try_from(now_ms).unwrap_or(u64::MAX);
            Duration::from_millis(exp_ms.saturating_sub(now_ms)).min(max_ttl)
        }
        None => max_ttl,
    };
    let now = Instant::now();
    // `max_ttl` is configurable: an absurd one saturates at a far instant instead of panicking.
    now.checked_add(ttl)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// The earlier of two optional instants.
fn bound(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Wraps a verifier with a bounded cache of results, keyed by the SHA-256 of the token, with
/// single flight for concurrent first requests and brief caching of refusals ([`CacheConfig`]).
///
/// In front of the cache, each runtime thread remembers the last few identities it served with
/// their tokens (four per thread). A token sent again on the same thread is matched byte for
/// byte, in a time that does not depend on where two tokens differ, and served without hashing
/// it. A remembered identity is served no longer than its cache entry would be, and never after
/// [`clear`](Self::clear). Refusals are never remembered there.
pub struct CachedVerifier<V> {
    inner: Arc<V>,
    cache: Cache<TokenHash, Entry>,
    max_ttl: Duration,
    /// This cache's name in the per-thread memo.
    owner: u64,
    /// Moved on by [`clear`](Self::clear): memoized identities of an earlier generation are
    /// never served.
    generation: AtomicU64,
}

impl<V> std::fmt::Debug for CachedVerifier<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedVerifier")
            .field("entries", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl<V: TokenVerifier> CachedVerifier<V> {
    /// Caches `inner`'s results with the default [`CacheConfig`].
    pub fn new(inner: V) -> Self {
        Self::with_config(inner, CacheConfig::default())
    }

    /// Caches `inner`'s results with `config`.
    pub fn with_config(inner: V, config: CacheConfig) -> Self {
        let cache = Cache::builder()
            .max_capacity(config.max_entries)
            .expire_after(EntryExpiry {
                negative_ttl: config.negative_ttl,
            })
            .build();
        Self {
            inner: Arc::new(inner),
            cache,
            max_ttl: config.max_ttl,
            owner: memo::new_owner(),
            generation: AtomicU64::new(0),
        }
    }

    /// The wrapped verifier.
    pub fn inner(&self) -> &V {
        &self.inner
    }

    /// Number of cached results (approximate; for metrics and tests).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Applies the cache's pending bookkeeping (evictions past the bound, expirations) now
    /// instead of on later requests, so [`entry_count`](Self::entry_count) is exact.
    pub async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks().await;
    }

    /// Forgets every cached result (after a key compromise, say).
    pub fn clear(&self) {
        // In this order: a request that read the old generation can only memoize under it, and
        // one that reads the new generation looks up the cache after it was emptied.
        self.cache.invalidate_all();
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The identity from this thread's memo, if it holds `token` for this cache now.
    fn memoized(&self, token: &str) -> Option<AuthInfo> {
        let generation = self.generation.load(Ordering::Acquire);
        let info = memo::get(self.owner, generation, token.as_bytes())?;
        crate::metrics::verify_cache(crate::metrics::CacheLayer::Local, true);
        Some(info)
    }

    async fn verify_cached(&self, token: &str) -> Result<AuthInfo, VerifyError> {
        if let Some(info) = self.memoized(token) {
            return Ok(info);
        }
        // Read before the cache look-up, for the order `clear` relies on.
        let generation = self.generation.load(Ordering::Acquire);
        let key: TokenHash = Sha256::digest(token.as_bytes()).into();
        // A hit returns the cached entry without running the initialiser; a miss runs it once
        // for all concurrent callers with the same key.
        let inner = &self.inner;
        let max_ttl = self.max_ttl;
        // Set when this caller's initialiser runs: a miss. Callers served from the cache, or
        // by another caller's verification in flight, are hits.
        let mut missed = false;
        let missed_flag = &mut missed;
        let entry = self
            .cache
            .try_get_with(key, async move {
                *missed_flag = true;
                match inner.verify(token).await {
                    Ok(info) => {
                        let until = valid_until(&info, max_ttl);
                        Ok(Entry::Valid(info, until))
                    }
                    Err(VerifyError::Unavailable { retry_after }) => {
                        Err(VerifyError::Unavailable { retry_after })
                    }
                    Err(refused) => Ok(Entry::Refused(refused)),
                }
            })
            .await;
        crate::metrics::verify_cache(crate::metrics::CacheLayer::Local, !missed);
        match entry.map_err(|e: Arc<VerifyError>| (*e).clone())? {
            Entry::Valid(info, until) => {
                memo::put(self.owner, generation, token.as_bytes(), &info, until);
                Ok(info)
            }
            Entry::Refused(e) => Err(e),
        }
    }
}

impl<V: TokenVerifier> TokenVerifier for CachedVerifier<V> {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        Box::pin(self.verify_cached(token))
    }

    fn verify_now(&self, token: &str) -> Option<AuthInfo> {
        self.memoized(token)
    }

    fn ready(&self) -> super::ReadyFuture<'_> {
        self.inner.ready()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::TokenKind;

    struct Counting {
        calls: AtomicUsize,
        exp: u64,
    }

    impl TokenVerifier for Counting {
        fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                // Yield so concurrent callers really overlap.
                tokio::task::yield_now().await;
                match token {
                    "good" => Ok(AuthInfo::builder("u", TokenKind::OAuthAccessToken)
                        .expires_at_unix(self.exp)
                        .build()),
                    "down" => Err(VerifyError::unavailable(Duration::from_secs(1))),
                    _ => Err(VerifyError::invalid_token("nope")),
                }
            })
        }
    }

    fn far_future() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600
    }

    #[tokio::test]
    async fn repeated_token_is_verified_once() {
        let v = CachedVerifier::new(Counting {
            calls: 0.into(),
            exp: far_future(),
        });
        for _ in 0..5 {
            assert_eq!(v.verify("good").await.unwrap().user_id(), "u");
        }
        assert_eq!(v.inner().calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn concurrent_first_requests_share_one_verification() {
        let v = Arc::new(CachedVerifier::new(Counting {
            calls: 0.into(),
            exp: far_future(),
        }));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let v = v.clone();
                tokio::spawn(async move { v.verify("good").await.is_ok() })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap());
        }
        assert_eq!(v.inner().calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn refusals_are_cached_briefly_but_outages_are_not() {
        let v = CachedVerifier::new(Counting {
            calls: 0.into(),
            exp: far_future(),
        });
        for _ in 0..3 {
            assert!(matches!(
                v.verify("bad").await,
                Err(VerifyError::InvalidToken(_))
            ));
        }
        assert_eq!(v.inner().calls.load(Ordering::SeqCst), 1);
        for _ in 0..3 {
            assert!(matches!(
                v.verify("down").await,
                Err(VerifyError::Unavailable { .. })
            ));
        }
        assert_eq!(v.inner().calls.load(Ordering::SeqCst), 4);
    }

    /// A verifier whose identities come as from a shared store that keeps them `bound_ms`
    /// from now, while the token itself lives an hour.
    struct FromStore {
        calls: AtomicUsize,
        bound_ms: u64,
    }

    impl FromStore {
        fn new(bound_ms: u64) -> Self {
            Self {
                calls: 0.into(),
                bound_ms,
            }
        }
    }

    impl TokenVerifier for FromStore {
        fn verify<'a>(&'a self, _: &'a str) -> VerifyFuture<'a> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            let until = u64::try_from(now.as_millis()).unwrap() + self.bound_ms;
            Box::pin(async move {
                Ok(AuthInfo::builder("u", TokenKind::OAuthAccessToken)
                    .expires_at_unix(now.as_secs() + 3600)
                    .build()
                    .with_cache_until_ms(until))
            })
        }
    }

    /// An identity read from a shared store is kept no longer than the store keeps it, even
    /// when its token lives longer.
    #[tokio::test]
    async fn a_shared_bound_shortens_the_local_life() {
        let v = CachedVerifier::new(FromStore::new(0));
        v.verify("t").await.unwrap();
        v.verify("t").await.unwrap();
        assert_eq!(v.inner().calls.load(Ordering::SeqCst), 2);
    }

    /// A repeated token is answered by this thread's memo, without the cache: with the cache
    /// emptied behind the memo's back, the identity is still served without verifying again.
    #[tokio::test]
    async fn a_repeated_token_is_served_from_the_memo() {
        let v = CachedVerifier::new(Counting {
            calls: 0.into(),
            exp: far_future(),
        });
        v.verify("good").await.unwrap();
        v.cache.invalidate_all();
        assert_eq!(v.verify("good").await.unwrap().user_id(), "u");
        assert_eq!(v.inner().calls.load(Ordering::SeqCst), 1);
    }

    /// `clear` forgets memoized identities too.
    #[tokio::test]
    async fn clear_also_forgets_the_memo() {
        let v = CachedVerifier::new(Counting {
            calls: 0.into(),
            exp: far_future(),
        });
        v.verify("good").await.unwrap();
        v.verify("good").await.unwrap();
        v.clear();
        v.verify("good").await.unwrap();
        assert_eq!(v.inner().calls.load(Ordering::SeqCst), 2);
    }

    /// `verify_now` answers only from the memo: nothing before a first verification, nothing
    /// for a refused token, nothing once the cache is cleared, and never by calling the
    /// verifier.
    #[tokio::test]
    async fn verify_now_answers_what_this_thread_verified_and_nothing_else() {
        let v = CachedVerifier::new(Counting {
            calls: 0.into(),
            exp: far_future(),
        });
        assert!(v.verify_now("good").is_none());
        v.verify("good").await.unwrap();
        assert_eq!(v.verify_now("good").unwrap().user_id(), "u");
        assert!(v.verify("bad").await.is_err());
        assert!(v.verify_now("bad").is_none());
        assert!(v.verify_now("goo").is_none());
        assert_eq!(v.inner().calls.load(Ordering::SeqCst), 2);
        v.clear();
        assert!(v.verify_now("good").is_none());
    }

    /// The memo keeps an identity exactly as long as the cache: here a shared store's bound
    /// 300 ms away, far sooner than the token's expiry.
    #[tokio::test]
    async fn the_memo_ends_with_the_cache_entry() {
        let v = CachedVerifier::new(FromStore::new(300));
        v.verify("t").await.unwrap();
        v.verify("t").await.unwrap();
        assert_eq!(v.inner().calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(400)).await;
        v.verify("t").await.unwrap();
        assert_eq!(v.inner().calls.load(Ordering::SeqCst), 2);
    }

    /// Two caches on one thread never answer with each other's identities, and one cache never
    /// answers one token with another's.
    #[tokio::test]
    async fn the_memo_keeps_caches_and_tokens_apart() {
        struct Named(&'static str);
        impl TokenVerifier for Named {
            fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
                let user = format!("{}:{token}", self.0);
                Box::pin(
                    async move { Ok(AuthInfo::builder(user, TokenKind::OAuthAccessToken).build()) },
                )
            }
        }
        let (a, b) = (
            CachedVerifier::new(Named("a")),
            CachedVerifier::new(Named("b")),
        );
        for _ in 0..2 {
            assert_eq!(a.verify("tok1").await.unwrap().user_id(), "a:tok1");
            assert_eq!(b.verify("tok1").await.unwrap().user_id(), "b:tok1");
            assert_eq!(a.verify("tok2").await.unwrap().user_id(), "a:tok2");
        }
    }

    #[tokio::test]
    async fn expired_identities_are_not_served_from_cache() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // Expires now: the entry's lifetime is zero, so every call verifies again.
        let v = CachedVerifier::new(Counting {
            calls: 0.into(),
            exp: now,
        });
        v.verify("good").await.unwrap();
        v.verify("good").await.unwrap();
        assert_eq!(v.inner().calls.load(Ordering::SeqCst), 2);
    }
}
