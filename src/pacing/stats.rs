//! [`TriggerStats`]: what a [`GcTrigger`](crate::GcTrigger) decided and why,
//! for a runtime's log. Counted with relaxed atomics on the trigger's slow
//! path only (past the young threshold, and in `collected`).

use crate::sync::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// Why a [`GcTrigger`](crate::GcTrigger) last said "collect".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CollectReason {
    /// The young threshold passed, and no memory was read
    /// ([`MemorySource::None`](crate::MemorySource::None), or RSS unreadable).
    Threshold,
    /// Memory grew past the gate ([`Pacing::Gate`](crate::Pacing::Gate)).
    Growth,
    /// The deferred allocations passed the cap.
    Cap,
    /// Memory reached the heap goal ([`Pacing::Goal`](crate::Pacing::Goal)).
    Goal,
    /// Memory reached MemBalancer's limit ([`Pacing::Balanced`](crate::Pacing::Balanced)).
    Balanced,
    /// Memory reached the soft memory limit ([`MemoryLimit`](crate::MemoryLimit)).
    Limit,
}

impl CollectReason {
    const ALL: [CollectReason; 6] = [
        CollectReason::Threshold,
        CollectReason::Growth,
        CollectReason::Cap,
        CollectReason::Goal,
        CollectReason::Balanced,
        CollectReason::Limit,
    ];

    fn code(self) -> u32 {
        CollectReason::ALL.iter().position(|&r| r == self).map_or(0, |i| i as u32 + 1)
    }

    fn from_code(code: u32) -> Option<CollectReason> {
        CollectReason::ALL.get((code as usize).checked_sub(1)?).copied()
    }
}

/// A [`GcTrigger`](crate::GcTrigger)'s counters since it was built; see
/// [`GcTrigger::stats`](crate::GcTrigger::stats).
///
/// ```
/// use gcmalloc::{CollectReason, GcTrigger, MemorySource};
///
/// let trigger = GcTrigger::builder().source(MemorySource::None).build();
/// trigger.record_alloc(2_001);
/// assert!(trigger.should_collect());
/// trigger.collected();
/// let stats = trigger.stats();
/// assert_eq!((stats.collections, stats.checks), (1, 1));
/// assert_eq!(stats.last_reason, Some(CollectReason::Threshold));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TriggerStats {
    /// Collections the runtime reported (`collected`, and the rebases of
    /// `should_collect_once`).
    pub collections: u64,
    /// Checks past the young threshold (those that consult memory); checks
    /// below it are not counted, to keep them a load and a compare.
    pub checks: u64,
    /// Checks that memory deferred.
    pub deferrals: u64,
    /// Why the last "collect" was given; `None` before the first.
    pub last_reason: Option<CollectReason>,
    /// Checks that found memory at or above the soft limit.
    pub limit_hits: u64,
    /// Limit-driven collections the GC CPU cap held back.
    pub throttled: u64,
}

/// The counters, shared by the trigger's threads.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    collections: AtomicU64,
    checks: AtomicU64,
    deferrals: AtomicU64,
    last_reason: AtomicU32,
    limit_hits: AtomicU64,
    throttled: AtomicU64,
}

// Relaxed throughout: the counters are independent tallies for a log; no
// other memory is published through them.
impl Counters {
    pub(crate) fn check(&self) {
        self.checks.fetch_add(1, Relaxed);
    }

    pub(crate) fn deferral(&self) {
        self.deferrals.fetch_add(1, Relaxed);
    }

    pub(crate) fn collection(&self) {
        self.collections.fetch_add(1, Relaxed);
    }

    pub(crate) fn limit_hit(&self) {
        self.limit_hits.fetch_add(1, Relaxed);
    }

    pub(crate) fn throttle(&self) {
        self.throttled.fetch_add(1, Relaxed);
    }

    /// Records a "collect" and why; returns true for the caller's `return`.
    pub(crate) fn yes(&self, reason: CollectReason) -> bool {
        self.last_reason.store(reason.code(), Relaxed);
        true
    }

    pub(crate) fn snapshot(&self) -> TriggerStats {
        TriggerStats {
            collections: self.collections.load(Relaxed),
            checks: self.checks.load(Relaxed),
            deferrals: self.deferrals.load(Relaxed),
            last_reason: CollectReason::from_code(self.last_reason.load(Relaxed)),
            limit_hits: self.limit_hits.load(Relaxed),
            throttled: self.throttled.load(Relaxed),
        }
    }
}
