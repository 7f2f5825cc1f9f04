//! The trigger's hot calls never allocate (dhat testing mode): a runtime
//! calls them from its allocation path.

#[path = "common/runner.rs"]
mod runner;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use gcmalloc::{GcTrigger, MemoryLimit, MemorySource, Pacing, LIMIT_REREAD};

static MEM: AtomicUsize = AtomicUsize::new(1 << 30);

fn record_check_and_collect_do_not_allocate() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let sources =
        [MemorySource::Custom(|| MEM.load(Relaxed)), MemorySource::Rss, MemorySource::Estimate, MemorySource::None];
    let mut triggers: Vec<GcTrigger> =
        sources.iter().map(|&source| GcTrigger::builder().threshold(100).source(source).build()).collect();
    // Balanced pacing and soft limits time each collection and update their
    // smoothed rates, bucket and (container) limit in `collected`.
    for limit in [MemoryLimit::Bytes(1 << 30), MemoryLimit::Container] {
        let builder = GcTrigger::builder().threshold(100).pacing(Pacing::BALANCED).memory_limit(limit);
        triggers.push(builder.source(MemorySource::Custom(|| MEM.load(Relaxed))).build());
        triggers.push(builder.source(MemorySource::Estimate).build());
    }
    // Warm up: the first record on a thread registers its batch's TLS
    // destructor, which may allocate once.
    for trigger in &triggers {
        trigger.record_alloc(1);
    }
    let before = dhat::HeapStats::get();
    let mut collections = 0;
    let container_from = triggers.len() - 2;
    for (t, trigger) in triggers.iter().enumerate() {
        for i in 0..50_000 {
            if i == 25_000 && t >= container_from {
                // Past the re-read interval: the next `collected` reads the
                // container's limit again.
                std::thread::sleep(LIMIT_REREAD);
            }
            trigger.record_alloc(1);
            if trigger.should_collect() {
                trigger.collected();
                collections += 1;
            }
            MEM.fetch_add(i % 3 * 4096, Relaxed);
            assert!(trigger.pending() <= 50_000);
            std::hint::black_box(trigger.stats());
        }
    }
    let after = dhat::HeapStats::get();
    assert!(collections > 0, "the loop must exercise collected()");
    dhat::assert_eq!(after.total_blocks, before.total_blocks);
}

/// Runs without libtest (`harness = false`): this is the only thread, so
/// dhat's process-wide counts are this check's.
fn main() {
    runner::run(&[("record_check_and_collect_do_not_allocate", record_check_and_collect_do_not_allocate)]);
}
