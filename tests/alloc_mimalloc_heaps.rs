//! What mimalloc's own tests exercise on our tree, reached through the
//! renamed C API (separate heaps, the abandoned-block walk):
//! none is reachable through gcmalloc's Rust API, but a runtime that links
//! the C API, or a future use of separate heaps, walks straight into them.
//!
//! * a heap walk over abandoned pages left `audit()` mismatched (its recount
//!   of a collected large page);
//! * with delayed page reuse, `mi_heap_delete` moved a delayed page to the
//!   backing heap but not its share of `pages_full_size`: `--features debug`
//!   (MI_DEBUG=2) aborted when the page was finally freed;
//! * the segment header took two slices (`mi_page_t` had grown by 4 words).

#[path = "common/runner.rs"]
mod runner;

use core::ffi::{c_int, c_long, c_void};

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

mod common;
use common::assert_accounting_consistent;

/// `mi_option_visit_abandoned` in `vendor/mimalloc/include/mimalloc.h`.
const MI_OPTION_VISIT_ABANDONED: c_int = 29;

type BlockVisitor =
    extern "C" fn(heap: *const c_void, area: *const c_void, block: *mut c_void, size: usize, arg: *mut c_void) -> bool;

// gcmalloc's own copy of mimalloc, under its renamed symbols (build.rs).
extern "C" {
    #[link_name = "gcm_mi_heap_new"]
    fn mi_heap_new() -> *mut c_void;
    #[link_name = "gcm_mi_heap_malloc"]
    fn mi_heap_malloc(heap: *mut c_void, size: usize) -> *mut c_void;
    #[link_name = "gcm_mi_heap_delete"]
    fn mi_heap_delete(heap: *mut c_void);
    #[link_name = "gcm_mi_free"]
    fn mi_free(p: *mut c_void);
    #[link_name = "gcm_mi_malloc"]
    fn mi_malloc(size: usize) -> *mut c_void;
    #[link_name = "gcm_mi_malloc_aligned"]
    fn mi_malloc_aligned(size: usize, alignment: usize) -> *mut c_void;
    #[link_name = "gcm_mi_usable_size"]
    fn mi_usable_size(p: *const c_void) -> usize;
    #[link_name = "gcm_mi_collect"]
    fn mi_collect(force: bool);
    #[link_name = "gcm_mi_heap_collect"]
    fn mi_heap_collect(heap: *mut c_void, force: bool);
    #[link_name = "gcm_mi_heap_visit_blocks"]
    fn mi_heap_visit_blocks(heap: *const c_void, visit_blocks: bool, visitor: BlockVisitor, arg: *mut c_void) -> bool;
    #[link_name = "gcm_mi_option_set"]
    fn mi_option_set(option: c_int, value: c_long);
    #[link_name = "gcm_mi_subproc_main"]
    fn mi_subproc_main() -> *mut c_void;
    #[link_name = "gcm_mi_abandoned_visit_blocks"]
    fn mi_abandoned_visit_blocks(
        subproc: *mut c_void,
        heap_tag: c_int,
        visit_blocks: bool,
        visitor: BlockVisitor,
        arg: *mut c_void,
    ) -> bool;
}

extern "C" fn count_block(_: *const c_void, _: *const c_void, block: *mut c_void, _: usize, arg: *mut c_void) -> bool {
    if !block.is_null() {
        // SAFETY: `arg` is the `usize` counter passed below, used by this thread only.
        unsafe { *arg.cast::<usize>() += 1 };
    }
    true
}

/// A thread leaves a 100 KiB block behind; another thread frees it; a walk
/// of the abandoned blocks (which collects the freed block, leaving the page
/// empty but not freed) must leave the accounting exact.
fn audit_is_exact_after_a_walk_of_abandoned_blocks() {
    let block = std::thread::spawn(|| Box::into_raw(vec![7u8; 100 << 10].into_boxed_slice()) as *mut u8 as usize)
        .join()
        .unwrap();
    let before = assert_accounting_consistent("with an abandoned 100 KiB block");
    // SAFETY: the block came from Box<[u8]> of this length, and is freed once.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(block as *mut u8, 100 << 10)) });
    let mut blocks = 0usize;
    // SAFETY: visiting was enabled before any thread exited; the visitor
    // only counts, and no other thread runs.
    let ok = unsafe {
        mi_abandoned_visit_blocks(mi_subproc_main(), -1, true, count_block, (&mut blocks as *mut usize).cast())
    };
    assert!(ok, "the walk of abandoned blocks failed");
    let after = assert_accounting_consistent("after the walk of abandoned blocks");
    assert!(
        after.abandoned_bytes + (100 << 10) <= before.abandoned_bytes,
        "the freed block left the abandoned total: {} -> {}",
        before.abandoned_bytes,
        after.abandoned_bytes
    );
}

/// A separate heap allocates and frees a 200 KiB block (its page waits for a
/// QSBR goal: this thread is registered and online), then is deleted, which
/// moves the delayed page to this thread's heap; once the goal is reached a
/// collection frees it. MI_DEBUG=2 asserted on the full queue's byte count.
fn a_deleted_heap_hands_its_delayed_pages_over_whole() {
    let me = gcmalloc::register_thread();
    // SAFETY: a heap of this thread, used by this thread only; the block is
    // freed once, before the heap is deleted.
    unsafe {
        let heap = mi_heap_new();
        assert!(!heap.is_null());
        let p = mi_heap_malloc(heap, 200 << 10);
        assert!(!p.is_null());
        mi_free(p);
        mi_heap_delete(heap);
    }
    assert!(gcmalloc::usage().delayed_pages > 0, "the emptied page should wait for its goal");
    me.quiescent(); // the goal is reached
                    // SAFETY: collects the calling thread's heap.
    unsafe { mi_collect(false) };
    drop(me);
    assert_accounting_consistent("after the deleted heap's page was freed");
}

/// Delayed page reuse once grew `mi_page_t`, which is also a slice entry of the
/// segment header, from 12 words to 16: the header took a second 64 KiB slice
/// in every segment, one usable slice fewer, and blocks started 64 KiB later
/// in it. A huge block starts right after the header of its own segment, so
/// its offset shows the header's size; huge blocks with an alignment must
/// have stock's usable size too (unless this build pads blocks: the stock
/// baseline is built without padding).
fn the_segment_header_takes_one_slice_as_in_stock() {
    const SEGMENT: usize = 32 << 20;
    // SAFETY: plain allocations from gcmalloc's mimalloc and from the stock
    // one, each freed once by its own allocator.
    unsafe {
        let ours = mi_malloc(64 << 20);
        let stock = libmimalloc_sys::mi_malloc(64 << 20);
        let (ours_at, stock_at) = (ours as usize % SEGMENT, stock as usize % SEGMENT);
        mi_free(ours);
        libmimalloc_sys::mi_free(stock);
        assert_eq!(ours_at, 64 << 10, "a huge block starts {ours_at} B into its segment (stock: {stock_at} B)");
        assert_eq!(ours_at, stock_at);
        // A build that pads blocks (MI_DEBUG, ASan and valgrind builds) asks
        // for more than it is given, so its huge sizes differ anyway.
        let (ours, stock) = (mi_malloc(1000), libmimalloc_sys::mi_malloc(1000));
        let padded = mi_usable_size(ours) != libmimalloc_sys::mi_usable_size(stock);
        mi_free(ours);
        libmimalloc_sys::mi_free(stock);
        if padded {
            return;
        }
        // Huge sizes and alignments past 16 MiB: each block gets a segment of
        // its own, so its place in it depends on no earlier allocation.
        for (size, align) in [(40 << 20, 64 << 10), (17 << 20, 4 << 20), (1 << 20, 32 << 20), (4097, 64 << 20)] {
            let ours = mi_malloc_aligned(size, align);
            let stock = libmimalloc_sys::mi_malloc_aligned(size, align);
            assert!(!ours.is_null() && !stock.is_null());
            let (ours_usable, stock_usable) = (mi_usable_size(ours), libmimalloc_sys::mi_usable_size(stock));
            mi_free(ours);
            libmimalloc_sys::mi_free(stock);
            assert_eq!(ours_usable, stock_usable, "usable size of {size} B aligned to {align}");
        }
    }
}

/// `mi_heap_area_t` in `vendor/mimalloc/include/mimalloc.h`: a page.
#[repr(C)]
struct HeapArea {
    blocks: *mut c_void,
    reserved: usize,
    committed: usize,
    used: usize,
    block_size: usize,
    full_block_size: usize,
    heap_tag: c_int,
}

/// A medium request size (a mimalloc bin of its own; debug builds pad it
/// into the next one).
const MEDIUM: usize = 24 << 10;
/// A page of medium blocks in stock mimalloc.
const MEDIUM_PAGE: usize = 512 << 10;

extern "C" fn note_medium_page(
    _: *const c_void,
    area: *const c_void,
    block: *mut c_void,
    _: usize,
    arg: *mut c_void,
) -> bool {
    // SAFETY: mimalloc passes a valid area for the duration of the call;
    // `arg` is the `Vec` passed by `medium_pages`, used by this thread only
    // (pushing to it allocates from the global heap, not the walked one).
    unsafe {
        let area = &*area.cast::<HeapArea>();
        if block.is_null() && (MEDIUM..MEDIUM + (8 << 10)).contains(&area.block_size) {
            (*arg.cast::<Vec<(usize, usize)>>()).push((area.reserved, area.block_size));
        }
    }
    true
}

/// The bytes each page of `MEDIUM` blocks in `heap` can hold, and its block
/// size.
fn medium_pages(heap: *mut c_void) -> Vec<(usize, usize)> {
    let mut pages = Vec::with_capacity(256);
    // SAFETY: `heap` is this thread's; the visitor only records sizes.
    assert!(unsafe {
        mi_heap_visit_blocks(heap, false, note_medium_page, (&mut pages as *mut Vec<(usize, usize)>).cast())
    });
    pages
}

/// Whether `pages` is one page of at most 5 blocks (4, as many as its 64 KiB
/// slices hold).
fn one_small_page(pages: &[(usize, usize)]) -> bool {
    matches!(pages, [(reserved, bsize)] if reserved / bsize <= 5)
}

/// A medium size class a heap uses now and then keeps a page of 4 blocks, not
/// a 512 KiB one (resident in full once reused memory backs it); one filled in
/// bulk reaches full pages after a few smaller ones, and a class emptied
/// starts small again.
fn a_medium_size_class_grows_its_pages_from_a_few_blocks() {
    // SAFETY: a heap of this thread, used by this thread only; each block is
    // freed once, before the heap is deleted.
    unsafe {
        let heap = mi_heap_new();
        assert!(!heap.is_null());
        let alloc = || {
            let p = mi_heap_malloc(heap, MEDIUM);
            assert!(!p.is_null());
            p
        };
        let first = alloc();
        let pages = medium_pages(heap);
        assert!(one_small_page(&pages), "one 24 KiB block took a page of {pages:?} (stock: 504 KiB)");
        let mut blocks: Vec<_> = (1..1000).map(|_| alloc()).collect();
        blocks.push(first);
        let pages = medium_pages(heap);
        // A full page holds 20 or 21 blocks (its first block may start one
        // block in).
        let bsize = pages[0].1;
        let stock_pages = 1000usize.div_ceil(MEDIUM_PAGE / bsize - 1);
        let small = pages.iter().filter(|&&(reserved, bsize)| reserved + 2 * bsize < MEDIUM_PAGE).count();
        assert!(
            pages.len() <= stock_pages + 3 && small <= 3,
            "1,000 blocks took {} pages, {small} of them not full-size (stock: {stock_pages} pages): {pages:?}",
            pages.len()
        );
        blocks.into_iter().for_each(|p| mi_free(p));
        mi_heap_collect(heap, true);
        let again = alloc();
        let pages = medium_pages(heap);
        assert!(one_small_page(&pages), "after the class emptied, a block took a page of {pages:?}");
        mi_free(again);
        mi_heap_delete(heap);
    }
}

/// Runs without libtest (`harness = false` in Cargo.toml): the walk option
/// must be set before any thread exits, and the audits compare process-wide
/// totals with no idle harness thread around.
fn main() {
    // SAFETY: sets a mimalloc option before any thread of this process exits.
    unsafe { mi_option_set(MI_OPTION_VISIT_ABANDONED, 1) };
    runner::run(&[
        ("audit_is_exact_after_a_walk_of_abandoned_blocks", audit_is_exact_after_a_walk_of_abandoned_blocks),
        ("a_deleted_heap_hands_its_delayed_pages_over_whole", a_deleted_heap_hands_its_delayed_pages_over_whole),
        ("the_segment_header_takes_one_slice_as_in_stock", the_segment_header_takes_one_slice_as_in_stock),
        (
            "a_medium_size_class_grows_its_pages_from_a_few_blocks",
            a_medium_size_class_grows_its_pages_from_a_few_blocks,
        ),
    ]);
}
