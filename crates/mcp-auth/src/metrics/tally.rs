//! Per-thread tallies of the figures every request moves: requests by outcome, their
//! durations, verified-token cache look-ups. [`MetricsHandle::render`](super::MetricsHandle)
//! sums the threads' tallies and writes them out ([`super::exposition`]).
//!
//! Recorded into the Prometheus recorder, each request wrote shared memory from whichever
//! runtime thread served it: two counters (an atomic add to each and to each one's generation)
//! and a histogram sample (an atomic push onto a shared queue with a clock reading of its own,
//! drained by the upkeep thread later). With a server's requests spread over the runtime's
//! threads, those cache lines bounce between cores on every request; a build without the
//! metrics used 0.3–0.5 µs less per request, about 1 % of the whole (`BENCHMARKS.md`). Here
//! a request adds to its own thread's [`Shard`] with plain loads and stores, and nothing is
//! queued: a shard keeps each histogram bucket's count and its durations' sum.

use std::{
    cell::Cell,
    sync::{
        Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use super::{DURATION_BUCKETS, OUTCOME_COUNT};

/// Histogram buckets of a tally: one per bound in [`DURATION_BUCKETS`], then `+Inf`.
pub(super) const BUCKETS: usize = DURATION_BUCKETS.len() + 1;

/// [`DURATION_BUCKETS`] in nanoseconds, written out: a float-to-integer conversion could land
/// one below a bound (a unit test checks each against its bound in seconds).
pub(super) const BOUNDS_NANOS: [u64; DURATION_BUCKETS.len()] = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Verified-token cache look-ups: local miss, local hit, shared miss, shared hit.
pub(super) const VERIFY_CACHE_KINDS: usize = 4;

// Where each figure lives among a tally's cells.
const REQUESTS: usize = 0;
const COUNTS: usize = REQUESTS + OUTCOME_COUNT;
const SUMS: usize = COUNTS + OUTCOME_COUNT * BUCKETS;
const VERIFY_CACHE: usize = SUMS + OUTCOME_COUNT * BUCKETS;
const CELLS: usize = VERIFY_CACHE + VERIFY_CACHE_KINDS;

/// One thread's running totals since the shard was made. Written by one thread at a time (the
/// one holding it), read by any. Each cell only grows, so a reader summing them while a
/// request is being counted sees it counted or not, cell by cell: a scrape can see a
/// duration's bucket count a moment before its sum, never a figure going down.
// Aligned apart from any neighbour's lines, which another core may be writing.
#[repr(align(128))]
struct Shard {
    cells: [AtomicU64; CELLS],
}

impl Shard {
    fn new() -> Self {
        Shard {
            cells: [const { AtomicU64::new(0) }; CELLS],
        }
    }

    /// Adds `by` to a cell. Only the shard's holder writes, so this is a plain load and store,
    /// not an atomic read-modify-write (and no lock prefix on the request path).
    #[inline]
    fn add(&self, cell: usize, by: u64) {
        let cell = &self.cells[cell];
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(by),
            Ordering::Relaxed,
        );
    }
}

/// Every shard ever made, and those whose thread has ended, for the next thread that records.
/// So there are at most as many as threads ever recorded at once, and an ended thread's counts
/// stay in the totals.
struct Pool {
    all: Vec<&'static Shard>,
    free: Vec<&'static Shard>,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    all: Vec::new(),
    free: Vec::new(),
});

fn pool() -> MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cold]
fn take_shard() -> &'static Shard {
    let mut pool = pool();
    if let Some(shard) = pool.free.pop() {
        return shard;
    }
    // Lives as long as the process, as the recorder whose figures it holds.
    let shard: &'static Shard = Box::leak(Box::new(Shard::new()));
    pool.all.push(shard);
    shard
}

/// This thread's shard, taken from the pool on first use and given back when the thread ends.
struct Local(Cell<Option<&'static Shard>>);

impl Drop for Local {
    fn drop(&mut self) {
        if let Some(shard) = self.0.take() {
            pool().free.push(shard);
        }
    }
}

thread_local! {
    static LOCAL: Local = const { Local(Cell::new(None)) };
}

/// The shard for what is counted on a thread whose own shard is gone (a request finishing in a
/// thread-local destructor as the thread ends): shared, so written under this lock.
static ENDING: Mutex<Option<&'static Shard>> = Mutex::new(None);

/// Runs `write` on this thread's shard.
#[inline]
fn with_shard(write: impl FnOnce(&Shard)) {
    let own = LOCAL.try_with(|local| match local.0.get() {
        Some(shard) => shard,
        None => {
            let shard = take_shard();
            local.0.set(Some(shard));
            shard
        }
    });
    match own {
        Ok(shard) => write(shard),
        Err(_) => {
            let mut ending = ENDING.lock().unwrap_or_else(PoisonError::into_inner);
            write(ending.get_or_insert_with(take_shard));
        }
    }
}

/// The histogram bucket of a duration: the first bound it does not exceed (as the Prometheus
/// exporter places a sample: `value <= bound`), else `+Inf`.
#[inline]
fn bucket(nanos: u64) -> usize {
    BOUNDS_NANOS
        .iter()
        .position(|&bound| nanos <= bound)
        .unwrap_or(BUCKETS - 1)
}

/// Counts one request with outcome `outcome` (an index into the outcomes), and its duration in
/// the histogram of outcome `histogram`.
#[inline]
pub(super) fn request(outcome: usize, histogram: usize, nanos: u64) {
    let bucket = bucket(nanos);
    with_shard(|shard| {
        shard.add(REQUESTS + outcome, 1);
        shard.add(COUNTS + histogram * BUCKETS + bucket, 1);
        shard.add(SUMS + histogram * BUCKETS + bucket, nanos);
    });
}

/// Counts one verified-token cache look-up of kind `kind` (local miss, local hit, shared
/// miss, shared hit).
#[inline]
pub(super) fn verify_cache(kind: usize) {
    with_shard(|shard| shard.add(VERIFY_CACHE + kind, 1));
}

/// Every thread's counts, summed: what a scrape reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Totals([u64; CELLS]);

impl Totals {
    /// The sum over every shard now.
    pub(super) fn now() -> Self {
        let shards = pool().all.clone();
        let mut totals = [0u64; CELLS];
        for shard in shards {
            for (total, cell) in totals.iter_mut().zip(&shard.cells) {
                *total = total.wrapping_add(cell.load(Ordering::Relaxed));
            }
        }
        Totals(totals)
    }

    /// Requests with outcome `outcome`.
    pub(super) fn requests(&self, outcome: usize) -> u64 {
        self.0[REQUESTS + outcome]
    }

    /// Durations in histogram `histogram` that fell in `bucket` (not cumulative).
    pub(super) fn count(&self, histogram: usize, bucket: usize) -> u64 {
        self.0[COUNTS + histogram * BUCKETS + bucket]
    }

    /// The sum, in nanoseconds, of the durations in histogram `histogram` and `bucket`.
    pub(super) fn nanos(&self, histogram: usize, bucket: usize) -> u64 {
        self.0[SUMS + histogram * BUCKETS + bucket]
    }

    /// Verified-token cache look-ups of kind `kind`.
    pub(super) fn verify_cache(&self, kind: usize) -> u64 {
        self.0[VERIFY_CACHE + kind]
    }

    /// What was counted between `earlier` and `self`.
    #[cfg(test)]
    pub(super) fn since(&self, earlier: &Totals) -> Totals {
        let mut cells = self.0;
        for (cell, before) in cells.iter_mut().zip(&earlier.0) {
            *cell = cell.wrapping_sub(*before);
        }
        Totals(cells)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use super::*;

    /// The counts are the process's: tests that read them take turns (nothing else in the
    /// crate's unit tests counts, as none installs the recorder).
    pub(in crate::metrics) static TURN: Mutex<()> = Mutex::new(());

    #[test]
    fn the_bounds_in_nanoseconds_are_the_bounds_in_seconds() {
        for (nanos, seconds) in BOUNDS_NANOS.iter().zip(DURATION_BUCKETS) {
            assert_eq!(*nanos as f64 / 1e9, *seconds);
            assert_eq!(Duration::from_nanos(*nanos).as_secs_f64(), *seconds);
        }
    }

    /// Each duration lands in the bucket the exporter's own histogram (`metrics-util`'s, with
    /// these bounds) puts it in: on, just above and just below every bound, zero, and beyond
    /// the last.
    #[test]
    fn a_duration_lands_where_the_exporter_would_put_it() {
        let mut durations = vec![0, 1, 20_000_000_000, u64::MAX];
        for bound in BOUNDS_NANOS {
            durations.extend([bound - 1, bound, bound + 1]);
        }
        for nanos in durations {
            let mut exporters = metrics_util::storage::Histogram::new(DURATION_BUCKETS).unwrap();
            exporters.record(Duration::from_nanos(nanos).as_secs_f64());
            // The exporter's buckets are cumulative, without `+Inf`: the first one holding the
            // sample is its bucket.
            let expected = exporters
                .buckets()
                .iter()
                .position(|&(_, count)| count == 1)
                .unwrap_or(BUCKETS - 1);
            assert_eq!(bucket(nanos), expected, "{nanos} ns");
        }
    }

    /// Counts made on many threads at once all arrive, and a thread's counts stay after it
    /// ends; its shard goes to the next thread rather than a new one being made.
    #[test]
    fn every_threads_counts_arrive_and_outlive_it() {
        let _turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
        let before = Totals::now();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..10_000 {
                        request(0, 0, 700_000);
                        verify_cache(1);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let counted = Totals::now().since(&before);
        assert_eq!(counted.requests(0), 40_000);
        assert_eq!(counted.count(0, 1), 40_000);
        assert_eq!(counted.nanos(0, 1), 40_000 * 700_000);
        assert_eq!(counted.verify_cache(1), 40_000);

        let shards = pool().all.len();
        std::thread::spawn(|| verify_cache(2)).join().unwrap();
        assert_eq!(pool().all.len(), shards, "a new shard for a new thread");
        assert_eq!(Totals::now().since(&before).verify_cache(2), 1);
    }

    /// What a thread counts as it ends, after its own shard has gone back to the pool (from
    /// another thread-local's destructor), is counted all the same.
    #[test]
    fn a_count_made_as_a_thread_ends_is_kept() {
        struct CountsWhenDropped;
        impl Drop for CountsWhenDropped {
            fn drop(&mut self) {
                request(6, 6, 42);
            }
        }
        thread_local! {
            static LATE: CountsWhenDropped = const { CountsWhenDropped };
        }
        let _turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
        let before = Totals::now();
        std::thread::spawn(|| {
            // Registered before the tally's own thread-local, so dropped after it.
            LATE.with(|_| ());
            request(6, 6, 42);
        })
        .join()
        .unwrap();
        assert!(
            ENDING.lock().unwrap().is_some(),
            "the destructor ran before the thread's shard was gone"
        );
        let counted = Totals::now().since(&before);
        assert_eq!(counted.requests(6), 2);
        assert_eq!(counted.nanos(6, 0), 84);
    }
}
