//! Type-stable pages per GcHeap: while a registered thread holds the QSBR goal
//! back, the emptied pages of a GcHeap serve neither the global allocator
//! (same size class or another) nor another GcHeap, only the GcHeap's own
//! blocks of their size class. With delayed page reuse off, the same test
//! sees the global allocator take them, which proves it can fail.
//!
//! Without libtest's harness: the measured thread must be the only one
//! allocating, and the goal holder the only registered thread.

#[path = "common/runner.rs"]
mod runner;

use std::collections::HashSet;

use allocator_api2::alloc::{Allocator, Layout};
use gcmalloc::{GcHeap, GcMalloc};

mod common;
use common::Holder;

#[global_allocator]
static GLOBAL: GcMalloc = GcMalloc;

const SIZE: usize = 64;
const BLOCKS: usize = 20_000; // about twenty 64 KiB pages
const PAGE: usize = 64 << 10;

fn page_of(p: usize) -> usize {
    p & !(PAGE - 1)
}

/// Pages of `heap` emptied while a goal is held, and the global and other
/// GcHeap blocks allocated afterwards that landed in them.
fn reused_pages(heap: &GcHeap, other: &GcHeap) -> (usize, bool) {
    let layout = Layout::from_size_align(SIZE, 8).unwrap();
    let blocks: Vec<_> = (0..BLOCKS).map(|_| heap.allocate(layout).unwrap()).collect();
    let pages: HashSet<usize> = blocks.iter().map(|b| page_of(b.cast::<u8>().as_ptr() as usize)).collect();
    for b in blocks {
        // SAFETY: allocated above with this layout.
        unsafe { heap.deallocate(b.cast(), layout) };
    }
    let mut hits = 0;
    let mut keep: Vec<Box<[u8]>> = Vec::new();
    for size in [SIZE, 32, 128, 1024, 8 << 10] {
        for _ in 0..(2 * BLOCKS * SIZE / size) {
            let b = vec![0u8; size].into_boxed_slice();
            hits += pages.contains(&page_of(b.as_ptr() as usize)) as usize;
            keep.push(b);
        }
    }
    let other_layout = Layout::from_size_align(SIZE, 8).unwrap();
    let mut theirs = Vec::new();
    for _ in 0..2 * BLOCKS {
        let b = other.allocate(other_layout).unwrap();
        hits += pages.contains(&page_of(b.cast::<u8>().as_ptr() as usize)) as usize;
        theirs.push(b);
    }
    // The GcHeap's own blocks of the same size class may use them again.
    let again = heap.allocate(layout).unwrap();
    let own_reuse = pages.contains(&page_of(again.cast::<u8>().as_ptr() as usize));
    // SAFETY: allocated above with these layouts.
    unsafe {
        heap.deallocate(again.cast(), layout);
        theirs.into_iter().for_each(|b| other.deallocate(b.cast(), other_layout));
    }
    (hits, own_reuse)
}

fn main() {
    runner::run(&[("delayed_pages_serve_only_their_gc_heap", delayed_pages_serve_only_their_gc_heap)]);
}

fn delayed_pages_serve_only_their_gc_heap() {
    let heap = GcHeap::new().unwrap();
    let other = GcHeap::new().unwrap();

    let holder = Holder::start();
    let (hits, own_reuse) = reused_pages(&heap, &other);
    assert!(own_reuse, "the GcHeap's own size class did not reuse its delayed pages");
    assert_eq!(hits, 0, "{hits} blocks of another heap landed in the GcHeap's emptied pages before their goal");
    let u = heap.usage();
    assert!(u.delayed_pages > 0, "no page of the GcHeap waits for its goal: {u:?}");
    println!("while the goal is held: {} pages wait, no other heap's block in them", u.delayed_pages);
    holder.stop();

    // Can fail: with the delay off, emptied pages go back to the segment and
    // the global allocator takes them.
    gcmalloc::set_page_reuse_delay(false);
    let holder = Holder::start();
    let (hits, _) = reused_pages(&heap, &other);
    holder.stop();
    assert!(hits > 0, "with the delay off no block landed in the emptied pages: the test cannot fail");
    println!("with the delay off: {hits} blocks of other heaps landed in the emptied pages");
}
