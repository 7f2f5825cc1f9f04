//! [`GcMalloc`]: the `#[global_allocator]`.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

use crate::ffi;

/// The largest alignment that every mimalloc block of at least that size
/// already has, so that the unaligned entry points are enough.
///
/// Proof sketch, for 64-bit targets (`vendor/mimalloc/src/page-queue.c`):
/// `MI_MAX_ALIGN_SIZE` is 16 > `sizeof(void*)`, so `MI_ALIGN2W` is defined and
/// every small size class is rounded to a multiple of two words (16 bytes);
/// the medium classes (80, 96, 112, 128, 160, ...) are multiples of 16 too,
/// and pages start 16-aligned. Hence a block of `size >= 16` is 16-aligned,
/// and every block is word-aligned. On 32-bit targets the same argument gives
/// 8 (two 4-byte words). `tests/alloc_alignment.rs` checks this over a size matrix.
const NATURAL_ALIGN: usize = 2 * core::mem::size_of::<usize>();

/// True when `mi_malloc(size)` is guaranteed to return `align`-aligned memory.
#[inline(always)]
pub(crate) fn unaligned_is_enough(size: usize, align: usize) -> bool {
    align <= NATURAL_ALIGN && align <= size
}

/// gcmalloc's global allocator: a patched mimalloc v2.5.2.
///
/// Install it in a binary:
///
/// ```
/// #[global_allocator]
/// static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;
///
/// let v: Vec<u64> = (0..1000).collect();
/// assert_eq!(v.iter().sum::<u64>(), 499_500);
/// ```
///
/// Every power-of-two alignment is honoured, through `realloc` too
/// (alignments above 16 MiB get a dedicated mimalloc segment). A request that
/// cannot be satisfied returns null, so Rust reports an allocation error;
/// nothing aborts or unwinds inside the allocator.
#[derive(Debug, Default, Clone, Copy)]
pub struct GcMalloc;

// SAFETY: mimalloc is a thread-safe allocator: any thread may allocate, and
// any thread may free a block allocated by another. Each method forwards to
// the mimalloc function with the matching contract, and chooses the
// unaligned entry point only when `unaligned_is_enough` proves that mimalloc
// returns blocks with the requested alignment.
unsafe impl GlobalAlloc for GcMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        // SAFETY: plain C allocation calls; a null result is passed on.
        unsafe {
            if unaligned_is_enough(size, align) {
                ffi::mi_malloc(size).cast()
            } else {
                ffi::mi_malloc_aligned(size, align).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        // SAFETY: as in `alloc`; mi_zalloc* return zeroed memory.
        unsafe {
            if unaligned_is_enough(size, align) {
                ffi::mi_zalloc(size).cast()
            } else {
                ffi::mi_zalloc_aligned(size, align).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller guarantees `ptr` came from this allocator;
        // mi_free accepts blocks from any of the mi_*alloc* entry points.
        unsafe { ffi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        // SAFETY: the caller guarantees `ptr` is live and from this allocator.
        // The aligned variant keeps `align` for the new block (the
        // RUSTSEC-2022-0094 bug was calling plain realloc here); the plain
        // variant is used only where any block of `new_size` is aligned.
        unsafe {
            if unaligned_is_enough(new_size, align) {
                ffi::mi_realloc(ptr.cast(), new_size).cast()
            } else {
                ffi::mi_realloc_aligned(ptr.cast(), new_size, align).cast()
            }
        }
    }
}
