//! gcmalloc's mimalloc links into the same binary as stock mimalloc
//! (libmimalloc-sys2, a build of mimalloc like the `mimalloc` crate's) and neither copy
//! resolves a call to the other: each one owns exactly the blocks it handed
//! out.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use gcmalloc::GcMalloc;
use libmimalloc_sys as stock;

// Stock mimalloc's API beyond what libmimalloc-sys2 binds without its
// `extended` feature. The plain `mi_*` names can only resolve to the stock
// copy: every symbol of gcmalloc's copy carries the `gcm_` prefix.
extern "C" {
    fn mi_is_in_heap_region(p: *const c_void) -> bool;
    fn mi_version() -> i32;
    fn mi_heap_get_default() -> *mut c_void;
    fn mi_heap_check_owned(heap: *mut c_void, p: *const c_void) -> bool;
    fn mi_heap_malloc(heap: *mut c_void, size: usize) -> *mut c_void;
}

fn stock_owns(p: *const u8) -> bool {
    // SAFETY: a lookup in stock mimalloc's segment map; never dereferences p.
    unsafe { mi_is_in_heap_region(p.cast()) }
}

#[test]
fn each_copy_owns_only_its_own_blocks() {
    for size in [8usize, 100, 4096, 70_000, 3 << 20] {
        let layout = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: non-zero sizes; each block is freed by the copy that
        // allocated it.
        unsafe {
            let ours = GcMalloc.alloc(layout);
            let theirs = stock::mi_malloc(size).cast::<u8>();
            assert!(!ours.is_null() && !theirs.is_null());
            assert!(gcmalloc::owns(ours), "gcmalloc does not own its block ({size} B)");
            assert!(!gcmalloc::owns(theirs), "gcmalloc claims stock's block ({size} B)");
            assert!(stock_owns(theirs), "stock does not own its block ({size} B)");
            assert!(!stock_owns(ours), "stock claims gcmalloc's block ({size} B)");
            ours.write_bytes(1, size);
            theirs.write_bytes(2, size);
            GcMalloc.dealloc(ours, layout);
            stock::mi_free(theirs.cast());
        }
    }
}

#[test]
fn both_copies_report_v2_5_2() {
    // SAFETY: constant query.
    let stock_version = unsafe { mi_version() };
    assert_eq!(stock_version, 20502);
    assert_eq!(gcmalloc::mimalloc_version(), 20502);
}

#[test]
fn stock_heaps_do_not_see_gcmalloc_blocks() {
    let layout = Layout::from_size_align(256, 16).unwrap();
    // SAFETY: non-zero size; freed below by its own copy.
    unsafe {
        let ours = GcMalloc.alloc(layout);
        let stock_heap = mi_heap_get_default();
        assert!(!mi_heap_check_owned(stock_heap, ours.cast()));
        let theirs = mi_heap_malloc(stock_heap, 256);
        assert!(mi_heap_check_owned(stock_heap, theirs));
        stock::mi_free(theirs);
        GcMalloc.dealloc(ours, layout);
    }
}
