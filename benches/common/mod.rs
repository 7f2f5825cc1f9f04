//! The allocation workloads shared by the wall-clock (`alloc`) and the
//! instruction-count (`alloc_icount`) benchmarks, and the stock baseline.
#![allow(dead_code)] // each benchmark uses a subset

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;

/// Stock mimalloc v2.5.2 from libmimalloc-sys2. Every case below uses 8-byte
/// alignment and sizes >= 16, where both mimalloc copies take `mi_malloc`.
pub struct StockV2;

// SAFETY: forwards to stock mimalloc, which is thread-safe; the benchmark
// only requests alignment 8, which every mimalloc block satisfies.
unsafe impl GlobalAlloc for StockV2 {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain C allocation.
        unsafe { libmimalloc_sys::mi_malloc(layout.size()).cast() }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above.
        unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
    }
}

pub const SIZES: [usize; 7] = [16, 64, 256, 1024, 4096, 16 << 10, 64 << 10];
pub const BATCH: usize = 1000;

pub fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// One allocation immediately freed.
pub fn pair<A: GlobalAlloc>(a: &A, l: Layout) {
    // SAFETY: non-zero size; freed with the same layout.
    unsafe {
        let p = black_box(a.alloc(l));
        p.write(1);
        a.dealloc(p, l);
    }
}

/// `BATCH` allocations, then all freed: exercises page fills and frees.
pub fn batch<A: GlobalAlloc>(a: &A, l: Layout, slots: &mut [*mut u8]) {
    // SAFETY: non-zero size; each block is freed once with its layout.
    unsafe {
        for s in slots.iter_mut() {
            *s = a.alloc(l);
            s.write(1);
        }
        for &s in black_box(&*slots) {
            a.dealloc(s, l);
        }
    }
}
