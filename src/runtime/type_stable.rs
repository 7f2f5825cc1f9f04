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
/// 32-bit tag the page keeps ([`qsbr::page_tag`]), or 0 if it may be reused at
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
    qsbr::page_tag(qsbr::page_goal(page_bytes))
}

/// mimalloc's hook: is the goal of a page's tag reached? Called inside the
/// allocator.
extern "C" fn goal_reached(tag: u32) -> bool {
    qsbr::goal_reached(qsbr::page_tag_goal(tag))
}
