//! A thread that exits with live blocks in a GcHeap and in the global
//! allocator abandons their pages: a thread without a heap of the GcHeap
//! never reclaims the GC pages (stock mimalloc puts them in its own heap),
//! one with such a heap reclaims them into it, and the global pages only
//! ever go to a global heap.
//!
//! Without libtest's harness: the segments of exited threads are shared
//! state, and the reclaiming threads must be the only ones allocating.

#[path = "common/runner.rs"]
mod runner;

use std::thread;

use allocator_api2::alloc::{Allocator, Layout};
use gcmalloc::{GcHeap, GcMalloc};

#[global_allocator]
static GLOBAL: GcMalloc = GcMalloc;

const SIZE: usize = 64;
const BLOCKS: usize = 20_000;

fn layout() -> Layout {
    Layout::from_size_align(SIZE, 8).unwrap()
}

/// (page tag, owning heap's tag or None while abandoned) of a live block.
fn owner(p: usize) -> (u8, Option<u8>) {
    // SAFETY: every caller passes a live gcmalloc block.
    unsafe { gcmalloc::__block_owner(p as *const u8) }
}

/// A thread that allocates `BLOCKS` GC blocks and `BLOCKS` global blocks,
/// interleaved (so they share its segments), and exits with them live.
fn exiting_thread(heap: &'static GcHeap) -> (Vec<usize>, Vec<usize>) {
    thread::spawn(move || {
        let mut gc = Vec::with_capacity(BLOCKS);
        let mut global = Vec::with_capacity(BLOCKS);
        for _ in 0..BLOCKS {
            gc.push(heap.allocate(layout()).unwrap().cast::<u8>().as_ptr() as usize);
            global.push(Box::into_raw(Box::new([0u8; SIZE])) as usize);
        }
        (gc, global)
    })
    .join()
    .unwrap()
}

/// Frees every other block, so that the pages have room: a reclaiming thread
/// that allocates this size class then finds them worth reclaiming.
fn free_every_other(heap: &GcHeap, gc: &mut Vec<usize>, global: &mut Vec<usize>) {
    for (i, (&g, &b)) in gc.iter().zip(global.iter()).enumerate() {
        if i % 2 == 0 {
            // SAFETY: live blocks of these allocators and layouts.
            unsafe {
                heap.deallocate(std::ptr::NonNull::new_unchecked(g as *mut u8), layout());
                drop(Box::from_raw(b as *mut [u8; SIZE]));
            }
        }
    }
    let keep = |v: &mut Vec<usize>| *v = v.iter().copied().skip(1).step_by(2).collect();
    keep(gc);
    keep(global);
}

/// A thread that allocates more than a segment, and many blocks of the same
/// size class, with or without a heap of `heap`, reclaiming abandoned
/// segments on the way; returns after checking the owners of `gc` and
/// `global` while it is alive.
fn reclaiming_thread(heap: &'static GcHeap, with_gc_heap: bool, gc: Vec<usize>, global: Vec<usize>) -> usize {
    thread::spawn(move || {
        if with_gc_heap {
            // SAFETY: allocated here with this layout.
            unsafe { heap.deallocate(heap.allocate(layout()).unwrap().cast(), layout()) };
        }
        // mimalloc reclaims when a thread needs another segment (32 MiB);
        // from the GcHeap's heap if it has one, so that the global pages of
        // the segment it reclaims must find the global heap.
        let big: Vec<allocator_api2::vec::Vec<u8, &GcHeap>> = (0..48)
            .filter(|_| with_gc_heap)
            .map(|_| {
                let mut v = allocator_api2::vec::Vec::with_capacity_in(1 << 20, heap);
                v.resize(1 << 20, 0);
                v
            })
            .collect();
        let big_global: Vec<Box<[u8]>> =
            (0..48).filter(|_| !with_gc_heap).map(|_| vec![0u8; 1 << 20].into_boxed_slice()).collect();
        let mut mine = Vec::with_capacity(8 * BLOCKS);
        for _ in 0..8 * BLOCKS {
            mine.push(Box::into_raw(Box::new([1u8; SIZE])));
            if with_gc_heap {
                let b = heap.allocate(layout()).unwrap();
                // SAFETY: just allocated with this layout.
                unsafe { heap.deallocate(b.cast(), layout()) };
            }
        }
        let mut reclaimed = 0;
        // (A reclaiming heap gives the page its own tag.)
        let t = heap.tag();
        for &p in &gc {
            match owner(p) {
                (tag, None) if tag == t => {}
                (tag, Some(by)) if tag == t && by == t => reclaimed += 1,
                other => panic!(
                    "a page of the GcHeap (tag {t}) was reclaimed by another heap: (page tag, heap tag) {other:?}"
                ),
            }
        }
        for &p in &global {
            let o = owner(p);
            assert!(matches!(o, (0, None | Some(0))), "a global page was reclaimed by another heap: {o:?}");
        }
        drop((big, big_global));
        for p in mine {
            // SAFETY: allocated above.
            drop(unsafe { Box::from_raw(p) });
        }
        reclaimed
    })
    .join()
    .unwrap()
}

fn main() {
    runner::run(&[(
        "gc_pages_are_reclaimed_only_by_a_heap_of_their_tag",
        gc_pages_are_reclaimed_only_by_a_heap_of_their_tag,
    )]);
}

fn gc_pages_are_reclaimed_only_by_a_heap_of_their_tag() {
    let heap: &'static GcHeap = Box::leak(Box::new(GcHeap::new().unwrap()));
    let (mut gc, mut global) = exiting_thread(heap);
    assert!(gc.iter().all(|&p| owner(p) == (heap.tag(), None)), "the exited thread's GC pages are not abandoned");
    free_every_other(heap, &mut gc, &mut global);

    // A global-only thread reclaims what it may, and never the GC pages.
    let reclaimed = reclaiming_thread(heap, false, gc.clone(), global.clone());
    assert_eq!(reclaimed, 0);
    println!("a thread without a heap of the GcHeap reclaimed none of its pages");

    // A thread with a heap of the GcHeap reclaims them into it.
    let reclaimed = reclaiming_thread(heap, true, gc.clone(), global.clone());
    assert!(reclaimed > 0, "no GC page was reclaimed by a thread with a heap of the GcHeap");
    println!("a thread with a heap of the GcHeap reclaimed {reclaimed} of its live blocks' pages, into that heap");

    for (&g, &b) in gc.iter().zip(global.iter()) {
        // SAFETY: the live blocks left, freed once.
        unsafe {
            heap.deallocate(std::ptr::NonNull::new_unchecked(g as *mut u8), layout());
            drop(Box::from_raw(b as *mut [u8; SIZE]));
        }
    }
}
