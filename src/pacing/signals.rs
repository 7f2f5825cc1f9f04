//! What a [`GcTrigger`](crate::GcTrigger) measures across collections for
//! [`Pacing::Balanced`](crate::Pacing::Balanced) and the soft memory limit:
//! when each collection started and ended, the memory at its start, and from
//! those the balancer's heap limit and the GC CPU bucket.
//!
//! Bytes allocated between two collections are the memory at the start of
//! the later one less the baseline after the earlier one: the net growth.
//! It is at most the gross allocation (young garbage freed in between is not
//! seen) and equals it, within the estimate's
//! [`error_bound`](crate::Usage::error_bound) and
//! [`undercount_bound`](crate::Usage::undercount_bound), for a tracing
//! collector, which frees nothing between collections.

use std::time::{Duration, Instant};

use crate::pacing::balanced::{CollectionSample, MemBalancer};
use crate::pacing::limit::{CpuBucket, MemoryLimit, LIMIT_REREAD};
use crate::pacing::stats::Counters;
use crate::sync::{AtomicU64, AtomicUsize, Mutex, Ordering::Relaxed};

/// The timed state of one trigger. Times are nanoseconds since `origin`,
/// plus one (0: not stamped).
#[derive(Debug)]
pub(crate) struct Signals {
    origin: Instant,
    /// When the current collection started (the last "collect", or
    /// `collection_started`); 0 when none is under way.
    start: AtomicU64,
    /// When the last collection ended (or the trigger was built).
    last_end: AtomicU64,
    /// Memory when the current collection started.
    memory_at_start: AtomicUsize,
    /// MemBalancer's heap limit (bytes); `usize::MAX` without `Balanced`.
    heap_limit: AtomicUsize,
    /// The soft limit less the headroom (bytes); 0 without a limit.
    soft_limit: AtomicUsize,
    /// The soft limit as read (bytes); 0 without a limit.
    soft_limit_read: AtomicUsize,
    /// Limit-driven collections wait until this time (the bucket is full).
    throttle_until: AtomicU64,
    /// The smoothed figures; updated by one `collected` at a time (a
    /// concurrent one skips its sample rather than wait).
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    balancer: Option<MemBalancer>,
    bucket: CpuBucket,
    limit: Option<MemoryLimit>,
    headroom_percent: u32,
    limit_read_at: u64,
}

/// The settings [`Signals`] needs from the builder.
pub(crate) struct Setup {
    pub(crate) balancer: Option<MemBalancer>,
    pub(crate) limit: Option<MemoryLimit>,
    pub(crate) headroom_percent: u32,
    pub(crate) cpu_percent: u32,
    pub(crate) baseline: usize,
}

// Relaxed throughout: each atomic is a figure read on its own; a check that
// sees a figure one collection old decides as the previous cycle would have.
impl Signals {
    pub(crate) fn new(setup: Setup) -> Signals {
        let limit_read = setup.limit.and_then(|l| l.read()).unwrap_or(0);
        let heap_limit = setup.balancer.map_or(usize::MAX, |b| b.limit(setup.baseline));
        Signals {
            origin: Instant::now(),
            start: AtomicU64::new(0),
            last_end: AtomicU64::new(1),
            memory_at_start: AtomicUsize::new(setup.baseline),
            heap_limit: AtomicUsize::new(heap_limit),
            soft_limit: AtomicUsize::new(less_headroom(limit_read, setup.headroom_percent)),
            soft_limit_read: AtomicUsize::new(limit_read),
            throttle_until: AtomicU64::new(0),
            state: Mutex::new(State {
                balancer: setup.balancer,
                bucket: CpuBucket::new(setup.cpu_percent),
                limit: setup.limit,
                headroom_percent: setup.headroom_percent,
                limit_read_at: 1,
            }),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    pub(crate) fn heap_limit(&self) -> usize {
        self.heap_limit.load(Relaxed)
    }

    pub(crate) fn memory_limit(&self) -> Option<usize> {
        Some(self.soft_limit_read.load(Relaxed)).filter(|&l| l > 0)
    }

    /// A collection starts now (a "collect" was given, or the runtime said
    /// so) with `memory` held.
    pub(crate) fn started(&self, memory: usize) {
        self.memory_at_start.store(memory, Relaxed);
        self.start.store(self.now(), Relaxed);
    }

    /// Whether `memory` is at the soft limit and the CPU cap lets a
    /// collection run; counts limit hits and throttled collections.
    pub(crate) fn over_limit(&self, memory: usize, stats: &Counters) -> bool {
        let limit = self.soft_limit.load(Relaxed);
        if limit == 0 || memory < limit {
            return false;
        }
        stats.limit_hit();
        if self.now() < self.throttle_until.load(Relaxed) {
            stats.throttle();
            return false;
        }
        true
    }

    /// A collection ended now, leaving `live` bytes; `previous` was the
    /// baseline after the one before; `took` its duration when the runtime
    /// passed it (else measured from its start).
    pub(crate) fn collected(&self, live: usize, previous: usize, took: Option<Duration>) {
        let end = self.now();
        let start = match took {
            Some(took) => end.saturating_sub(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX)).max(1),
            None => match self.start.load(Relaxed) {
                0 => end,
                start => start,
            },
        };
        self.start.store(0, Relaxed);
        let last_end = self.last_end.swap(end, Relaxed);
        let sample = CollectionSample {
            live,
            allocated: self.memory_at_start.load(Relaxed).saturating_sub(previous),
            mutator: nanos(start.saturating_sub(last_end)),
            collection: nanos(end.saturating_sub(start)),
        };
        let Ok(mut state) = self.state.try_lock() else {
            return; // another thread is taking its sample
        };
        if let Some(balancer) = &mut state.balancer {
            self.heap_limit.store(balancer.observe(sample), Relaxed);
        }
        state.bucket.add(sample.mutator, sample.collection);
        let full_for = u64::try_from(state.bucket.full_for().as_nanos()).unwrap_or(u64::MAX);
        self.throttle_until.store(end.saturating_add(full_for), Relaxed);
        self.reread_limit(&mut state, end);
    }

    fn reread_limit(&self, state: &mut State, now: u64) {
        let Some(limit) = state.limit else { return };
        if limit == MemoryLimit::Container && now - state.limit_read_at >= LIMIT_REREAD.as_nanos() as u64 {
            state.limit_read_at = now;
            let read = limit.read().unwrap_or(0);
            self.soft_limit_read.store(read, Relaxed);
            self.soft_limit.store(less_headroom(read, state.headroom_percent), Relaxed);
        }
    }
}

fn nanos(n: u64) -> Duration {
    Duration::from_nanos(n)
}

fn less_headroom(limit: usize, headroom_percent: u32) -> usize {
    let keep = 100 - headroom_percent.min(99);
    (limit as u128 * u128::from(keep) / 100) as usize
}
