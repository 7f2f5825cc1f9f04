//! The deterministic sequence that CPython's attempt (PR #148940) double-counts:
//! a page is full, its thread exits (abandoned), another thread frees a block
//! into it, a third thread reclaims it and fills it again.

#[path = "common/runner.rs"]
mod runner;

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

mod common;

use common::{alloc_block, assert_accounting_consistent, assert_no_drift, free_block};
use std::collections::BTreeMap;
use std::thread;

const BLOCK: usize = 64;
/// Small pages are 64 KiB slices, aligned to 64 KiB inside their segment.
const PAGE_SHIFT: u32 = 16;
const BLOCKS: usize = 4 * (1 << PAGE_SHIFT) / BLOCK;

fn by_page(blocks: &[(usize, usize)]) -> BTreeMap<usize, Vec<(usize, usize)>> {
    let mut pages: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
    for &b in blocks {
        pages.entry(b.0 >> PAGE_SHIFT).or_default().push(b);
    }
    pages
}

fn full_abandoned_freed_reclaimed_refilled_is_counted_once() {
    let baseline = assert_accounting_consistent("at start");

    // 1. A fills pages of 64-byte blocks and exits: its full pages are abandoned.
    //    (The vector is this thread's, so that only the blocks live in A's pages.)
    let mut a_blocks = Vec::with_capacity(BLOCKS);
    let a_blocks = thread::spawn(move || {
        a_blocks.extend((0..BLOCKS).map(|_| alloc_block(BLOCK)));
        a_blocks
    })
    .join()
    .unwrap();
    let after_exit = assert_accounting_consistent("after A exited");
    let per_page = by_page(&a_blocks).values().map(Vec::len).max().unwrap(); // blocks in a full page
                                                                             // 64, or 80 with the padding of `--features debug`
    let block_size = a_blocks.windows(2).map(|w| w[1].0.abs_diff(w[0].0)).min().unwrap();
    let full_pages = by_page(&a_blocks).values().filter(|p| p.len() == per_page).count();
    assert!(full_pages >= 2, "expected full pages, found {full_pages}");
    assert_eq!(
        after_exit.abandoned_bytes,
        baseline.abandoned_bytes + BLOCKS * block_size,
        "A's live blocks must move to the abandoned total: {after_exit:?}"
    );

    // 2. This thread frees one block into every abandoned page but one full
    //    page: each free takes one block out of the abandoned total, not the
    //    page (the full-page scheme dropped the whole page here).
    let mut a_pages = by_page(&a_blocks);
    let untouched = *a_pages.iter().find(|(_, blocks)| blocks.len() == per_page).unwrap().0;
    let mut freed = 0;
    for (_, blocks) in a_pages.iter_mut().filter(|(page, _)| **page != untouched) {
        free_block(blocks.pop().unwrap());
        freed += 1;
    }
    let after_free = assert_accounting_consistent("after freeing into the abandoned pages");
    assert_eq!(
        after_free.abandoned_bytes,
        after_exit.abandoned_bytes - freed * block_size,
        "a block freed into an abandoned page leaves the abandoned total, and only that block"
    );

    // 3. B reclaims A's pages (it needs fresh pages of the same size), refills
    //    the freed slots and fills more pages, while A's blocks stay live.
    let a_page_ids: Vec<usize> = a_pages.keys().copied().collect();
    let (b_blocks, refilled) = thread::spawn(move || {
        let b_blocks: Vec<_> = (0..BLOCKS).map(|_| alloc_block(BLOCK)).collect();
        let refilled = b_blocks.iter().filter(|b| a_page_ids.contains(&(b.0 >> PAGE_SHIFT))).count();
        // Quiescent: the other threads are joined or waiting for us (the main
        // thread's spawn allocated since its last sync: no exact recount here).
        let reclaimed = assert_no_drift("after B reclaimed and refilled A's pages");
        assert_eq!(reclaimed.abandoned_bytes, baseline.abandoned_bytes, "reclaim takes the reclaimed pages' bytes");
        (b_blocks, refilled)
    })
    .join()
    .unwrap();
    assert!(refilled > 0, "B should have reclaimed and refilled A's pages");
    assert_accounting_consistent("after B exited");

    // 4. Free everything: the accounting returns to where it started.
    b_blocks.into_iter().for_each(free_block);
    a_pages.into_values().flatten().for_each(free_block);
    drop(a_blocks);
    let end = assert_accounting_consistent("after freeing everything");
    assert_eq!(end.abandoned_bytes, baseline.abandoned_bytes);
    assert_eq!(end.exact(), baseline.exact(), "nothing may stay counted: {end:?} vs {baseline:?}");
}

/// Runs without libtest (`harness = false` in Cargo.toml): no other thread of
/// this process allocates, or holds pages, while the test compares totals.
fn main() {
    runner::run(&[(
        "full_abandoned_freed_reclaimed_refilled_is_counted_once",
        full_abandoned_freed_reclaimed_refilled_is_counted_once,
    )]);
}
