//! What the replicas of a fleet share: the [`SharedStore`] trait (implemented on Redis by
//! `redis::RedisStore`, feature `redis`) and [`FleetStore`], the handle the
//! framework uses, which adds a key prefix, a per-operation timeout and outage handling.
//!
//! The shared store is an optimisation, never a dependency of correctness: every operation has
//! a short timeout, and an operation that fails or times out makes the caller do what a lone
//! replica does (its local cache, its local single flight, its local backoff, its local rate
//! limit). The first failure of an outage is logged once at `warn`; while the store is out,
//! at most one operation per [`FleetStore::probe_interval`] tries it again, so requests do not
//! each pay the timeout; the first success after an outage is logged at `info` and the replica
//! uses the store again.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

/// A boxed, `Send` future, the return type of every [`SharedStore`] operation.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why a shared-store operation failed. The framework never fails a request for it: it falls
/// back to the replica's own state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached or refused the command (the message names the kind of
    /// failure, never a key's value).
    #[error("shared store unavailable: {0}")]
    Unavailable(String),
    /// The operation took longer than [`FleetStore::op_timeout`].
    #[error("shared store operation timed out")]
    TimedOut,
    /// The store answered something this crate did not write.
    #[error("unexpected answer from the shared store")]
    InvalidAnswer,
}

/// The operations the framework needs from a store shared by every replica: plain values with
/// a lifetime, a lock for single flight, a "hold" (a key whose remaining lifetime is a wait every
/// replica observes) and a counter per window. Keys arrive fully prefixed; values are opaque
/// bytes the framework wrote.
///
/// Implementations must be atomic per operation (several replicas call them at once) and
/// should not retry internally for long: [`FleetStore`] puts its own timeout around each call.
pub trait SharedStore: Send + Sync + 'static {
    /// The value at `key`, or `None` when absent or expired.
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;

    /// Stores `value` at `key` for `ttl` (at least one millisecond).
    fn set<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()>;

    /// Creates `key` holding `owner` for `ttl` unless it exists (Redis `SET NX PX`); `true` when
    /// this call created it.
    fn try_lock<'a>(&'a self, key: &'a str, owner: &'a str, ttl: Duration)
    -> StoreFuture<'a, bool>;

    /// Deletes `key` if it still holds `owner` (a lock that expired and was taken by another
    /// caller is left alone).
    fn unlock<'a>(&'a self, key: &'a str, owner: &'a str) -> StoreFuture<'a, ()>;

    /// Makes `key` live at least `ttl` from now: created if absent, extended if it would end
    /// sooner, left alone if it ends later.
    fn hold<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, ()>;

    /// How long `key` still lives, or `None` when absent.
    fn hold_remaining<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>>;

    /// Adds one to the counter at `key`, which starts at zero and lives `window` from its first
    /// increment; returns the new count and the time left in the window.
    fn count<'a>(&'a self, key: &'a str, window: Duration) -> StoreFuture<'a, (u64, Duration)>;
}

impl<S: SharedStore + ?Sized> SharedStore for Arc<S> {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        (**self).get(key)
    }
    fn set<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()> {
        (**self).set(key, value, ttl)
    }
    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        (**self).try_lock(key, owner, ttl)
    }
    fn unlock<'a>(&'a self, key: &'a str, owner: &'a str) -> StoreFuture<'a, ()> {
        (**self).unlock(key, owner)
    }
    fn hold<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, ()> {
        (**self).hold(key, ttl)
    }
    fn hold_remaining<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        (**self).hold_remaining(key)
    }
    fn count<'a>(&'a self, key: &'a str, window: Duration) -> StoreFuture<'a, (u64, Duration)> {
        (**self).count(key, window)
    }
}

/// Default for [`FleetStore::key_prefix`].
pub const DEFAULT_KEY_PREFIX: &str = "mcp-auth:";

/// A [`SharedStore`] with the fleet's policy around it: every key under one prefix, a short
/// timeout on every operation, and local fallback while the store is out. Cheap to clone; clones
/// share the outage state and the counters.
///
/// The shared store is an optimisation, never a dependency of correctness: an operation that
/// fails or times out makes the caller do what a lone replica does (its local cache, single
/// flight, backoff and rate limit). The first failure of an outage is logged once at `warn`;
/// while the store is out, at most one operation per
/// [`probe_interval`](Self::probe_interval) tries it again, so requests do not each pay the
/// timeout; the first success after an outage is logged at `info` and the replica uses the
/// store again.
///
/// ```no_run
/// # #[cfg(feature = "redis")]
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use mcp_auth::{FleetStore, redis::RedisStore};
///
/// let fleet = FleetStore::new(RedisStore::open("redis://127.0.0.1:6379")?)
///     .key_prefix("billing-mcp:")
///     .op_timeout(Duration::from_millis(100));
/// # let _ = fleet; Ok(()) }
/// # #[cfg(not(feature = "redis"))] fn main() {}
/// ```
#[derive(Clone)]
pub struct FleetStore {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn SharedStore>,
    prefix: String,
    op_timeout: Duration,
    probe_interval: Duration,
    /// `Some(next probe)` while the store is out.
    outage: Mutex<Option<Instant>>,
    stats: Counters,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    fallbacks: AtomicU64,
    outages: AtomicU64,
}

/// Counters of a [`FleetStore`] since it was created (for metrics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FleetStats {
    /// Shared verification results found in the store (after a local miss).
    pub shared_hits: u64,
    /// Shared verification look-ups that found nothing.
    pub shared_misses: u64,
    /// Operations not done because the store failed, timed out or was out (the replica used its
    /// own state instead).
    pub fallbacks: u64,
    /// Outages seen (each logged once).
    pub outages: u64,
    /// Whether the store is currently considered reachable.
    pub available: bool,
}

impl std::fmt::Debug for FleetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetStore")
            .field("prefix", &self.inner.prefix)
            .field("op_timeout", &self.inner.op_timeout)
            .field("probe_interval", &self.inner.probe_interval)
            .finish_non_exhaustive()
    }
}

impl FleetStore {
    /// Wraps `store` with the defaults: key prefix [`DEFAULT_KEY_PREFIX`], operation timeout
    /// 100 ms, probe interval 1 s.
    pub fn new(store: impl SharedStore) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: Arc::new(store),
                prefix: DEFAULT_KEY_PREFIX.to_owned(),
                op_timeout: Duration::from_millis(100),
                probe_interval: Duration::from_secs(1),
                outage: Mutex::new(None),
                stats: Counters::default(),
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            store: shared.store.clone(),
            prefix: shared.prefix.clone(),
            op_timeout: shared.op_timeout,
            probe_interval: shared.probe_interval,
            outage: Mutex::new(None),
            stats: Counters::default(),
        });
        f(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Prefix of every key this crate writes. Give each deployment sharing one Redis its own
    /// prefix. Default: [`DEFAULT_KEY_PREFIX`] (`mcp-auth:`).
    #[must_use]
    pub fn key_prefix(self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        self.with(|i| i.prefix = prefix)
    }

    /// Longest one store operation may take before the replica goes on without it. Default:
    /// 100 ms (a Redis on the same network answers in well under a millisecond).
    #[must_use]
    pub fn op_timeout(self, timeout: Duration) -> Self {
        self.with(|i| i.op_timeout = timeout)
    }

    /// While the store is out, how often one operation tries it again. Default: 1 s.
    #[must_use]
    pub fn probe_interval(self, interval: Duration) -> Self {
        self.with(|i| i.probe_interval = interval)
    }

    /// The counters since creation.
    #[must_use]
    pub fn stats(&self) -> FleetStats {
        let s = &self.inner.stats;
        FleetStats {
            shared_hits: s.hits.load(Ordering::Relaxed),
            shared_misses: s.misses.load(Ordering::Relaxed),
            fallbacks: s.fallbacks.load(Ordering::Relaxed),
            outages: s.outages.load(Ordering::Relaxed),
            available: self.lock_outage().is_none(),
        }
    }

    pub(crate) fn store(&self) -> &dyn SharedStore {
        &*self.inner.store
    }

    /// `prefix` + `parts` joined by `:`.
    pub(crate) fn key(&self, parts: &[&str]) -> String {
        let mut key = self.inner.prefix.clone();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                key.push(':');
            }
            key.push_str(part);
        }
        key
    }

    pub(crate) fn hit(&self) {
        self.inner.stats.hits.fetch_add(1, Ordering::Relaxed);
        crate::metrics::verify_cache(crate::metrics::CacheLayer::Shared, true);
    }

    pub(crate) fn miss(&self) {
        self.inner.stats.misses.fetch_add(1, Ordering::Relaxed);
        crate::metrics::verify_cache(crate::metrics::CacheLayer::Shared, false);
    }

    fn fallback(&self) {
        self.inner.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
        crate::metrics::redis_fallback();
    }

    fn lock_outage(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.inner
            .outage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs one store operation under the policy: `None` when the store is out (and not due
    /// for a probe), failed or timed out; the caller then uses its own state.
    pub(crate) async fn run<'a, T>(&self, op: StoreFuture<'a, T>) -> Option<T> {
        {
            let mut outage = self.lock_outage();
            if let Some(next_probe) = *outage {
                let now = Instant::now();
                if now < next_probe {
                    drop(outage);
                    self.fallback();
                    return None;
                }
                // This call is the probe; the others keep falling back until it answers.
                *outage = Some(now + self.inner.probe_interval);
            }
        }
        let result = match tokio::time::timeout(self.inner.op_timeout, op).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::TimedOut),
        };
        match result {
            Ok(value) => {
                let was_out = self.lock_outage().take().is_some();
                if was_out {
                    tracing::info!("shared store reachable again; using it for every replica");
                }
                Some(value)
            }
            Err(error) => {
                self.fallback();
                let mut outage = self.lock_outage();
                if outage.is_none() {
                    self.inner.stats.outages.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        %error,
                        "shared store unavailable; this replica serves from its own cache and \
                         limits until it is back (logged once per outage)"
                    );
                }
                *outage = Some(Instant::now() + self.inner.probe_interval);
                None
            }
        }
    }
}

/// Lowercase hex of SHA-256 of `parts` separated by NUL: how a token (or an identity) becomes a
/// key without ever being one.
pub(crate) fn hash_hex(parts: &[&[u8]]) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write as _;
    let mut h = Sha256::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update([0u8]);
        }
        h.update(p);
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(64);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A unique lock owner for this process: process id, a start time and a counter.
pub(crate) fn lock_owner() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// An in-memory [`SharedStore`] for unit tests: the semantics of the Redis one, plus a switch
/// that makes every operation fail and a count of operations.
#[cfg(test)]
pub(crate) mod memory {
    use std::collections::HashMap;
    use std::sync::atomic::AtomicBool;

    use super::*;

    #[derive(Default)]
    pub(crate) struct MemoryStore {
        map: Mutex<HashMap<String, (Vec<u8>, std::time::Instant)>>,
        pub(crate) down: AtomicBool,
        pub(crate) ops: AtomicU64,
    }

    impl MemoryStore {
        fn check(&self) -> Result<(), StoreError> {
            self.ops.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                Err(StoreError::Unavailable("connection refused".into()))
            } else {
                Ok(())
            }
        }
        fn live(&self, key: &str) -> Option<(Vec<u8>, std::time::Instant)> {
            let mut map = self.map.lock().unwrap();
            match map.get(key) {
                Some((_, exp)) if *exp <= std::time::Instant::now() => {
                    map.remove(key);
                    None
                }
                other => other.cloned(),
            }
        }
    }

    impl SharedStore for MemoryStore {
        fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
            Box::pin(async move {
                self.check()?;
                Ok(self.live(key).map(|(v, _)| v))
            })
        }
        fn set<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                self.check()?;
                self.map.lock().unwrap().insert(
                    key.to_owned(),
                    (value.to_vec(), std::time::Instant::now() + ttl),
                );
                Ok(())
            })
        }
        fn try_lock<'a>(
            &'a self,
            key: &'a str,
            owner: &'a str,
            ttl: Duration,
        ) -> StoreFuture<'a, bool> {
            Box::pin(async move {
                self.check()?;
                if self.live(key).is_some() {
                    return Ok(false);
                }
                self.map.lock().unwrap().insert(
                    key.to_owned(),
                    (owner.as_bytes().to_vec(), std::time::Instant::now() + ttl),
                );
                Ok(true)
            })
        }
        fn unlock<'a>(&'a self, key: &'a str, owner: &'a str) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                self.check()?;
                let mut map = self.map.lock().unwrap();
                if map.get(key).is_some_and(|(v, _)| v == owner.as_bytes()) {
                    map.remove(key);
                }
                Ok(())
            })
        }
        fn hold<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                self.check()?;
                let until = std::time::Instant::now() + ttl;
                let current = self.live(key);
                if current.as_ref().is_none_or(|(_, exp)| *exp < until) {
                    self.map
                        .lock()
                        .unwrap()
                        .insert(key.to_owned(), (b"1".to_vec(), until));
                }
                Ok(())
            })
        }
        fn hold_remaining<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
            Box::pin(async move {
                self.check()?;
                Ok(self
                    .live(key)
                    .map(|(_, exp)| exp.saturating_duration_since(std::time::Instant::now())))
            })
        }
        fn count<'a>(&'a self, key: &'a str, window: Duration) -> StoreFuture<'a, (u64, Duration)> {
            Box::pin(async move {
                self.check()?;
                let now = std::time::Instant::now();
                let (n, exp) = match self.live(key) {
                    Some((v, exp)) => (String::from_utf8(v).unwrap().parse::<u64>().unwrap(), exp),
                    None => (0, now + window),
                };
                self.map
                    .lock()
                    .unwrap()
                    .insert(key.to_owned(), ((n + 1).to_string().into_bytes(), exp));
                Ok((n + 1, exp.saturating_duration_since(now)))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{memory::MemoryStore, *};

    #[tokio::test]
    async fn an_outage_falls_back_probes_and_rejoins() {
        let store = Arc::new(MemoryStore::default());
        let fleet = FleetStore::new(store.clone()).probe_interval(Duration::from_millis(40));
        assert_eq!(fleet.run(store.get("k")).await, Some(None));
        store.down.store(true, Ordering::SeqCst);
        assert_eq!(fleet.run(store.get("k")).await, None);
        let ops = store.ops.load(Ordering::SeqCst);
        // Out: later operations do not touch the store until the probe is due.
        for _ in 0..10 {
            assert_eq!(fleet.run(store.get("k")).await, None);
        }
        assert_eq!(store.ops.load(Ordering::SeqCst), ops);
        let stats = fleet.stats();
        assert!(!stats.available);
        assert_eq!(stats.outages, 1);
        assert_eq!(stats.fallbacks, 11);
        store.down.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(fleet.run(store.get("k")).await, Some(None));
        assert!(fleet.stats().available);
    }

    #[tokio::test]
    async fn a_slow_store_times_out() {
        struct Slow;
        impl SharedStore for Slow {
            fn get<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
                Box::pin(async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Ok(None)
                })
            }
            fn set<'a>(&'a self, _: &'a str, _: &'a [u8], _: Duration) -> StoreFuture<'a, ()> {
                Box::pin(async { Ok(()) })
            }
            fn try_lock<'a>(
                &'a self,
                _: &'a str,
                _: &'a str,
                _: Duration,
            ) -> StoreFuture<'a, bool> {
                Box::pin(async { Ok(true) })
            }
            fn unlock<'a>(&'a self, _: &'a str, _: &'a str) -> StoreFuture<'a, ()> {
                Box::pin(async { Ok(()) })
            }
            fn hold<'a>(&'a self, _: &'a str, _: Duration) -> StoreFuture<'a, ()> {
                Box::pin(async { Ok(()) })
            }
            fn hold_remaining<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<Duration>> {
                Box::pin(async { Ok(None) })
            }
            fn count<'a>(&'a self, _: &'a str, _: Duration) -> StoreFuture<'a, (u64, Duration)> {
                Box::pin(async { Ok((1, Duration::ZERO)) })
            }
        }
        let fleet = FleetStore::new(Slow).op_timeout(Duration::from_millis(20));
        let started = std::time::Instant::now();
        assert_eq!(fleet.run(fleet.store().get("k")).await, None);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(fleet.stats().outages, 1);
    }

    #[test]
    fn keys_are_prefixed_hashes() {
        let fleet = FleetStore::new(MemoryStore::default()).key_prefix("app:");
        let hash = hash_hex(&[b"oat_secret"]);
        assert_eq!(hash.len(), 64);
        let key = fleet.key(&["v", &hash]);
        assert!(key.starts_with("app:v:"));
        assert!(!key.contains("oat_secret"));
    }
}
