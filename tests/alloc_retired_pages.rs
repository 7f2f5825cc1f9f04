//! Retired pages (empty pages a heap keeps for its next allocation of the
//! same size) of medium blocks do not hold memory a fresh page could reuse:
//! the next fresh page, of any size, takes the emptied page's span, which is
//! often resident in full, instead of untouched memory beside it.

use std::alloc::{GlobalAlloc, Layout};
use std::thread;

use gcmalloc::GcMalloc;

#[global_allocator]
static GLOBAL: GcMalloc = GcMalloc;

/// Allocates and frees one block of `first` bytes, then allocates one of
/// `next` bytes (another size class, so it needs a fresh page), in a thread
/// of its own (an unregistered thread: no delayed page reuse) whose heap
/// holds no other page of either size. Returns both addresses.
fn first_then_next(first: usize, next: usize) -> (usize, usize) {
    thread::spawn(move || {
        let (a, b) = (Layout::from_size_align(first, 8).unwrap(), Layout::from_size_align(next, 8).unwrap());
        // SAFETY: both layouts have a non-zero size; each block is written
        // within its size and freed once with its own layout.
        unsafe {
            let p = GLOBAL.alloc(a);
            assert!(!p.is_null(), "out of memory for {a:?}");
            p.write_bytes(1, first);
            GLOBAL.dealloc(p, a);
            let q = GLOBAL.alloc(b);
            assert!(!q.is_null(), "out of memory for {b:?}");
            q.write_bytes(2, next);
            GLOBAL.dealloc(q, b);
            (p as usize, q as usize)
        }
    })
    .join()
    .expect("the allocating thread panicked")
}

/// mimalloc may start a page's first block up to a block's size past the
/// page's start; the blocks here are at most 48 KiB.
const FIRST_BLOCK_OFFSET: usize = 64 << 10;

/// The first block of the fresh page, `q`, is in the emptied page, which held
/// `p`, rather than in memory beside it.
fn assert_in_the_page_of(q: usize, p: usize, what: &str) {
    assert!(
        q.abs_diff(p) < FIRST_BLOCK_OFFSET,
        "{what}'s fresh page should start where the emptied 24 KiB page did \
         (its block at {p:#x}), not at {q:#x}"
    );
}

/// One test, so no other test's thread runs beside it: each thread here then
/// holds one segment (its own, or the one the thread before it left), and a
/// fresh page can only come from the emptied page or from memory beside it.
#[test]
fn a_fresh_page_reuses_an_emptied_medium_page() {
    let (p, q) = first_then_next(24 << 10, 48 << 10);
    assert_in_the_page_of(q, p, "a 48 KiB (medium) block");
    let (p, q) = first_then_next(24 << 10, 300 << 10);
    assert_in_the_page_of(q, p, "a 300 KiB (large) block");
}
