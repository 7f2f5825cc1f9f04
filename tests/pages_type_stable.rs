//! Type-stable pages: while a registered thread holds the QSBR goal back, the
//! pages of freed 64-byte blocks serve no other size class and stay mapped;
//! once it quiesces they are released. With the delay switched off the same
//! test observes cross-size reuse, which proves it can fail.

#[path = "common/runner.rs"]
mod runner;

use std::alloc::{GlobalAlloc, Layout};
use std::thread;

use gcmalloc::GcMalloc;

mod common;
use common::Holder;

#[global_allocator]
static GLOBAL: GcMalloc = GcMalloc;

const SMALL: usize = 64;
const BLOCKS: usize = 20_000; // ~1.3 MB: about twenty 64 KiB pages

/// Allocates `BLOCKS` 64-byte blocks, frees them all, and returns their
/// sorted addresses: the freed pages tile these addresses densely.
fn fill_and_free_small() -> Vec<usize> {
    free_small(alloc_small(BLOCKS))
}

/// Allocates `count` 64-byte blocks.
fn alloc_small(count: usize) -> Vec<usize> {
    let layout = Layout::from_size_align(SMALL, 8).unwrap();
    // SAFETY: non-zero size; each block is freed once with its layout (by
    // `free_small`). The trait methods are called directly (not through
    // `__rust_alloc`) so the compiler does not treat the later reads of
    // freed blocks as UB it may exploit: to it these are opaque calls.
    (0..count).map(|_| unsafe { GLOBAL.alloc(layout) } as usize).collect()
}

/// Frees blocks of `alloc_small` and returns their sorted addresses.
fn free_small(mut blocks: Vec<usize>) -> Vec<usize> {
    let layout = Layout::from_size_align(SMALL, 8).unwrap();
    for &b in &blocks {
        // SAFETY: `b` was allocated by `alloc_small` with `layout` and is freed once.
        unsafe { GLOBAL.dealloc(b as *mut u8, layout) };
    }
    blocks.sort_unstable();
    blocks
}

/// How many of `blocks` (allocated while `freed` was freed) overlap a freed
/// 64-byte block.
fn overlaps(freed: &[usize], blocks: &[(usize, usize)]) -> usize {
    blocks
        .iter()
        .filter(|&&(start, len)| {
            let i = freed.partition_point(|&f| f + SMALL <= start);
            i < freed.len() && freed[i] < start + len
        })
        .count()
}

/// Allocates many blocks of other size classes (1 KiB, 64 KiB, 1 MiB), keeps
/// them while counting how many land inside `freed`, then frees them.
fn other_sizes_reusing(freed: &[usize]) -> usize {
    let mut held = Vec::new();
    for (size, count) in [(1 << 10, 4_000), (64 << 10, 64), (1 << 20, 8)] {
        let layout = Layout::from_size_align(size, 8).unwrap();
        for _ in 0..count {
            // SAFETY: non-zero size; freed below with the same layout.
            let p = unsafe { GLOBAL.alloc(layout) };
            assert!(!p.is_null());
            held.push((p as usize, size));
        }
    }
    let n = overlaps(freed, &held);
    for (p, size) in held {
        // SAFETY: allocated above with this layout.
        unsafe { GLOBAL.dealloc(p as *mut u8, Layout::from_size_align(size, 8).unwrap()) };
    }
    n
}

/// Reads the second word of every freed block: a page that went back to the
/// OS would fault here.
fn read_all(freed: &[usize]) -> u64 {
    freed.iter().fold(0u64, |acc, &b| {
        // SAFETY: type-stable memory: while the goal is pending the page of a
        // freed block stays mapped and keeps 64-byte blocks, so reading one
        // word inside it is a read of allocator-owned, mapped memory.
        acc ^ unsafe { std::ptr::read_volatile((b as *const u64).add(1)) }
    })
}

fn delayed_pages() -> usize {
    let u = gcmalloc::usage();
    u.delayed_pages
}

fn freed_pages_serve_no_other_size_class_until_the_goal() {
    gcmalloc::set_page_reuse_delay(true);
    let holder = Holder::start();

    let freed = fill_and_free_small();
    assert!(delayed_pages() > 0, "no page is waiting for its goal");
    assert_eq!(other_sizes_reusing(&freed), 0, "another size class reused a page before its goal");
    read_all(&freed);

    holder.quiesce();
    gcmalloc::release_delayed_pages();
    assert_eq!(delayed_pages(), 0, "pages still wait after their goal was reached");
    assert!(other_sizes_reusing(&freed) > 0, "released pages were never reused");
}

fn without_the_delay_other_size_classes_reuse_freed_pages() {
    gcmalloc::set_page_reuse_delay(false);
    let holder = Holder::start();

    let freed = fill_and_free_small();
    let reused = other_sizes_reusing(&freed);

    holder.quiesce();
    gcmalloc::set_page_reuse_delay(true);
    assert!(reused > 0, "the test cannot see cross-size reuse: it could not fail");
}

fn pending_goals_survive_thread_exit() {
    gcmalloc::set_page_reuse_delay(true);
    let holder = Holder::start();

    // An unregistered worker empties pages and exits: its heap abandons them.
    let freed = thread::spawn(fill_and_free_small).join().unwrap();
    let pending = gcmalloc::usage();
    assert!(pending.delayed_pages > 0, "the exited thread's empty pages lost their goal");

    assert_eq!(other_sizes_reusing(&freed), 0, "an abandoned page was freed before its goal");
    gcmalloc::release_delayed_pages();
    assert_eq!(other_sizes_reusing(&freed), 0, "a collection freed an abandoned page early");
    read_all(&freed);

    holder.quiesce();
    gcmalloc::release_delayed_pages();
    assert_eq!(delayed_pages(), 0, "abandoned pages still wait after their goal was reached");
}

/// A page that waits for its goal may serve its own size class again; once
/// its blocks are freed again it must wait for a goal younger than those
/// frees, not its old one (that one does not cover readers of the new blocks).
/// Few blocks are reused, so the heap needs no fresh page meanwhile (that
/// walk of the FIFO would find the page in use and drop its goal anyway).
fn a_page_reused_while_it_waits_waits_for_a_fresh_goal() {
    gcmalloc::set_page_reuse_delay(true);
    let first = Holder::start();
    let freed = fill_and_free_small();
    let again = alloc_small(100);
    let reused = overlaps(&freed, &again.iter().map(|&b| (b, SMALL)).collect::<Vec<_>>());
    assert!(reused > 0, "the delayed pages did not serve their size class");
    // The old goal is made (advance) before `second` comes online, so it is
    // reached once `first` quiesces; every goal made after waits for `second`.
    gcmalloc::qsbr::advance();
    let second = Holder::start();
    let again = free_small(again);
    first.stop();
    gcmalloc::release_delayed_pages();
    assert_eq!(other_sizes_reusing(&again), 0, "a page reused while it waited was freed on its old goal");
    read_all(&again);

    second.quiesce();
    gcmalloc::release_delayed_pages();
    assert_eq!(delayed_pages(), 0, "pages still wait after their goal was reached");
}

/// One test on the main thread (see `main`), so that no other thread is
/// alive: an idle thread that reclaimed an abandoned segment would keep its
/// delayed pages in its own FIFO (a thread releases its pages when it next
/// needs memory), and the exact counts below would see them.
fn type_stable_pages() {
    freed_pages_serve_no_other_size_class_until_the_goal();
    without_the_delay_other_size_classes_reuse_freed_pages();
    pending_goals_survive_thread_exit();
    a_page_reused_while_it_waits_waits_for_a_fresh_goal();
}

/// Runs without libtest (`harness = false` in Cargo.toml): no other thread of
/// this process allocates, or holds pages, while the test compares totals.
fn main() {
    runner::run(&[("type_stable_pages", type_stable_pages)]);
}
