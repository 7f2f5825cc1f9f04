//! A soft memory limit on any pacing, as Go's `GOMEMLIMIT`: the trigger also
//! collects when memory reaches the limit (less a headroom), but a leaky
//! bucket caps the share of time spent collecting, so a live set above the
//! limit slows the program instead of making it collect without end.

use std::path::Path;
use std::time::Duration;

/// Where a [`GcTrigger`](crate::GcTrigger)'s soft memory limit comes from.
///
/// ```
/// use gcmalloc::{GcTrigger, MemoryLimit};
///
/// let trigger = GcTrigger::builder()
///     .memory_limit(MemoryLimit::Bytes(512 << 20))
///     .limit_headroom_percent(10) // collect from 460.8 MiB
///     .build();
/// assert_eq!(trigger.memory_limit(), Some(512 << 20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemoryLimit {
    /// A fixed figure, in bytes.
    Bytes(usize),
    /// The container's limit (see [`container_memory_limit`](crate::container_memory_limit)),
    /// read at build and re-read at most every [`LIMIT_REREAD`] when a
    /// collection ends. No limit where no cgroup sets one.
    Container,
}

/// How often a [`MemoryLimit::Container`] limit is read again.
pub const LIMIT_REREAD: Duration = Duration::from_secs(1);

/// The leaky bucket's size: the collection time, beyond the cap's share,
/// that limit-driven collections may spend before they are held back. Go's
/// is one CPU-second; a shorter one protects short programs too.
pub const CPU_BUCKET: Duration = Duration::from_millis(100);

impl MemoryLimit {
    /// The limit in bytes now; `None` where none is set.
    pub fn read(&self) -> Option<usize> {
        match *self {
            MemoryLimit::Bytes(bytes) => Some(bytes),
            MemoryLimit::Container => crate::container_memory_limit(Path::new("/")),
        }
    }
}

/// Go's GC CPU limiter: collection time fills the bucket at `1 - cap`,
/// mutator time drains it at `cap`; once full, limit-driven collections
/// wait. Over any stretch longer than the bucket, collections then take at
/// most about `cap` of the time.
///
/// ```
/// use std::time::Duration;
/// use gcmalloc::CpuBucket;
///
/// let mut bucket = CpuBucket::new(50);
/// let ms = Duration::from_millis;
/// bucket.add(ms(0), ms(300)); // 300 ms collecting, no mutator time
/// assert!(bucket.is_full(ms(0)));
/// assert!(!bucket.is_full(ms(120)), "120 ms of mutator time drain 60 ms");
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuBucket {
    /// The share of time collections may take, in [0, 1].
    cap: f64,
    /// Seconds in the bucket.
    level: f64,
}

impl CpuBucket {
    /// A bucket letting collections take `percent` % of the time (clamped
    /// to 1..=100; 100 never throttles).
    pub fn new(percent: u32) -> CpuBucket {
        CpuBucket { cap: f64::from(percent.clamp(1, 100)) / 100.0, level: 0.0 }
    }

    /// Adds one cycle: `mutator` time then `collection` time.
    pub fn add(&mut self, mutator: Duration, collection: Duration) {
        let drained = (self.level - mutator.as_secs_f64() * self.cap).max(0.0);
        let filled = drained + collection.as_secs_f64() * (1.0 - self.cap);
        self.level = filled.min(2.0 * CPU_BUCKET.as_secs_f64());
    }

    /// Whether the bucket is full after `mutator` more time since the last
    /// [`add`](Self::add).
    pub fn is_full(&self, mutator: Duration) -> bool {
        mutator < self.full_for()
    }

    /// The mutator time after which the bucket is no longer full (zero when
    /// it is not full now).
    pub fn full_for(&self) -> Duration {
        let over = self.level - CPU_BUCKET.as_secs_f64();
        if self.cap >= 1.0 || over <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(over / self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cycle of 1 ms mutator, 9 ms collecting, as a live set above the
    /// limit makes it: once the bucket is full, collections must wait
    /// until the share falls back to the cap.
    #[test]
    fn bucket_bounds_the_collection_share() {
        let mut bucket = CpuBucket::new(50);
        let (mut mutator, mut collecting) = (Duration::ZERO, Duration::ZERO);
        let step = Duration::from_millis(1);
        let mut waited = Duration::ZERO;
        for _ in 0..10_000 {
            if bucket.is_full(waited) {
                waited += step; // the mutator runs on instead
                mutator += step;
                continue;
            }
            bucket.add(waited + step, 9 * step);
            waited = Duration::ZERO;
            mutator += step;
            collecting += 9 * step;
        }
        let share = collecting.as_secs_f64() / (collecting + mutator).as_secs_f64();
        assert!(share > 0.45 && share < 0.55, "collection share {share}");
    }

    #[test]
    fn full_cap_never_throttles() {
        let mut bucket = CpuBucket::new(100);
        bucket.add(Duration::ZERO, Duration::from_secs(100));
        assert!(!bucket.is_full(Duration::ZERO));
    }
}
