//! [`GcHeap::visit_blocks`]: every live block of a GcHeap, for a collector
//! that sweeps without a list of its own.

use core::ffi::c_void;
use core::ptr::NonNull;
use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use super::GcHeap;
use crate::accounting::Walking;
use crate::ffi;

struct Visit<F> {
    f: F,
    panic: Option<Box<dyn Any + Send>>,
}

/// Called by mimalloc for each live block; a panic of the callback stops the
/// walk and is resumed once the walk has released its locks.
unsafe extern "C" fn visit_one<F: FnMut(NonNull<u8>, usize) -> bool>(
    block: *mut c_void,
    size: usize,
    arg: *mut c_void,
) -> bool {
    // SAFETY: `arg` is the `Visit<F>` that `visit_blocks` lent for the walk,
    // used by this thread only.
    let visit = unsafe { &mut *arg.cast::<Visit<F>>() };
    let Some(block) = NonNull::new(block.cast::<u8>()) else { return true };
    match catch_unwind(AssertUnwindSafe(|| (visit.f)(block, size))) {
        Ok(more) => more,
        Err(payload) => {
            visit.panic = Some(payload);
            false
        }
    }
}

impl GcHeap {
    /// Calls `f(block, usable_size)` for every live block of this GcHeap, in
    /// every thread's heap of it and in the pages of exited threads, each
    /// block once; `f` returns false to stop the walk. Returns true if the
    /// walk went through (false if `f` stopped it).
    ///
    /// Meant to be called under a stop of the world
    /// ([`stop_the_world`](crate::stop_the_world)), as CPython's collector
    /// walks its GC heaps instead of keeping an object list. A block freed
    /// by another thread into a page of a stopped thread counts as free (the
    /// walk collects each page's free lists first).
    ///
    /// `block` is where the block starts. For a block allocated with an
    /// alignment its size class does not give (e.g. 8 bytes aligned to
    /// 4 KiB, or any alignment of 1 MiB and more), mimalloc allocates a larger
    /// block and returns an aligned pointer inside it: `f` gets the larger
    /// block, and the pointer the allocator returned lies in
    /// `block..block + usable_size`, up to the alignment past `block`.
    ///
    /// **Cost**: a few ns per live block (the block's callback included;
    /// `cargo test --release --test gcheap_visit` prints the rate, over
    /// 100 M blocks/s on a 2-core machine), plus per page a pass over its
    /// free list, and a lock (the list of heaps) held for the walk.
    ///
    /// **The callback may** read and write the block's contents, record the
    /// block in memory allocated before the walk, and stop the walk. **It may
    /// not** allocate or free with gcmalloc (the global allocator, this or any
    /// other GcHeap): a free may release the page being walked, and an
    /// allocation may reclaim pages into a heap being walked. Collect the
    /// blocks to free and free them after the walk. Nor may it start or end
    /// a thread, `fork` (the fork handlers wait for the lock the walk
    /// holds), or call [`usage`](crate::usage), [`audit`](crate::audit),
    /// or any GcHeap's `usage`, `audit`, `refresh_stopped` or
    /// `visit_blocks`: they take the lock the walk holds, so they panic
    /// there (with a message) instead of waiting for it forever. A panic in
    /// the callback stops the walk and is resumed after it.
    ///
    /// ```
    /// use allocator_api2::boxed::Box;
    /// use gcmalloc::GcHeap;
    ///
    /// let heap = GcHeap::new().unwrap();
    /// let objects: Vec<Box<u64, &GcHeap>> = (0..1000).map(|i| Box::new_in(i, &heap)).collect();
    /// let mut found = 0;
    /// let world = gcmalloc::stop_the_world();
    /// // SAFETY: no other thread allocates from `heap`.
    /// unsafe { heap.visit_blocks(|_block, _size| { found += 1; true }) };
    /// drop(world);
    /// assert_eq!(found, objects.len());
    /// ```
    ///
    /// # Safety
    ///
    /// No thread other than the caller allocates from this GcHeap, or exits
    /// having allocated from it, while the walk runs: for instance every
    /// thread that uses it is registered and stays attached while it does,
    /// and the caller holds a [`StopTheWorld`](crate::StopTheWorld) (which
    /// parks attached threads at a safepoint; a thread stopped while
    /// detached keeps running). Frees from other threads are fine.
    pub unsafe fn visit_blocks<F: FnMut(NonNull<u8>, usize) -> bool>(&self, f: F) -> bool {
        let mut visit = Visit { f, panic: None };
        let walking = Walking::enter();
        // SAFETY: the caller guarantees the owners of the other heaps of the
        // tag are stopped; `visit` outlives the walk and matches `visit_one`.
        let done =
            unsafe { ffi::mi_gc_heap_visit_blocks(self.tag, visit_one::<F>, (&mut visit as *mut Visit<F>).cast()) };
        drop(walking);
        if let Some(payload) = visit.panic {
            resume_unwind(payload);
        }
        done
    }
}
