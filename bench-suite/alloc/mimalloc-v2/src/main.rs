//! The suite with stock mimalloc v2.5.2 (`libmimalloc-sys2` 0.1.65, v2 by default):
//! the source gcmalloc's patch series applies to. A `GlobalAlloc` over its C
//! API, as the `mimalloc` crate and gcmalloc write it: the unaligned entry
//! points where the alignment is one every block of that size has.
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc, mi_zalloc_aligned,
};

/// mimalloc's blocks of at least 16 bytes are 16-aligned (8: word-aligned).
fn unaligned_is_enough(size: usize, align: usize) -> bool {
    align <= 16 && align <= size
}

struct StockV2;

// SAFETY: each method forwards to mimalloc's aligned entry points, which
// honour the layout's size and alignment, and frees only its own blocks.
unsafe impl GlobalAlloc for StockV2 {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc takes any size and power-of-two alignment.
        unsafe {
            if unaligned_is_enough(layout.size(), layout.align()) {
                mi_malloc(layout.size()).cast()
            } else {
                mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        unsafe {
            if unaligned_is_enough(layout.size(), layout.align()) {
                mi_zalloc(layout.size()).cast()
            } else {
                mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, _: Layout) {
        // SAFETY: `ptr` came from this allocator.
        unsafe { mi_free(ptr.cast::<c_void>()) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe {
            if unaligned_is_enough(new_size, layout.align()) {
                mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[global_allocator]
static GLOBAL: StockV2 = StockV2;

fn main() {
    gcm_suite::child_main(gcm_suite::Hooks::NONE);
}
