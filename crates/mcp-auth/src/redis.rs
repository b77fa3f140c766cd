//! [`RedisStore`]: the [`SharedStore`] on Redis (feature `redis`), for the shared verification
//! cache ([`ClerkVerifierBuilder::shared_cache`](crate::clerk::ClerkVerifierBuilder::shared_cache))
//! and fleet-wide rate limits
//! ([`McpServerBuilder::shared_store`](crate::McpServerBuilder::shared_store)).
//!
//! Built on redis-rs's `ConnectionManager`: one multiplexed connection per replica, created
//! lazily (a replica starts even when Redis is down) and re-established by itself after Redis
//! restarts. Each operation is a single command or a short Lua script, so it is atomic across
//! replicas.
//!
//! ```no_run
//! use mcp_auth::{FleetStore, redis::RedisStore};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fleet = FleetStore::new(RedisStore::open("redis://127.0.0.1:6379")?);
//! # let _ = fleet; Ok(()) }
//! ```

use std::{sync::Arc, time::Duration};

use ::redis::{
    AsyncCommands, Client, RedisError, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use crate::fleet::{SharedStore, StoreError, StoreFuture};

/// Why a [`RedisStore`] could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// The URL is not a Redis URL (`redis://host:port/db`, `rediss://…`, `unix://…`).
    #[error("invalid Redis URL (expected redis://host:port)")]
    InvalidUrl,
}

/// A [`SharedStore`] on one Redis server (or a proxy in front of several). Cheap to clone.
///
/// Keys it writes, under the [`FleetStore`](crate::FleetStore)'s prefix: `verify:<kind>:<sha256>`
/// (a verification answer, JSON, with a TTL), `verify:<kind>:<sha256>:lock` (single flight),
/// `clerk-backoff:<id>` (a 429's wait) and `ratelimit:<sha256>` (a counter per caller and
/// window). Never a token.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    scripts: Arc<Scripts>,
}

/// The Lua scripts, hashed once (Redis runs them by hash, loading them on first use).
struct Scripts {
    hold: Script,
    unlock: Script,
    count: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: not printed.
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

/// `SET key 1 PX ttl` unless the key already lives longer.
const HOLD: &str = r"
local left = redis.call('PTTL', KEYS[1])
if left < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
";

/// Deletes the lock only if it is still ours.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// `INCR`, starting the window on the first increment (and repairing a key left without a
/// lifetime); returns the count and the milliseconds left.
const COUNT: &str = r"
local n = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {n, left}
";

impl RedisStore {
    /// A store on the Redis at `url` (`redis://[:password@]host:port[/db]`). Does not connect
    /// yet: the first operation does, and a Redis that is down at start only means the
    /// replicas run on their own until it is up.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (the connection's background task is spawned on it).
    pub fn open(url: &str) -> Result<Self, RedisStoreError> {
        let client = Client::open(url).map_err(|_| RedisStoreError::InvalidUrl)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            // Reconnection is retried on the next operation anyway; a short schedule keeps a
            // dead Redis from holding operations.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|_| RedisStoreError::InvalidUrl)?;
        Ok(Self {
            conn,
            scripts: Arc::new(Scripts {
                hold: Script::new(HOLD),
                unlock: Script::new(UNLOCK),
                count: Script::new(COUNT),
            }),
        })
    }
}

fn store_error(e: RedisError) -> StoreError {
    // Only the kind of failure: a Redis error can quote the URL (and its password).
    let what = if e.is_timeout() {
        return StoreError::TimedOut;
    } else if e.is_connection_refusal() {
        "connection refused"
    } else if e.is_connection_dropped() {
        "connection dropped"
    } else if e.is_io_error() {
        "I/O error"
    } else {
        "command failed"
    };
    StoreError::Unavailable(what.to_owned())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl SharedStore for RedisStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            conn.get(key).await.map_err(store_error)
        })
    }

    fn set<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            conn.pset_ex(key, value, millis(ttl))
                .await
                .map_err(store_error)
        })
    }

    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let set: Option<String> = ::redis::cmd("SET")
                .arg(key)
                .arg(owner)
                .arg("NX")
                .arg("PX")
                .arg(millis(ttl))
                .query_async(&mut conn)
                .await
                .map_err(store_error)?;
            Ok(set.is_some())
        })
    }

    fn unlock<'a>(&'a self, key: &'a str, owner: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let _: i64 = self
                .scripts
                .unlock
                .key(key)
                .arg(owner)
                .invoke_async(&mut conn)
                .await
                .map_err(store_error)?;
            Ok(())
        })
    }

    fn hold<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let _: i64 = self
                .scripts
                .hold
                .key(key)
                .arg(millis(ttl))
                .invoke_async(&mut conn)
                .await
                .map_err(store_error)?;
            Ok(())
        })
    }

    fn hold_remaining<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let left: i64 = conn.pttl(key).await.map_err(store_error)?;
            // -2: no key; -1: no lifetime (not ours).
            Ok((left > 0).then(|| Duration::from_millis(left.unsigned_abs())))
        })
    }

    fn count<'a>(&'a self, key: &'a str, window: Duration) -> StoreFuture<'a, (u64, Duration)> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let (n, left): (i64, i64) = self
                .scripts
                .count
                .key(key)
                .arg(millis(window))
                .invoke_async(&mut conn)
                .await
                .map_err(store_error)?;
            let n = u64::try_from(n).map_err(|_| StoreError::InvalidAnswer)?;
            Ok((n, Duration::from_millis(left.max(0).unsigned_abs())))
        })
    }
}
