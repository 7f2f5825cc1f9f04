//! Full-page byte accounting: a memory estimate that a garbage collector can
//! read at any moment, without a syscall, a lock or stopping the world.
//!
//! What is counted and how far off the estimate can be is documented on
//! [`Usage`], where users of the crate see it.

use crate::ffi;

/// Bytes held in full pages and large/huge blocks, process wide.
///
/// Two relaxed atomic loads: no syscall, no lock, no allocation, and the same
/// cost at any number of threads. The value may differ from the exact sum of
/// the per-thread counters by [`Usage::error_bound`], and misses blocks in
/// pages that are not full (see [`Usage`] for both bounds).
///
/// ```
/// #[global_allocator]
/// static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;
///
/// let before = gcmalloc::estimate();
/// let big = vec![0u8; 64 << 20]; // a huge block is counted at once
/// assert!(gcmalloc::estimate() >= before + (64 << 20));
/// drop(big);
/// assert!(gcmalloc::estimate() < before + (64 << 20));
/// ```
#[inline]
pub fn estimate() -> usize {
    // SAFETY: reads two process-wide atomics; no preconditions.
    unsafe { ffi::mi_acct_estimate() }
}

/// A breakdown of the accounted bytes, from [`usage`].
///
/// # What is counted
///
/// mimalloc keeps the pages of each size class in per-heap queues and moves a
/// page to its heap's *full queue* when it finds no free block in it. The
/// patched allocator (`vendor/patches/0001-full-page-accounting.patch`)
/// counts, for every page, `block_size * capacity` bytes while the page is
///
/// * in a heap's full queue (small blocks up to 8 KiB in 64 KiB pages, medium
///   blocks up to 64 KiB in 512 KiB pages),
/// * a large or huge page (one block over 64 KiB, or a very large alignment):
///   from its allocation until its block is freed,
/// * a full (or large/huge) page of an exited thread (*abandoned*), until a
///   block is freed into it or another thread reclaims it.
///
/// Each page carries the bytes it contributes, so abandoning, freeing into and
/// reclaiming a page move exactly those bytes: a page that is full, abandoned,
/// freed into and then reclaimed and filled again is counted once (the hole in
/// CPython's first attempt, PR #148940). The counters change only when a page
/// changes queue, never on the allocation fast path, and each heap's counters
/// are written only by the thread that owns it.
///
/// # How far off it can be
///
/// Two independent, bounded errors, both reported by [`usage`]:
///
/// * **Undercount** ([`Usage::undercount_bound`]): blocks in pages that are
///   not full are not counted. While a heap only allocates, each size class
///   has at most one such page (the one being filled), so the estimate misses
///   at most `heaps x (33 x 64 KiB + 12 x 512 KiB)` = `heaps x 8,256 KiB`
///   (33 small and 12 medium size classes on 64-bit). Pages left partly used
///   by frees are not counted either: that is the point of the estimate (it
///   falls when memory is freed), and it means the estimate tracks memory held
///   in full pages, not every live byte. A block freed by another thread into
///   a full page (or a large/huge block) of a live thread stays counted until
///   that thread processes its delayed frees (every 100 allocation slow paths,
///   or in a collect), as mimalloc itself only then reuses the block.
/// * **Batching** ([`Usage::error_bound`]): to cost a few nanoseconds at any
///   thread count, [`estimate`] reads one process-wide figure. Each heap adds
///   its change to it once the change exceeds 256 KiB, so the figure differs
///   from the exact sum of the counters by at most `heaps x 256 KiB`.
///   A heap's remaining change is folded in when the heap is destroyed.
///
/// # Fields
///
/// The `*_bytes` fields are exact sums of the per-heap and abandoned counters
/// (each read atomically while other threads may be changing them);
/// [`Usage::exact`] is their total, and `estimate` is what [`estimate`]
/// returned at the same time.
///
/// The fields are those of mimalloc's `mi_acct_usage_t`
/// (`vendor/mimalloc/include/mimalloc.h`), in the same order: [`usage`]
/// lets mimalloc fill this struct in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[repr(C)]
pub struct Usage {
    /// The batched process-wide figure, as returned by [`estimate`].
    pub estimate: usize,
    /// Small and medium pages in the heaps' full queues.
    pub full_page_bytes: usize,
    /// Large and huge pages (one block each) owned by live heaps.
    pub large_bytes: usize,
    /// Full and large/huge pages of exited threads, not yet freed into or
    /// reclaimed.
    pub abandoned_bytes: usize,
    /// Live mimalloc heaps (one per thread that has allocated).
    pub heaps: usize,
    /// `|estimate - exact()| <= error_bound` (`heaps x 256 KiB`) while no
    /// thread is between a page transition and its publication.
    pub error_bound: usize,
    /// The most that pages being filled can hold uncounted
    /// (`heaps x 8,256 KiB`, see [`Usage`]).
    pub undercount_bound: usize,
    /// Empty pages waiting for their QSBR goal before they may serve another
    /// size class ([type-stable pages](crate::set_page_reuse_delay)), in
    /// live heaps and abandoned by exited threads. Not part of the estimate:
    /// they hold no live data.
    pub delayed_pages: usize,
    /// The size of those pages, in bytes.
    pub delayed_bytes: usize,
}

impl Usage {
    /// The exact per-thread sum: `full_page_bytes + large_bytes +
    /// abandoned_bytes`.
    pub fn exact(&self) -> usize {
        self.full_page_bytes + self.large_bytes + self.abandoned_bytes
    }
}

/// The accounting breakdown, with the exact sum over all heaps.
///
/// Walks the list of heaps under a lock taken only here, in [`audit`] and
/// when a thread starts or exits: O(threads), meant for diagnostics and
/// tests, not for the hot path (use [`estimate`] there). Does not allocate.
///
/// ```
/// let u = gcmalloc::usage();
/// assert!(u.estimate.abs_diff(u.exact()) <= u.error_bound);
/// ```
pub fn usage() -> Usage {
    // SAFETY: every field of `Usage` is a `usize`, so all-zero is a valid
    // value; `Usage` has the layout of `mi_acct_usage_t`, which
    // `mi_acct_usage` fills in place.
    unsafe {
        let mut usage = core::mem::MaybeUninit::<Usage>::zeroed().assume_init();
        ffi::mi_acct_usage(&mut usage);
        usage
    }
}

/// What the counters say and what a recount of the page structures finds,
/// from [`audit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audit {
    /// The sum of all heap counters and the abandoned total, in bytes.
    pub counted: usize,
    /// The bytes of every counted page found by walking every heap's page
    /// queues and every abandoned segment.
    pub recounted: usize,
}

/// Recounts the accounted bytes exactly and compares them with the counters.
///
/// Walks every heap's page queues and every abandoned segment: a heap page
/// counts if it is in the full queue or large/huge; an abandoned page counts
/// if it was full (or large/huge) when abandoned and no block has been freed
/// into it since. With consistent accounting `counted == recounted`.
///
/// ```
/// // SAFETY: this doctest runs no other thread.
/// let a = unsafe { gcmalloc::audit() };
/// assert_eq!(a.counted, a.recounted);
/// ```
///
/// # Safety
///
/// No other thread may allocate or free with gcmalloc while it runs (for
/// example: the others are joined, parked, or stopped by a stop-the-world):
/// the walk reads other threads' page queues, which only their owners may
/// change. Threads that merely exist (idle) are fine.
pub unsafe fn audit() -> Audit {
    let (mut counted, mut recounted) = (0, 0);
    // SAFETY: valid out-pointers; the caller guarantees quiescence.
    unsafe { ffi::mi_acct_audit(&mut counted, &mut recounted) };
    Audit { counted, recounted }
}
