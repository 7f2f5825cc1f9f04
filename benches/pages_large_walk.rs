//! The cost of a large allocation while many small pages wait for their QSBR
//! goal: one 1–2 MiB allocation and free, with 0, 1,000, 10,000 and 30,000
//! empty small pages waiting (the registered thread holds every goal back).
//! A large allocation looks for a delayed large page to reuse; it must not
//! walk the delayed small pages to find one.
//!
//! ```sh
//! cargo bench --bench pages_large_walk   # about 10 s, up to 1 GiB
//! ```
//!
//! It prints the time per allocation and free at each count, and its ratio
//! to the time with no delayed page, measured in the same run. Goal: at most
//! 2x at 30,000 delayed small pages.

use std::alloc::{GlobalAlloc, Layout};
use std::time::{Duration, Instant};

use gcmalloc::GcMalloc;

#[global_allocator]
static GLOBAL: GcMalloc = GcMalloc;

/// 8 KiB: the largest small size class, 8 blocks to a 64 KiB page.
const SMALL: usize = 8 << 10;
const PER_PAGE: usize = 8;
const OPS: usize = 2_000;

/// Empties small pages while the goal is held back, until `target` pages wait.
fn wait_small_pages(target: usize) {
    let layout = Layout::from_size_align(SMALL, 8).unwrap();
    loop {
        let waiting = gcmalloc::usage().delayed_pages;
        if waiting >= target {
            return;
        }
        // SAFETY: non-zero size; every block is freed once below with `layout`.
        // The delayed pages serve their size class first: allocate them all
        // again, and the pages missing.
        let blocks: Vec<usize> =
            (0..(target + target / 16 + 8) * PER_PAGE).map(|_| unsafe { GLOBAL.alloc(layout) } as usize).collect();
        for b in blocks {
            // SAFETY: allocated above with `layout`, freed once.
            unsafe { GLOBAL.dealloc(b as *mut u8, layout) };
        }
    }
}

/// Mean time of one 1–2 MiB allocation and free (the best of 5 runs).
fn large_alloc_free() -> Duration {
    let sizes = [1 << 20, 3 << 19, 2 << 20, 5 << 18];
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for i in 0..OPS {
                let layout = Layout::from_size_align(sizes[i % sizes.len()], 8).unwrap();
                // SAFETY: non-zero size; freed at once with the same layout.
                unsafe {
                    let p = GLOBAL.alloc(layout);
                    assert!(!p.is_null());
                    std::hint::black_box(p).write(1);
                    GLOBAL.dealloc(p, layout);
                }
            }
            start.elapsed() / OPS as u32
        })
        .min()
        .unwrap()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benchmarks: there is one
    }
    // Every emptied page keeps its memory: past the held-memory budget, the
    // size class would reuse its purged pages rather than empty new ones.
    gcmalloc::set_delayed_page_budget(usize::MAX);
    // Registered and never quiescent, this thread holds every goal back.
    let me = gcmalloc::register_thread();
    let mut base = None;
    println!("{:>14} {:>14} {:>12} {:>8}", "waiting small", "delayed pages", "ns/op", "ratio");
    for target in [0, 1_000, 10_000, 30_000] {
        wait_small_pages(target);
        let t = large_alloc_free();
        let base = *base.get_or_insert(t);
        println!(
            "{:>14} {:>14} {:>12.0} {:>8.2}",
            target,
            gcmalloc::usage().delayed_pages,
            t.as_nanos() as f64,
            t.as_secs_f64() / base.as_secs_f64()
        );
    }
    me.quiescent();
}
