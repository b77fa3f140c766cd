//! Upstream verification answers shared by the replicas of a fleet, with fleet-wide single
//! flight. Used for the answers that cost an upstream call (Clerk's Backend API verify
//! endpoints); JWTs verify locally on every replica and never come here.
//!
//! Each replica's own [`CachedVerifier`](super::CachedVerifier) is consulted first; only on a
//! local miss does a replica look here. What is stored is the upstream's answer (or the fact
//! that the upstream did not recognise the token), under the SHA-256 of the token, never the
//! token; each replica applies its own checks (audience, expiry) to the answer, exactly as if it
//! had called the upstream itself.

use std::{future::Future, time::Duration};

use serde_json::Value;

use crate::{FleetStore, VerifyError, fleet::lock_owner};

/// How long each answer may live in the shared store, and how long replicas wait for another
/// replica's call.
#[derive(Debug, Clone)]
pub(crate) struct SharedPolicy {
    /// Longest a positive answer is kept (never past the token's expiry): the local cache's
    /// `max_ttl`, so sharing never makes a revocation noticed later than without it.
    pub(crate) max_ttl: Duration,
    /// How long "not recognised" is kept: the local cache's `negative_ttl`.
    pub(crate) negative_ttl: Duration,
    /// Longest a replica waits for the replica holding the lock before calling itself.
    pub(crate) wait: Duration,
    /// Life of the lock, so a replica that died holding it does not block the others.
    pub(crate) lock_ttl: Duration,
    /// Pause between two looks while waiting.
    pub(crate) poll: Duration,
}

/// One upstream answer: the object it returned, or `None` when it did not recognise the token.
pub(crate) type Answer = Option<Value>;

/// An answer, and when it came from the store, the Unix time (milliseconds) it leaves the store:
/// a replica caches it locally no longer than that, so sharing never makes a revocation noticed
/// later, and no shorter either, so the replica's hits stay local until the store drops it.
pub(crate) type Shared = (Answer, Option<u64>);

/// Fields never written to the store, whatever an upstream puts in its answers: secrets a
/// verify endpoint could echo.
const SECRET_FIELDS: [&str; 4] = ["secret", "token", "access_token", "client_secret"];

/// The shared answers of one upstream.
#[derive(Debug, Clone)]
pub(crate) struct SharedAnswers {
    pub(crate) fleet: FleetStore,
    pub(crate) policy: SharedPolicy,
}

impl SharedAnswers {
    /// The answer for the token hashed as `hash` (`scope` separates what must not mix, e.g. the
    /// token kind and the verifying machine): from the store when another replica already asked,
    /// else from `fetch`, called by one replica of the fleet at a time. `expires_at` reads a
    /// token's expiry (Unix seconds) from an answer. With the store out, `fetch` is called
    /// directly: the request never fails because of the store.
    pub(crate) async fn get_or_fetch<F, Fut>(
        &self,
        scope: &str,
        hash: &str,
        expires_at: impl Fn(&Value) -> Option<u64>,
        fetch: F,
    ) -> Result<Shared, VerifyError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Answer, VerifyError>>,
    {
        let key = self.fleet.key(&["verify", scope, hash]);
        let store = self.fleet.store();
        match self.fleet.run(store.get(&key)).await {
            Some(Some(bytes)) => {
                if let Some(found) = decode(&bytes) {
                    self.fleet.hit();
                    return Ok(found);
                }
            }
            Some(None) => self.fleet.miss(),
            None => return fetch().await.map(|a| (a, None)),
        }
        let lock = format!("{key}:lock");
        let owner = lock_owner();
        let deadline = tokio::time::Instant::now() + self.policy.wait;
        loop {
            match self
                .fleet
                .run(store.try_lock(&lock, &owner, self.policy.lock_ttl))
                .await
            {
                Some(true) => {
                    let result = fetch().await;
                    if let Ok(answer) = &result {
                        self.store(&key, answer, &expires_at).await;
                    }
                    // Released at once, so waiters of a call that failed (nothing stored) take
                    // over instead of waiting out the bound.
                    let _ = self.fleet.run(store.unlock(&lock, &owner)).await;
                    return result.map(|a| (a, None));
                }
                Some(false) => {}
                None => return fetch().await.map(|a| (a, None)),
            }
            // Another replica is calling: wait for its answer, within the bound.
            if tokio::time::Instant::now() + self.policy.poll > deadline {
                tracing::debug!("shared verification: waited long enough; calling upstream");
                return fetch().await.map(|a| (a, None));
            }
            tokio::time::sleep(self.policy.poll).await;
            match self.fleet.run(store.get(&key)).await {
                Some(Some(bytes)) => {
                    if let Some(found) = decode(&bytes) {
                        self.fleet.hit();
                        return Ok(found);
                    }
                }
                Some(None) => {}
                None => return fetch().await.map(|a| (a, None)),
            }
        }
    }

    async fn store(&self, key: &str, answer: &Answer, expires_at: &impl Fn(&Value) -> Option<u64>) {
        let now_ms = unix_now_ms();
        let ttl = match answer {
            Some(value) => {
                let mut ttl = self.policy.max_ttl;
                if let Some(exp) = expires_at(value) {
                    let left = exp.saturating_mul(1000).saturating_sub(now_ms);
                    ttl = ttl.min(Duration::from_millis(left));
                }
                ttl
            }
            None => self.policy.negative_ttl,
        };
        if ttl < Duration::from_millis(1) {
            return;
        }
        // Taken before the write, so the store keeps the entry at least until then: a replica
        // reading it never caches it past the store's own expiry.
        let until_ms = now_ms.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let bytes = encode(answer, until_ms);
        let _ = self
            .fleet
            .run(self.fleet.store().set(key, &bytes, ttl))
            .await;
    }
}

fn unix_now_ms() -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// `{"answer": {…}, "until_ms": ms, "until": secs}` or `{"refused": true, …}`, without the
/// fields in [`SECRET_FIELDS`]; `until_ms` is when the entry leaves the store (Unix
/// milliseconds). `until` is the same instant rounded down to the second, the only bound
/// earlier versions read, kept so a fleet can be upgraded one replica at a time.
fn encode(answer: &Answer, until_ms: u64) -> Vec<u8> {
    let until = until_ms / 1000;
    let doc = match answer {
        Some(Value::Object(map)) => {
            let mut map = map.clone();
            for field in SECRET_FIELDS {
                map.remove(field);
            }
            serde_json::json!({ "answer": map, "until_ms": until_ms, "until": until })
        }
        Some(other) => serde_json::json!({ "answer": other, "until_ms": until_ms, "until": until }),
        None => serde_json::json!({ "refused": true, "until_ms": until_ms, "until": until }),
    };
    serde_json::to_vec(&doc).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> Option<Shared> {
    let Value::Object(mut doc) = serde_json::from_slice(bytes).ok()? else {
        return None;
    };
    // An entry written by an earlier version carries only the second.
    let until = doc.get("until_ms").and_then(Value::as_u64).or_else(|| {
        doc.get("until")
            .and_then(Value::as_u64)
            .map(|s| s.saturating_mul(1000))
    });
    if doc.get("refused").and_then(Value::as_bool) == Some(true) {
        return Some((None, until));
    }
    doc.remove("answer").map(|a| (Some(a), until))
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use serde_json::json;

    use super::*;
    use crate::{SharedStore, fleet::memory::MemoryStore};

    fn policy() -> SharedPolicy {
        SharedPolicy {
            max_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
            wait: Duration::from_secs(2),
            lock_ttl: Duration::from_secs(5),
            poll: Duration::from_millis(5),
        }
    }

    fn answers(store: Arc<MemoryStore>) -> SharedAnswers {
        SharedAnswers {
            fleet: FleetStore::new(store),
            policy: policy(),
        }
    }

    /// Two "replicas" (two handles on one store): the second is answered from the store.
    #[tokio::test]
    async fn a_second_replica_reads_the_first_ones_answer() {
        let store = Arc::new(MemoryStore::default());
        let (a, b) = (answers(store.clone()), answers(store.clone()));
        let calls = AtomicUsize::new(0);
        let fetch = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(Some(json!({"subject": "user_1", "secret": "ak_hidden"})))
        };
        let (first, first_until) = a.get_or_fetch("oat", "h1", |_| None, fetch).await.unwrap();
        let (second, until) = b.get_or_fetch("oat", "h1", |_| None, fetch).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(first.unwrap()["subject"], "user_1");
        assert_eq!(first_until, None, "fetched, not read from the store");
        // Read from the store: cached locally as long as the store keeps it (60 s), to the
        // millisecond.
        let until = until.unwrap();
        assert!(
            (unix_now_ms() + 58_000..=unix_now_ms() + 60_000).contains(&until),
            "{until}"
        );
        let second = second.unwrap();
        assert_eq!(second["subject"], "user_1");
        assert!(second.get("secret").is_none(), "secrets are not shared");
        assert_eq!(b.fleet.stats().shared_hits, 1);
    }

    /// The bound read back is the millisecond it was written with; an entry from an earlier
    /// version (seconds only) is read as that second.
    #[test]
    fn the_store_bound_round_trips_in_milliseconds() {
        let bytes = encode(&Some(json!({"subject": "u"})), 1_700_000_000_999);
        let (answer, until) = decode(&bytes).unwrap();
        assert_eq!(answer.unwrap()["subject"], "u");
        assert_eq!(until, Some(1_700_000_000_999));
        let legacy = br#"{"answer": {"subject": "u"}, "until": 1700000000}"#;
        assert_eq!(decode(legacy).unwrap().1, Some(1_700_000_000_000));
        let refused = encode(&None, 1_700_000_000_500);
        assert_eq!(decode(&refused).unwrap(), (None, Some(1_700_000_000_500)));
    }

    #[tokio::test]
    async fn refusals_are_shared_but_outages_are_not() {
        let store = Arc::new(MemoryStore::default());
        let a = answers(store.clone());
        let calls = AtomicUsize::new(0);
        for _ in 0..3 {
            let got = a
                .get_or_fetch(
                    "oat",
                    "bad",
                    |_| None,
                    || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        Ok(None)
                    },
                )
                .await
                .unwrap();
            assert_eq!(got.0, None);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        for _ in 0..3 {
            let got = a
                .get_or_fetch(
                    "oat",
                    "down",
                    |_| None,
                    || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        Err(VerifyError::unavailable(Duration::from_secs(1)))
                    },
                )
                .await;
            assert!(got.is_err());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    /// Never past the token's expiry: an answer for a token that has expired is not stored.
    #[tokio::test]
    async fn answers_never_outlive_their_token() {
        let store = Arc::new(MemoryStore::default());
        let a = answers(store.clone());
        let calls = AtomicUsize::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        for _ in 0..2 {
            a.get_or_fetch(
                "oat",
                "h",
                |_| Some(now),
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok(Some(json!({"subject": "u"})))
                },
            )
            .await
            .unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    /// Fleet-wide single flight: many "replicas" asking at once make one upstream call.
    #[tokio::test]
    async fn concurrent_replicas_share_one_call() {
        let store = Arc::new(MemoryStore::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let replica = answers(store.clone());
                let calls = calls.clone();
                tokio::spawn(async move {
                    replica
                        .get_or_fetch(
                            "oat",
                            "h",
                            |_| None,
                            || async {
                                calls.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(30)).await;
                                Ok(Some(json!({"subject": "u"})))
                            },
                        )
                        .await
                        .unwrap()
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().0.unwrap()["subject"], "u");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    /// A replica holding the lock that never answers: the others call themselves after the
    /// bounded wait.
    #[tokio::test]
    async fn waiters_give_up_after_the_bound() {
        let store = Arc::new(MemoryStore::default());
        let mut a = answers(store.clone());
        a.policy.wait = Duration::from_millis(50);
        let key = a.fleet.key(&["verify", "oat", "h", ""]);
        let lock = format!("{}lock", key);
        store
            .try_lock(&lock, "someone-else", Duration::from_secs(30))
            .await
            .unwrap();
        let got = a
            .get_or_fetch(
                "oat",
                "h",
                |_| None,
                || async { Ok(Some(json!({"subject": "u"}))) },
            )
            .await
            .unwrap();
        assert_eq!(got.0.unwrap()["subject"], "u");
    }

    /// With the store down, verification goes on locally.
    #[tokio::test]
    async fn a_down_store_is_bypassed() {
        let store = Arc::new(MemoryStore::default());
        store.down.store(true, Ordering::SeqCst);
        let a = answers(store.clone());
        let got = a
            .get_or_fetch(
                "oat",
                "h",
                |_| None,
                || async { Ok(Some(json!({"subject": "u"}))) },
            )
            .await
            .unwrap();
        assert_eq!(got.0.unwrap()["subject"], "u");
        assert_eq!(a.fleet.stats().outages, 1);
    }
}
