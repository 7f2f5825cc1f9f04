//! Type-stable pages: empty mimalloc pages wait for a QSBR goal before they
//! serve another size class, another heap or the OS.
//!
//! Once a block of size class S has been handed out, the memory of its page
//! keeps holding blocks of size class S (possibly a newer object, never
//! anything else) until every registered thread has passed a quiescent state
//! ([`ThreadHandle::quiescent`](crate::ThreadHandle::quiescent)). That is the
//! guarantee behind CPython's free-threaded lock-free list/dict reads and
//! Linux's `SLAB_TYPESAFE_BY_RCU`: a reader that loads a pointer, then tries
//! to increment a reference count at a fixed offset and re-checks the
//! pointer, never touches memory that became part of an unrelated object, a
//! different size class, another heap or an unmapped page.
//!
//! The mechanism lives in the patched mimalloc (`csrc/page-delay.c`):
//! a page that becomes empty is tagged with a QSBR goal and queued on its
//! heap's FIFO instead of being freed. It stays in its size-class queue, so
//! same-size allocations reuse it at once (which cancels the pending free).
//! When the heap needs a fresh page, before large/huge allocations and on
//! collection, the FIFO releases the pages whose goal is reached, oldest
//! first. Pages of exiting threads keep their goal while abandoned.
//!
//! What it costs: nothing on the allocation fast path; one call into this
//! module when a page empties. With no registered thread online, goals are
//! reached at once and pages are freed exactly as in stock mimalloc.
//!
//! # Held memory
//!
//! While a registered thread does not quiesce (stuck attached, say), no goal
//! is reached and emptied pages keep waiting. What they hold is bounded:
//!
//! * **Reuse first.** A delayed small/medium page stays in its size-class
//!   queue, so the next allocation of that size class reuses it; a waiting
//!   large/huge page serves a later large allocation that fits it (the same
//!   kind, at most twice the size, and only if its last block started at the
//!   block start: a page whose block was handed out at an offset, for an
//!   over-aligned allocation, waits for its goal). Pages of an exited thread
//!   keep their goal and are reused by whichever heap reclaims them.
//!   Delayed large/huge pages are kept apart from the small ones, so a large
//!   allocation looks at them only.
//! * **A budget** ([`set_delayed_page_budget`], default: the larger of
//!   256 MiB and the live estimate). Past it, a page that starts waiting is
//!   *purged*: its memory goes back to the OS (mimalloc's decommit, then
//!   committed again if the OS made it inaccessible), while its address range
//!   stays reserved, mapped, the page's, and out of any other size class
//!   until the goal. A stale reader of a purged page reads zeros (on macOS:
//!   zeros or the bytes the page held); its own size class may allocate in
//!   it again, from its start, as from a fresh page. [`Usage::delayed_bytes`]
//!   counts the bytes delayed pages hold committed, so purged pages add
//!   nothing; [`Usage::delayed_pages`] counts every delayed page.
//! * **Pages beyond a 32-bit page reference** (segments above 2^48, on
//!   machines with 5-level paging) wait in their page queue, are counted
//!   like the others and are found there by the release and reuse steps (a
//!   walk of the heap's pages, taken only while there are any).
//!
//! [`Usage::delayed_bytes`]: crate::Usage::delayed_bytes
//! [`Usage::delayed_pages`]: crate::Usage::delayed_pages
//!
//! The guarantee covers the memory *class*, not the object: a freed block may
//! be handed out again for any allocation of the same size class, and its
//! first word holds mimalloc's free-list link while it is free. Put the words
//! a lock-free reader inspects (reference count, type tag) after the first
//! word, as CPython does with `ob_tid` at offset 0.
//!
//! ```
//! # #[global_allocator] static G: gcmalloc::GcMalloc = gcmalloc::GcMalloc;
//! // On by default; switch off to compare against plain mimalloc reuse.
//! assert!(gcmalloc::page_reuse_delay());
//! gcmalloc::set_page_reuse_delay(false);
//! gcmalloc::set_page_reuse_delay(true);
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use crate::ffi;
use crate::runtime::qsbr;

static DELAY: AtomicBool = AtomicBool::new(true);
static INSTALL: Once = Once::new();

/// Turns delayed page reuse on (the default) or off, for the whole process.
///
/// Off, empty pages are freed at once as in stock mimalloc; pages already
/// waiting keep their goal. For comparisons and benchmarks: with it off,
/// optimistic lock-free readers may see memory of another size class.
pub fn set_page_reuse_delay(enabled: bool) {
    DELAY.store(enabled, Ordering::Relaxed);
}

/// True if empty pages wait for a QSBR goal (see [`set_page_reuse_delay`]).
pub fn page_reuse_delay() -> bool {
    DELAY.load(Ordering::Relaxed)
}

/// Sets the floor of the held-memory budget, for the whole process: once
/// delayed pages hold more than the larger of `bytes` and the live estimate
/// ([`estimate`](crate::estimate)), a page that starts waiting is *purged*.
/// Default: 256 MiB. `usize::MAX` turns purging off; 0 purges every page past
/// the live estimate.
///
/// A purged page's memory goes back to the OS (mimalloc's decommit, then
/// committed again where the OS made it inaccessible), while its address
/// range stays reserved, mapped, the page's, and out of any other size class
/// until its QSBR goal: a stale reader reads zeros (on macOS, zeros or the
/// bytes the page held), never another size class's data. Its own size class
/// may allocate in it again, from its start, as in a fresh page. Reuse comes
/// first: delayed pages stay reusable by their size class (large/huge ones by
/// a later allocation that fits, in any heap), purged or not.
/// [`Usage::delayed_bytes`](crate::Usage::delayed_bytes) counts what waiting
/// pages hold committed (purged ones: nothing), the figure the budget bounds.
/// The budget is checked when a page starts waiting: pages that began
/// waiting under a larger budget (a higher live estimate) keep their memory
/// until they are reused or reach their goal.
///
/// ```
/// # #[global_allocator] static G: gcmalloc::GcMalloc = gcmalloc::GcMalloc;
/// gcmalloc::set_delayed_page_budget(64 << 20);
/// assert!(gcmalloc::delayed_page_budget() >= 64 << 20);
/// gcmalloc::set_delayed_page_budget(256 << 20); // the default
/// ```
pub fn set_delayed_page_budget(bytes: usize) {
    // SAFETY: a relaxed store of a plain number; callable from any thread.
    unsafe { ffi::mi_page_delay_set_budget(bytes) }
}

/// The held-memory budget in force now: the larger of the floor
/// ([`set_delayed_page_budget`]) and the live estimate.
pub fn delayed_page_budget() -> usize {
    // SAFETY: two relaxed loads; callable from any thread.
    unsafe { ffi::mi_page_delay_budget() }
}

/// Tests only: while `on`, every page is treated as if it lay above 2^48,
/// beyond what a 32-bit page reference names (as on a machine with 5-level
/// paging), so tests can reach the paths of such pages. Off by default; not
/// part of the API.
#[doc(hidden)]
pub fn __test_treat_pages_as_far(on: bool) {
    // SAFETY: a relaxed store of a flag the page-delay code reads when a page
    // starts waiting; pages already waiting keep where they wait.
    unsafe { ffi::mi_page_delay_test_far(on) }
}

/// Frees the calling thread's empty pages whose QSBR goal is reached, and
/// those that exited threads left behind (mimalloc's `mi_collect(false)`).
///
/// Threads release their own pages whenever they need fresh memory, so a
/// runtime calls this only to return memory promptly, e.g. after a
/// collection. Pages still waiting for their goal stay.
///
/// ```
/// gcmalloc::release_delayed_pages();
/// ```
pub fn release_delayed_pages() {
    // SAFETY: mi_collect only works on the calling thread's heap and on
    // abandoned segments, under mimalloc's own synchronization.
    unsafe { ffi::mi_collect(false) }
}

/// Installs the QSBR hooks in mimalloc. Called before the first thread
/// registers: until a thread is registered no reader can be protected, so
/// pages emptied before then may be freed at once.
pub(crate) fn install_hooks() {
    INSTALL.call_once(|| {
        // SAFETY: both hooks are `extern "C"` functions with the signatures
        // mimalloc expects; they never unwind, block or allocate.
        unsafe { ffi::mi_page_delay_set_hooks(page_goal, goal_reached) }
    });
}

/// mimalloc's hook: the goal for a page of `page_bytes` emptied now, as the
/// 32-bit tag the page keeps ([`qsbr::goal_tag`]), or 0 if it may be reused at
/// once (delay off, or no registered thread online to protect). Called inside
/// the allocator, on any thread.
///
/// It does not ask [`qsbr::goal_reached`]: for a deferred goal that would
/// advance the write sequence on every emptied page, defeating the deferral
/// of [`qsbr::page_goal`] and invalidating every thread's cached read
/// sequence. The FIFO asks when it next needs a page.
extern "C" fn page_goal(page_bytes: usize) -> u32 {
    if !page_reuse_delay() || !qsbr::any_thread_online() {
        return 0;
    }
    qsbr::goal_tag(qsbr::page_goal(page_bytes))
}

/// mimalloc's hook: is the goal of a page's tag reached? Called inside the
/// allocator.
extern "C" fn goal_reached(tag: u32) -> bool {
    qsbr::goal_reached(qsbr::goal_of_tag(tag))
}
