//! A per-thread memo in front of [`CachedVerifier`](super::CachedVerifier)'s cache: the last
//! few identities this thread served, each with the token it was served for.
//!
//! An MCP client sends the same token on every request, and a connection's requests mostly run
//! on the same runtime thread. For those requests a byte compare with the memo replaces the
//! SHA-256 of the token (about a kilobyte for a JWT) and the cache look-up, which together were
//! the largest part of what authentication adds to a request (`BENCHMARKS.md`).
//!
//! What the memo serves is exactly what the cache would serve, never longer:
//! - each slot keeps the cache entry's own deadline (`until`), so a memoized identity lives no
//!   longer than its token, its shared-store bound or `max_ttl`;
//! - each slot names the cache it came from (`owner`) and the cache's generation at the time,
//!   which [`CachedVerifier::clear`](super::CachedVerifier::clear) moves on;
//! - only identities are memoized; refusals and outages always go to the cache.
//!
//! The memo holds tokens, not hashes, and only tokens of RFC 6750 `b64token` syntax: the
//! `Authorization` header parser does not check the syntax of a token the memo holds
//! ([`holds`]), so a repeated token is checked once per thread rather than on every request.
//! Up to [`SLOTS`] per runtime thread, each overwritten as
//! newer tokens arrive (as a request's [`AuthInfo`] holds its own token for as long as the
//! request runs). A slot whose cache has been dropped is never matched again.
//!
//! A slot starts with the cache's own [`AuthInfo`], whose identity every thread's slot and the
//! cache share. Serving it clones it, and each clone (and each drop) writes the identity's
//! reference count: with one client's requests spread over the runtime's threads, that is a
//! cache line bouncing between cores on every request (`BENCHMARKS.md`). So a slot served a
//! second time takes a copy of the identity for this thread alone ([`AuthInfo::unshared`]) and
//! serves that from then on. Not at once: a thread that serves more clients in turn than it has
//! slots never hits a slot twice, and would pay for a copy on every request.

use std::{
    cell::RefCell,
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use crate::AuthInfo;

/// Slots per thread. A few, so that the clients a thread serves in turn do not evict each other
/// on every request; few, because every miss compares against each of them.
pub(super) const SLOTS: usize = 4;

/// A new owner id for each cache; never reused, so a dropped cache's slots never match.
pub(super) fn new_owner() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

struct Slot {
    owner: u64,
    generation: u64,
    until: Instant,
    token: Vec<u8>,
    info: AuthInfo,
    /// Whether `info` is this thread's own copy rather than the cache's.
    unshared: bool,
    /// Hits since the slot was filled, up to the one that makes `info` unshared.
    hits: u8,
}

struct Memo {
    slots: [Option<Slot>; SLOTS],
    /// The slot the next new token goes to (round robin).
    next: usize,
}

impl Memo {
    /// The slot holding `token` for cache `owner`, whatever its generation and deadline.
    fn position(&self, owner: u64, token: &[u8]) -> Option<usize> {
        self.slots.iter().position(|s| {
            s.as_ref()
                .is_some_and(|s| s.owner == owner && same_bytes(&s.token, token))
        })
    }
}

thread_local! {
    static MEMO: RefCell<Memo> = const {
        RefCell::new(Memo {
            slots: [const { None }; SLOTS],
            next: 0,
        })
    };
}

/// The identity memoized for `token` by cache `owner` at `generation`, if it is still live.
pub(super) fn get(owner: u64, generation: u64, token: &[u8]) -> Option<AuthInfo> {
    MEMO.try_with(|memo| {
        let mut memo = memo.try_borrow_mut().ok()?;
        let index = memo.position(owner, token)?;
        let slot = memo.slots[index].as_mut()?;
        if slot.generation != generation || Instant::now() >= slot.until {
            return None;
        }
        if !slot.unshared {
            slot.hits += 1;
            if slot.hits >= 2 {
                slot.info = slot.info.unshared();
                slot.unshared = true;
            }
        }
        Some(slot.info.clone())
    })
    .ok()
    .flatten()
}

/// Whether this thread's memo holds `token`, byte for byte, for any cache, at any generation
/// and deadline: then `token` is of `b64token` syntax, as [`put`] keeps no other. Only a token
/// the memo holds whole is told apart: each slot is compared in constant time.
pub(crate) fn holds(token: &[u8]) -> bool {
    MEMO.try_with(|memo| {
        memo.try_borrow().is_ok_and(|memo| {
            memo.slots
                .iter()
                .flatten()
                .any(|slot| same_bytes(&slot.token, token))
        })
    })
    .unwrap_or(false)
}

/// Memoizes `info` for `token` until `until`: in the slot that already holds this token for
/// this cache, or else in the next slot in turn. A token that is not of `b64token` syntax is
/// not memoized ([`holds`] vouches for the syntax of what is kept): one reaches here only
/// through a [`CachedVerifier`](super::CachedVerifier) called directly, never from a request.
pub(super) fn put(owner: u64, generation: u64, token: &[u8], info: &AuthInfo, until: Instant) {
    if until <= Instant::now() || !crate::bearer::is_token68(token) {
        return;
    }
    let _ = MEMO.try_with(|memo| {
        let Ok(mut memo) = memo.try_borrow_mut() else {
            return;
        };
        let index = match memo.position(owner, token) {
            Some(i) => i,
            None => {
                let i = memo.next;
                memo.next = (i + 1) % SLOTS;
                i
            }
        };
        match &mut memo.slots[index] {
            Some(slot) => {
                // Reuses the slot's buffer: no allocation once it has held a token this long.
                slot.owner = owner;
                slot.generation = generation;
                slot.until = until;
                slot.token.clear();
                slot.token.extend_from_slice(token);
                slot.info = info.clone();
                slot.unshared = false;
                slot.hits = 0;
            }
            empty => {
                *empty = Some(Slot {
                    owner,
                    generation,
                    until,
                    token: token.to_vec(),
                    info: info.clone(),
                    unshared: false,
                    hits: 0,
                });
            }
        }
    });
}

/// Whether two tokens are equal, in a time that depends only on their lengths: no early exit at
/// the first differing byte, which would tell a caller timing its guesses how much of a memoized
/// token it had right. Not inlined: [`holds`] and then [`get`] compare the same token on every
/// request, and one copy of the loop is half the code to bring into the instruction cache.
#[inline(never)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::TokenKind;

    fn info(user: &str) -> AuthInfo {
        AuthInfo::builder(user, TokenKind::OAuthAccessToken).build()
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn a_token_is_served_only_to_its_own_cache_and_generation() {
        let (a, b) = (new_owner(), new_owner());
        put(a, 0, b"tok", &info("alice"), later());
        assert_eq!(get(a, 0, b"tok").unwrap().user_id(), "alice");
        assert!(get(b, 0, b"tok").is_none(), "another cache's slot");
        assert!(get(a, 1, b"tok").is_none(), "an older generation");
    }

    /// The first hit serves the cache's identity; from the second on, a copy of this thread's
    /// own, with the same contents. A slot filled again starts over.
    #[test]
    fn a_slot_hit_twice_serves_its_own_copy_of_the_identity() {
        let a = new_owner();
        let cached = AuthInfo::builder("alice", TokenKind::OAuthAccessToken)
            .client_id("client_1")
            .scopes(["email", "profile"])
            .build();
        put(a, 0, b"tok", &cached, later());
        let first = get(a, 0, b"tok").unwrap();
        assert!(
            first.shares_identity_with(&cached),
            "first hit: the cache's own"
        );
        let second = get(a, 0, b"tok").unwrap();
        let third = get(a, 0, b"tok").unwrap();
        assert!(!second.shares_identity_with(&cached), "second hit: a copy");
        assert!(
            third.shares_identity_with(&second),
            "one copy, kept in the slot"
        );
        assert_eq!(format!("{second:?}"), format!("{cached:?}"));
        assert_eq!(
            (second.user_id(), second.client_id(), second.scopes()),
            (cached.user_id(), cached.client_id(), cached.scopes())
        );
        // The cache serves a new identity for the token: the slot holds the cache's again.
        let renewed = info("alice");
        put(a, 0, b"tok", &renewed, later());
        assert!(get(a, 0, b"tok").unwrap().shares_identity_with(&renewed));
    }

    #[test]
    fn only_the_exact_token_matches() {
        let a = new_owner();
        put(a, 0, b"token-1", &info("alice"), later());
        for other in [&b"token-2"[..], b"token-", b"token-10", b"TOKEN-1", b""] {
            assert!(get(a, 0, other).is_none(), "{other:?}");
        }
    }

    #[test]
    fn a_slot_is_not_served_past_its_deadline() {
        let a = new_owner();
        put(
            a,
            0,
            b"tok",
            &info("alice"),
            Instant::now() + Duration::from_millis(30),
        );
        assert!(get(a, 0, b"tok").is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(get(a, 0, b"tok").is_none());
        // Already past: not memoized at all.
        put(a, 0, b"old", &info("bob"), Instant::now());
        assert!(get(a, 0, b"old").is_none());
    }

    #[test]
    fn a_token_seen_again_takes_its_own_slot_and_new_ones_take_turns() {
        let a = new_owner();
        put(a, 0, b"t0", &info("u0"), later());
        // The same token again updates its slot rather than taking a second one.
        put(a, 0, b"t0", &info("u0-again"), later());
        for i in 1..SLOTS {
            put(
                a,
                0,
                format!("t{i}").as_bytes(),
                &info(&format!("u{i}")),
                later(),
            );
        }
        assert_eq!(get(a, 0, b"t0").unwrap().user_id(), "u0-again");
        for i in 1..SLOTS {
            assert!(get(a, 0, format!("t{i}").as_bytes()).is_some(), "t{i}");
        }
        // One more token evicts the oldest slot.
        put(a, 0, b"new", &info("n"), later());
        assert!(get(a, 0, b"new").is_some());
        let kept = (0..SLOTS)
            .filter(|i| get(a, 0, format!("t{i}").as_bytes()).is_some())
            .count();
        assert_eq!(kept, SLOTS - 1);
    }

    /// The memo keeps only `b64token` tokens, so that `holds` vouches for a token's syntax (the
    /// header parser does not check a token the memo holds). `holds` answers for the whole
    /// token only, whatever cache or deadline its slot has.
    #[test]
    fn holds_only_whole_tokens_of_b64token_syntax() {
        let (a, b) = (new_owner(), new_owner());
        put(a, 0, b"abc.DEF-_~+/9==", &info("alice"), later());
        assert!(holds(b"abc.DEF-_~+/9=="));
        for part in [
            &b"abc.DEF-_~+/9="[..],
            b"abc",
            b"",
            b"abc.DEF-_~+/9===",
            b"x",
        ] {
            assert!(!holds(part), "{part:?}");
        }
        put(
            b,
            0,
            b"short-lived",
            &info("bob"),
            Instant::now() + Duration::from_millis(10),
        );
        std::thread::sleep(Duration::from_millis(20));
        assert!(get(b, 0, b"short-lived").is_none());
        assert!(holds(b"short-lived"), "expired, but its syntax was checked");
        for bad in [
            &b"has space"[..],
            b"comma,",
            b"\xff\xfe",
            b"=",
            b"a=b",
            b"tab\t",
        ] {
            put(a, 0, bad, &info("mallory"), later());
            assert!(!holds(bad), "{bad:?}");
            assert!(get(a, 0, bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn same_bytes_is_equality() {
        assert!(same_bytes(b"", b""));
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"abc", b"ab"));
        assert!(!same_bytes(b"\x00", b""));
    }
}
