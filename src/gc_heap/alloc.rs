//! `Allocator` for `&GcHeap`: the calling thread's heap of the GcHeap's tag
//! allocates, `mi_free` frees from any thread.

use core::ffi::c_void;
use core::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator, Layout};

use super::GcHeap;
use crate::allocator::unaligned_is_enough;
use crate::ffi;

/// A zero-size allocation: a dangling pointer with the layout's alignment.
fn dangling(layout: Layout) -> NonNull<[u8]> {
    // An alignment is never 0, so the address is non-null.
    let ptr = NonNull::new(layout.align() as *mut u8).expect("alignments are non-zero");
    NonNull::slice_from_raw_parts(ptr, 0)
}

fn block(ptr: *mut c_void, size: usize) -> Result<NonNull<[u8]>, AllocError> {
    NonNull::new(ptr.cast::<u8>()).map(|p| NonNull::slice_from_raw_parts(p, size)).ok_or(AllocError)
}

impl GcHeap {
    #[inline]
    fn alloc_impl(&self, layout: Layout, zeroed: bool) -> Result<NonNull<[u8]>, AllocError> {
        let (size, align, tag) = (layout.size(), layout.align(), usize::from(self.tag));
        // `unaligned_is_enough` implies `size >= align >= 1`: the common case
        // checks no zero size.
        // SAFETY: plain C allocation calls on the calling thread's heap of
        // the tag (below 256); a null result is passed on as an error.
        let ptr = unsafe {
            match (unaligned_is_enough(size, align), zeroed) {
                (true, false) => ffi::mi_gc_heap_malloc(tag, size),
                (true, true) => ffi::mi_gc_heap_zalloc(tag, size),
                _ if size == 0 => return Ok(dangling(layout)),
                (false, false) => ffi::mi_gc_heap_malloc_aligned(tag, size, align),
                (false, true) => ffi::mi_gc_heap_zalloc_aligned(tag, size, align),
            }
        };
        block(ptr, size)
    }

    /// Moves `ptr` (of `old`, non-zero size) to a block of `new`, in place
    /// when it fits.
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of `old` from this allocator; `new.size() > 0`.
    unsafe fn realloc_impl(&self, ptr: NonNull<u8>, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: the caller guarantees a live gcmalloc block; the aligned
        // variant keeps `new.align()` for the new block, in the calling
        // thread's heap of the tag when it moves.
        let moved = unsafe {
            ffi::mi_gc_heap_realloc_aligned(usize::from(self.tag), ptr.as_ptr().cast(), new.size(), new.align())
        };
        block(moved, new.size())
    }
}

// SAFETY: blocks come from mimalloc, which any thread may free into; each
// method forwards to the mimalloc call with the matching contract, honours
// the layout's alignment (the unaligned entry points only where
// `unaligned_is_enough` proves them aligned), returns a dangling, aligned
// pointer for zero sizes and never frees one. A block stays valid until it
// is deallocated, whatever happens to the `&GcHeap` (see "Dropping a
// GcHeap"), so copies of the reference may free each other's blocks.
unsafe impl Allocator for &GcHeap {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.alloc_impl(layout, false)
    }

    #[inline]
    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.alloc_impl(layout, true)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: the caller guarantees a live block of this allocator.
            unsafe { ffi::mi_free(ptr.as_ptr().cast()) }
        }
    }

    unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if old.size() == 0 {
            return self.allocate(new);
        }
        // SAFETY: the caller guarantees a live block of `old`, and `new` is at
        // least as large, so non-zero.
        unsafe { self.realloc_impl(ptr, new) }
    }

    unsafe fn grow_zeroed(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: as in `grow`.
        let grown = unsafe { self.grow(ptr, old, new)? };
        // SAFETY: the block has `new.size() >= old.size()` bytes; the tail
        // past the old contents is zeroed.
        unsafe { grown.cast::<u8>().as_ptr().add(old.size()).write_bytes(0, new.size() - old.size()) };
        Ok(grown)
    }

    unsafe fn shrink(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if new.size() == 0 {
            // SAFETY: the caller guarantees a live block of `old`.
            unsafe { self.deallocate(ptr, old) };
            return Ok(dangling(new));
        }
        // SAFETY: the caller guarantees a live block of `old` (non-zero, as
        // it is at least `new.size() > 0`).
        unsafe { self.realloc_impl(ptr, new) }
    }
}
