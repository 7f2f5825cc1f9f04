//! [`MemBalancer`]: the heap limit of Kirisame, Shenoy and Panchekha's
//! MemBalancer ("Optimal heap limits for reducing browser memory use",
//! OOPSLA 2022), as MMTk's `MemBalancerTrigger` computes it.
//!
//! After each collection the limit is `L + sqrt(L * g / (c * s))`: `L` the
//! live bytes, `g` the allocation rate (bytes per second of mutator time),
//! `s` the collection speed (live bytes traced per second of collection
//! time: MMTk's correction of the paper's bytes *freed*), `c` a constant
//! that prices memory against time. The rule is optimal across heaps that
//! each follow it, with no communication between them.

use std::time::Duration;

/// Weight of the old allocation figures at each collection (MMTk: 0.95):
/// the allocation rate follows a change within about 1 / (1 - 0.95) = 20
/// collections.
pub const ALLOCATION_SMOOTHING: f64 = 0.95;

/// Weight of the old collection figures at each collection (MMTk: 0.5).
pub const COLLECTION_SMOOTHING: f64 = 0.5;

/// What one collection cycle tells the balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CollectionSample {
    /// Live bytes right after the collection (the refreshed estimate).
    pub live: usize,
    /// Bytes allocated between the previous collection and this one.
    pub allocated: usize,
    /// Mutator time: from the end of the previous collection to the start of
    /// this one.
    pub mutator: Duration,
    /// Time this collection took.
    pub collection: Duration,
}

/// MemBalancer's heap limit over smoothed rates.
///
/// `tuning` is `1 / c` in bytes: the extra memory over the live bytes is
/// `sqrt(L * tuning * g / s)`, so a larger `tuning` spends memory to save
/// collection time. `min_extra` is the least extra memory (a floor for tiny
/// heaps, whose limit would otherwise make every allocation collect).
/// Before its first timed sample the balancer allows `L + max(L, min_extra)`
/// (Go's default `GOGC = 100`).
///
/// ```
/// use std::time::Duration;
/// use gcmalloc::{CollectionSample, MemBalancer};
///
/// let mut balancer = MemBalancer::new(64 << 20, 1 << 20);
/// // 100 MiB live; 400 MiB allocated in 1 s; traced in 0.25 s (400 MiB/s).
/// let limit = balancer.observe(CollectionSample {
///     live: 100 << 20,
///     allocated: 400 << 20,
///     mutator: Duration::from_secs(1),
///     collection: Duration::from_millis(250),
/// });
/// // sqrt(100 MiB * 64 MiB * 1) = 80 MiB over the live bytes.
/// assert_eq!(limit, 180 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemBalancer {
    tuning: f64,
    min_extra: usize,
    /// Smoothed bytes allocated, and mutator seconds they took.
    alloc_bytes: f64,
    alloc_secs: f64,
    /// Smoothed live bytes traced, and collection seconds they took.
    traced_bytes: f64,
    collect_secs: f64,
    /// Whether the figures above hold a sample yet.
    warm: bool,
}

impl MemBalancer {
    /// A balancer with `tuning = 1 / c` bytes and a floor of `min_extra`
    /// bytes over the live heap.
    pub fn new(tuning: usize, min_extra: usize) -> MemBalancer {
        MemBalancer {
            tuning: tuning as f64,
            min_extra,
            alloc_bytes: 0.0,
            alloc_secs: 0.0,
            traced_bytes: 0.0,
            collect_secs: 0.0,
            warm: false,
        }
    }

    /// Takes one collection's figures into the smoothed rates and returns the
    /// heap limit for the next cycle, in bytes. A sample without mutator or
    /// collection time (an untimed collection) leaves the rates as they were.
    pub fn observe(&mut self, sample: CollectionSample) -> usize {
        let (mutator, collection) = (sample.mutator.as_secs_f64(), sample.collection.as_secs_f64());
        if mutator > 0.0 && collection > 0.0 {
            let first = !self.warm;
            self.warm = true;
            smooth(&mut self.alloc_bytes, sample.allocated as f64, ALLOCATION_SMOOTHING, first);
            smooth(&mut self.alloc_secs, mutator, ALLOCATION_SMOOTHING, first);
            smooth(&mut self.traced_bytes, sample.live as f64, COLLECTION_SMOOTHING, first);
            smooth(&mut self.collect_secs, collection, COLLECTION_SMOOTHING, first);
        }
        self.limit(sample.live)
    }

    /// The heap limit for `live` bytes under the current smoothed rates.
    pub fn limit(&self, live: usize) -> usize {
        let extra = match self.ratio() {
            Some(ratio) => (live as f64 * self.tuning * ratio).sqrt(),
            None => live as f64,
        };
        live.saturating_add((extra as usize).max(self.min_extra))
    }

    /// `g / s`: the smoothed allocation rate over the collection speed, once
    /// a timed sample with traced bytes came in.
    pub fn ratio(&self) -> Option<f64> {
        let speed = self.traced_bytes / self.collect_secs;
        let rate = self.alloc_bytes / self.alloc_secs;
        (self.warm && speed > 0.0 && rate.is_finite()).then(|| rate / speed)
    }
}

/// An exponential moving average; the first sample sets it.
fn smooth(value: &mut f64, sample: f64, old_weight: f64, first: bool) {
    *value = if first { sample } else { *value * old_weight + sample * (1.0 - old_weight) };
}

/// The balanced limit as an incremental collector's pacing: sleep through
/// the first half of the room between the live bytes and the limit, then
/// trace the live bytes across the second half, a little per allocated byte,
/// instead of one full collection when the limit is reached.
///
/// A collector that counts its work in objects rather than bytes (gc-arena)
/// spreads its cycle's object count over the room left instead; cyclotron's
/// `incremental` policy (`examples/cyclotron/arena_runtime.rs`) does so.
///
/// ```
/// use gcmalloc::IncrementalPacing;
///
/// // 100 MiB live, limit 180 MiB: start at 140 MiB, trace 100 MiB over 40.
/// let p = IncrementalPacing::for_limit(100 << 20, 180 << 20);
/// assert_eq!(p.sleep, 0.4);
/// assert_eq!(p.work_per_byte, 2.5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct IncrementalPacing {
    /// Bytes to allocate before a cycle starts, as a fraction of the live
    /// bytes (gc-arena's `Pacing::sleep_factor`).
    pub sleep: f64,
    /// Bytes to trace per byte allocated once the cycle runs; infinite when
    /// the limit leaves no room (finish the cycle at once).
    pub work_per_byte: f64,
}

impl IncrementalPacing {
    /// The pacing that finishes a cycle over `live` bytes as memory reaches
    /// `limit`.
    pub fn for_limit(live: usize, limit: usize) -> IncrementalPacing {
        let half_room = limit.saturating_sub(live) as f64 / 2.0;
        let live = live as f64;
        IncrementalPacing {
            sleep: if live > 0.0 { half_room / live } else { 0.0 },
            work_per_byte: if half_room > 0.0 { live / half_room } else { f64::INFINITY },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn sample(live: usize, allocated: usize, mutator_ms: u64, collection_ms: u64) -> CollectionSample {
        CollectionSample {
            live,
            allocated,
            mutator: Duration::from_millis(mutator_ms),
            collection: Duration::from_millis(collection_ms),
        }
    }

    /// Hand-computed: L = 16 MiB, g = 256 MiB/s, s = 16 MiB / 0.01 s = 1600
    /// MiB/s, tuning 4 MiB: extra = sqrt(16 * 4 * 0.16) MiB = 3.2 MiB.
    #[test]
    fn limit_matches_the_rule_by_hand() {
        let mut b = MemBalancer::new(4 * MIB, 0);
        let limit = b.observe(sample(16 * MIB, 256 * MIB, 1_000, 10));
        let expected = 16.0 * MIB as f64 + 3.2 * MIB as f64;
        assert!((limit as f64 - expected).abs() < 2.0, "{limit} vs {expected}");
    }

    #[test]
    fn tiny_heaps_get_the_floor_and_cold_balancers_double() {
        let mut b = MemBalancer::new(4 * MIB, MIB);
        assert_eq!(b.limit(10 * MIB), 20 * MIB, "before a sample: L + L");
        assert_eq!(b.observe(sample(4096, 4096, 1_000, 1)), 4096 + MIB, "the floor");
        assert_eq!(b.observe(sample(MIB, 0, 0, 0)), MIB + MIB, "an untimed sample keeps the rates");
    }

    /// Rates are smoothed with 0.95 (allocation): when the allocation rate
    /// doubles, `g / s` follows within the window: past 3/4 of the way after
    /// 27 collections (1 - 0.95^27 = 0.75), and not after 1.
    #[test]
    fn limit_follows_a_doubled_allocation_rate_within_the_smoothing_window() {
        let mut b = MemBalancer::new(4 * MIB, 0);
        for _ in 0..100 {
            b.observe(sample(16 * MIB, 100 * MIB, 1_000, 10));
        }
        let before = b.ratio().unwrap();
        b.observe(sample(16 * MIB, 200 * MIB, 1_000, 10));
        assert!(b.ratio().unwrap() < before * 1.1, "one sample moved g/s too far");
        for _ in 1..27 {
            b.observe(sample(16 * MIB, 200 * MIB, 1_000, 10));
        }
        let after = b.ratio().unwrap();
        assert!(after > before * 1.74 && after <= before * 2.0, "g/s {before} -> {after}");
        for _ in 0..200 {
            b.observe(sample(16 * MIB, 200 * MIB, 1_000, 10));
        }
        let settled = b.limit(16 * MIB) - 16 * MIB;
        let expected = (16.0 * 4.0 * 2.0 * 100.0 * MIB as f64 * MIB as f64 / 1_600.0).sqrt();
        assert!((settled as f64 - expected).abs() < expected * 0.01, "extra {settled} vs {expected}");
    }

    /// The collection speed is smoothed with 0.5: one slow collection
    /// halves the speed's weight, not all of it.
    #[test]
    fn incremental_pacing_spends_the_second_half_of_the_room() {
        let p = IncrementalPacing::for_limit(10 * MIB, 14 * MIB);
        assert_eq!((p.sleep, p.work_per_byte), (0.2, 5.0));
        assert!(IncrementalPacing::for_limit(MIB, MIB).work_per_byte.is_infinite());
        assert_eq!(IncrementalPacing::for_limit(0, MIB).sleep, 0.0);
    }

    #[test]
    fn collection_speed_is_smoothed_by_half() {
        let mut b = MemBalancer::new(4 * MIB, 0);
        b.observe(sample(16 * MIB, 100 * MIB, 1_000, 10));
        let fast = b.ratio().unwrap();
        b.observe(sample(16 * MIB, 100 * MIB, 1_000, 30));
        // Traced bytes 16 MiB both times; seconds 0.5 * 0.01 + 0.5 * 0.03.
        assert!((b.ratio().unwrap() / fast - 2.0).abs() < 1e-9);
    }
}
