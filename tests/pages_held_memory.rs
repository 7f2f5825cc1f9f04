//! Memory held by delayed pages while a registered thread is stuck attached
//! (it holds every QSBR goal back): large pages keep their block start, the
//! held bytes stay within the budget, and the pages are found wherever they
//! wait.

#[path = "common/rss.rs"]
mod rss;
#[path = "common/runner.rs"]
mod runner;
#[path = "common/stuck.rs"]
mod stuck;

use std::alloc::{GlobalAlloc, Layout};
use std::sync::mpsc;
use std::thread;

use gcmalloc::GcMalloc;
use rss::rss_bytes;

#[global_allocator]
static GLOBAL: GcMalloc = GcMalloc;

const MIB: usize = 1 << 20;

/// Runs `body` while a registered thread sits attached without quiescent
/// states, then lets it quiesce and exit and makes sure the goals taken
/// meanwhile are reached and the delayed pages released.
fn with_a_stuck_thread<T>(body: impl FnOnce() -> T) -> T {
    let out = stuck::with_a_stuck_thread(|_| body());
    let goal = gcmalloc::qsbr::advance();
    assert!(gcmalloc::qsbr::poll(goal), "no registered thread left, yet the goal is not reached");
    gcmalloc::release_delayed_pages();
    out
}

fn alloc(layout: Layout) -> usize {
    // SAFETY: every layout here has a non-zero size; the block is freed once
    // by `free` with the same layout. The trait methods are called directly
    // so the compiler treats later reads of freed memory as opaque.
    let p = unsafe { GLOBAL.alloc(layout) };
    assert!(!p.is_null(), "out of memory for {layout:?}");
    p as usize
}

fn free(p: usize, layout: Layout) {
    // SAFETY: `p` came from `alloc` with `layout` and is freed once.
    unsafe { GLOBAL.dealloc(p as *mut u8, layout) }
}

/// A waiting large or huge page whose block was handed out at an offset (an
/// over-aligned allocation) is not handed to an allocation that starts its
/// object elsewhere before the goal: a stale pointer to the old block never
/// points into the middle of a newer object. Delayed pages are still reused.
fn a_delayed_large_page_keeps_its_block_start() {
    let mut failures = Vec::new();
    with_a_stuck_thread(|| {
        for (size, align) in [(MIB, 256 << 10), (3 * MIB, MIB), (40 * MIB, 4 * MIB)] {
            let aligned = Layout::from_size_align(size, align).unwrap();
            // The same block size with no alignment, the requested size, and
            // half the alignment: each would fit the delayed page.
            let others = [
                Layout::from_size_align(size + align - 1, 8).unwrap(),
                Layout::from_size_align(size, 8).unwrap(),
                Layout::from_size_align(size, align / 2).unwrap(),
            ];
            let mut inside = 0;
            let mut freed = Vec::new();
            for _ in 0..8 {
                for other in others {
                    let q = alloc(aligned);
                    free(q, aligned);
                    let r = alloc(other);
                    if r < q && q < r + other.size() {
                        inside += 1;
                    }
                    free(r, other);
                    freed.extend([q, r]);
                }
            }
            let plain = Layout::from_size_align(size, 8).unwrap();
            let p = alloc(plain);
            free(p, plain);
            freed.push(p);
            let again = alloc(plain);
            let reused = freed.contains(&again);
            free(again, plain);
            println!(
                "  {} MiB at {} KiB: {inside} of 24 stale pointers inside a newer object",
                size / MIB,
                align >> 10
            );
            if inside > 0 {
                failures.push(format!("{size} at {align}: {inside} stale pointers inside a newer object"));
            }
            if !reused {
                failures.push(format!("{size}: no delayed page was reused ({again:#x})"));
            }
        }
    });
    assert!(failures.is_empty(), "{failures:?}");
}

/// Blocks of `size`, `count` of them, allocated by a new thread and freed by
/// another new thread.
fn producer_consumer_round(size: usize, count: usize) {
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let consumer = thread::spawn(move || {
        for block in rx {
            drop(std::hint::black_box(block));
        }
    });
    let producer = thread::spawn(move || {
        for i in 0..count {
            tx.send(vec![i as u8; size]).unwrap();
        }
    });
    producer.join().unwrap();
    consumer.join().unwrap();
}

/// A delayed huge page an exited thread left behind serves another heap's
/// allocation of its size before the goal (its segment is reclaimed with the
/// page's goal), rather than piling up beside new ones.
fn an_exited_threads_delayed_huge_page_serves_another_heap() {
    let layout = Layout::from_size_align(24 * MIB, 8).unwrap();
    let (freed, again) = with_a_stuck_thread(|| {
        let freed = thread::spawn(move || {
            let p = alloc(layout);
            free(p, layout);
            p
        })
        .join()
        .unwrap();
        let again = alloc(layout);
        free(again, layout);
        (freed, again)
    });
    println!("  24 MiB freed by an exited thread at {freed:#x}, allocated again at {again:#x}");
    assert_eq!(again, freed, "the exited thread's delayed huge page was not reused");
}

/// Large (8 MiB) and huge (24 MiB) blocks, allocated and freed by a new
/// producer/consumer pair each round while a registered thread is stuck:
/// RSS after 10 rounds stays within twice one round's footprint.
fn a_new_thread_pair_each_round_holds_bounded_memory() {
    let mut failures = Vec::new();
    for (size, count) in [(8 * MIB, 25), (24 * MIB, 8)] {
        let (first, last, held) = with_a_stuck_thread(|| {
            // Free memory of earlier cases goes back first: it would serve
            // the first round and hide its footprint.
            gcmalloc::release_free_memory();
            let before = rss_bytes();
            producer_consumer_round(size, count);
            gcmalloc::release_free_memory();
            let first = rss_bytes().saturating_sub(before);
            for _ in 1..10 {
                producer_consumer_round(size, count);
            }
            gcmalloc::release_free_memory();
            (first, rss_bytes().saturating_sub(before), gcmalloc::usage().delayed_bytes)
        });
        println!(
            "  {count} x {} MiB producer/consumer: one round +{} MiB, 10 rounds +{} MiB, held {} MiB",
            size / MIB,
            first / MIB,
            last / MIB,
            held / MIB
        );
        if last > 2 * first {
            failures.push(format!("{} MiB: 10 rounds +{} MiB, one round +{} MiB", size / MIB, last / MIB, first / MIB));
        }
    }
    assert!(failures.is_empty(), "RSS grew past twice one round: {failures:?}");
}

/// A workload that moves to another size class each round, freeing all it
/// allocated: the held bytes stay within the budget plus 10%.
fn shifting_size_classes_hold_at_most_the_budget() {
    let budget = 256 * MIB;
    let (held, pages, grew) = with_a_stuck_thread(|| {
        let before = rss_bytes();
        for round in 0..40 {
            let layout = Layout::from_size_align(64 + 64 * round, 8).unwrap();
            let blocks: Vec<usize> = (0..(64 * MIB) / layout.size()).map(|_| alloc(layout)).collect();
            for b in blocks {
                free(b, layout);
            }
        }
        let u = gcmalloc::usage();
        gcmalloc::release_free_memory(); // free segments, not delayed pages
        (u.delayed_bytes, u.delayed_pages, rss_bytes().saturating_sub(before))
    });
    println!(
        "  40 size classes x 64 MiB: held {} MiB in {pages} delayed pages, RSS +{} MiB (budget {} MiB)",
        held / MIB,
        grew / MIB,
        budget / MIB
    );
    assert!(held <= budget + budget / 10, "held {} MiB over a budget of {} MiB", held / MIB, budget / MIB);
    // RSS also holds what mimalloc keeps of the last round: its blocks' pages
    // before they were emptied, the list of blocks.
    assert!(grew <= budget + 128 * MIB, "RSS grew {} MiB over a budget of {} MiB", grew / MIB, budget / MIB);
}

/// Pages that no 32-bit reference names (segments above 2^48, forced here
/// by the tests' switch) are counted and found: a loop of 8 MiB allocations
/// with a stuck thread reuses their pages, `delayed_pages` counts them, and
/// the release step frees them once the goal is reached.
fn pages_beyond_a_page_reference_are_counted_and_reused() {
    gcmalloc::__test_treat_pages_as_far(true);
    let (grew, waiting) = with_a_stuck_thread(|| {
        let before = rss_bytes();
        let mut peak = before;
        for i in 0..200u8 {
            let block = vec![i; 8 * MIB];
            std::hint::black_box(&block);
            drop(block);
            peak = peak.max(rss_bytes());
        }
        (peak - before, gcmalloc::usage().delayed_pages)
    });
    let left = gcmalloc::usage().delayed_pages;
    gcmalloc::__test_treat_pages_as_far(false);
    println!("  200 x 8 MiB, every page far: peak RSS +{} MiB, {waiting} waiting, {left} after the goal", grew / MIB);
    assert!(waiting > 0, "no far page counted while the goal was held back");
    assert!(grew < 64 * MIB, "peak RSS grew by {} MiB", grew / MIB);
    assert_eq!(left, 0, "far pages still wait after their goal was reached");
}

/// Past the budget, emptied pages are purged: a freed block then reads as
/// zeros or as its own old data, or mimalloc's fill for freed blocks in a
/// debug build (never another size class's data), other size
/// classes do not land in the pages, and their own size class allocates in
/// them again. 128 MiB of 1 KiB blocks: more than the live estimate, which
/// bounds the budget from below.
fn purged_pages_read_zeros_and_serve_no_other_size_class() {
    const PATTERN: u64 = 0xABAB_ABAB_ABAB_ABAB;
    // What a debug build (`--features debug`) fills freed blocks with.
    const DEBUG_FREED: u64 = 0xDFDF_DFDF_DFDF_DFDF;
    const SIZE: usize = 1 << 10;
    const COUNT: usize = 128 << 10;
    let layout = Layout::from_size_align(SIZE, 8).unwrap();
    gcmalloc::set_delayed_page_budget(0); // the budget is the live estimate
    with_a_stuck_thread(|| {
        let mut blocks: Vec<usize> = (0..COUNT).map(|_| alloc(layout)).collect();
        for &b in &blocks {
            // SAFETY: a live block of ours, `SIZE` bytes.
            unsafe { std::ptr::write_bytes(b as *mut u8, 0xAB, SIZE) };
        }
        for &b in &blocks {
            free(b, layout);
        }
        blocks.sort_unstable();
        let u = gcmalloc::usage();
        // SAFETY: type-stable memory: a delayed page, purged or not, stays
        // mapped and the page's until the goal, which the stuck thread holds.
        let words: Vec<u64> =
            blocks.iter().map(|&b| unsafe { std::ptr::read_volatile((b as *const u64).add(1)) }).collect();
        let zeros = words.iter().filter(|&&w| w == 0).count();
        let foreign = words.iter().filter(|&&w| ![0, PATTERN, DEBUG_FREED].contains(&w)).count();
        let mut others = Vec::new();
        for size in [64, 64 << 10, MIB] {
            let other = Layout::from_size_align(size, 8).unwrap();
            others.extend((0..64).map(|_| (alloc(other), other)));
        }
        let landed = others
            .iter()
            .filter(|&&(p, l)| {
                let i = blocks.partition_point(|&f| f + SIZE <= p);
                i < blocks.len() && blocks[i] < p + l.size()
            })
            .count();
        for (p, l) in others {
            free(p, l);
        }
        let again: Vec<usize> = (0..COUNT).map(|_| alloc(layout)).collect();
        let reused = again.iter().filter(|p| blocks.binary_search(p).is_ok()).count();
        for b in again {
            free(b, layout);
        }
        println!(
            "  128 Ki x 1 KiB past the budget: {} delayed pages hold {} KiB; {zeros} blocks read zeros, {foreign} other data; {landed} other blocks inside; {reused} reused by 1 KiB",
            u.delayed_pages,
            u.delayed_bytes >> 10
        );
        assert!(u.delayed_bytes < COUNT * SIZE, "no page was purged: {} KiB held", u.delayed_bytes >> 10);
        assert!(zeros > 0, "no freed block reads zeros after the purge");
        assert_eq!(foreign, 0, "a freed block reads data it never held");
        assert_eq!(landed, 0, "another size class landed in a delayed page before its goal");
        assert!(reused > COUNT / 2, "the size class did not reuse its delayed pages ({reused})");
    });
    gcmalloc::set_delayed_page_budget(256 * MIB);
}

/// The budget's floor is settable and the budget is at least the live estimate.
fn the_budget_is_the_larger_of_its_floor_and_the_live_estimate() {
    assert_eq!(gcmalloc::delayed_page_budget(), (256 * MIB).max(gcmalloc::estimate()));
    gcmalloc::set_delayed_page_budget(1);
    let live = vec![1u8; 64 * MIB];
    gcmalloc::refresh_estimate();
    let budget = gcmalloc::delayed_page_budget();
    drop(std::hint::black_box(live));
    gcmalloc::set_delayed_page_budget(256 * MIB);
    assert!(budget >= 64 * MIB, "the budget {budget} is below the live estimate");
    assert_eq!(gcmalloc::delayed_page_budget(), (256 * MIB).max(gcmalloc::estimate()));
}

/// Runs without libtest (`harness = false`): the cases measure process-wide
/// figures (RSS, held bytes), so no other test may run beside them.
fn main() {
    runner::run(&[
        ("a_delayed_large_page_keeps_its_block_start", a_delayed_large_page_keeps_its_block_start),
        ("a_new_thread_pair_each_round_holds_bounded_memory", a_new_thread_pair_each_round_holds_bounded_memory),
        ("shifting_size_classes_hold_at_most_the_budget", shifting_size_classes_hold_at_most_the_budget),
        (
            "an_exited_threads_delayed_huge_page_serves_another_heap",
            an_exited_threads_delayed_huge_page_serves_another_heap,
        ),
        ("pages_beyond_a_page_reference_are_counted_and_reused", pages_beyond_a_page_reference_are_counted_and_reused),
        (
            "purged_pages_read_zeros_and_serve_no_other_size_class",
            purged_pages_read_zeros_and_serve_no_other_size_class,
        ),
        (
            "the_budget_is_the_larger_of_its_floor_and_the_live_estimate",
            the_budget_is_the_larger_of_its_floor_and_the_live_estimate,
        ),
    ]);
}
