//! `GcTrigger`: threshold, memory gate, cap, heap-goal mode, reads that never
//! drain, and per-thread batching. Memory comes from `MemorySource::Custom`
//! over a per-test static, so every decision is deterministic.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use gcmalloc::{GcTrigger, MemorySource, Pacing, RECORD_BATCH};

const MIB: usize = 1 << 20;

/// Records `n` single allocations, checking after each one as a runtime
/// would; returns how many of the checks said "collect" (calling
/// `collected()` after each, as a runtime would).
fn run(trigger: &GcTrigger, n: usize) -> usize {
    let mut collections = 0;
    for _ in 0..n {
        trigger.record_alloc(1);
        if trigger.should_collect() {
            trigger.collected();
            collections += 1;
        }
    }
    collections
}

#[test]
fn young_threshold_is_passed_only_after_threshold_allocations() {
    let trigger = GcTrigger::builder().threshold(2_000).source(MemorySource::None).build();
    trigger.record_alloc(2_000);
    assert!(!trigger.should_collect(), "2,000 allocations do not pass 2,000");
    trigger.record_alloc(1);
    assert!(trigger.should_collect());
    trigger.collected();
    assert_eq!(trigger.pending(), 0);
    assert!(!trigger.should_collect(), "collected() restarts the count");
    assert_eq!(run(&trigger, 10 * 2_001), 10);
}

#[test]
fn gate_defers_until_memory_grows_by_the_fraction() {
    static MEM: AtomicUsize = AtomicUsize::new(100 * MIB);
    let trigger = GcTrigger::builder().source(MemorySource::Custom(|| MEM.load(Relaxed))).build();
    assert_eq!(trigger.baseline(), 100 * MIB);

    trigger.record_alloc(2_001);
    MEM.store(110 * MIB, Relaxed); // exactly 10%: not more than 10%
    assert!(!trigger.should_collect(), "10% growth must be deferred");
    assert_eq!(trigger.pending(), 2_001, "deferral keeps the count");
    assert!(!trigger.should_collect(), "young count moved to deferred");

    trigger.record_alloc(2_001);
    MEM.store(110 * MIB + 1, Relaxed);
    assert!(trigger.should_collect(), "more than 10% growth collects");

    MEM.store(50 * MIB, Relaxed);
    trigger.collected();
    assert_eq!(trigger.baseline(), 50 * MIB, "collected() takes a new baseline");
    trigger.record_alloc(2_001);
    MEM.store(56 * MIB, Relaxed);
    assert!(trigger.should_collect(), "growth is measured from the new baseline");
}

#[test]
fn gate_asks_for_at_least_128_kib_of_growth() {
    static MEM: AtomicUsize = AtomicUsize::new(0);
    let trigger = GcTrigger::builder().source(MemorySource::Custom(|| MEM.load(Relaxed))).build();
    trigger.record_alloc(2_001);
    MEM.store(128 << 10, Relaxed);
    assert!(!trigger.should_collect());
    trigger.record_alloc(2_001);
    MEM.store((128 << 10) + 1, Relaxed);
    assert!(trigger.should_collect());
}

#[test]
fn cap_collects_after_40_thresholds_of_flat_memory() {
    static MEM: AtomicUsize = AtomicUsize::new(100 * MIB);
    let trigger = GcTrigger::builder().threshold(100).source(MemorySource::Custom(|| MEM.load(Relaxed))).build();
    let cap = 40 * 100;
    let mut first = None;
    for i in 1..=3 * cap {
        trigger.record_alloc(1);
        if trigger.should_collect() {
            first = Some(i);
            break;
        }
    }
    let first = first.expect("flat memory must not defer forever");
    assert!(first > cap, "collected after {first} <= cap {cap} allocations");
    // The cap is checked when the young count next passes the threshold.
    assert!(first <= cap + 101, "collected only after {first} allocations");
}

#[test]
fn cap_multiple_is_configurable() {
    static MEM: AtomicUsize = AtomicUsize::new(100 * MIB);
    let trigger =
        GcTrigger::builder().threshold(100).cap_multiple(5).source(MemorySource::Custom(|| MEM.load(Relaxed))).build();
    let collections = run(&trigger, 10 * 5 * 100);
    assert!((8..=10).contains(&collections), "{collections} collections");
}

#[test]
fn goal_mode_collects_at_the_heap_goal() {
    static MEM: AtomicUsize = AtomicUsize::new(10 * MIB);
    let trigger = GcTrigger::builder()
        .pacing(Pacing::Goal { gogc: 100, min_heap: 4 * MIB })
        .source(MemorySource::Custom(|| MEM.load(Relaxed)))
        .build();
    trigger.record_alloc(2_001);
    MEM.store(20 * MIB - 1, Relaxed);
    assert!(!trigger.should_collect(), "below the goal 2 x 10 MiB");
    trigger.record_alloc(2_001);
    MEM.store(20 * MIB, Relaxed);
    assert!(trigger.should_collect(), "at the goal");

    // A small live heap is paced from min_heap: goal 2 x 4 MiB.
    MEM.store(MIB, Relaxed);
    trigger.collected();
    trigger.record_alloc(2_001);
    MEM.store(8 * MIB - 1, Relaxed);
    assert!(!trigger.should_collect(), "below the goal 2 x 4 MiB");
    trigger.record_alloc(2_001);
    MEM.store(8 * MIB, Relaxed);
    assert!(trigger.should_collect());
}

/// CPython #157377: reading the count consumed it, and a 200k-cycle loop
/// with flat memory then ran 0 collections.
#[test]
fn reading_counts_never_drains_them() {
    static MEM: AtomicUsize = AtomicUsize::new(100 * MIB);
    let trigger = GcTrigger::builder().source(MemorySource::Custom(|| MEM.load(Relaxed))).build();
    let mut collections = 0;
    let mut expected_pending = 0;
    for _ in 0..200_000 {
        trigger.record_alloc(1);
        expected_pending += 1;
        assert_eq!(trigger.pending(), expected_pending);
        assert_eq!(trigger.pending(), expected_pending, "a read changed it");
        if trigger.should_collect() {
            trigger.collected();
            collections += 1;
            expected_pending = 0;
        }
        assert_eq!(trigger.pending(), expected_pending, "should_collect lost counts");
    }
    // The cap (80,000) must fire at least twice in 200,000 allocations.
    assert!(collections >= 2, "only {collections} collections");
}

#[test]
fn allocations_recorded_on_other_threads_are_all_counted() {
    let trigger = GcTrigger::builder().source(MemorySource::None).build();
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..1_000 {
                        trigger.record_alloc(1);
                    }
                })
            })
            .collect();
        // An explicit join waits for the thread's exit, thread-local
        // destructors included (the scope's implicit join does not).
        for thread in threads {
            thread.join().unwrap();
        }
    });
    // Exited threads flushed their batches.
    assert_eq!(trigger.pending(), 4_000);
}

#[test]
fn other_threads_lag_by_less_than_one_batch() {
    let trigger = GcTrigger::builder().source(MemorySource::None).build();
    let (recorded, done) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    let seen = std::thread::scope(|s| {
        s.spawn(|| {
            trigger.record_alloc(3 * RECORD_BATCH + 1);
            recorded.wait();
            done.wait();
        });
        recorded.wait();
        let seen = trigger.pending();
        done.wait();
        seen
    });
    assert!(seen > 2 * RECORD_BATCH + 1, "{seen} of {} seen", 3 * RECORD_BATCH + 1);
}

#[test]
fn interleaved_triggers_keep_their_own_counts() {
    let a = GcTrigger::builder().source(MemorySource::None).build();
    let b = GcTrigger::builder().source(MemorySource::None).build();
    for _ in 0..1_000 {
        a.record_alloc(1);
        b.record_alloc(2);
    }
    assert_eq!((a.pending(), b.pending()), (1_000, 2_000));
}

#[cfg(target_os = "linux")]
#[test]
fn rss_source_sees_touched_memory() {
    let trigger = GcTrigger::builder().source(MemorySource::Rss).build();
    let block = std::hint::black_box(vec![1u8; 256 * MIB]);
    trigger.record_alloc(2_001);
    assert!(trigger.should_collect(), "256 MiB more RSS must pass the gate");
    drop(block);
}

#[test]
fn counts_saturate_instead_of_wrapping() {
    // Release builds used to wrap: 2 x (usize::MAX / 2) + 10 read as 8.
    let trigger = GcTrigger::builder().source(MemorySource::None).build();
    trigger.record_alloc(usize::MAX / 2);
    trigger.record_alloc(usize::MAX / 2);
    trigger.record_alloc(10);
    assert_eq!(trigger.pending(), usize::MAX);
    assert!(trigger.should_collect());
    trigger.collected();
    assert_eq!(trigger.pending(), 0);
}

/// `should_collect_once` (dumpster's plain-`fn` condition): true once per
/// due collection, the next call takes the new baseline and says no.
#[test]
fn should_collect_once_says_yes_once_then_rebases() {
    static MEM: AtomicUsize = AtomicUsize::new(100 * MIB);
    let trigger = GcTrigger::builder().source(MemorySource::Custom(|| MEM.load(Relaxed))).build();
    trigger.record_alloc(2_001);
    MEM.store(120 * MIB, Relaxed);
    assert!(trigger.should_collect_once(), "due: 20% growth");
    MEM.store(80 * MIB, Relaxed); // the collection freed memory
    assert!(!trigger.should_collect_once(), "the call after a yes rebases");
    assert_eq!(trigger.baseline(), 80 * MIB);
    assert_eq!(trigger.pending(), 0);
    trigger.record_alloc(2_001);
    assert!(!trigger.should_collect_once(), "no growth from the new baseline");
    trigger.record_alloc(2_001);
    MEM.store(90 * MIB, Relaxed);
    assert!(trigger.should_collect_once(), "growth from the new baseline");
}

/// Threads racing on one due collection: exactly one of them gets it.
#[test]
fn should_collect_once_has_one_winner() {
    for _ in 0..200 {
        let trigger = GcTrigger::builder().source(MemorySource::None).build();
        trigger.record_alloc(2_001);
        let barrier = std::sync::Barrier::new(4);
        let yes = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    barrier.wait();
                    if trigger.should_collect_once() {
                        yes.fetch_add(1, Relaxed);
                    }
                });
            }
        });
        assert_eq!(yes.load(Relaxed), 1, "one due collection, one yes");
    }
}

/// A `Custom` source that panics while `should_collect_once` takes the new
/// baseline leaves the trigger usable: the panic reaches the caller, and the
/// next checks rebase and say yes again when a collection is due.
#[test]
fn should_collect_once_survives_a_panicking_source() {
    static PANIC_NEXT_READ: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    fn source() -> usize {
        if PANIC_NEXT_READ.swap(false, Relaxed) {
            panic!("the source failed once");
        }
        100 * MIB
    }
    let trigger =
        GcTrigger::builder().source(MemorySource::Custom(source)).pacing(Pacing::Goal { gogc: 0, min_heap: 0 }).build();
    trigger.record_alloc(2_001);
    assert!(trigger.should_collect_once(), "due");
    PANIC_NEXT_READ.store(true, Relaxed);
    let rebase = std::panic::catch_unwind(|| trigger.should_collect_once());
    assert!(rebase.is_err(), "the source's panic reaches the caller");
    let mut yes = 0;
    for _ in 0..1_000 {
        trigger.record_alloc(2_001);
        yes += usize::from(trigger.should_collect_once());
    }
    assert_eq!(yes, 500, "every other due check says yes (the others rebase)");
}
