//! A loom model of the abandoned-page hand-off in
//! `vendor/mimalloc/src/accounting.c` (the C code cannot run under loom, so
//! this mirrors its atomic protocol step by step, with the same orderings).
//!
//! One page holds one live block. Its owner (A) abandons the page while
//! another thread (T) frees that block into it, and a third thread (R)
//! reclaims the page once its segment is abandoned. Whatever the
//! interleaving, the page's bytes must be in the abandoned total exactly when
//! the page is abandoned, full, and nothing was freed into it, and at most
//! one thread may take them out.
//!
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom_accounting`
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use loom::sync::Arc;
use loom::thread;

const BYTES: usize = 4096;
const ABANDONED: usize = 1 << (usize::BITS - 1);

// `xthread_free`: the count of pushed blocks (standing in for the list) << 2 | delayed state.
const NEVER_DELAYED_FREE: usize = 3;
const DELAYED_FREEING: usize = 1;
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
    used: AtomicUsize,              // owner-only in C; atomic here only to share it
    segment_abandoned: AtomicBool, // `_mi_arena_segment_mark_abandoned`
    abandoned_total: AtomicUsize,  // `mi_acct.abandoned`
    reclaimed: AtomicBool,
}

/// `_mi_page_acct_claim`
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

/// `_mi_page_thread_free_collect`: take the pushed blocks, keep the delayed state.
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
    if p.used.load(Relaxed) == 1 {
        p.abandoned_total.fetch_add(BYTES, Relaxed);
        p.acct_bytes.store(BYTES | ABANDONED, Release);
        let tf = p.xthread_free.fetch_add(0, AcqRel);
        if blocks(tf) != 0 || delayed(tf) == DELAYED_FREEING {
            claim(p);
        }
    }
    p.segment_abandoned.store(true, Release);
}

/// `mi_free_block_delayed_mt` with `_mi_page_acct_free_abandoned`.
fn free_block(p: &Page) {
    let mut tf = p.xthread_free.load(Relaxed);
    while delayed(tf) == NEVER_DELAYED_FREE {
        match p.xthread_free.compare_exchange(tf, tf - NEVER_DELAYED_FREE + DELAYED_FREEING, AcqRel, Relaxed) {
            Ok(_) => {
                claim(p);
                let mut tf = p.xthread_free.load(Relaxed);
                loop {
                    assert_eq!(delayed(tf), DELAYED_FREEING);
                    let pushed = ((blocks(tf) + 1) << 2) | NEVER_DELAYED_FREE;
                    match p.xthread_free.compare_exchange(tf, pushed, Release, Relaxed) {
                        Ok(_) => return,
                        Err(now) => tf = now,
                    }
                }
            }
            Err(now) => tf = now,
        }
    }
    // Not abandoned (any more): the regular push (the owner collects it).
    p.xthread_free.fetch_add(1 << 2, Release);
}

/// `mi_segment_reclaim`: wait out a DELAYED_FREEING hold while setting
/// USE_DELAYED_FREE, then claim (the heap re-counts the page when it is full).
fn reclaim(p: &Page) {
    if !p.segment_abandoned.load(Acquire) {
        return; // nothing to reclaim (yet)
    }
    let mut tf = p.xthread_free.load(Acquire);
    loop {
        if delayed(tf) == DELAYED_FREEING {
            thread::yield_now();
            tf = p.xthread_free.load(Acquire);
            continue;
        }
        match p.xthread_free.compare_exchange(tf, tf & !3 | USE_DELAYED_FREE, AcqRel, Acquire) {
            Ok(_) => break,
            Err(now) => tf = now,
        }
    }
    claim(p);
    p.reclaimed.store(true, Relaxed);
}

/// Explores every interleaving with up to three preemptions (seconds, not minutes).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

fn full_page() -> Arc<Page> {
    let page = Arc::new(Page::default());
    page.used.store(1, Relaxed); // one block of one, live: the page is full
    page.xthread_free.store(NEVER_DELAYED_FREE, Relaxed); // the owner began abandoning it
    page
}

#[test]
fn a_page_freed_into_leaves_the_abandoned_total_exactly_once() {
    model(|| {
        let page = full_page();
        let (a, t, r) = (Arc::clone(&page), Arc::clone(&page), Arc::clone(&page));
        let owner = thread::spawn(move || abandon(&a));
        let freer = thread::spawn(move || free_block(&t));
        let reclaimer = thread::spawn(move || reclaim(&r));
        owner.join().unwrap();
        freer.join().unwrap();
        reclaimer.join().unwrap();
        // The block was freed: the page is not full, nothing may stay counted
        // (and a second subtraction would wrap the total around).
        assert_eq!(page.abandoned_total.load(Relaxed), 0, "abandoned total after free-into");
        assert_eq!(page.acct_bytes.load(Relaxed) & ABANDONED, 0);
    });
}

#[test]
fn an_untouched_full_page_stays_counted_until_reclaimed() {
    model(|| {
        let page = full_page();
        let (a, r) = (Arc::clone(&page), Arc::clone(&page));
        let owner = thread::spawn(move || abandon(&a));
        let reclaimer = thread::spawn(move || reclaim(&r));
        owner.join().unwrap();
        reclaimer.join().unwrap();
        let expected = if page.reclaimed.load(Relaxed) { 0 } else { BYTES };
        assert_eq!(page.abandoned_total.load(Relaxed), expected);
    });
}
