//! `Pacing::Balanced`, the soft memory limit with its GC CPU cap, and
//! `GcTrigger::stats()`, on a trigger driven as a runtime drives it. Memory
//! comes from `MemorySource::Custom` over a per-test static.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use gcmalloc::{CollectReason, GcTrigger, MemoryLimit, MemorySource, Pacing};

const MIB: usize = 1 << 20;

fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

#[test]
fn stats_count_checks_deferrals_collections_and_reasons() {
    static MEM: AtomicUsize = AtomicUsize::new(100 * MIB);
    let trigger =
        GcTrigger::builder().threshold(100).cap_multiple(3).source(MemorySource::Custom(|| MEM.load(Relaxed))).build();
    trigger.record_alloc(100);
    assert!(!trigger.should_collect());
    assert_eq!(trigger.stats().checks, 0, "checks below the threshold are not counted");
    trigger.record_alloc(1);
    assert!(!trigger.should_collect(), "flat memory defers");
    let stats = trigger.stats();
    assert_eq!((stats.checks, stats.deferrals, stats.collections, stats.last_reason), (1, 1, 0, None));

    MEM.store(120 * MIB, Relaxed);
    trigger.record_alloc(101);
    assert!(trigger.should_collect());
    assert_eq!(trigger.stats().last_reason, Some(CollectReason::Growth));
    trigger.collected();
    assert_eq!(trigger.stats().collections, 1);

    for _ in 0..3 {
        trigger.record_alloc(101);
        let _ = trigger.should_collect();
    }
    assert_eq!(trigger.stats().last_reason, Some(CollectReason::Cap), "flat memory past 3 thresholds");

    let goal = GcTrigger::builder()
        .pacing(Pacing::Goal { gogc: 100, min_heap: 0 })
        .source(MemorySource::Custom(|| MEM.load(Relaxed)))
        .build();
    MEM.store(240 * MIB, Relaxed);
    goal.record_alloc(2_001);
    assert!(goal.should_collect());
    assert_eq!(goal.stats().last_reason, Some(CollectReason::Goal));
}

/// The estimate policy of today, unchanged: the default trigger decides
/// every step of a scripted run exactly as the CPython gate (10%, at least
/// 128 KiB, cap 40 thresholds) computed here by hand.
#[test]
fn default_gate_decides_as_before() {
    static MEM: AtomicUsize = AtomicUsize::new(64 * MIB);
    let trigger = GcTrigger::builder().source(MemorySource::Custom(|| MEM.load(Relaxed))).build();
    let (mut young, mut deferred, mut baseline) = (0usize, 0usize, 64 * MIB);
    let mut seed = 12345u64;
    let mut collections = 0;
    for step in 0..200_000 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let memory = (MEM.load(Relaxed) as i64 + ((seed >> 33) % 9000) as i64 - 4000).max(0) as usize;
        MEM.store(memory, Relaxed);
        trigger.record_alloc(1);
        young += 1;
        let expected = young > 2_000
            && (young + deferred > 80_000 || memory > baseline + (baseline / 10).max(128 << 10) || {
                deferred += young;
                young = 0;
                false
            });
        assert_eq!(trigger.should_collect(), expected, "step {step}");
        if expected {
            MEM.store(memory / 2, Relaxed);
            trigger.collected();
            (young, deferred, baseline) = (0, 0, memory / 2);
            collections += 1;
        }
    }
    assert!(collections > 10, "the script must collect ({collections})");
    assert_eq!(trigger.heap_limit(), None);
    assert_eq!(trigger.memory_limit(), None);
}

/// A runtime that allocates X bytes, runs its mutator for 10 ms, and
/// collects back to 10 MiB live in 1 ms (told with `collected_in`): the
/// balanced trigger gives its reason, and its extra memory grows by about
/// sqrt(2) when X doubles (the allocation rate doubles), once the 0.95
/// smoothing has taken in 40 cycles (1 - 0.95^40 = 87% of the change: 1.37x
/// in theory). Sleeps, not spins: a loaded machine delays them far less than
/// it stretches busy loops.
#[test]
fn balanced_limit_grows_with_the_allocation_rate() {
    static MEM: AtomicUsize = AtomicUsize::new(10 * MIB);
    let trigger = GcTrigger::builder()
        .threshold(1)
        .cap_multiple(usize::MAX)
        .pacing(Pacing::Balanced { tuning: MIB, min_extra: 0 })
        .source(MemorySource::Custom(|| MEM.load(Relaxed)))
        .build();
    assert_eq!(trigger.heap_limit(), Some(20 * MIB), "cold: L + L");
    let run = |bytes_per_cycle: usize| {
        for _ in 0..40 {
            trigger.record_alloc(2);
            MEM.fetch_add(bytes_per_cycle, Relaxed);
            std::thread::sleep(Duration::from_millis(10));
            assert!(trigger.should_collect(), "each cycle passes the limit: {:?}", trigger.heap_limit());
            MEM.store(10 * MIB, Relaxed);
            trigger.collected_in(Duration::from_millis(1));
        }
        trigger.heap_limit().unwrap() - 10 * MIB
    };
    let slow = run(40 * MIB);
    let fast = run(80 * MIB);
    assert_eq!(trigger.stats().last_reason, Some(CollectReason::Balanced));
    let ratio = fast as f64 / slow as f64;
    assert!(ratio > 1.15 && ratio < 1.6, "extra {slow} -> {fast} (x{ratio:.2}) when the rate doubled");
}

/// Live memory below the soft limit: the limit collects (reason Limit) as
/// memory reaches the limit less the headroom, and memory stays below it
/// but for one threshold's allocations.
#[test]
fn soft_limit_collects_before_the_limit() {
    static MEM: AtomicUsize = AtomicUsize::new(10 * MIB);
    let trigger = GcTrigger::builder()
        .threshold(100)
        .pacing(Pacing::Goal { gogc: 1_000, min_heap: 0 })
        .memory_limit(MemoryLimit::Bytes(100 * MIB))
        .limit_headroom_percent(10)
        .source(MemorySource::Custom(|| MEM.load(Relaxed)))
        .build();
    assert_eq!(trigger.memory_limit(), Some(100 * MIB));
    let mut peak = 0;
    for _ in 0..20_000 {
        trigger.record_alloc(1);
        peak = peak.max(MEM.fetch_add(16 << 10, Relaxed));
        if trigger.should_collect() {
            MEM.store(30 * MIB, Relaxed);
            trigger.collected();
        }
    }
    let stats = trigger.stats();
    assert_eq!(stats.last_reason, Some(CollectReason::Limit), "GOGC 1000 alone would reach 330 MiB");
    assert!(stats.limit_hits > 0 && stats.throttled == 0, "{stats:?}");
    // Memory is read once per threshold (100 allocations of 16 KiB here).
    assert!(peak <= 90 * MIB + 101 * (16 << 10), "peak {peak} past the limit less headroom");
}

/// Live memory above the soft limit: every check is at the limit, yet
/// collections take at most about half the time (the CPU cap's bucket),
/// the run completes, and the throttled collections are counted. Without
/// the cap the collections take almost all of it.
#[test]
fn live_above_the_limit_does_not_spiral() {
    static MEM: AtomicUsize = AtomicUsize::new(200 * MIB);
    let run = |cpu_percent: u32| {
        let trigger = GcTrigger::builder()
            .threshold(10)
            .cap_multiple(1_000_000)
            .memory_limit(MemoryLimit::Bytes(100 * MIB))
            .gc_cpu_percent(cpu_percent)
            .source(MemorySource::Custom(|| MEM.load(Relaxed)))
            .build();
        let start = Instant::now();
        let mut collecting = Duration::ZERO;
        while start.elapsed() < Duration::from_secs(1) {
            trigger.record_alloc(11);
            if trigger.should_collect() {
                let c = Instant::now();
                spin(Duration::from_millis(2));
                trigger.collected();
                collecting += c.elapsed();
            } else {
                spin(Duration::from_micros(50));
            }
        }
        (collecting.as_secs_f64() / start.elapsed().as_secs_f64(), trigger.stats())
    };
    let (share, stats) = run(50);
    // Bound: the cap, plus the bucket (100 ms at 50%) over a 1 s run, plus
    // one collection and some slack for a loaded machine.
    assert!(share < 0.5 + 0.2 / 1.0 / 2.0 + 0.06, "collections took {share:.2} of the run; {stats:?}");
    assert!(stats.throttled > 0 && stats.limit_hits > stats.throttled, "{stats:?}");
    let (uncapped, _) = run(100);
    assert!(uncapped > 0.85, "without the cap collections take {uncapped:.2}");
}
