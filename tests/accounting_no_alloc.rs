//! `estimate()` and `usage()` never allocate (dhat testing mode counts every
//! allocation made through the global allocator).

#[path = "common/runner.rs"]
mod runner;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

use std::hint::black_box;

fn estimate_and_usage_do_not_allocate() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get();
    let mut sum = 0usize;
    for _ in 0..1_000 {
        sum = sum.wrapping_add(black_box(gcmalloc::estimate()));
    }
    black_box(gcmalloc::usage());
    black_box(sum);
    let after = dhat::HeapStats::get();
    dhat::assert_eq!(after.total_blocks, before.total_blocks);
    dhat::assert_eq!(after.total_bytes, before.total_bytes);
}

/// Runs without libtest (`harness = false`): this is the only thread, so
/// dhat's process-wide counts are this check's.
fn main() {
    runner::run(&[("estimate_and_usage_do_not_allocate", estimate_and_usage_do_not_allocate)]);
}
