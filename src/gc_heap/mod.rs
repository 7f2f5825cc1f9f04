//! [`GcHeap`]: a heap for one purpose (a runtime's collected objects), with
//! its own live-bytes figure and a walk of its blocks.
//!
//! The C side is `csrc/gc-heap.c`: a GcHeap is a mimalloc heap tag, and each
//! thread allocates from its own mimalloc heap of that tag.

mod alloc;
mod walk;

use core::fmt;
use core::sync::atomic::Ordering::Relaxed;

use crate::accounting::refuse_inside_walk;
use crate::{ffi, Audit, Usage};

/// A heap for one purpose: a runtime's collected objects, kept apart from
/// the rest of the program's memory, with its own live-bytes figure.
///
/// A language runtime embedded in a larger program (a script engine in a
/// server, a collected index in a database) cannot tell its own heap from the
/// rest of the process with [`estimate`](crate::estimate): a cache growing
/// elsewhere opens its collection gate, a cache shrinking hides its garbage.
/// A `GcHeap` gives it what CPython's free-threaded build has with its
/// mimalloc heaps per purpose:
///
/// * **Allocation from any thread**: each thread allocates through its own
///   mimalloc heap carrying the GcHeap's *tag*, created on the thread's first
///   allocation; any thread frees. `&GcHeap` implements
///   [`allocator_api2::alloc::Allocator`], so `allocator_api2::boxed::Box<T,
///   &GcHeap>` and `allocator_api2::vec::Vec<T, &GcHeap>` work on stable Rust
///   (with the crate feature `nightly`, the trait is the standard library's
///   `Allocator`).
/// * **Its own figures**: [`GcHeap::estimate`] counts the live bytes of this
///   heap only, by the same rules and at the same cost as the process-wide
///   [`estimate`](crate::estimate) (two loads inlined, about 1 ns at any thread
///   count), which stays the sum of everything; [`GcHeap::refresh`],
///   [`GcHeap::usage`] and [`GcHeap::audit`] mirror
///   [`refresh_estimate`](crate::refresh_estimate), [`usage`](crate::usage)
///   and [`audit`](crate::audit); and a [`GcTrigger`](crate::GcTrigger) reads
///   it with [`MemorySource::GcHeap`](crate::MemorySource::GcHeap).
/// * **Pages of its own**: a thread's exit abandons the pages of its GcHeap
///   heaps, and only a thread that has a heap of the same tag reclaims them;
///   a page of a GcHeap never serves another heap while it holds live blocks,
///   and once emptied it waits for its QSBR goal like every page
///   ([type-stable pages](crate::set_page_reuse_delay)) before it may.
/// * **A walk of its blocks**: [`GcHeap::visit_blocks`] calls back for every
///   live block, under a stop of the world, so a collector can sweep without
///   keeping its own list of objects.
///
/// At most 255 GcHeaps are created per process (mimalloc's heap tags are one
/// byte, and tag 0 is the global allocator's): [`GcHeap::new`] returns
/// [`GcHeapError::TagsExhausted`] after that. A runtime creates its heaps
/// once, at start-up, and keeps them for the life of the process (in a
/// `static`, or leaked, as below).
///
/// # Example: a runtime's objects in a GcHeap, collected on its figure
///
/// ```
/// use allocator_api2::boxed::Box;
/// use gcmalloc::{GcHeap, GcTrigger, MemorySource};
///
/// #[global_allocator]
/// static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;
///
/// // The runtime's heap, for the life of the process.
/// let objects: &'static GcHeap = std::boxed::Box::leak(std::boxed::Box::new(GcHeap::new().unwrap()));
/// // Collect when the runtime's own objects grew, whatever the rest of the
/// // program (here: a 64 MiB cache) does.
/// let trigger = GcTrigger::builder().threshold(1_000).source(MemorySource::GcHeap(objects)).build();
/// let cache = vec![0u8; 64 << 20];
///
/// let me = gcmalloc::register_thread();
/// let mut live: Vec<Box<[u64; 8], &GcHeap>> = Vec::new();
/// let mut collections = 0;
/// for i in 0..100_000u64 {
///     live.push(Box::new_in([i; 8], objects));
///     trigger.record_alloc(1);
///     me.quiescent();
///     if trigger.should_collect() {
///         let world = gcmalloc::stop_the_world();
///         live.retain(|o| o[0] % 4 == 0); // the sweep
///         drop(world);
///         trigger.collected(); // refreshes this thread's share of `objects`
///         collections += 1;
///     }
/// }
/// assert!(collections > 0);
/// assert!(objects.estimate() < 8 << 20, "the cache does not count");
/// assert!(gcmalloc::estimate() > 64 << 20, "the process-wide figure counts everything");
/// # drop(cache);
/// ```
///
/// # Dropping a GcHeap
///
/// A GcHeap can be dropped only once nothing borrows it, so every
/// `Box<T, &GcHeap>` and `Vec<T, &GcHeap>` is gone. Blocks that outlive it
/// anyway (allocated with [`Allocator::allocate`](allocator_api2::alloc::Allocator::allocate)
/// and kept as raw pointers, or leaked with `mem::forget`) **stay valid**:
/// any thread may still read, write and free them (with
/// [`GcMalloc`](crate::GcMalloc)'s `dealloc`, or any `&GcHeap`'s
/// `deallocate`). Their bytes stay in the process-wide
/// [`estimate`](crate::estimate). The tag is never handed out again, so no
/// later GcHeap counts or walks them. The threads' heaps of the dropped
/// GcHeap (a few KiB each, and the pages of the blocks still live) stay
/// until their thread exits, as mimalloc deletes a thread's heaps only then;
/// the dropping thread's releases its empty pages at once.
pub struct GcHeap {
    tag: u8,
}

/// Why a [`GcHeap`] could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GcHeapError {
    /// All 255 heap tags were handed out: this process created 255 GcHeaps
    /// already (dropped ones included: a tag is never reused). Create a
    /// runtime's heaps once and share them.
    TagsExhausted,
}

impl fmt::Display for GcHeapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GcHeapError::TagsExhausted => {
                write!(f, "all {} GcHeap tags are in use: create a runtime's GcHeaps once and share them", GcHeap::MAX)
            }
        }
    }
}

impl std::error::Error for GcHeapError {}

impl GcHeap {
    /// How many GcHeaps a process can create over its life.
    pub const MAX: usize = 255;

    /// A new, empty GcHeap with a tag of its own.
    ///
    /// Cheap: it takes a tag; each thread's heap of it is created on that
    /// thread's first allocation from it (a few KiB).
    ///
    /// ```
    /// let heap = gcmalloc::GcHeap::new()?;
    /// assert_eq!(heap.estimate(), 0);
    /// # Ok::<(), gcmalloc::GcHeapError>(())
    /// ```
    pub fn new() -> Result<GcHeap, GcHeapError> {
        // SAFETY: takes a free tag under an atomic CAS; no preconditions.
        let tag = unsafe { ffi::mi_gc_heap_tag_new() };
        if tag == 0 {
            return Err(GcHeapError::TagsExhausted);
        }
        Ok(GcHeap { tag })
    }

    /// The mimalloc heap tag of this GcHeap (1 to 255), as its pages carry it.
    pub fn tag(&self) -> u8 {
        self.tag
    }

    /// The live bytes of this GcHeap's blocks, as of each page's last
    /// slow-path event: the same rules, bounds and batching as the
    /// process-wide [`estimate`](crate::estimate) (see [`Usage`]), for the
    /// pages of this heap only (those of exited threads included).
    ///
    /// Two relaxed loads: no lock, no syscall, no allocation, the same cost
    /// at any number of threads.
    ///
    /// ```
    /// use allocator_api2::vec::Vec;
    ///
    /// let heap = gcmalloc::GcHeap::new().unwrap();
    /// let mut v: Vec<u8, &gcmalloc::GcHeap> = Vec::new_in(&heap);
    /// v.resize(1 << 20, 0); // a large block: counted at once
    /// assert!(heap.estimate() >= 1 << 20);
    /// drop(v);
    /// assert!(heap.estimate() < 1 << 20);
    /// ```
    #[inline]
    pub fn estimate(&self) -> usize {
        // SAFETY: a C global of `Figure`s that lives as long as the process
        // and is only ever accessed atomically.
        let figure = unsafe { &ffi::mi_gc_tag_figure[usize::from(self.tag)] };
        // Relaxed: as `estimate`'s, a few ns old is as good.
        let sum = figure.published.load(Relaxed) + figure.abandoned.load(Relaxed);
        sum.max(0) as usize
    }

    /// Syncs every page of the calling thread's heap of this GcHeap, so that
    /// its share of [`GcHeap::estimate`] is exact (up to size-class
    /// rounding), as [`refresh_estimate`](crate::refresh_estimate) does for
    /// the thread's global heap. O(pages of that heap); no allocation. Other
    /// threads' shares: [`GcHeap::refresh_stopped`].
    pub fn refresh(&self) {
        // SAFETY: refreshes the calling thread's own heap of the tag.
        unsafe { ffi::mi_gc_heap_refresh(self.tag, false) }
    }

    /// Syncs every thread's heap of this GcHeap (see [`GcHeap::refresh`]);
    /// for a collector that freed other threads' objects, before it restarts
    /// the world. O(pages of this GcHeap).
    ///
    /// # Safety
    ///
    /// As for [`GcHeap::visit_blocks`]: no other thread allocates from or
    /// exits with a heap of this GcHeap while it runs.
    pub unsafe fn refresh_stopped(&self) {
        refuse_inside_walk("GcHeap::refresh_stopped");
        // SAFETY: the caller guarantees every other owner of a heap of the
        // tag is stopped, which is what refreshing their heaps needs.
        unsafe { ffi::mi_gc_heap_refresh(self.tag, true) }
    }

    /// The breakdown of this GcHeap's figure, as [`usage`](crate::usage)
    /// gives it for the process: `heaps` counts the threads' heaps of this
    /// GcHeap, and the bounds are per those heaps. `delayed_*` count the
    /// empty pages waiting for their QSBR goal in live threads' heaps of this
    /// GcHeap (those of exited threads are in the process-wide figure only).
    /// Walks the list of heaps under its lock: for diagnostics and tests.
    ///
    /// ```
    /// let heap = gcmalloc::GcHeap::new().unwrap();
    /// let u = heap.usage();
    /// assert!(u.estimate.abs_diff(u.exact()) <= u.error_bound);
    /// ```
    pub fn usage(&self) -> Usage {
        refuse_inside_walk("GcHeap::usage");
        let mut usage = crate::accounting::zero_usage();
        // SAFETY: `Usage` has the layout of `mi_acct_usage_t`, which
        // `mi_gc_heap_usage` fills in place.
        unsafe { ffi::mi_gc_heap_usage(self.tag, &mut usage) };
        usage
    }

    /// Recounts this GcHeap's bytes and compares them with its counters, as
    /// [`audit`](crate::audit) does for the process: `counted == carried` at
    /// any quiescent moment, and `== recounted + exit_race` right after
    /// every thread's heap of this GcHeap was refreshed.
    ///
    /// # Safety
    ///
    /// As for [`audit`](crate::audit): no other thread allocates or frees
    /// with gcmalloc while it runs.
    pub unsafe fn audit(&self) -> Audit {
        refuse_inside_walk("GcHeap::audit");
        let mut audit = Audit { counted: 0, carried: 0, recounted: 0, exit_race: 0 };
        // SAFETY: `Audit` has the layout of `mi_acct_audit_t`; the caller
        // guarantees quiescence.
        unsafe { ffi::mi_gc_heap_audit(self.tag, &mut audit) };
        audit
    }
}

impl Drop for GcHeap {
    /// See "Dropping a GcHeap" on [`GcHeap`].
    fn drop(&mut self) {
        // SAFETY: the tag is this GcHeap's; nothing borrows it any more.
        unsafe { ffi::mi_gc_heap_tag_drop(self.tag) }
    }
}

impl fmt::Debug for GcHeap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcHeap").field("tag", &self.tag).field("estimate", &self.estimate()).finish()
    }
}

/// The heap tags around the page of `block`: the page's tag and that of the
/// heap owning the page (`None` while the page is abandoned by an exited
/// thread). For tests of reclaim.
///
/// # Safety
///
/// `block` is a live block allocated by gcmalloc.
#[doc(hidden)]
pub unsafe fn __block_owner(block: *const u8) -> (u8, Option<u8>) {
    // SAFETY: the caller guarantees a live gcmalloc block, whose page the
    // lookup reads.
    let v = unsafe { ffi::mi_gc_block_owner(block.cast()) };
    let owner = v >> 8;
    ((v & 0xff) as u8, (owner >= 0).then_some(owner as u8))
}
