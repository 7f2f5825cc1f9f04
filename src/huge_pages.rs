//! Transparent huge pages by heap size.
//!
//! Stock mimalloc asks the kernel for transparent huge pages
//! (`madvise(MADV_HUGEPAGE)`) on every arena it reserves, so a small heap's
//! RSS grows in 2 MiB steps: 4-8 MiB more than jemalloc's on heaps of
//! 7-40 MiB. Huge pages pay off on large heaps only (fewer TLB misses). So
//! gcmalloc reserves its arenas unmarked while the [estimate](crate::estimate)
//! is below a threshold, and marks them once it passes it (`csrc/huge-pages.c`;
//! nothing is ever marked `MADV_NOHUGEPAGE`). What the kernel then does
//! depends on its THP mode (`/sys/kernel/mm/transparent_hugepage/enabled`):
//! in `madvise` mode only marked memory gets huge pages; in `always` mode every
//! range may, marked or not; in `never` mode none.

use crate::ffi;

/// The default threshold: 128 MiB of live bytes.
pub const DEFAULT_HUGE_PAGE_THRESHOLD: usize = 128 << 20;

/// Sets the heap size (live bytes, as [`estimate`](crate::estimate) reads
/// them) from which gcmalloc's arenas are marked for transparent huge pages.
///
/// `0` restores stock mimalloc's behaviour (every arena marked when it is
/// reserved); `usize::MAX` never marks. The default is
/// [`DEFAULT_HUGE_PAGE_THRESHOLD`], or `GCMALLOC_HUGE_PAGE_THRESHOLD_MIB`
/// from the environment (read at the first arena reservation). Arenas
/// reserved unmarked are marked at the first arena allocation (a new 32 MiB
/// segment) after the estimate passes the threshold. mimalloc's own
/// `MIMALLOC_ALLOW_THP=0` still turns huge pages off altogether.
///
/// ```
/// # #[global_allocator] static G: gcmalloc::GcMalloc = gcmalloc::GcMalloc;
/// gcmalloc::set_huge_page_threshold(256 << 20); // a runtime that knows its heaps are large
/// assert_eq!(gcmalloc::huge_page_threshold(), 256 << 20);
/// # gcmalloc::set_huge_page_threshold(gcmalloc::DEFAULT_HUGE_PAGE_THRESHOLD);
/// ```
pub fn set_huge_page_threshold(bytes: usize) {
    // SAFETY: stores a number; callable from any thread at any time.
    unsafe { ffi::mi_thp_set_threshold(bytes) }
}

/// The heap size from which arenas are marked for huge pages (see
/// [`set_huge_page_threshold`]).
pub fn huge_page_threshold() -> usize {
    // SAFETY: reads a number (and the environment once); no preconditions.
    unsafe { ffi::mi_thp_get_threshold() }
}

/// Arenas reserved unmarked that are not marked yet: nonzero while the heap
/// has stayed below the threshold since they were reserved.
pub fn huge_page_deferred_arenas() -> usize {
    // SAFETY: reads a counter; no preconditions.
    unsafe { ffi::mi_thp_deferred_arenas() }
}
