//! GcHeap figures: two GcHeaps side by side count only their own blocks, the
//! process-wide estimate counts everything, the counters are exact after a
//! refresh (an exited thread's pages included), and a GcHeap dropped with
//! live blocks leaves them valid and out of every later GcHeap's figures.
//!
//! Without libtest's harness: the figures are compared exactly, on the
//! process's only thread (and threads it joins).

#[path = "common/runner.rs"]
mod runner;

use std::alloc::{GlobalAlloc, Layout};
use std::thread;

use allocator_api2::alloc::Allocator;
use gcmalloc::{GcHeap, GcMalloc};

#[global_allocator]
static GLOBAL: GcMalloc = GcMalloc;

const SMALL: usize = 64;

fn leak(heap: GcHeap) -> &'static GcHeap {
    Box::leak(Box::new(heap))
}

fn alloc_in(heap: &GcHeap, n: usize) -> Vec<usize> {
    let layout = Layout::from_size_align(SMALL, 8).unwrap();
    (0..n).map(|_| heap.allocate(layout).unwrap().cast::<u8>().as_ptr() as usize).collect()
}

fn free_in(heap: &GcHeap, blocks: &[usize]) {
    let layout = Layout::from_size_align(SMALL, 8).unwrap();
    for &p in blocks {
        // SAFETY: a live block of `heap` with this layout.
        unsafe { heap.deallocate(std::ptr::NonNull::new_unchecked(p as *mut u8), layout) };
    }
}

/// The size of the blocks (what the figures count): `SMALL`, or more where
/// mimalloc's debug build pads blocks. Consecutive blocks of a fresh page are
/// adjacent.
fn block_size(blocks: &[usize]) -> usize {
    let size = blocks.windows(2).map(|w| w[1].wrapping_sub(w[0])).filter(|&d| d >= SMALL).min().unwrap();
    assert!(size < 2 * SMALL, "blocks of {size} bytes");
    size
}

fn assert_near(what: &str, got: usize, want: usize) {
    // Up to one page per size class of fast-path allocations since the last
    // sync, and the blocks' bookkeeping vectors are not in the GcHeap.
    assert!(got.abs_diff(want) <= 64 << 10, "{what}: {got} bytes, expected {want}");
}

fn two_gc_heaps_keep_separate_figures() {
    let (a, b) = (leak(GcHeap::new().unwrap()), leak(GcHeap::new().unwrap()));
    assert_ne!(a.tag(), b.tag());
    let before = gcmalloc::estimate();
    let in_a = alloc_in(a, 100_000);
    let in_b = alloc_in(b, 25_000);
    let global: Vec<Box<[u8; SMALL]>> = (0..60_000).map(|_| Box::new([1; SMALL])).collect();
    a.refresh();
    b.refresh();
    gcmalloc::refresh_estimate();
    let bsize = block_size(&in_a);
    assert_near("a", a.estimate(), 100_000 * bsize);
    assert_near("b", b.estimate(), 25_000 * bsize);
    let all = gcmalloc::estimate();
    assert!(all >= before + (185_000 * SMALL) - (64 << 10), "process-wide {all} does not count the GcHeaps");
    free_in(a, &in_a[..50_000]);
    drop(global);
    a.refresh();
    assert_near("a after freeing half", a.estimate(), 50_000 * bsize);
    assert_near("b, untouched", b.estimate(), 25_000 * bsize);
    let u = a.usage();
    assert_eq!(u.heaps, 1, "one thread's heap of a: {u:?}");
    assert_eq!(u.exact(), u.estimate, "published at the refresh: {u:?}");
    free_in(a, &in_a[50_000..]);
    free_in(b, &in_b);
    println!("two GcHeaps side by side: separate figures");
}

fn counters_are_exact_after_refresh() {
    let heap = leak(GcHeap::new().unwrap());
    let mine = alloc_in(heap, 30_000);
    // A thread that exits with live blocks: its pages are abandoned.
    let theirs = thread::spawn(move || alloc_in(heap, 20_000)).join().unwrap();
    free_in(heap, &mine[..10_000]);
    free_in(heap, &theirs[..5_000]); // frees into abandoned pages
                                     // SAFETY: no other thread runs.
    let audit = unsafe { heap.audit() };
    assert_eq!(audit.counted, audit.carried, "the counters drifted from the pages: {audit:?}");
    heap.refresh();
    // SAFETY: no other thread runs.
    let audit = unsafe { heap.audit() };
    assert_eq!(audit.counted, audit.carried, "{audit:?}");
    assert_eq!(audit.counted, audit.recounted, "not exact after a refresh: {audit:?}");
    assert_eq!(audit.recounted, 35_000 * block_size(&mine), "{audit:?}");
    assert_eq!(heap.estimate(), audit.counted, "the figure is not what the counters hold");
    free_in(heap, &mine[10_000..]);
    free_in(heap, &theirs[5_000..]);
    println!("counters exact after refresh: {audit:?}");
}

fn dropping_a_gc_heap_with_live_blocks_keeps_them_valid() {
    let heap = GcHeap::new().unwrap();
    let dropped_tag = heap.tag();
    let small = alloc_in(&heap, 1_000);
    let large = Layout::from_size_align(4 << 20, 8).unwrap();
    let big = (&heap).allocate(large).unwrap().cast::<u8>().as_ptr();
    drop(heap);
    let with_them = gcmalloc::estimate();
    assert!(with_them >= 4 << 20, "the process-wide figure lost them");
    // They stay valid: written, read, and freed by the global allocator.
    for &p in &small {
        // SAFETY: a live 64-byte block.
        unsafe { (p as *mut [u8; SMALL]).write([3; SMALL]) };
    }
    // SAFETY: a live block of 4 MiB.
    unsafe { big.write_bytes(5, 4 << 20) };
    let next = GcHeap::new().unwrap();
    assert_ne!(next.tag(), dropped_tag, "a dropped GcHeap's tag was handed out again");
    assert_eq!(next.estimate(), 0, "a new GcHeap counts the dropped one's blocks");
    for &p in &small {
        // SAFETY: a live gcmalloc block of this layout.
        unsafe { GLOBAL.dealloc(p as *mut u8, Layout::from_size_align(SMALL, 8).unwrap()) };
    }
    // SAFETY: as above.
    unsafe { GLOBAL.dealloc(big, large) };
    assert!(gcmalloc::estimate() < with_them - (4 << 20) + (64 << 10), "freed blocks still counted");
    println!("a dropped GcHeap's blocks stay valid and leave the figures when freed");
}

fn tags_run_out_with_an_error() {
    let mut heaps = Vec::new();
    let err = loop {
        match GcHeap::new() {
            Ok(h) => heaps.push(h),
            Err(e) => break e,
        }
    };
    assert_eq!(err, gcmalloc::GcHeapError::TagsExhausted);
    assert!(err.to_string().contains("create a runtime's GcHeaps once"));
    assert!(heaps.len() < GcHeap::MAX);
    println!("tags run out after {} more GcHeaps: {err}", heaps.len());
}

fn main() {
    runner::run(&[
        ("two_gc_heaps_keep_separate_figures", two_gc_heaps_keep_separate_figures),
        ("counters_are_exact_after_refresh", counters_are_exact_after_refresh),
        ("dropping_a_gc_heap_with_live_blocks_keeps_them_valid", dropping_a_gc_heap_with_live_blocks_keeps_them_valid),
        ("tags_run_out_with_an_error", tags_run_out_with_an_error),
    ]);
}
