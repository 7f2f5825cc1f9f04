//! Live-bytes accounting: a memory estimate that a garbage collector can
//! read at any moment, without a syscall, a lock or stopping the world.
//!
//! What is counted and how far off the estimate can be is documented on
//! [`Usage`], where users of the crate see it.

use core::cell::Cell;
use core::ffi::c_void;
use core::sync::atomic::Ordering::Relaxed;

use crate::ffi;

/// The bytes of live blocks, process wide, as of each page's last slow-path
/// event.
///
/// Two relaxed atomic loads: no syscall, no lock, no allocation, and the same
/// cost at any number of threads. The value may differ from the exact sum of
/// the per-thread counters by [`Usage::error_bound`], and from the live bytes
/// by what the allocation and free fast paths did since each page's last
/// sync ([`Usage`] has the bounds); [`refresh_estimate`] makes the calling
/// thread's share exact.
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
    // SAFETY: a C global of `Figure`'s layout that lives as long as the
    // process and is only ever accessed atomically.
    let figure = unsafe { &ffi::mi_acct_figure };
    // Relaxed: a figure that is a few ns old is as good; nothing is published with it.
    let published = figure.published.load(Relaxed);
    let abandoned = figure.abandoned.load(Relaxed);
    published.max(0) as usize + abandoned as usize
}

/// The calling thread's share of [`estimate`]: the bytes its mimalloc heap's
/// pages carry (as of their last sync, see [`Usage`]). Blocks the thread
/// allocated count here wherever they are freed later, until their page is
/// synced. Two loads; never allocates (0 before the thread's first
/// allocation). For per-thread budgets, or a dashboard per mutator thread.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;
///
/// let mine = vec![0u8; 8 << 20]; // a huge block: counted at once
/// assert!(gcmalloc::thread_estimate() >= 8 << 20);
/// std::thread::spawn(|| assert!(gcmalloc::thread_estimate() < 8 << 20)).join().unwrap();
/// # drop(mine);
/// ```
#[inline]
pub fn thread_estimate() -> usize {
    // SAFETY: reads two counters of the calling thread's heap; no
    // preconditions.
    unsafe { ffi::mi_acct_heap_bytes(core::ptr::null()) }
}

/// Returns free memory to the OS now: the calling thread's empty pages (those
/// whose QSBR goal is reached) and the free parts of segments, purged at once
/// instead of after mimalloc's purge delay (mimalloc's `mi_collect(true)`).
/// Call it after a major collection, as one GC runtime did to cut its idle
/// RSS from 868 to 459 MB. Costs a walk of the thread's heap and system calls;
/// pages waiting for their goal stay (see [`set_page_reuse_delay`](crate::set_page_reuse_delay)).
///
/// ```
/// let garbage: Vec<Vec<u8>> = (0..1000).map(|_| vec![1u8; 4096]).collect();
/// drop(garbage);
/// gcmalloc::release_free_memory();
/// ```
pub fn release_free_memory() {
    // SAFETY: mi_collect works on the calling thread's heap and on abandoned
    // segments, under mimalloc's own synchronization.
    unsafe { ffi::mi_collect(true) }
}

/// A breakdown of the accounted bytes, from [`usage`].
///
/// # What is counted
///
/// The estimate tracks the bytes of live blocks (block size, so up to
/// size-class rounding above what the program asked for). Counting every
/// allocation would cost the fast path, so the patched allocator
/// (`csrc/accounting.c`) counts per page, on slow paths only.
/// Every page carries the bytes it contributes:
///
/// * a small or medium page (blocks up to 8 KiB in 64 KiB pages, up to
///   64 KiB in 512 KiB pages): `used blocks x block size` as of its last
///   *sync*. A page is synced whenever it changes queue (fresh, full, no
///   longer full, freed), when the allocation slow path walks past it looking
///   for free blocks, when its heap is collected, when its thread exits or
///   another thread reclaims it, and by [`refresh_estimate`];
/// * a large or huge page (one block over 64 KiB, or a very large
///   alignment): from its allocation until its block is freed;
/// * a page of an exited thread (*abandoned*): its live bytes when the thread
///   exited, less one block for every block another thread frees into it,
///   until a thread reclaims it.
///
/// Whatever moves a page (abandon, free into it, reclaim) moves exactly the
/// bytes it carries, so the counters never drift from the pages
/// ([`Audit::carried`]). Each heap's counters are written only by the thread
/// that owns it; nothing is added to the allocation or free fast paths.
///
/// # How far off it can be
///
/// * **Undercount** ([`Usage::undercount_bound`]): blocks allocated on the
///   fast path since their page's last sync. The fast path allocates from
///   one page per size class per heap until that page runs out, and a page is
///   synced when it does, so this is at most `heaps x (33 x 64 KiB + 12 x
///   512 KiB)` = `heaps x 8,256 KiB` (33 small and 12 medium size classes on
///   64-bit), and in practice a few pages per thread.
/// * **Overcount**: blocks freed since their page's last sync, on pages that
///   had no slow-path event since: a page that is no longer full but is not
///   being allocated from. A garbage collector's sweep leaves many such
///   pages; that is why [`refresh_estimate`] (and
///   [`GcTrigger::collected`](crate::GcTrigger::collected), which calls it)
///   syncs every page of a heap: right after a refresh the heap's overcount
///   and undercount are zero. Blocks freed by other threads count until the
///   owner collects them, as mimalloc only then reuses them.
/// * **Batching** ([`Usage::error_bound`]): to cost a few nanoseconds at any
///   thread count, [`estimate`] reads one process-wide figure. Each heap adds
///   its change to it once the change exceeds 256 KiB (and at every
///   refresh), so the figure differs from the exact sum of the counters by at
///   most `heaps x 256 KiB`.
/// * **Thread exit**: a block that another thread frees into a page of an
///   exiting thread in the instant between that thread's last collection of
///   the page and the page's hand-over to the abandoned total stays counted
///   in [`Usage::abandoned_bytes`] until a thread reclaims the page or its
///   segment is freed. Bound: such blocks were live when the thread exited,
///   so per page never more than what it carried then, and in practice a
///   block or two per page in a race at thread exit (measured under thread
///   churn: at most 3.5 KiB of about 130 KiB abandoned).
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
    /// Live blocks in the small and medium pages of live heaps, as of each
    /// page's last sync.
    pub small_bytes: usize,
    /// Large and huge pages (one block each) owned by live heaps.
    pub large_bytes: usize,
    /// Live blocks in the pages of exited threads, not yet reclaimed.
    pub abandoned_bytes: usize,
    /// Live mimalloc heaps (one per thread that has allocated).
    pub heaps: usize,
    /// `|estimate - exact()| <= error_bound` (`heaps x 256 KiB`) while no
    /// thread is between a page transition and its publication.
    pub error_bound: usize,
    /// The most that fast-path allocations since the pages' last sync can
    /// hold uncounted (`heaps x 8,256 KiB`, see [`Usage`]).
    pub undercount_bound: usize,
    /// Empty pages waiting for their QSBR goal before they may serve another
    /// size class ([type-stable pages](crate::set_page_reuse_delay)), in
    /// live heaps and abandoned by exited threads. Not part of the estimate:
    /// they hold no live data. Pages purged past the
    /// [budget](crate::set_delayed_page_budget) count too.
    pub delayed_pages: usize,
    /// The bytes those pages hold committed (a purged page holds none): what
    /// the [budget](crate::set_delayed_page_budget) bounds.
    pub delayed_bytes: usize,
}

impl Usage {
    /// The exact per-thread sum: `small_bytes + large_bytes +
    /// abandoned_bytes`.
    pub fn exact(&self) -> usize {
        self.small_bytes + self.large_bytes + self.abandoned_bytes
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
    refuse_inside_walk("gcmalloc::usage");
    let mut usage = zero_usage();
    // SAFETY: `Usage` has the layout of `mi_acct_usage_t`, which
    // `mi_acct_usage` fills in place.
    unsafe { ffi::mi_acct_usage(&mut usage) };
    usage
}

std::thread_local! {
    /// True while this thread runs a `GcHeap::visit_blocks` walk, which
    /// holds the list of heaps' lock while it calls back.
    static WALKING: Cell<bool> = const { Cell::new(false) };
}

/// Panics if the calling thread is inside a `GcHeap::visit_blocks`
/// callback: `what` takes the list of heaps' lock, which the walk holds, so
/// it would wait for it forever. A thread-local flag, no allocation.
pub(crate) fn refuse_inside_walk(what: &str) {
    if WALKING.with(Cell::get) {
        panic!(
            "{what} was called inside a GcHeap::visit_blocks callback, whose walk holds the lock it takes: \
             record what the callback needs and call it after the walk"
        );
    }
}

/// Marks the calling thread as walking a GcHeap until dropped (see
/// [`refuse_inside_walk`]); refuses a walk inside a walk.
pub(crate) struct Walking(());

impl Walking {
    pub(crate) fn enter() -> Walking {
        refuse_inside_walk("GcHeap::visit_blocks");
        WALKING.with(|w| w.set(true));
        Walking(())
    }
}

impl Drop for Walking {
    fn drop(&mut self) {
        WALKING.with(|w| w.set(false));
    }
}

/// A `Usage` of zeros, for the C side to fill.
pub(crate) fn zero_usage() -> Usage {
    // SAFETY: every field of `Usage` is a `usize`, so all-zero is a valid
    // value.
    unsafe { core::mem::MaybeUninit::<Usage>::zeroed().assume_init() }
}

/// Syncs every page of the calling thread's heap, so that its share of the
/// estimate is exact (up to size-class rounding) from now until its next
/// fast-path allocation or free.
///
/// Processes the frees other threads made into this thread's full pages,
/// collects each page's free lists and syncs the page, then publishes the
/// heap's counters: O(pages of this thread), about 5–9 µs per 1,000 pages
/// (`cargo bench --bench estimate`), no syscall, no allocation. Call it after
/// a collection, as [`GcTrigger::collected`](crate::GcTrigger::collected)
/// does; other threads' heaps converge at their own slow-path events, or are
/// refreshed by the holder of a stop ([`StopTheWorld::refresh_estimate`](crate::StopTheWorld::refresh_estimate)).
///
/// ```
/// #[global_allocator]
/// static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;
///
/// // 16 MiB of small objects; then a sweep frees every other one.
/// let mut objects: Vec<Option<Box<[u64; 8]>>> = (0..262_144).map(|_| Some(Box::new([0; 8]))).collect();
/// objects.iter_mut().step_by(2).for_each(|o| *o = None);
/// gcmalloc::refresh_estimate();
/// let live = 131_072 * 64 + objects.capacity() * 8;
/// let estimate = gcmalloc::estimate();
/// assert!(estimate > live * 9 / 10 && estimate < live * 13 / 10, "{estimate} vs {live}");
/// ```
pub fn refresh_estimate() {
    // SAFETY: NULL asks for the calling thread's own heap, which this thread
    // owns; mi_acct_refresh neither allocates nor blocks.
    unsafe { ffi::mi_acct_refresh(core::ptr::null_mut()) }
}

/// The calling thread's mimalloc heap, for [`refresh_thread_heaps`] by another
/// thread while this one is parked. May allocate (initializes the heap).
pub(crate) fn current_heap() -> *mut c_void {
    // SAFETY: returns the calling thread's heap; no preconditions.
    unsafe { ffi::mi_heap_get_default() }
}

/// Refreshes every heap of another thread (its global heap and its heaps of
/// every [`GcHeap`](crate::GcHeap)), as [`refresh_estimate`] does for the
/// calling thread's global heap (without processing mimalloc's delayed-free
/// list of that thread: its blocks are subtracted instead); `NULL`: every
/// heap of the calling thread.
///
/// # Safety
///
/// `heap` is null, or from [`current_heap`] on a thread that is parked,
/// touching no heap, from before this call until after it, with both ends
/// ordered by acquire/release (a stop-the-world safepoint).
pub(crate) unsafe fn refresh_thread_heaps(heap: *mut c_void) {
    // SAFETY: the calling thread's own heaps, or (the caller guarantees)
    // those of a thread that touches none of them meanwhile.
    unsafe { ffi::mi_acct_refresh_thread(heap) }
}

/// What the counters say, what the pages carry and what a recount of the
/// page structures finds, from [`audit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[repr(C)]
pub struct Audit {
    /// The sum of all heap counters and the abandoned total, in bytes.
    pub counted: usize,
    /// The bytes every page carries (see [`Usage`]): equal to `counted`
    /// unless the counters drifted from the pages.
    pub carried: usize,
    /// The live bytes by the page structures: `used blocks x block size` of
    /// every small/medium page of a live heap, every large/huge block, and
    /// the blocks of exited threads' pages not freed since. Equal to
    /// `counted - exit_race` right after every heap was refreshed.
    pub recounted: usize,
    /// The bytes exited threads' pages carry beyond their live blocks:
    /// blocks another thread freed into a page in the instant of its
    /// thread's exit (the race described under *Thread exit* in [`Usage`]),
    /// counted until a thread reclaims the page. Usually 0; a block or two
    /// per page when frees race thread exits.
    pub exit_race: usize,
}

/// Recounts the accounted bytes and compares them with the counters.
///
/// Walks every heap's page queues and every abandoned segment. With
/// consistent accounting `counted == carried` at any quiescent moment, and
/// `counted == recounted + exit_race` right after [`refresh_estimate`] on
/// every thread that allocated since its last sync (`exit_race` is 0 unless
/// frees raced thread exits).
///
/// ```
/// #[global_allocator]
/// static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;
///
/// gcmalloc::refresh_estimate();
/// // SAFETY: this doctest runs no other thread.
/// let a = unsafe { gcmalloc::audit() };
/// assert_eq!(a.counted, a.carried);
/// assert_eq!(a.counted, a.recounted);
/// ```
///
/// # Safety
///
/// No other thread may allocate or free with gcmalloc while it runs (for
/// example: the others are joined, or blocked in code that does not
/// allocate): the walk reads other threads' page queues, which only their
/// owners may change. Threads that merely exist (idle) are fine. A
/// stop-the-world is **not** enough: it parks attached threads, but a thread
/// stopped while detached keeps running (and may allocate), and unregistered
/// threads are not stopped at all.
pub unsafe fn audit() -> Audit {
    refuse_inside_walk("gcmalloc::audit");
    let mut audit = Audit { counted: 0, carried: 0, recounted: 0, exit_race: 0 };
    // SAFETY: `Audit` has the layout of `mi_acct_audit_t`, which
    // `mi_acct_audit` fills; the caller guarantees quiescence.
    unsafe { ffi::mi_acct_audit(&mut audit) };
    audit
}
