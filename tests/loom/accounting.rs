//! A loom model of the abandoned-page protocol of the live-bytes accounting
//! in `csrc/accounting.c` (the C code cannot run under loom,
//! so this mirrors its atomic protocol step by step, with the same orderings).
//!
//! A page holds two live blocks. Its owner (A) abandons the page while
//! another thread (T) frees one block into it, and a third thread (R)
//! reclaims the page once its segment is abandoned. Whatever the
//! interleaving, every byte the owner put in the abandoned total leaves it
//! exactly once (never twice: the total would wrap), a free into the
//! abandoned page takes out one block and not the page, and what stays is
//! never less than the live blocks.

use crate::model;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use loom::sync::Arc;
use loom::thread;

const BLOCK: usize = 4096;
const ABANDONED: usize = 1 << (usize::BITS - 1);

// `xthread_free`: the count of pushed blocks (standing in for the list) << 2 | mimalloc's delayed-free state.
const NEVER_DELAYED_FREE: usize = 3;
const USE_DELAYED_FREE: usize = 0;

fn delayed(tf: usize) -> usize {
    tf & 3
}
fn blocks(tf: usize) -> usize {
    tf >> 2
}

#[derive(Default)]
struct Page {
    xthread_free: AtomicUsize,
    acct_bytes: AtomicUsize,
    used: AtomicUsize,             // owner-only in C; atomic here only to share it
    segment_abandoned: AtomicBool, // `_mi_arena_segment_mark_abandoned`
    abandoned_total: AtomicUsize,  // `mi_acct.abandoned`
    reclaimed: AtomicBool,
}

/// `_mi_page_acct_claim`: what is left leaves the abandoned total.
fn claim(p: &Page) {
    let mut bytes = p.acct_bytes.load(Relaxed);
    while bytes & ABANDONED != 0 {
        match p.acct_bytes.compare_exchange(bytes, 0, AcqRel, Acquire) {
            Ok(_) => {
                p.abandoned_total.fetch_sub(bytes & !ABANDONED, Relaxed);
                return;
            }
            Err(now) => bytes = now,
        }
    }
}

/// `_mi_page_thread_free_collect`: take the pushed blocks, keep mimalloc's delayed-free state.
fn collect(p: &Page) {
    let mut tf = p.xthread_free.load(Relaxed);
    while let Err(now) = p.xthread_free.compare_exchange(tf, delayed(tf), AcqRel, Acquire) {
        tf = now;
    }
    p.used.fetch_sub(blocks(tf), Relaxed);
}

/// The abandoning owner: collect (`mi_heap_page_collect`), then
/// `_mi_page_acct_abandon`, then `_mi_segment_page_abandon`.
fn abandon(p: &Page) {
    collect(p);
    let bytes = p.used.load(Relaxed) * BLOCK;
    if bytes != 0 {
        p.abandoned_total.fetch_add(bytes, Relaxed);
        p.acct_bytes.store(bytes | ABANDONED, Release);
    }
    p.segment_abandoned.store(true, Release);
}

/// `mi_free_block_delayed_mt` with `_mi_page_acct_free_abandoned`: one block
/// leaves the abandoned total (never more than the page carries), then the
/// block is pushed as usual.
fn free_block(p: &Page) {
    if delayed(p.xthread_free.load(Relaxed)) == NEVER_DELAYED_FREE {
        let mut bytes = p.acct_bytes.load(Acquire);
        while bytes & ABANDONED != 0 && bytes & !ABANDONED >= BLOCK {
            match p.acct_bytes.compare_exchange(bytes, bytes - BLOCK, AcqRel, Acquire) {
                Ok(_) => {
                    p.abandoned_total.fetch_sub(BLOCK, Relaxed);
                    break;
                }
                Err(now) => bytes = now,
            }
        }
    }
    p.xthread_free.fetch_add(1 << 2, Release);
}

/// `mi_segment_reclaim`: set USE_DELAYED_FREE, claim what is left, collect.
fn reclaim(p: &Page) {
    if !p.segment_abandoned.load(Acquire) {
        return; // nothing to reclaim (yet)
    }
    let mut tf = p.xthread_free.load(Acquire);
    while let Err(now) = p.xthread_free.compare_exchange(tf, tf & !3 | USE_DELAYED_FREE, AcqRel, Acquire) {
        tf = now;
    }
    claim(p);
    collect(p);
    p.reclaimed.store(true, Relaxed);
}

fn page_with_two_live_blocks() -> Arc<Page> {
    let page = Arc::new(Page::default());
    page.used.store(2, Relaxed);
    page.xthread_free.store(NEVER_DELAYED_FREE, Relaxed); // the owner began abandoning it
    page
}

#[test]
fn a_block_freed_into_an_abandoned_page_leaves_the_total_once() {
    model(|| {
        let page = page_with_two_live_blocks();
        let (a, t, r) = (Arc::clone(&page), Arc::clone(&page), Arc::clone(&page));
        let owner = thread::spawn(move || abandon(&a));
        let freer = thread::spawn(move || free_block(&t));
        let reclaimer = thread::spawn(move || reclaim(&r));
        owner.join().unwrap();
        freer.join().unwrap();
        reclaimer.join().unwrap();
        let total = page.abandoned_total.load(Relaxed);
        let carried = page.acct_bytes.load(Relaxed);
        if page.reclaimed.load(Relaxed) {
            assert_eq!(total, 0, "a reclaimed page leaves nothing in the abandoned total");
            assert_eq!(carried, 0);
        } else {
            // One block is live; the other was freed. The free either took
            // its block out, or came before the owner counted the page (then
            // `used` had not seen it yet): one block or two, never a wrap.
            assert_eq!(total, carried & !ABANDONED, "the total is what the page carries");
            assert!(total == BLOCK || total == 2 * BLOCK, "abandoned total {total}");
        }
    });
}

#[test]
fn an_untouched_page_stays_counted_until_reclaimed() {
    model(|| {
        let page = page_with_two_live_blocks();
        let (a, r) = (Arc::clone(&page), Arc::clone(&page));
        let owner = thread::spawn(move || abandon(&a));
        let reclaimer = thread::spawn(move || reclaim(&r));
        owner.join().unwrap();
        reclaimer.join().unwrap();
        let expected = if page.reclaimed.load(Relaxed) { 0 } else { 2 * BLOCK };
        assert_eq!(page.abandoned_total.load(Relaxed), expected);
    });
}
